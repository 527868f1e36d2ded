"""Probe: match an earlier block's local features between query and support at test time (DN4-like).

Each conv block's output is a map [h, w, C]: one local descriptor per position. Round 20 added the
second-to-last block's maximum over positions to each member's score (which parts an image has, not
where). This probe tries the matching in between the rigid flattened map and the position-free maximum:
for each query position p, the best cosine to the support's descriptors at positions within a radius r
of p (Chebyshev distance; r = h: anywhere), averaged over the query's positions,

    local(q, s) = mean_p max_{|p' - p| <= r} cos(q[p], s[p'])      (and its mean with local(s, q): "sym")

and scores 20-way 1-shot within-alphabet tasks with the members' mean of the shipped score (last block
whitened + 2 x the second-to-last block's maximum, as ``siamjax.load`` gives) + w x local. Positions
with no ink response (all-zero descriptors after ReLU) count as cos 0. Use validation alphabets
(background split), never evaluation ones:

  python bench/local_match_probe.py --checkpoint pretrained/omniglot --alphabets Futurama --episodes 400 --seed 1
  python bench/local_match_probe.py --checkpoint pretrained/omniglot --alphabets Futurama --episodes 2000 --seed 2

A few minutes each here.
"""
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.eval import episodes as evaluate  # noqa: E402
from siamjax.data import load_omniglot  # noqa: E402
from siamjax.data.preprocess import Preprocessing  # noqa: E402
from siamjax.infer.ensemble import Ensemble  # noqa: E402
from siamjax.infer.whitening import unit_rows  # noqa: E402
from layers_probe import block_features  # noqa: E402  (bench/, the script's folder)
from whitening_probe import probe_parser  # noqa: E402


def unit_descriptors(f: np.ndarray) -> np.ndarray:
    """f [N, h, w, C] -> [N, h*w, C], each descriptor of unit length (all-zero ones stay zero)."""
    return unit_rows(f.reshape(-1, f.shape[-1])).reshape(len(f), -1, f.shape[-1])


def radius_mask(h: int, w: int, r: int) -> np.ndarray:
    """bool [h*w, h*w]: position p' lies within Chebyshev distance r of p."""
    ys, xs = np.divmod(np.arange(h * w), w)
    return (np.abs(ys[:, None] - ys[None]) <= r) & (np.abs(xs[:, None] - xs[None]) <= r)


def local_scores(d: np.ndarray, masks: dict, chunk: int = 16) -> dict:
    """d [N, P, C] unit descriptors, masks {r: bool [P, P]} -> {r: [N, N]}: for images i, j the mean over
    i's positions p of the best cosine to j's descriptors at the positions the mask allows."""
    out = {r: np.zeros((len(d), len(d)), np.float32) for r in masks}
    for a in range(0, len(d), chunk):
        cos = np.einsum("ipc,jqc->ijpq", d[a:a + chunk], d, optimize=True)  # [chunk, N, P, P]
        for r, mask in masks.items():
            out[r][a:a + chunk] = np.where(mask, cos, -np.inf).max(axis=-1).mean(axis=-1)
    return out


def main():
    ap = probe_parser(__doc__, tta_shift=False)
    ap.add_argument("--weights", default="0.5,1,2,4")
    ap.add_argument("--blocks", default="-2,-3", help="which blocks to match (Python indices)")
    args = ap.parse_args()
    model = siamjax.load(args.checkpoint)  # as shipped: whitened, pooled block
    members = model.members if isinstance(model, Ensemble) else [model]
    data = load_omniglot(args.data_dir, "background", Preprocessing(size=105, invert=False))
    raw = data.select_groups(args.alphabets.split(","))
    eps = evaluate.make_episodes(raw.labels, raw.groups, raw.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    support, query = eps.support[:, :, 0], eps.query
    pick = lambda s: s[query[:, :, None], support[:, None, :]]  # [N, N] -> [E, Q, 20]
    acc = lambda s: evaluate.percent_right(s, eps.answer)
    weights = [float(s) for s in args.weights.split(",")]
    blocks = [int(b) for b in args.blocks.split(",")]

    base, extra = 0.0, {}
    for i, m in enumerate(members):
        e = unit_rows(m.embed(raw.images))
        s_base = pick(e @ e.T)
        base = base + s_base
        feats = block_features(m, raw.images)
        line = []
        for k in blocks:
            f = feats[k]
            h, w = f.shape[1:3]
            rs = sorted({0, 1, max(h, w)})
            scores = local_scores(unit_descriptors(f), {r: radius_mask(h, w, r) for r in rs})
            for r in rs:
                one = scores[r]
                for kind, s in (("q->s", one), ("sym", (one + one.T) / 2)):
                    s = pick(s)
                    extra.setdefault((k, f"{h}x{w}", r, kind), []).append(s)
                    if kind == "sym" and r == 1:
                        line.append(f"block {k} r1 sym alone {acc(s):.2f}%, +1x {acc(s_base + s):.2f}%")
        print(f"member {i}: shipped {acc(s_base):.2f}%; " + "; ".join(line), flush=True)
    print(f"{eps.num_questions} questions, {args.alphabets}; all members as shipped: {acc(base):.2f}%")
    for (k, hw, r, kind), ss in sorted(extra.items()):
        if len(ss) != len(members):
            continue
        s_k = sum(ss)
        print(f"block {k} ({hw}) r={r} {kind}: alone {acc(s_k):.2f}%  " + "  ".join(
            f"w={w:g} {acc(base + w * s_k):.2f}%" for w in weights), flush=True)


if __name__ == "__main__":
    main()
