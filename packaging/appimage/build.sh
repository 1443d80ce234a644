#!/usr/bin/env bash
# Builds Kiln's AppImage offline: target/release/Kiln-<version>-x86_64.AppImage.
#
# An AppImage (type 2) is an ELF runtime with `AI\x02` at byte 8, followed by a SquashFS image
# of an AppDir. cargo-packager's AppImage format downloads linuxdeploy and its runtime from
# GitHub; this script needs no network beyond the package registries:
#   - the runtime is our own (packaging/appimage/runtime, pure Rust: it extracts the image once
#     into ~/.cache/kiln-appimage and runs AppRun, so FUSE is not needed);
#   - the SquashFS image is made by mksquashfs (Debian's squashfs-tools, installed when missing).
# The AppDir holds usr/bin/kiln, the desktop entry, the icons and an AppRun that starts kiln.
#
#   bash packaging/appimage/build.sh        (or: bash packaging/package.sh appimage)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v mksquashfs > /dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q squashfs-tools > /dev/null
    else
        echo "mksquashfs is missing: sudo apt-get install squashfs-tools" >&2
        exit 1
    fi
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(uname -m)
cargo build --release -p kiln
CARGO_TARGET_DIR=target/appimage-runtime \
    cargo build --release --manifest-path packaging/appimage/runtime/Cargo.toml
runtime=target/appimage-runtime/release/kiln-appimage-runtime

work=target/release/appimage
appdir="$work/Kiln.AppDir"
rm -rf "$work"
mkdir -p "$appdir/usr/bin" "$appdir/usr/share/applications"
cp target/release/kiln "$appdir/usr/bin/kiln"
for size in 16 24 32 48 64 128 256 512 1024; do
    icon="packaging/icons/${size}x${size}.png"
    [ -f "$icon" ] || continue
    mkdir -p "$appdir/usr/share/icons/hicolor/${size}x${size}/apps"
    cp "$icon" "$appdir/usr/share/icons/hicolor/${size}x${size}/apps/kiln.png"
done
cp packaging/icons/256x256.png "$appdir/kiln.png"
ln -s kiln.png "$appdir/.DirIcon"
sed -e 's/{{exec}}/kiln/' -e 's/{{icon}}/kiln/' -e 's/{{categories}}/Graphics;2DGraphics;/' \
    packaging/kiln.desktop > "$appdir/kiln.desktop"
cp "$appdir/kiln.desktop" "$appdir/usr/share/applications/kiln.desktop"
cat > "$appdir/AppRun" <<'APPRUN'
#!/bin/sh
# Starts Kiln from the AppDir the runtime extracted (APPDIR), with the AppImage's arguments.
here="${APPDIR:-$(dirname "$(readlink -f "$0")")}"
exec "$here/usr/bin/kiln" "$@"
APPRUN
chmod +x "$appdir/AppRun"

mksquashfs "$appdir" "$work/kiln.squashfs" -root-owned -noappend -comp gzip -quiet > /dev/null
out="target/release/Kiln-$version-$arch.AppImage"
cp "$runtime" "$out.tmp"
# The runtime must end where its section headers end: that is where the image will start.
end=$(python3 - "$out.tmp" <<'PY'
import struct, sys
h = open(sys.argv[1], "rb").read(64)
shoff, = struct.unpack_from("<Q", h, 0x28)
shentsize, shnum = struct.unpack_from("<HH", h, 0x3a)
print(shoff + shentsize * shnum)
PY
)
[ "$end" = "$(stat -c %s "$out.tmp")" ] || { echo "runtime does not end at its section headers" >&2; exit 1; }
printf 'AI\x02' | dd of="$out.tmp" bs=1 seek=8 conv=notrunc status=none
cat "$work/kiln.squashfs" >> "$out.tmp"
chmod +x "$out.tmp"
mv "$out.tmp" "$out"
echo "$out ($(du -h "$out" | cut -f1))"
