#!/usr/bin/env bash
# Re-measure every accuracy / error figure of the README's results tables with the installed JAX, one
# command each (the commands printed under each table), and keep every command's output.
#   bench/readme_figures.sh [OUT_DIR]   (default runs/readme-figures-<date>; BIN=.venv/bin, DATA=../shared/data)
# Takes about 30-40 min on 2 CPU cores. The demo model's MNIST column needs workdirs/demo (make demo) and
# is skipped without it. Accuracies do not depend on the machine's load; the tracker's frames/s does.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DATA=${DATA:-../shared/data}
OUT=${1:-runs/readme-figures-$(date +%Y-%m-%d)}
mkdir -p "$OUT"
EVAL="$BIN/siamjax-eval"
"$BIN/python" -c "import sys, jax, flax, optax; print('python', sys.version.split()[0], 'jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__)" | tee "$OUT/versions.txt"
fig() {  # fig NAME COMMAND...: run it, keep stdout+stderr in OUT/NAME.log, print its last lines
  local name=$1; shift
  echo "+ $*" | tee "$OUT/$name.log" >&2
  local t0=$SECONDS
  "$@" >> "$OUT/$name.log" 2>&1; local rc=$?
  echo "[$name: exit $rc, $((SECONDS - t0)) s]" | tee -a "$OUT/$name.log" >&2
  grep -E "accuracy|EER|AUC|success|precision|NN|FAR|FRR|frames" "$OUT/$name.log" | tail -n 12 >&2
}
O=$DATA/omniglot
fig omniglot_within20   "$EVAL" --checkpoint pretrained/omniglot --data_dir "$O" --tasks within:20:1 --episodes 400
fig omniglot_distilled "$EVAL" --checkpoint pretrained/omniglot_distilled --data_dir "$O" --tasks within:20:1 --episodes 400
fig omniglot_tta        "$EVAL" --checkpoint pretrained/omniglot --data_dir "$O" --tasks within:20:1 --episodes 400 --tta_shift 3
fig omniglot_grid       "$EVAL" --checkpoint pretrained/omniglot --data_dir "$O" --episodes 400 --knn 1,5 \
                          --tasks within:5:1,within:20:5,across:20:1
fig mnist_pretrained    "$EVAL" --checkpoint pretrained/omniglot --data mnist --data_dir "$DATA/mnist_test" \
                          --tasks across:10:1,across:10:5 --episodes 400
if [ -d workdirs/demo ]; then
  fig mnist_demo        "$EVAL" --checkpoint workdirs/demo --data mnist --data_dir "$DATA/mnist_test" \
                          --tasks across:10:1,across:10:5 --episodes 400
fi
for m in simsiam simclr; do
  fig "ssl_$m"          "$EVAL" --checkpoint "pretrained/omniglot_$m" --data_dir "$O" \
                          --tasks across:5:1,across:20:1,within:20:1 --episodes 400 --knn 1,5
done
fig ssl_random          "$EVAL" --checkpoint pretrained/omniglot_simsiam --data_dir "$O" --random_init \
                          --tasks across:5:1,across:20:1,within:20:1 --episodes 400 --knn 1,5
fig faces               "$EVAL" pairs --checkpoint pretrained/att_faces --data_dir "$DATA/att_faces/att_faces.zip" \
                          --classes 's3[1-9]' s40 --threshold 0.708683956520898 --out_dir "$OUT/att_faces_test"
Z=$DATA/signatures_sigcomp2011_dutch/sign_data_test.zip
fig signatures          "$EVAL" pairs --checkpoint pretrained/signatures --pairs "$Z/sign_data/test_data.csv" \
                          --root "$Z/sign_data/Dataset/test" --same_label 0 --pair_filter '^06[3-9]/' --threshold 0.886771 \
                          --out_dir "$OUT/signatures_test"
fig tracking_data       "$BIN/python" -m siamjax.tracking.synthetic --data "$DATA" --split test --num 20 --frames 100 \
                          --seed 2 --out "$OUT/synth_test"
fig tracking            "$EVAL" track --checkpoint pretrained/siamfc --sequences "$OUT/synth_test" \
                          --out_dir "$OUT/siamfc_eval" --compare_random
echo "wrote $OUT" >&2
