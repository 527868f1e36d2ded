#!/usr/bin/env bash
# Issue 48, faces: settings compared on the 8 validation identities of s1..s30 only (s31..s40 untouched).
#   experiments/faces/sweep.sh NAME [--config.key=value ...]
# trains configs/att_faces.py with the overrides into workdirs/faces_NAME, then reports the validation
# EER (all pairs of the validation identities) into workdirs/faces_NAME/val_pairs.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
name=$1; shift
work=workdirs/faces_$name
rm -rf "$work"; mkdir -p workdirs
"$BIN/python" train.py --config configs/att_faces.py --workdir "$work" "$@" > "$work.train.log" 2>&1
"$BIN/siamjax-eval" pairs --checkpoint "$work" --data_dir ../shared/data/att_faces/att_faces.zip \
    --classes s3 s5 s11 s12 s17 s22 s27 s29 --out_dir "$work/val_pairs" > "$work.val.log" 2>&1
echo "$name $*"; grep -E "EER|AUC" "$work.val.log" | head -3
