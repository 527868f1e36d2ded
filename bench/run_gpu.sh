#!/usr/bin/env bash
# One prepared accelerator check, in one run of under 8 minutes on one GPU (docs/scaling.md#the-accelerator-check):
# the training step of conv4 (28 px) and Koch (105 px) in float32 and bfloat16, jitted on one device and under
# train.py's pmap and shard_map runners (bench/train_step.py); embed throughput (bench/embed.py); the
# accelerator's losses against the CPU's on a fixed batch (bench/gpu_check.py); and the first call and
# embed throughput of pretrained/omniglot and one network (bench/inference_cost.py). JSON lines, beside the CPU
# results.
#
#   bench/run_gpu.sh [OUT.jsonl]             (default bench/results/gpu-<date>.jsonl)
#   bench/run_gpu.sh --dry-run [OUT.jsonl]   every measurement for 1-2 tiny steps on the CPU, 2 simulated devices
#                                            (default OUT: a new temporary file; SIAMJAX_BENCH_OUT also sets OUT)
#
# Each measurement runs under a time limit (and all of them within RUN_GPU_BUDGET seconds, default 450); one
# that fails or runs out of time writes {"bench": "run_gpu", "step": ..., "error": ...} and the others go on.
# The last line is {"bench": "run_gpu", "summary": ...}; the exit status is 1 when a step failed or the losses
# differ. PY (default .venv/bin/python) is the Python with siamjax and jax[cuda] installed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
if [ "$DRY" = 1 ]; then
  OUT=${1:-${SIAMJAX_BENCH_OUT:-$(mktemp "${TMPDIR:-/tmp}/siamjax-gpu-dry-run-XXXXXX.jsonl")}}
  export JAX_PLATFORMS=cpu
  case "${XLA_FLAGS:-}" in
    *xla_force_host_platform_device_count*) ;;
    *) export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=2" ;;
  esac
else
  OUT=${1:-${SIAMJAX_BENCH_OUT:-bench/results/gpu-$(date -u +%Y-%m-%d).jsonl}}
fi
BUDGET=${RUN_GPU_BUDGET:-450}
START=$(date +%s)
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
FAILED=()
STEPS=()

# run NAME LIMIT_S COMMAND...: the command's JSON lines (lines starting with "{") go to OUT, the rest to stderr.
run() {
  local name=$1 limit=$2; shift 2
  local left=$(( BUDGET - ($(date +%s) - START) ))
  (( limit > left )) && limit=$left
  STEPS+=("$name")
  if (( limit < 5 )); then
    echo "{\"bench\": \"run_gpu\", \"step\": \"$name\", \"error\": \"skipped: the ${BUDGET} s budget is spent\"}" >> "$OUT"
    FAILED+=("$name"); return
  fi
  echo "+ [$name, ${limit} s] $*" >&2
  local log rc t0=$(date +%s)
  log=$(mktemp)
  timeout "$limit" "$@" > "$log"
  rc=$?
  grep '^{' "$log" | tee -a "$OUT"
  grep -v '^{' "$log" >&2
  rm -f "$log"
  if (( rc != 0 )); then
    echo "{\"bench\": \"run_gpu\", \"step\": \"$name\", \"error\": \"exit status $rc$( ((rc == 124)) && echo ': ran past its time limit')\", \"seconds\": $(( $(date +%s) - t0 ))}" | tee -a "$OUT"
    FAILED+=("$name")
  fi
}

if [ "$DRY" = 1 ]; then
  # conv4 at 28 px, 4 pairs; Koch at 65 px (the smallest input its four valid convolutions take), 2 pairs
  C4=(--batch 4 --size 28 --steps 1 --warmup 1); KO=(--batch 2 --size 65 --allow_size --steps 1 --warmup 1)
  C4BIG=(); E4=(--batch 8 --calls 1 --warmup 1); EK=(--batch 2 --calls 1 --warmup 1); CHECK=(--dry_run)
else
  C4=(--batch 128 --steps 20 --warmup 3); KO=(--batch 128 --steps 10 --warmup 2)
  C4BIG=(--batch 1024 --steps 20 --warmup 3); E4=(--batch 4096 --calls 20); EK=(--batch 512 --calls 10); CHECK=()
fi

run environment 60 "$PY" -c "
import json, os, shutil, subprocess, jax
smi = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'],
                     capture_output=True, text=True).stdout.strip() if shutil.which('nvidia-smi') else ''
print(json.dumps({'bench': 'run_gpu', 'dry_run': bool($DRY), 'backend': jax.default_backend(),
                  'devices': [str(d) for d in jax.devices()], 'device_kind': jax.devices()[0].device_kind,
                  'nvidia_smi': smi, 'jax': jax.__version__, 'cpus': os.cpu_count(),
                  'xla_flags': os.environ.get('XLA_FLAGS', '')}))
"
PAR=(--dtype float32,bfloat16 --parallel none,pmap,shard_map)
run train_step_conv4 150 "$PY" bench/train_step.py --framework jax --model conv4 "${C4[@]}" "${PAR[@]}"
run train_step_koch 180 "$PY" bench/train_step.py --framework jax --model koch "${KO[@]}" "${PAR[@]}"
if [ "$DRY" = 0 ]; then  # a batch big enough to fill the GPU (the dry run has no size to scale)
  run train_step_conv4_1024 60 "$PY" bench/train_step.py --framework jax --model conv4 "${C4BIG[@]}" --dtype float32,bfloat16
fi
run embed_conv4 45 "$PY" bench/embed.py --framework jax --model conv4 "${E4[@]}"
run embed_koch 45 "$PY" bench/embed.py --framework jax --model koch "${EK[@]}"
run gpu_check 120 "$PY" bench/gpu_check.py "${CHECK[@]}"
if [ "$DRY" = 0 ]; then  # the shipped model's first call and throughput (load + compile: minutes on 2 CPU cores)
  run inference_cost 100 "$PY" bench/inference_cost.py --batch 256 --calls 3
fi

ELAPSED=$(( $(date +%s) - START ))
"$PY" -c "
import json, sys
steps, failed = sys.argv[1].split(), sys.argv[2].split()
print(json.dumps({'bench': 'run_gpu', 'summary': {'steps': steps, 'failed': failed, 'ok': not failed,
                                                 'seconds': int(sys.argv[3]), 'dry_run': bool($DRY)}}))
" "${STEPS[*]}" "${FAILED[*]:-}" "$ELAPSED" | tee -a "$OUT"
echo "wrote $OUT (${ELAPSED} s)" >&2
(( ${#FAILED[@]} == 0 ))
