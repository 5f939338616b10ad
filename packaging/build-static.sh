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
# Fails if a binary is not static or uses NSS (docs/packaging.md, "Static binaries").
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
echo "$out"
