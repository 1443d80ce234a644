#!/usr/bin/env bash
# The whole test suite, as the README says: installs what headless UI tests need (Mesa's
# software Vulkan, Xvfb; Debian/Ubuntu, skipped when present), then runs every test in the
# release profile (one profile for app, benchmarks and tests; see PLATFORM.md) and closes with
# one summary line over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/install-ui-test-deps.sh ]; then
  bash scripts/install-ui-test-deps.sh
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
