#!/usr/bin/env bash
# The whole test suite, as the README says: installs what headless UI tests need (Mesa's
# software Vulkan, Xvfb; Debian/Ubuntu, skipped when present or not root), then runs every test
# in the release profile (one profile for app, benchmarks and tests; see PLATFORM.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/install-ui-test-deps.sh ]; then
  bash scripts/install-ui-test-deps.sh
fi
exec cargo test --release --workspace "$@"
