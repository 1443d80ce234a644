#!/usr/bin/env bash
# Builds Kiln's installers with cargo-packager (packaging/Packager.toml).
#
#   bash packaging/package.sh deb          Debian/Ubuntu .deb      (Linux)
#   bash packaging/package.sh appimage     AppImage                (Linux; offline: appimage/build.sh)
#   bash packaging/package.sh nsis|wix     Windows installers      (on Windows)
#   bash packaging/package.sh dmg          macOS disk image        (on macOS)
#
# Installs cargo-packager (pinned) with `cargo install` when missing, builds the release binary,
# and writes the package under target/release/. For .deb, `packaging/check-deb.sh` lists its
# contents, installs it into a throw-away root and runs the installed `kiln --version`.
set -euo pipefail
cd "$(dirname "$0")/.."
FORMAT=${1:-deb}
if [ "$FORMAT" = appimage ]; then
    exec bash packaging/appimage/build.sh
fi
PACKAGER_VERSION=0.11.8
if ! cargo packager --version 2>/dev/null | grep -q "$PACKAGER_VERSION"; then
    cargo install cargo-packager --version "$PACKAGER_VERSION" --locked
fi
cargo build --release -p kiln
cargo packager --release --config packaging/Packager.toml --formats "$FORMAT"
