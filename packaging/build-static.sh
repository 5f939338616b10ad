#!/usr/bin/env bash
# Build supd, supctl and sup-init (the containers' init) as static executables (glibc, crt-static) and print the
# directory that holds them:
#
#   packaging/build-static.sh        # -> target/x86_64-unknown-linux-gnu/release
#
# Why the explicit --target: with crt-static in RUSTFLAGS and no --target, cargo
# builds proc-macro crates (serde_derive, clap_derive, ...) with it too, and a
# proc macro must be a shared object. With --target the flags apply only to the
# binaries' own crates; build scripts and proc macros are built for the host as
# usual. The output goes to target/TRIPLE/release, apart from the dynamic
# `cargo build --release` (target/release) the README's first command uses.
#
# Fails if a binary is not static or uses NSS, or if sup-init's code from its
# own entry point calls into glibc (docs/packaging.md, "Static binaries").
set -euo pipefail
cd "$(dirname "$0")/.."
triple=x86_64-unknown-linux-gnu
out=${CARGO_TARGET_DIR:-target}/$triple/release
# cargo's progress and warnings to stderr: stdout is the directory only.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --bins --target "$triple" >&2
for bin in supd supctl sup-init; do
    # A dynamic executable has a program interpreter (ld-linux.so); a static one none.
    if readelf -l "$out/$bin" | grep -q INTERP; then
        echo "packaging/build-static.sh: $out/$bin is not static" >&2
        exit 1
    fi
    # glibc marks each function that loads code at run time (the NSS lookups:
    # getpwnam, getgrnam, getpwuid_r, getaddrinfo, gethostbyname, ...) with a link
    # warning, kept in the executable as an __evoke_link_warning_NAME symbol; rustc
    # does not show the linker's warnings, so look for the symbols. dlopen and
    # dlmopen are in every static Rust program (the standard library's runtime) and
    # are never called by supd; anything else would need NSS modules that an
    # initramfs or an image does not have.
    nss=$(nm "$out/$bin" | sed -n 's/.* __evoke_link_warning_//p' | grep -vxE 'dlopen|dlmopen' || true)
    if [ -n "$nss" ]; then
        echo "packaging/build-static.sh: $out/$bin uses glibc functions that need shared libraries at run time: ${nss//$'\n'/ }" >&2
        exit 1
    fi
done
# sup-init starts at its own entry point (src/bin/sup-init.rs), before glibc's
# start-up would have set up TLS (errno) and picked its IFUNC variants (strlen,
# memcpy, ... are called through the GOT): from the entry it may reach only its
# own code and Rust's, never glibc's, or every container's init crashes. The
# tests run the dynamic build, where ld.so has set glibc up, so look here:
# follow the direct calls and jumps from the entry; every function reached must
# be Rust's (mangled _ZN/_R names) or the entry and main, and none may call or
# jump through a pointer.
objdump -d --no-show-raw-insn "$out/sup-init" | awk '
    /^[0-9a-f]+ <.*>:$/ { fn = substr($2, 2, length($2) - 3); next }
    fn != "" && /[ \t](call|jmp) +\*/ { indirect[fn] = indirect[fn] " [" $0 "]" }
    fn != "" && match($0, /[ \t](call|jmp) +[0-9a-f]+ <[^>+]+>/) {
        t = substr($0, RSTART, RLENGTH); sub(/.*</, "", t); sub(/>$/, "", t)
        edges[fn] = edges[fn] " " t
    }
    END {
        todo[1] = "sup_init_start"; n = 1; bad = ""
        for (i = 1; i <= n; i++) {
            f = todo[i]
            if (f in seen) continue
            seen[f] = 1
            if (f !~ /^(_ZN|_R)/ && f != "sup_init_start" && f != "main") bad = bad " " f
            if (f in indirect) bad = bad " " f ":" indirect[f]
            m = split(edges[f], to, " ")
            for (j = 1; j <= m; j++) todo[++n] = to[j]
        }
        if (!("main" in seen)) bad = bad " (no sup_init_start calling main)"
        if (bad != "") { print "packaging/build-static.sh: sup-init reaches glibc from its entry:" bad > "/dev/stderr"; exit 1 }
    }'
echo "$out"
