#!/usr/bin/env bash
# A long batch on the tiny fixtures: throughput, memory over the run, and a SIGKILL + restart.
#
#   bench/batch_200.sh [N]        N inputs (default 200)
#
# Makes N inputs (copies of the fixture photos: square, 3:2, RGBA 5:3), a recipe with the tiny
# SD1.5 model (64×64, STEPS img2img steps), then:
#   1. runs `kiln batch` and SIGKILLs it after KILL_AFTER outputs exist;
#   2. checks no partial file is left where outputs go, then restarts the same batch to the end;
#   3. samples the process's RSS every second during both runs (peak, and first vs last
#      quarter of the second run: flat memory means these agree);
#   4. checks every input has exactly one output and none was written twice.
# Prints one summary block. Environment: KILN [target/release/kiln], STEPS [4],
# KILL_AFTER [N/3], WORK [a new temp dir].
set -euo pipefail

N=${1:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$ROOT/target/release/kiln}
STEPS=${STEPS:-4}
KILL_AFTER=${KILL_AFTER:-$((N / 3))}
WORK=${WORK:-$(mktemp -d)}
FIX=$ROOT/tests/fixtures
export KILN_CONFIG_DIR=$WORK/config KILN_DATA_DIR=$WORK/data

[[ -x $KILN ]] || { echo "build first: cargo build --release" >&2; exit 2; }
mkdir -p "$WORK/in"
sources=(init-64.png photo-96x64.png photo-600x360-rgba.png)
for ((i = 0; i < N; i++)); do
    cp "$FIX/${sources[i % 3]}" "$WORK/in/img-$(printf %03d "$i").png"
done
"$KILN" generate --model "$FIX/tiny-sd15" --prompt "a clay figure" --init "$FIX/init-64.png" \
    --strength 0.6 --steps "$STEPS" --seed 5 --output "$WORK/look.png" >/dev/null
"$KILN" info --json "$WORK/look.png" >"$WORK/recipe.json"

outputs() { find "$WORK/out" -name '*.png' -not -path '*/.kiln-batch/*' 2>/dev/null | wc -l; }

# Samples RSS (kB) of PID into FILE every second until it exits.
sample_rss() {
    local pid=$1 file=$2
    while kill -0 "$pid" 2>/dev/null; do
        awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null >>"$file" || true
        sleep 1
    done
}

args=(batch --input "$WORK/in" --output "$WORK/out" --recipe "$WORK/recipe.json")

# Run 1: killed mid-way.
start=$(date +%s.%N)
"$KILN" "${args[@]}" >"$WORK/run1.log" 2>&1 &
pid=$!
sample_rss "$pid" "$WORK/rss1" &
while (($(outputs) < KILL_AFTER)) && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
killed_at=$(outputs)
partial=$(find "$WORK/out" -not -path '*/.kiln-batch/*' -type f -not -name '*.png' | wc -l)
bad_png=0
for f in $(find "$WORK/out" -name '*.png' -not -path '*/.kiln-batch/*'); do
    python3 -c "import sys,zlib,struct
d=open(sys.argv[1],'rb').read()
sys.exit(0 if d.startswith(b'\x89PNG') and d.endswith(b'IEND\xaeB\`\x82') else 1)" "$f" || bad_png=$((bad_png + 1))
done

# Run 2: to the end.
start2=$(date +%s.%N)
"$KILN" "${args[@]}" >"$WORK/run2.log" 2>&1 &
pid=$!
sample_rss "$pid" "$WORK/rss2" &
status=0
wait "$pid" || status=$?
end=$(date +%s.%N)
sleep 1.2
done_total=$(outputs)
names_unique=$(find "$WORK/out" -name '*.png' -not -path '*/.kiln-batch/*' -printf '%f\n' |
    sed 's/-[0-9a-f]\{8\}\.png$//' | sort | uniq -d | wc -l)
run2_done=$((done_total - killed_at))
secs2=$(echo "$end - $start2" | bc)
read -r peak1 < <(sort -n "$WORK/rss1" | tail -1)
read -r peak2 first_q last_q < <(awk '{ v[NR] = $1 } END {
    q = int(NR / 4); if (q < 1) q = 1
    for (i = 1; i <= NR; i++) if (v[i] > p) p = v[i]
    for (i = 1; i <= q; i++) a += v[i]
    for (i = NR - q + 1; i <= NR; i++) b += v[i]
    printf "%d %d %d\n", p, a / q, b / q }' "$WORK/rss2")
cat <<EOF
batch of $N inputs (tiny SD1.5, $STEPS steps), work dir $WORK
run 1: SIGKILL after $killed_at outputs; partial files left: $partial; PNGs not complete: $bad_png
run 2: exit $status; made $run2_done more in ${secs2} s ($(echo "scale=2; $run2_done / $secs2" | bc) images/s)
total outputs: $done_total of $N; inputs with more than one output: $names_unique
RSS run 1 peak: $((peak1 / 1024)) MiB; run 2 peak: $((peak2 / 1024)) MiB, mean first quarter $((first_q / 1024)) MiB, last quarter $((last_q / 1024)) MiB
summary line of run 2: $(grep -E 'done|skipped|failed' "$WORK/run2.log" | tail -1)
EOF
[[ $status -eq 0 && $done_total -eq $N && $names_unique -eq 0 && $partial -eq 0 && $bad_png -eq 0 ]]
