#!/usr/bin/env bash
# Every CPU figure of the README's performance table, in one run, side by side on this machine.
#   bench/run_cpu.sh [OUT.jsonl]      (default bench/results/cpu-<date>.jsonl)
# JAX runs in .venv (make setup: the newest JAX), PyTorch in .venv-torch, made once with
#   python3.11 -m venv .venv-torch && .venv-torch/bin/pip install torch==2.13.0 numpy
# (the CPU build of torch 2.13.0 is on this machine's disk for Python 3.11 only; elsewhere pip would fetch
# a multi-GB CUDA build). PY= / TORCH_PY= override the interpreters.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TORCH_PY=${TORCH_PY:-.venv-torch/bin/python}
OUT=${1:-bench/results/cpu-$(date +%Y-%m-%d).jsonl}
: > "$OUT"
run() { local py=$PY; [[ " $* " == *" --framework torch "* ]] && py=$TORCH_PY
        echo "+ $py $*" >&2; "$py" "$@" | tail -n 1 | tee -a "$OUT"; }
"$PY" bench/matmul.py | tee -a "$OUT"
# Alternate the frameworks (3 rounds for conv-4, 2 for Koch): this virtual machine's speed drifts
# (CPU steal, recorded as cpu_steal_pct); the table takes each configuration's median run.
for round in 1 2 3; do
  run bench/train_step.py --framework torch --model conv4 --batch 128
  run bench/train_step.py --framework jax   --model conv4 --batch 128 --impl fast
done
run bench/train_step.py --framework jax   --model conv4 --batch 128 --impl xla
# which half of the fast path still pays on this JAX: only its convolutions, only its max-pooling
run bench/train_step.py --framework jax   --model conv4 --batch 128 --impl fast-conv
run bench/train_step.py --framework jax   --model conv4 --batch 128 --impl fast-pool
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
