#!/usr/bin/env bash
# Build the Debian package of supd and supctl (static binaries), and print its path:
#
#   packaging/build-deb.sh [OUT_DIR]     # -> OUT_DIR/supd_VERSION_amd64.deb (default: target/deb)
#
# A staged tree packed with dpkg-deb, rather than cargo-deb: dpkg-deb comes with
# every Debian system, while cargo-deb would be compiled in CI at each run.
# Contents and reasons: docs/packaging.md. Needs: cargo, dpkg-deb, gzip, binutils (strip, readelf, nm).
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=$(realpath -m "${1:-${CARGO_TARGET_DIR:-target}/deb}")
bin_dir=$(packaging/build-static.sh)

# The version is the crate's; the binaries must say the same (a stale build would not).
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "packaging/build-deb.sh: no version in Cargo.toml" >&2; exit 1; }
for bin in supd supctl; do
    said=$("$bin_dir/$bin" --version)
    [ "$said" = "$bin $version" ] || {
        echo "packaging/build-deb.sh: $bin_dir/$bin says \"$said\", Cargo.toml $version" >&2
        exit 1
    }
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# The files are packed as root:root with these modes whoever builds (--root-owner-group).
umask 022
chmod 0755 "$stage"
doc=$stage/usr/share/doc/supd
mkdir -p "$stage"/{DEBIAN,usr/bin,etc/sup/units,usr/lib/systemd/system} "$doc" \
    "$stage"/usr/share/man/{man1,man5,man8} \
    "$stage"/usr/share/bash-completion/completions \
    "$stage"/usr/share/zsh/vendor-completions \
    "$stage"/usr/share/fish/vendor_completions.d
# sup-init beside supd: supd looks for the containers' init next to itself.
install -m 0755 "$bin_dir/supd" "$bin_dir/supctl" "$bin_dir/sup-init" "$stage/usr/bin/"
# Without the symbol table, as Debian ships binaries (dh_strip's options): 1 MB less
# for supd. A panic's message and location stay; its backtrace loses names.
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$stage/usr/bin/supd" "$stage/usr/bin/supctl" "$stage/usr/bin/sup-init"
install -m 0644 packaging/deb/supd.service "$stage/usr/lib/systemd/system/"
for page in packaging/man/*.[158]; do
    section=${page##*.}
    # -n: no name or time stamp in the header, so the package is reproducible.
    gzip -9n < "$page" > "$stage/usr/share/man/man$section/$(basename "$page").gz"
done
c=packaging/completions
install -m 0644 "$c/supd.bash" "$stage/usr/share/bash-completion/completions/supd"
install -m 0644 "$c/supctl.bash" "$stage/usr/share/bash-completion/completions/supctl"
install -m 0644 "$c/_supd" "$c/_supctl" "$stage/usr/share/zsh/vendor-completions/"
install -m 0644 "$c/supd.fish" "$c/supctl.fish" "$stage/usr/share/fish/vendor_completions.d/"
install -m 0644 packaging/deb/copyright packaging/deb/README.Debian "$doc/"
mkdir -p "$stage/usr/share/lintian/overrides"
install -m 0644 packaging/deb/lintian-overrides "$stage/usr/share/lintian/overrides/supd"
# A native package's changelog: the version, and where the history is. It and
# every file are dated at the last commit, so a rebuild of one commit differs from
# the first only where the binaries do.
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
date=$(date -R -u -d "@$epoch")
maintainer=$(sed -n 's/^Maintainer: //p' packaging/deb/control)
printf 'supd (%s) unstable; urgency=medium\n\n  * Built from sup %s; the changes are in its git history.\n\n -- %s  %s\n' \
    "$version" "$version" "$maintainer" "$date" | gzip -9n > "$doc/changelog.gz"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/deb/control > "$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$stage/DEBIAN/md5sums"

find "$stage" -exec touch --no-dereference --date="@$epoch" {} +

mkdir -p "$out_dir"
deb=$out_dir/supd_${version}_amd64.deb
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
