#!/usr/bin/env bash
# A real one-node Slurm runs packaging/cluster/kiln-batch.sbatch (issue 13). Needs root (installs Debian's slurm-wlm and munge when missing, writes
# /etc/slurm/slurm.conf and /etc/munge/munge.key if absent) and a built kiln
# (cargo build --release). No cgroups: proctrack/linuxproc, task/none.
#
#   1. a 3-task array over 12 tiny-fixture inputs: every input done exactly once;
#   2. a 3-task array over 30 inputs where task 0 is cancelled (scancel) mid-run and then
#      requeued: it finishes the rest, and again every input is done exactly once.
#
# Stops the daemons it started when it ends. Usage: sudo bash scripts/test-slurm.sh
# Exit status: 0 passed, 1 failed, 77 skipped (not root, or Slurm cannot run here).
# scripts/test.sh runs it after the cargo tests (KILN_SKIP_SLURM=1 leaves it out).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$ROOT/target/release/kiln}
FIXTURES=$ROOT/tests/fixtures
SBATCH_SCRIPT=$ROOT/packaging/cluster/kiln-batch.sbatch

fail() { echo "test-slurm: FAIL: $*" >&2; exit 1; }
# The environment cannot run Slurm (no packages, daemons that do not start): exit 77, which
# scripts/test.sh reports as skipped rather than failed.
skip() { echo "test-slurm: SKIPPED: $*" >&2; exit 77; }
say() { echo "test-slurm: $*"; }

[[ $(id -u) -eq 0 ]] || skip "run as root (it installs and starts Slurm)"
[[ -x $KILN ]] || fail "no kiln binary at $KILN (cargo build --release, or set KILN)"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null; } ||
    skip "cannot install slurm-wlm and munge"
fi

WORK=$(mktemp -d /tmp/kiln-slurm.XXXXXX)
chmod 755 "$WORK"
cleanup() {
  local pids=()
  for f in "$WORK/slurmd.pid" "$WORK/slurmctld.pid"; do
    if [[ -f $f ]]; then pids+=("$(cat "$f")"); fi
  done
  if [[ -n ${STARTED_MUNGE:-} && -f /run/munge/munged.pid ]]; then
    pids+=("$(cat /run/munge/munged.pid)")
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # The daemons write their state while they stop: wait for them before removing it.
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  if [[ -n ${KEEP:-} ]]; then
    echo "test-slurm: kept $WORK"
  else
    rm -rf "$WORK" 2>/dev/null || { sleep 1; rm -rf "$WORK" || true; }
  fi
}
trap cleanup EXIT

# --- munge ----------------------------------------------------------------------------------
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge
chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged || skip "munged did not start"
  STARTED_MUNGE=1
fi
munge -n | unmunge >/dev/null || skip "munge does not work"

# --- slurm ----------------------------------------------------------------------------------
HOST=$(hostname -s)
mkdir -p /etc/slurm "$WORK/state" "$WORK/spool"
NODE_LINE=$(slurmd -C | head -1)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
NODE_LINE=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$MEM_MB/" <<<"$NODE_LINE")
if [[ -f /etc/slurm/slurm.conf && ! -f /etc/slurm/slurm.conf.kiln-test ]]; then
  cp /etc/slurm/slurm.conf /etc/slurm/slurm.conf.before-kiln-test
fi
cat >/etc/slurm/slurm.conf <<EOF
# Written by kiln scripts/test-slurm.sh: a one-node test cluster without cgroups.
ClusterName=kiln-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
KillWait=5
$NODE_LINE
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
touch /etc/slurm/slurm.conf.kiln-test
# Drop a cgroup.conf that would ask for cgroup plugins.
[[ -f /etc/slurm/cgroup.conf ]] && mv /etc/slurm/cgroup.conf /etc/slurm/cgroup.conf.before-kiln-test

slurmctld -i || skip "slurmctld did not start (see $WORK/slurmctld.log)"
slurmd || skip "slurmd did not start (see $WORK/slurmd.log)"
for _ in $(seq 60); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then break; fi
  sleep 1
done
sinfo -h -o '%T' | grep -qE '^(idle|mixed|allocated)' || {
  sinfo >&2 || true
  skip "the node did not come up (see $WORK/slurmd.log)"
}
say "Slurm is up: $(sinfo -h -o '%N %c CPUs %m MB %T')"

# --- inputs and recipe ----------------------------------------------------------------------
make_inputs() { # folder count
  mkdir -p "$1"
  local sources=(init-64.png photo-96x64.png photo-600x360-rgba.png)
  for ((i = 0; i < $2; i++)); do
    cp "$FIXTURES/${sources[$((i % 3))]}" "$1/img-$(printf %03d "$i").png"
  done
}
"$KILN" generate --model "$FIXTURES/tiny-sd15" --prompt "a clay figure" --init "$FIXTURES/init-64.png" \
  --strength 0.6 --steps 2 --seed 5 --output "$WORK/look.png" >/dev/null 2>&1 || fail "kiln generate"
"$KILN" info --json "$WORK/look.png" >"$WORK/look.json"

submit() { # name input output steps
  sbatch --parsable --array=0-2 --cpus-per-task=1 --mem=1G --chdir="$WORK" \
    --output="$WORK/$1-%A_%a.log" \
    --export="ALL,KILN=$KILN,KILN_INPUT=$2,KILN_OUTPUT=$3,KILN_RECIPE=$WORK/look.json,KILN_ARGS=--steps $4" \
    "$SBATCH_SCRIPT"
}
wait_job() { # job
  for _ in $(seq 600); do
    [[ -z $(squeue -h -j "$1" 2>/dev/null) ]] && return 0
    sleep 1
  done
  fail "job $1 did not finish in 10 minutes"
}
check_once() { # input output count
  local n_out dup
  n_out=$(find "$2" -maxdepth 1 -name '*.png' | wc -l)
  dup=$(find "$2" -maxdepth 1 -name '*.png' -printf '%f\n' | sed -E 's/-[0-9a-f]{8}\.png$//' | sort | uniq -d)
  [[ -z $dup ]] || fail "inputs done twice: $dup"
  [[ $n_out -eq $3 ]] || fail "$n_out outputs for $3 inputs in $2"
  [[ -z $(ls -A "$2/.kiln-batch/claims") ]] || fail "claims left in $2/.kiln-batch/claims"
  find "$2" -maxdepth 1 -name '*.png' -print0 | xargs -0 -n1 "$KILN" info >/dev/null \
    || fail "an output has no recipe"
}

# --- 1. a 3-task array ------------------------------------------------------------------------
make_inputs "$WORK/in1" 12
JOB=$(submit one "$WORK/in1" "$WORK/out1" 2)
say "array job $JOB (3 tasks, 12 inputs)"
wait_job "$JOB"
cat "$WORK"/one-"$JOB"_*.log | grep -E '^(kiln-batch:|batch:)' || true
grep -h '^batch: [0-9]' "$WORK"/one-"$JOB"_*.log | grep -vq ' 0 failed' && fail "a task reported failures"
check_once "$WORK/in1" "$WORK/out1" 12
say "OK: every input done exactly once by the 3 tasks"

# --- 2. scancel one task mid-run, requeue it ------------------------------------------------
make_inputs "$WORK/in2" 30
JOB=$(submit two "$WORK/in2" "$WORK/out2" 12)
say "array job $JOB (3 tasks, 30 inputs, 12 steps); cancelling task 0 mid-run"
LOG0=$WORK/two-${JOB}_0.log
for _ in $(seq 300); do
  [[ -f $LOG0 ]] && grep -q '^done ' "$LOG0" && break
  sleep 0.2
done
grep -q '^done ' "$LOG0" || fail "task 0 produced nothing"
scancel "${JOB}_0"
for _ in $(seq 60); do
  [[ -z $(squeue -h -j "${JOB}_0" 2>/dev/null) ]] && break
  sleep 1
done
before=$(grep -c '^done ' "$LOG0" || true)
say "task 0 cancelled after $before outputs; requeueing it"
cp "$LOG0" "$WORK/two-task0-first.log"
if ! scontrol requeue "${JOB}_0" 2>"$WORK/requeue.err"; then
  say "scontrol requeue refused ($(cat "$WORK/requeue.err")): submitting shard 0 again"
  JOB0=$(sbatch --parsable --array=0 --cpus-per-task=1 --mem=1G --chdir="$WORK" \
    --output="$WORK/two-again-%A_%a.log" \
    --export="ALL,KILN_SHARDS=3,KILN=$KILN,KILN_INPUT=$WORK/in2,KILN_OUTPUT=$WORK/out2,KILN_RECIPE=$WORK/look.json,KILN_ARGS=--steps 12" \
    "$SBATCH_SCRIPT")
  wait_job "$JOB0"
  LOG0=$WORK/two-again-${JOB0}_0.log
else
  # A requeued job waits ~2 minutes before it may start again; let it start now.
  scontrol update JobId="${JOB}_0" StartTime=now 2>/dev/null || true
fi
wait_job "$JOB"
grep -h '^batch: [0-9]' "$WORK"/two-*.log || true
grep -q 'already done' "$LOG0" || fail "the requeued task did not skip what it had done: $(cat "$LOG0")"
check_once "$WORK/in2" "$WORK/out2" 30
say "OK: the cancelled and requeued task finished the rest; every input done exactly once"
say "all Slurm checks passed"
