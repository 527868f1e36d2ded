"""Probe: within-class whitening of each member's embeddings, fitted on the training alphabets.

For each member of an ensemble (or one model): embed the background images of every alphabet but the
held-out ones (unit length), estimate the within-class covariance Sw over the training characters
(drawer-to-drawer variation), and map embeddings e -> unit_rows((Sw + lam * mean eigenvalue * I)^(-1/2) (e - mu))
(siamjax.infer.whitening; --ranks adds its identity-plus-rank-k forms).
Scores 20-way 1-shot within-alphabet tasks on the held-out alphabets with the mean of the members'
cosines, for several shrinkages lam (lam = inf: no whitening, only centring on mu; "off": as shipped).

  python bench/whitening_probe.py --checkpoint pretrained/omniglot --alphabets Futurama --episodes 400 --seed 1
"""
import argparse
import dataclasses
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.infer import whitening  # noqa: E402
from siamjax.eval import episodes as evaluate
from siamjax.infer.whitening import unit_rows  # noqa: E402
from siamjax.data import load_omniglot  # noqa: E402


def probe_parser(doc: str, tta_shift: bool = True) -> argparse.ArgumentParser:
    """The arguments the probes on held-out background alphabets take (this one, whitening_unseen_probe.py,
    score_rules_probe.py, tta_affine_probe.py); ``tta_shift=False`` leaves out --tta_shift."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data_dir", default="../shared/data/omniglot")
    ap.add_argument("--alphabets", required=True, help="held-out background alphabets, comma-separated")
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    if tta_shift:
        ap.add_argument("--tta_shift", type=int, default=0, help="test embeddings averaged over shifts (training: none)")
    return ap


def held_out_tasks(args):
    """(members loaded without a stored map, the training split, the held-out split, its 20-way 1-shot
    within-alphabet episodes) for the background alphabets named in args.alphabets."""
    model = siamjax.load(args.checkpoint, whitening=False, block_pooling=False)  # the stored map, if any, is what is probed
    data = load_omniglot(args.data_dir, "background", model.preprocessing)
    held = args.alphabets.split(",")
    train, test = data.select_groups(held, exclude=True), data.select_groups(held)
    eps = evaluate.make_episodes(test.labels, test.groups, test.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    return getattr(model, "members", [model]), train, test, eps


def main():
    ap = probe_parser(__doc__)
    ap.add_argument("--lams", default="0.01,0.03,0.1,0.3,1,3,inf")
    ap.add_argument("--ranks", default="", help="comma-separated ranks k for identity-plus-rank-k whiteners")
    args = ap.parse_args()
    members, train, test, eps = held_out_tasks(args)
    support, query = eps.support[:, :, 0], eps.query
    lams = [float(s) for s in args.lams.split(",")]
    ranks = [int(s) for s in args.ranks.split(",") if s]
    keys = [(lam, k) for lam in lams for k in [None] + ([] if np.isinf(lam) else ranks)]
    sims = {"off": [], **{key: [] for key in keys}}
    for i, m in enumerate(members):
        tr = unit_rows(m.embed_preprocessed(train.images)).astype(np.float64)
        te = unit_rows(dataclasses.replace(m, tta_shift=args.tta_shift).embed_preprocessed(test.images)).astype(np.float64)
        sw, mu = whitening.within_class_covariance(tr, train.labels), tr.mean(0)
        sims["off"].append(np.einsum("eqd,end->eqn", te[query], te[support]))
        for lam, k in keys:
            z = unit_rows(te - mu) if np.isinf(lam) else unit_rows(whitening.from_covariance(sw, mu, lam, k).apply(te))
            sims[(lam, k)].append(np.einsum("eqd,end->eqn", z[query], z[support]))
        acc = {k: evaluate.percent_right(v[-1], eps.answer) for k, v in sims.items()}
        print(f"member {i} (D={tr.shape[1]}): " + "  ".join(f"{k}: {a:.2f}" for k, a in acc.items()), flush=True)
    for k, v in sims.items():
        acc = evaluate.percent_right(np.mean(v, 0), eps.answer)
        print(f"ensemble, lam={k}: {acc:.2f}% ({eps.num_questions} questions)")


if __name__ == "__main__":
    main()
