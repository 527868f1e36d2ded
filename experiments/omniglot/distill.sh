#!/usr/bin/env bash
# Issue 50, round 1 of distillation (2026-12-08): the ensemble's best member (moments64, seed 1) trained on for
# 2,000 steps with its prototypical loss plus a relational distillation loss towards pretrained/omniglot
# (siamjax.losses.relational_distillation_loss over each batch's images of the same symmetry; student
# temperature 0.1, teacher 0.05: the ensemble's cosines spread about half as far as the member's), without
# the proxy term. About 3 min for the targets and 20 min of training on 2 CPU cores. Result and decision:
# experiments/omniglot/README.md (Distillation).
set -euo pipefail
DATA=${DATA:-../shared/data}
PY=${PY:-.venv/bin/python}
T=workdirs/omniglot_distill_targets.npz
W=workdirs/omniglot_distill64
$PY -m siamjax.cli.distill_targets pretrained/omniglot "$T" --config=omniglot:moments64 --data_dir "$DATA/omniglot"
$PY train.py --config=configs/omniglot.py:moments64 --workdir "$W" --config.data.dir="$DATA/omniglot" \
  --config.init_from=pretrained/omniglot/proxiescrophiresmoments_seed1 --config.loss.proxy_weight=0.0 \
  --config.loss.distill_weight=1.0 --config.loss.distill_targets="$T" --config.loss.distill_teacher_temperature=0.05 \
  --config.optim.learning_rate=0.001 --config.optim.warmup_steps=100 --config.optim.train_steps=2000 \
  --config.eval.eval_every=250 --config.checkpoint_every=250
# The decision, on Futurama only (the same 400 tasks for both, unwhitened):
for c in "$W" pretrained/omniglot/proxiescrophiresmoments_seed1; do
  $PY eval.py --checkpoint "$c" --data_dir "$DATA/omniglot" --split background --alphabets Futurama \
    --episodes 400 --seed 1 --tasks within:20:1 --nowhitening --noblock_pooling
done
