#!/usr/bin/env bash
# Every CPU figure of the README's performance table, in one run, side by side on this machine.
#   bench/run_cpu.sh [OUT.jsonl]      (default bench/results/cpu-<date>.jsonl; needs torch==2.13.0 in .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-bench/results/cpu-$(date +%Y-%m-%d).jsonl}
: > "$OUT"
run() { echo "+ $*" >&2; "$PY" "$@" | tail -n 1 | tee -a "$OUT"; }
"$PY" bench/matmul.py | tee -a "$OUT"
# Alternate the frameworks (3 rounds for conv-4, 2 for Koch): this virtual machine's speed drifts
# (CPU steal, recorded as cpu_steal_pct); the table takes each configuration's median run.
for round in 1 2 3; do
  run bench/train_step.py --framework torch --model conv4 --batch 128
  run bench/train_step.py --framework jax   --model conv4 --batch 128 --impl fast
done
run bench/train_step.py --framework jax   --model conv4 --batch 128 --impl xla
run bench/train_step.py --framework jax   --model conv4 --batch 128 --impl fast --dtype bfloat16
for round in 1 2; do
  run bench/train_step.py --framework torch --model koch  --batch 128 --steps 3
  run bench/train_step.py --framework jax   --model koch  --batch 128 --impl fast --steps 3
done
run bench/embed.py --framework torch --model conv4 --batch 512
run bench/embed.py --framework jax   --model conv4 --batch 512
run bench/embed.py --framework torch --model koch  --batch 64
run bench/embed.py --framework jax   --model koch  --batch 64
run bench/embed.py --lake_trials
"$PY" bench/pipeline.py | tee -a "$OUT"
echo "wrote $OUT" >&2
