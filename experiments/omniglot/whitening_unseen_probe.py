"""Probe: whitening fitted on unseen classes instead of training ones (leave one alphabet out).

For a model trained with several background alphabets held out (e.g. workdirs/proxy25): for each
held-out alphabet A, the within-class covariance is estimated on the OTHER held-out alphabets (classes
the model never trained on, as the evaluation alphabets are to the committed models), optionally mixed
with the training classes' (both scaled to unit mean eigenvalue), and A's 20-way 1-shot tasks are scored
with it. Compares with no whitening and with the training fit (siamjax.infer.whitening's default).

  python bench/whitening_unseen_probe.py --checkpoint workdirs/proxy25 \
      --alphabets Bengali,Futurama,Hebrew,"Japanese_(katakana)",Tifinagh --episodes 400 --seed 1 --tta_shift 3
"""
import dataclasses
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from siamjax.infer import whitening  # noqa: E402
from siamjax.eval import episodes as evaluate
from siamjax.infer.whitening import unit_rows  # noqa: E402
from whitening_probe import held_out_tasks, probe_parser  # noqa: E402  (bench/, the script's folder)


def main():
    ap = probe_parser(__doc__)
    ap.add_argument("--shrinkage", type=float, default=3.0)
    ap.add_argument("--mix", default="0,0.5,1", help="weights of the unseen-class covariance (0 = training only)")
    args = ap.parse_args()
    members, train, test, eps = held_out_tasks(args)
    held = args.alphabets.split(",")
    test_y, test_a = test.labels, np.asarray(test.group_names)[test.groups]
    support, query = eps.support[:, :, 0], eps.query
    ep_alpha = test_a[support[:, 0]]
    mixes = [float(s) for s in args.mix.split(",")]
    sims = {"off": [], **{m: [] for m in mixes}}
    for i, m in enumerate(members):
        tr = unit_rows(m.embed_preprocessed(train.images)).astype(np.float64)
        te = unit_rows(dataclasses.replace(m, tta_shift=args.tta_shift).embed_preprocessed(test.images)).astype(np.float64)
        te_plain = unit_rows(m.embed_preprocessed(test.images)).astype(np.float64)  # the fit sees unshifted images
        mu = tr.mean(0)
        sw_tr = whitening.within_class_covariance(tr, train.labels)
        sw_tr /= np.trace(sw_tr) / len(sw_tr)
        sims["off"].append(np.einsum("eqd,end->eqn", te[query], te[support]))
        for mix in mixes:
            s = np.zeros((len(eps.query), query.shape[1], 20))
            for a in held:
                others = test_a != a
                sw_un = whitening.within_class_covariance(te_plain[others], test_y[others])
                sw_un /= np.trace(sw_un) / len(sw_un)
                w = whitening.from_covariance((1 - mix) * sw_tr + mix * sw_un, mu, args.shrinkage, rank=None)
                z = unit_rows(w.apply(te))
                sel = ep_alpha == a
                s[sel] = np.einsum("eqd,end->eqn", z[query[sel]], z[support[sel]])
            sims[mix].append(s)
        acc = {k: evaluate.percent_right(v[-1], eps.answer) for k, v in sims.items()}
        print(f"member {i}: " + "  ".join(f"unseen weight {k}: {a:.2f}" for k, a in acc.items()), flush=True)
    for k, v in sims.items():
        print(f"all members, unseen weight {k}: {evaluate.percent_right(np.mean(v, 0), eps.answer):.2f}%")


if __name__ == "__main__":
    main()
