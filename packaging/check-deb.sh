#!/usr/bin/env bash
# Checks a built Kiln .deb: lists its contents and control fields, checks the binary, the
# desktop entry (with image MIME types) and every icon size are inside, installs it into a
# throw-away root with dpkg and runs the installed `kiln --version` from there.
#
#   bash packaging/check-deb.sh [target/release/kiln_*.deb]
set -euo pipefail
cd "$(dirname "$0")/.."
DEB=${1:-$(ls -t target/release/*.deb | head -1)}
[[ -f $DEB ]] || { echo "no .deb: run bash packaging/package.sh deb first" >&2; exit 1; }
echo "== $DEB ($(du -h "$DEB" | cut -f1))"
dpkg-deb --info "$DEB" | sed -n '/Package:/,$p'
echo "== contents"
dpkg-deb --contents "$DEB" | awk '{ print $6 }'
contents=$(dpkg-deb --contents "$DEB" | awk '{ sub(/^\.\//, "", $6); print $6 }')
for want in usr/bin/kiln usr/share/applications/kiln.desktop \
    usr/share/icons/hicolor/256x256/apps/kiln.png usr/share/icons/hicolor/32x32/apps/kiln.png; do
    grep -qx "$want" <<<"$contents" || { echo "missing $want" >&2; exit 1; }
done
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/var/lib/dpkg/updates" "$ROOT/var/lib/dpkg/info"
touch "$ROOT/var/lib/dpkg/status"
# --force-depends: the throw-away root has no libc packages registered; the binary runs with
# the host's libraries.
dpkg --root="$ROOT" --force-depends --force-not-root -i "$DEB" >/dev/null
dpkg --root="$ROOT" -L kiln | grep -q '^/usr/bin/kiln$'
echo "== desktop entry"
cat "$ROOT/usr/share/applications/kiln.desktop"
grep -q '^MimeType=image/png;' "$ROOT/usr/share/applications/kiln.desktop"
grep -q '^Exec=kiln %F' "$ROOT/usr/share/applications/kiln.desktop"
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$ROOT/usr/share/applications/kiln.desktop"
fi
echo "== installed binary"
"$ROOT/usr/bin/kiln" --version
echo "check-deb: OK"
