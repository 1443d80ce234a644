#!/usr/bin/env bash
# Checks a built Kiln AppImage: the AppImage magic bytes, the SquashFS offset, the extracted
# AppDir's contents (AppRun, the binary, the desktop entry with image MIME types, the icons), and
# runs `kiln --version` through the AppImage itself (extract-and-run into a throw-away cache; no
# FUSE needed), twice (the second run reuses the extraction), then once with
# --appimage-extract-and-run (temporary folder, removed afterwards) and once with a stale
# APPIMAGE in the environment (as a parent AppImage would leave it; it must be ignored).
#
#   bash packaging/check-appimage.sh [target/release/Kiln-*.AppImage]
set -euo pipefail
cd "$(dirname "$0")/.."
APPIMAGE=$(readlink -f "${1:-$(ls -t target/release/Kiln-*.AppImage | head -1)}")
[[ -x $APPIMAGE ]] || { echo "no AppImage: run bash packaging/package.sh appimage first" >&2; exit 1; }
echo "== $APPIMAGE ($(du -h "$APPIMAGE" | cut -f1))"
[ "$(head -c 11 "$APPIMAGE" | tail -c 3 | od -An -tx1 | tr -d ' ')" = "414902" ] \
    || { echo "missing the AppImage type-2 magic (AI\\x02 at byte 8)" >&2; exit 1; }
offset=$("$APPIMAGE" --appimage-offset)
echo "SquashFS image at byte $offset"
if command -v unsquashfs > /dev/null; then
    # The image must also read with squashfs-tools (what squashfuse/the reference runtime see).
    unsquashfs -o "$offset" -s "$APPIMAGE" | sed -n '1,/^Filesystem size/p'
    unsquashfs -o "$offset" -l "$APPIMAGE" | grep -qx 'squashfs-root/usr/bin/kiln' \
        || { echo "unsquashfs does not find usr/bin/kiln in the image" >&2; exit 1; }
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && "$APPIMAGE" --appimage-extract > /dev/null)
echo "== contents"
(cd "$WORK/squashfs-root" && find . | sort)
for want in AppRun usr/bin/kiln kiln.desktop kiln.png .DirIcon usr/share/applications/kiln.desktop \
    usr/share/icons/hicolor/256x256/apps/kiln.png usr/share/icons/hicolor/32x32/apps/kiln.png; do
    [ -e "$WORK/squashfs-root/$want" ] || { echo "missing $want" >&2; exit 1; }
done
[ -x "$WORK/squashfs-root/usr/bin/kiln" ] || { echo "usr/bin/kiln is not executable" >&2; exit 1; }
cmp -s "$WORK/squashfs-root/usr/bin/kiln" target/release/kiln && echo "usr/bin/kiln = target/release/kiln"
grep -q '^MimeType=image/png;' "$WORK/squashfs-root/kiln.desktop"
grep -q '^Exec=kiln %F' "$WORK/squashfs-root/kiln.desktop"
echo "== run"
for run in first second; do
    out=$(XDG_CACHE_HOME="$WORK/cache" "$APPIMAGE" --version)
    echo "$run run: $out"
    [[ $out == kiln\ * ]] || { echo "unexpected output" >&2; exit 1; }
done
mkdir -p "$WORK/tmp"
out=$(TMPDIR="$WORK/tmp" "$APPIMAGE" --appimage-extract-and-run --version)
echo "extract-and-run: $out"
[[ $out == kiln\ * ]] || { echo "unexpected output" >&2; exit 1; }
[ -z "$(ls -A "$WORK/tmp")" ] || { echo "extract-and-run left files in TMPDIR" >&2; exit 1; }
out=$(APPIMAGE=/bin/true XDG_CACHE_HOME="$WORK/cache" "$APPIMAGE" --version)
echo "with a stale APPIMAGE: $out"
[[ $out == kiln\ * ]] || { echo "unexpected output" >&2; exit 1; }
echo "AppImage OK"
