#!/usr/bin/env bash
# Build a bootable initramfs with supd as /init.
#
#   packaging/mkinitramfs.sh OUT.cpio.gz [UNITS_DIR] [EXTRA_DIR]
#
# Contents: supd (as /init and /bin/supd), supctl and sup-init, static (built by
# packaging/build-static.sh, so no shared library is copied), a static busybox
# with its applets in /bin, the unit files of UNITS_DIR (default: units/) in
# /etc/sup/units, and EXTRA_DIR's contents copied to / (e.g. a container
# rootfs). Needs: cargo, cpio, gzip, busybox-static, binutils.
# Boot it (see README, "Run sup as the init of a VM"):
#   qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot \
#     -kernel "$(ls /boot/vmlinuz-* | tail -n 1)" -initrd OUT.cpio.gz -append "console=ttyS0 quiet panic=-1"
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1")
units=$(realpath "${2:-units}")
extra=${3:-}
bin_dir=$(packaging/build-static.sh)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc/sup/units,proc,sys,dev,run,tmp,root}
cp "$bin_dir/supd" "$root/bin/supd"
cp "$bin_dir/supctl" "$root/bin/supctl"
# The containers' init, found beside supd.
cp "$bin_dir/sup-init" "$root/bin/sup-init"
ln -s bin/supd "$root/init"
busybox=$(command -v busybox)
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$units"/*.toml "$root/etc/sup/units/"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
if [ -n "$extra" ]; then
    cp -a "$extra"/. "$root"/
fi
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out"
echo "$out"
