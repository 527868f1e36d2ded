"""Probe: what an ensemble gets wrong on held-out background alphabets, and whether its members agree.

Scores 20-way 1-shot within-alphabet tasks with an ensemble folder as shipped (each member whitened,
with its pooled block) and prints, for the ensemble's wrong answers:
- how many of its members, each alone, answer the same question wrongly (a histogram over 0 .. M):
  errors that every member makes cannot be mended by averaging members, only by a better model;
- how many distinct query images and characters they come from;
- the (right character, chosen character) pairs that take the most of them.
With ``--png PATH`` it draws one example of each of the ``--top`` pairs, one per column: the query,
the right support image (grey frame) and the one chosen (red frame), as the model saw them. Use validation alphabets
(background split), never evaluation ones:

  python bench/ensemble_errors.py --checkpoint pretrained/omniglot --alphabets Futurama --episodes 400 --seed 1 \
      --png docs/figures/futurama_errors.png

About a minute here.
"""
import collections
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.eval import episodes as evaluate  # noqa: E402
from siamjax.infer import ensemble as ensemble_lib
from siamjax.data import load_omniglot  # noqa: E402
from siamjax.eval.plots import pyplot, save_figure  # noqa: E402
from siamjax.eval.task_grid import TRUTH, WRONG, show_image  # noqa: E402
from member_selection import member_similarities, predictions  # noqa: E402  (bench/, the script's folder)
from whitening_probe import probe_parser  # noqa: E402


def plot_confusions(images: np.ndarray, examples: list, path) -> pathlib.Path:
    """One column per (count, query index, right support index, chosen support index): the query above
    the right support image (grey frame) above the chosen one (red frame)."""
    plt = pyplot()
    fig, axes = plt.subplots(3, len(examples), figsize=(len(examples) * 1.0, 3 * 1.05), squeeze=False)
    for col, (count, q, right, chosen) in enumerate(examples):
        show_image(axes[0, col], images[q], None, f"{count} errors")
        show_image(axes[1, col], images[right], TRUTH)
        show_image(axes[2, col], images[chosen], WRONG)
    for row, label in enumerate(("query", "right one", "chosen")):
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("the most frequent confusions, one example each", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def main():
    ap = probe_parser(__doc__, tta_shift=False)  # --checkpoint (an ensemble folder), --alphabets, ...
    ap.add_argument("--top", type=int, default=10, help="confused pairs listed (and drawn)")
    ap.add_argument("--png", default="", help="write the examples of the top pairs here")
    args = ap.parse_args()

    root = pathlib.Path(args.checkpoint)
    if not ensemble_lib.is_ensemble(root):
        sys.exit(f"{root} is not an ensemble folder (no {ensemble_lib.MANIFEST})")
    ens = siamjax.load(root)
    data = load_omniglot(args.data_dir, "background", ens.preprocessing).select_groups(args.alphabets.split(","))
    eps = evaluate.make_episodes(data.labels, data.groups, data.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    sims = member_similarities(ens, data.images)
    wrong_alone = np.stack([predictions(s, eps) != eps.answer for s in sims])  # [M, E, Q]
    pred = predictions(np.mean(sims, axis=0), eps)
    wrong = pred != eps.answer
    m = len(sims)
    print(f"{eps.num_questions} questions, {args.alphabets} (seed {args.seed}), {m} members: "
          f"{int(wrong.sum())} wrong ({100 * (1 - wrong.mean()):.2f}% right)")
    for name, hits in (("wrong", wrong), ("right", ~wrong)):
        hist = np.bincount(wrong_alone.sum(0)[hits], minlength=m + 1)
        print(f"  the ensemble's {name} answers, by how many members alone are wrong there (0 .. {m}): "
              + " ".join(str(int(h)) for h in hist))
    e, q = np.nonzero(wrong)
    queries = eps.query[e, q]
    right_idx = eps.support[e, eps.answer[e, q], 0]
    chosen_idx = eps.support[e, pred[e, q], 0]
    print(f"  from {len(np.unique(queries))} distinct query images of {len(np.unique(data.labels[queries]))} "
          f"characters ({len(np.unique(data.labels))} in all)")
    pairs = collections.defaultdict(list)
    for qi, ri, ci in zip(queries, right_idx, chosen_idx):
        pairs[(int(data.labels[ri]), int(data.labels[ci]))].append((int(qi), int(ri), int(ci)))
    top = sorted(pairs.items(), key=lambda kv: -len(kv[1]))[:args.top]
    share = sum(len(v) for _, v in top)
    print(f"  the {len(top)} most frequent (right, chosen) character pairs take {share} of them: "
          + ", ".join(f"{r}->{c}: {len(v)}" for (r, c), v in top))
    if args.png:
        path = plot_confusions(data.images, [(len(v), *v[0]) for _, v in top], args.png)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
