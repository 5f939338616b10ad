#!/usr/bin/env bash
# The whole test suite, on a fresh Debian/Ubuntu machine: installs what the tests
# need, then runs every unit and integration test. Run as root (CI does): the
# integration tests create namespaces, cgroups and mounts and switch users. Run as
# another user, the tests that need root are reported as ignored, not passed.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cargo >/dev/null || { echo "tests/run.sh: cargo (rustup) is required" >&2; exit 1; }
command -v setpriv >/dev/null || need+=(util-linux)
command -v busybox >/dev/null || need+=(busybox-static)
# The escape suite's real daemon, run as a default unit (tests/escape/daemon.rs).
command -v redis-server >/dev/null || need+=(redis-server)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
command -v cpio >/dev/null || need+=(cpio)
command -v cc >/dev/null || need+=(gcc)
# Bridge networking (tests/network): netlink tools for the test's own namespaces,
# nft for supd's NAT table, python3 for the echo server and client the units run.
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
[ -x /usr/bin/python3 ] || need+=(python3)
# The generated completions and man pages are checked with each shell and groff.
command -v zsh >/dev/null || need+=(zsh)
command -v fish >/dev/null || need+=(fish)
command -v groff >/dev/null || need+=(groff-base)
# Real daemons the tests run under supd.
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
# The microservices example, run end to end (tests/examples): nginx in front,
# curl to ask it.
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
# The Debian package is checked with lintian (tests/packaging).
command -v lintian >/dev/null || need+=(lintian)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests/run.sh: missing packages: ${need[*]}; run this script as root to install them (apt-get)" >&2
        exit 1
    fi
    apt-get update -qq
    # Install only: no daemon (postgres' default cluster) may start on the host.
    policy=/usr/sbin/policy-rc.d
    [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; trap 'rm -f "$policy"' EXIT; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# The VM test boots the static release binaries (packaging/mkinitramfs.sh) and the
# packaging test packs them into a .deb (packaging/build-deb.sh); build them first
# so the tests themselves only pack. This is the suite's one release (LTO) build.
packaging/build-static.sh >/dev/null
if [ "$(id -u)" -eq 0 ]; then
    # As root every test can run, and must: one that finds it cannot (say qemu is
    # missing) fails instead of being ignored.
    export SUP_TEST_STRICT=1
else
    echo "tests/run.sh: not root: the integration tests that need root will be reported as ignored" >&2
fi
# The dev profile: the release profile uses LTO (for a fast-starting helper),
# which would make every test binary slow to build. --no-fail-fast: a failing test
# binary does not hide the results of the ones after it.
cargo test --all-targets --no-fail-fast "$@"
