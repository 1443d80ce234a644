#!/usr/bin/env bash
# Installs what the headless UI tests and the screenshot script need on Debian/Ubuntu:
# Xvfb, Mesa's software Vulkan (lavapipe) and GL drivers, the X11/Wayland client libraries
# winit loads at run time, and ImageMagick's `import` for screenshots.
# Idempotent: packages already installed are skipped; nothing runs when all are present.
set -euo pipefail

packages=(
    xvfb xauth mesa-vulkan-drivers libvulkan1 libgl1-mesa-dri libegl1
    libxkbcommon-x11-0 libwayland-client0 libxcursor1 libxrandr2 libxi6
    x11-apps imagemagick
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "UI test dependencies already installed."
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
