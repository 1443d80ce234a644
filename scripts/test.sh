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
# Tests never read or write the user's keyring (a Hub token there, or a keyring service that
# is slow to answer, must not change what they see): tokens go to the file in the test's
# config folder.
export KILN_TOKEN_STORE=file
# Every test binary runs even after a failure, so one run shows all failures.
cargo test --release --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# A real one-node Slurm runs the cluster batch script on the binary just built (root only;
# exit 77 = this machine cannot run Slurm, reported as skipped).
if [ "$status" -eq 0 ] && [ -z "${KILN_SKIP_SLURM:-}" ] && [ "$#" -eq 0 ]; then
  slurm=0
  bash scripts/test-slurm.sh 2>&1 | tee -a "$log" || slurm=$?
  case "$slurm" in
    0) echo "test result: ok. 1 passed; 0 failed (scripts/test-slurm.sh)" >> "$log" ;;
    77) echo "slurm cluster test skipped (see above)" ;;
    *) echo "test result: FAILED. 0 passed; 1 failed (scripts/test-slurm.sh)" >> "$log"; status=1 ;;
  esac
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
