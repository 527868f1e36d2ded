#!/usr/bin/env bash
# Issue 48, faces: the two recipes of sweep.sh compared by 3-fold cross-validation over identities s1..s30
# (fold k validates on 10 identities and trains on the other 20; s31..s40 stay out of everything).
#   experiments/faces/cv.sh        -> workdirs/facescv_<recipe>_f<k>, one validation EER line per run
set -uo pipefail
set -f  # the class patterns are fnmatch patterns, not shell globs
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
AUG="--config.augment.flip_prob=0.5 --config.data.keep_aspect=True --config.augment.scale_min=0.75 --config.augment.scale_max=1.25"
FOLDS=("('s[1-9]','s10')" "('s1[1-9]','s20')" "('s2[1-9]','s30')")
CLASSES=("s[1-9] s10" "s1[1-9] s20" "s2[1-9] s30")
mkdir -p workdirs
for recipe in base aug; do
  extra=""; [ "$recipe" = aug ] && extra=$AUG
  for k in 0 1 2; do
    work=workdirs/facescv_${recipe}_f$k
    rm -rf "$work"
    # shellcheck disable=SC2086
    "$BIN/python" train.py --config configs/att_faces.py --workdir "$work" --config.data.val_classes="${FOLDS[$k]}" \
        $extra > "$work.train.log" 2>&1 || { echo "$recipe fold $k: training failed"; continue; }
    # shellcheck disable=SC2086
    "$BIN/siamjax-eval" pairs --checkpoint "$work" --data_dir ../shared/data/att_faces/att_faces.zip \
        --classes ${CLASSES[$k]} > "$work.val.log" 2>&1
    echo "$recipe fold $k: $(grep -E '^AUC' "$work.val.log")"
  done
done
