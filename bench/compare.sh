#!/usr/bin/env bash
# Kiln vs diffusers (PyTorch CPU) on the same model files, interleaved, with a ratio table.
#
#   bench/compare.sh MODEL [SIZE]          e.g. bench/compare.sh /root/models/sd15-random 512x512
#
# Runs, ROUNDS times in this order: diffusers fp32, diffusers bf16, then `kiln bench` for each
# precision in KILN_PRECISIONS; every run is a fresh process (load time and peak RSS included).
# Prints one table: the best (lowest) value of each quantity over the rounds per tool, and
# Kiln time / peer time. Ratios < 1 mean Kiln is faster (or smaller).
#
# Environment (defaults in brackets):
#   PYTHON [/root/kiln-venv/bin/python]   venv with torch, diffusers, transformers
#   KILN [target/release/kiln]            build with: cargo build --release
#   THREADS [2]  STEPS [3]  WARMUP [1]  CFG [7]  ROUNDS [2]  KILN_PRECISIONS [fp32]
#   RESULTS [a new temp dir]              where the raw JSON lines and logs go
set -uo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
MODEL=$1
SIZE=${2:-512x512}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/root/kiln-venv/bin/python}
KILN=${KILN:-$ROOT/target/release/kiln}
THREADS=${THREADS:-2}
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
CFG=${CFG:-7}
ROUNDS=${ROUNDS:-2}
KILN_PRECISIONS=${KILN_PRECISIONS:-fp32}
RESULTS=${RESULTS:-$(mktemp -d /tmp/kiln-compare.XXXXXX)}
mkdir -p "$RESULTS"
JSONL=$RESULTS/results.jsonl
: > "$JSONL"

[[ -e "$MODEL" ]] || { echo "error: model $MODEL not found" >&2; exit 1; }
[[ -x "$KILN" ]] || { echo "error: $KILN not built (cargo build --release)" >&2; exit 1; }
[[ -x "$PYTHON" ]] || { echo "error: python $PYTHON not found (set PYTHON=)" >&2; exit 1; }

# Same thread count for both: torch via --threads (and OpenMP), candle via its rayon pool.
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS

common=(--model "$MODEL" --size "$SIZE" --steps "$STEPS" --warmup "$WARMUP" --cfg "$CFG")

run_one() { # name, command...
    local name=$1 round=$2
    shift 2
    local log="$RESULTS/$name-round$round.log"
    echo "[$(date +%T)] round $round: $name" >&2
    local line
    if line=$("$@" 2> "$log" | tail -n 1) && [[ "$line" == \{* ]]; then
        echo "$line" | "$PYTHON" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["round"]=int(sys.argv[1]); d["tool"]=sys.argv[2]; print(json.dumps(d))' "$round" "$name" >> "$JSONL"
    else
        echo "    $name failed; see $log" >&2
        tail -n 3 "$log" | sed 's/^/    /' >&2
    fi
}

echo "uptime before: $(uptime)" | tee "$RESULTS/uptime.txt" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    for precision in fp32 bf16; do
        run_one "diffusers-$precision" "$round" \
            "$PYTHON" "$ROOT/bench/diffusers_bench.py" "${common[@]}" \
            --precision "$precision" --threads "$THREADS"
    done
    for precision in $KILN_PRECISIONS; do
        run_one "kiln-$precision" "$round" "$KILN" bench "${common[@]}" --precision "$precision" --json
    done
done
echo "uptime after:  $(uptime)" | tee -a "$RESULTS/uptime.txt" >&2

"$PYTHON" - "$JSONL" "$RESULTS/uptime.txt" <<'EOF'
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit("no results")
tools = []
for r in rows:
    if r["tool"] not in tools:
        tools.append(r["tool"])
kilns = [t for t in tools if t.startswith("kiln")]
peers = [t for t in tools if not t.startswith("kiln")]
gflop = next((r.get("unet_gflop_per_step") for r in rows if r.get("unet_gflop_per_step")), None)
vae_gflop = next((r.get("vae_decode_gflop") for r in rows if r.get("vae_decode_gflop")), None)

QUANT = [
    ("model load (s)", "load_s"),
    ("text encode pos+neg (s)", "text_encode_s"),
    ("UNet CFG step, median (s)", "unet_step_median_s"),
    ("UNet CFG step, min (s)", "unet_step_min_s"),
    ("VAE decode (s)", "vae_decode_s"),
    ("peak RSS (GiB)", "peak_rss_bytes"),
]


def best(tool, key):
    vals = [r.get(key) for r in rows if r["tool"] == tool and r.get(key) is not None]
    if not vals:
        return None
    v = min(vals)
    return v / 2**30 if key == "peak_rss_bytes" else v


def fmt(v, width=12, prec=2):
    return f"{v:>{width}.{prec}f}" if v is not None else f"{'n/a':>{width}}"


r0 = rows[0]
print(f"\nmodel {r0['model']}, {r0['width']}x{r0['height']}, cfg {r0['cfg']} "
      f"(UNet batch {r0['unet_batch']}), {r0['threads']} threads, "
      f"{max(r['round'] for r in rows)} round(s); best of the rounds per tool")
head = f"{'quantity':<27}" + "".join(f"{t:>16}" for t in tools)
head += "".join(f"{k + '/' + p.replace('diffusers-', 'd-'):>19}" for k in kilns for p in peers)
print(head)
print("-" * len(head))
for label, key in QUANT:
    line = f"{label:<27}" + "".join(fmt(best(t, key), 16) for t in tools)
    for k in kilns:
        for p in peers:
            a, b = best(k, key), best(p, key)
            line += fmt(a / b if a is not None and b else None, 19)
    print(line)
if gflop:
    line = f"{'UNet GFLOP/s (median)':<27}"
    for t in tools:
        m = best(t, "unet_step_median_s")
        line += fmt(gflop / m if m else None, 16, 1)
    print(line)
if vae_gflop:
    line = f"{'VAE GFLOP/s':<27}"
    for t in tools:
        m = best(t, "vae_decode_s")
        line += fmt(vae_gflop / m if m else None, 16, 1)
    print(line)
if gflop:
    print(f"(FLOPs from `kiln bench`: UNet {gflop:.1f} GFLOP per CFG step, "
          f"VAE decode {vae_gflop or 0:.1f} GFLOP)")

print("\nper round, UNet step median / VAE decode (s):")
for rnd in sorted({r["round"] for r in rows}):
    cells = []
    for t in tools:
        r = next((x for x in rows if x["tool"] == t and x["round"] == rnd), None)
        if r:
            cells.append(f"{t} {r['unet_step_median_s']:.2f} / {r['vae_decode_s'] or float('nan'):.2f}")
    print(f"  round {rnd}: " + "; ".join(cells))
bad = [r["tool"] for r in rows if r.get("outputs_finite") is False]
if bad:
    print("warning: non-finite outputs in", ", ".join(sorted(set(bad))))
print(open(sys.argv[2]).read().rstrip())
print(f"raw results: {sys.argv[1]}")
EOF
