"""Probe: add an earlier block's features to each member's embedding at test time, on held-out alphabets.

A conv4 member's embedding is its last block's map, flattened. Earlier blocks hold smaller strokes and
parts, which may carry better to alphabets the model never saw. For each member this embeds the images
once, keeps the BatchNorm output of every block (ReLU and the 2 x 2 max-pool applied, as the network
does), and scores 20-way 1-shot within-alphabet tasks with the mean over members of

    cos(last, last) + w * cos(f(block k), f(block k))   (k = -2: each member's second-to-last block)

for f = the block's map flattened ("flat"), averaged over its positions ("gap") or its maximum over
positions ("max", second-to-last block; "-1 gap": the last block's mean). The last block is whitened
with each member's stored map (``--nowhitening``: not), so the w = 0 line is eval.py's score; the
earlier blocks are not whitened (``--whiten_extra`` adds the second-to-last block's mean, whitened). Use validation alphabets (background split) to
choose, never evaluation ones:

  python bench/layers_probe.py --checkpoint pretrained/omniglot --alphabets Futurama --episodes 400 --seed 1
  python bench/layers_probe.py --checkpoint pretrained/omniglot --alphabets Futurama --episodes 2000 --seed 2 --weights 0,2,3,4,6

About a minute each here (``--whiten_extra`` adds minutes: it embeds the training alphabets).
"""
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.eval import episodes as evaluate  # noqa: E402
from siamjax.data import load_omniglot  # noqa: E402
from siamjax.data.preprocess import Preprocessing  # noqa: E402
from siamjax.infer.ensemble import Ensemble  # noqa: E402
from siamjax.infer import whitening  # noqa: E402
from siamjax.infer.whitening import unit_rows  # noqa: E402
from whitening_probe import probe_parser  # noqa: E402  (bench/, the script's folder)


def block_features(m, raw: np.ndarray, chunk: int = 256, gap_of: int | None = None) -> list[np.ndarray]:
    """Each conv block's output (BatchNorm -> ReLU -> max-pool; siamjax.Model.encode_blocks) for raw images
    [N, 105, 105, 1] (dark ink on light paper, as stored): a list, one float32 [N, h_k, w_k, C_k] per block,
    first block first; with ``gap_of=k`` only block k's mean over positions, [N, C_k] (less memory)."""
    def run(v, x):
        out = m.encode_blocks(v, x)[1]
        return out if gap_of is None else [out[gap_of].mean(axis=(1, 2))]
    fn = jax.jit(run)
    x = m.preprocess(raw)
    outs = [fn(m.variables, x[i:i + chunk]) for i in range(0, len(x), chunk)]
    return [np.concatenate([np.asarray(o[k]) for o in outs]) for k in range(len(outs[0]))]


def main():
    ap = probe_parser(__doc__, tta_shift=False)
    ap.add_argument("--weights", default="0,0.25,0.5,1")
    ap.add_argument("--nowhitening", action="store_true", help="leave the last block unwhitened")
    ap.add_argument("--member_weight", type=float, default=2.0, help="w of the per-member line")
    ap.add_argument("--whiten_extra", action="store_true",
                    help="also whiten the second-to-last block's mean (fitted on the training alphabets; minutes)")
    args = ap.parse_args()
    model = siamjax.load(args.checkpoint, whitening=not args.nowhitening, block_pooling=False)
    members = model.members if isinstance(model, Ensemble) else [model]
    ap_all = load_omniglot(args.data_dir, "background", Preprocessing(size=105, invert=False))
    held = args.alphabets.split(",")
    raw, train = ap_all.select_groups(held), ap_all.select_groups(held, exclude=True)
    eps = evaluate.make_episodes(raw.labels, raw.groups, raw.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    support, query = eps.support[:, :, 0], eps.query
    weights = [float(s) for s in args.weights.split(",")]

    def sims(e):
        e = unit_rows(e.reshape(len(e), -1))
        return np.einsum("eqd,end->eqn", e[query], e[support])

    acc = lambda s: evaluate.percent_right(s, eps.answer)
    last, extra = 0.0, {}
    for i, m in enumerate(members):
        feats = block_features(m, raw.images)
        flat = feats[-1].reshape(len(feats[-1]), -1)
        s_last = sims(m.whitening.apply(flat) if m.whitening is not None else flat)
        last = last + s_last
        # the second-to-last block's mean over positions, whitened like the last block (siamjax.infer.whitening,
        # its defaults) with a map fitted on the training alphabets' images (no turned or mirrored copies)
        if args.whiten_extra:
            white = whitening.fit(block_features(m, train.images, gap_of=-2)[0], train.labels)
            extra.setdefault((-2, "gap, whitened"), []).append(sims(white.apply(unit_rows(feats[-2].mean(axis=(1, 2))))))
        extra.setdefault((-2, "max"), []).append(sims(feats[-2].max(axis=(1, 2))))
        extra.setdefault((-1, "gap"), []).append(sims(feats[-1].mean(axis=(1, 2))))
        for k in list(range(len(feats) - 1)) + [-2]:  # -2: each member's second-to-last block
            for kind in ("flat", "gap"):
                f = feats[k] if kind == "flat" else feats[k].mean(axis=(1, 2))
                extra.setdefault((k, kind), []).append(sims(f))
        print(f"member {i}: last block alone {acc(s_last):.2f}%, blocks " + ", ".join(
            f"{k}:{acc(extra[(k, 'gap')][-1]):.1f}/{acc(extra[(k, 'flat')][-1]):.1f}" for k in range(len(feats) - 1))
            + f" (gap/flat alone); + {args.member_weight:g} x second-to-last max: "
            f"{acc(s_last + args.member_weight * extra[(-2, 'max')][-1]):.2f}%", flush=True)
    print(f"{eps.num_questions} questions, {args.alphabets}; all members, last block (w = 0): {acc(last):.2f}%")
    for (k, kind), ss in sorted(extra.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        if len(ss) != len(members):
            continue  # members with different block counts: only the blocks all of them have
        s_k = sum(ss)
        print(f"block {({-2: '-2 (second to last)', -1: '-1 (last)'}).get(k, k)} {kind}: " + "  ".join(f"w={w:g} {acc(last + w * s_k):.2f}%" for w in weights), flush=True)


if __name__ == "__main__":
    main()
