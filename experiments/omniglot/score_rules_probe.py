"""Probe: test-time scoring rules other than the mean cosine, on held-out background alphabets.

1. Cohort score normalisation (hubness reduction) against the training characters. A support image
that resembles many characters (a "hub") wins queries it should not. With a cohort of training
embeddings (never the task's own images), each pair's similarity c(q, s) [cosine; for an ensemble the
mean of the members' cosines] is rescored as

  csls:  c(q, s) - alpha * r(s),               r(s): mean of s's k largest cosines to the cohort
  snorm: (c - mu(s)) / sd(s) + (c - mu(q)) / sd(q),   mu, sd over each image's k largest cohort cosines

(the query-side terms of csls do not change which support a query picks). The cohort is either every
training image ("images") or each training character's mean embedding ("classes"). Scores 20-way
1-shot within-alphabet tasks on the held-out background alphabets.

2. For an ensemble, other ways to combine its members' cosines than their mean: standardise each
member's 20 cosines of a query (per-query z-score) or scale each member by its overall spread before
the mean; the mean of the members' softmax probabilities at temperature T.

  python bench/score_rules_probe.py --checkpoint pretrained/omniglot --alphabets Futurama --episodes 400 --seed 1
"""
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.eval import episodes as evaluate  # noqa: E402
from siamjax.data import load_omniglot  # noqa: E402
from siamjax.infer.whitening import unit_rows  # noqa: E402
from whitening_probe import probe_parser  # noqa: E402  (bench/, the script's folder)


def topk_stats(c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each row's k largest entries of c [N, M] -> ([N], [N])."""
    top = -np.partition(-c, k - 1, axis=1)[:, :k]
    return top.mean(1), top.std(1) + 1e-6


def main():
    ap = probe_parser(__doc__)
    ap.add_argument("--ks", default="1,5,20,100")
    ap.add_argument("--alphas", default="0.25,0.5,1")
    ap.add_argument("--cache", default="", help="npz to keep the embeddings in between runs (delete it after "
                                                "changing the checkpoint, alphabets or shifts)")
    args = ap.parse_args()
    model = siamjax.load(args.checkpoint, tta_shift=args.tta_shift)
    data = load_omniglot(args.data_dir, "background", model.preprocessing)
    held = args.alphabets.split(",")
    train, test = data.select_groups(held, exclude=True), data.select_groups(held)
    cache = pathlib.Path(args.cache) if args.cache else None
    if cache and cache.exists():
        z = np.load(cache)
        tr, te = z["train"], z["test"]
    else:
        cohort_model = siamjax.load(args.checkpoint) if args.tta_shift else model  # the cohort: no shifts
        tr, te = cohort_model.embed_preprocessed(train.images), model.embed_preprocessed(test.images)
        if cache:
            np.savez(cache, train=tr, test=te)
    eps = evaluate.make_episodes(test.labels, test.groups, test.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    support, query = eps.support[:, :, 0], eps.query
    sim_tt = model.pairwise(te, te)                                   # [Nte, Nte]
    classes = np.unique(train.labels)
    means = np.stack([tr[train.labels == c].mean(0) for c in classes])
    cohorts = {"images": model.pairwise(te, tr), "classes": model.pairwise(te, means)}

    def acc(s):  # s: [Nte, Nte] rescored similarities
        return evaluate.percent_right(s[query[:, :, None], support[:, None, :]], eps.answer)

    print(f"{len(held)} held-out alphabets, {len(te)} test / {len(tr)} cohort images, {len(classes)} classes, "
          f"{eps.num_questions} questions; tta_shift={args.tta_shift}")
    print(f"plain: {acc(sim_tt):.2f}%", flush=True)
    for name, c in cohorts.items():
        for k in [int(s) for s in args.ks.split(",")]:
            mu, sd = topk_stats(c, k)
            row = [f"csls a={a}: {acc(sim_tt - a * mu[None, :]):.2f}" for a in map(float, args.alphas.split(","))]
            snorm = (sim_tt - mu[None, :]) / sd[None, :] + (sim_tt - mu[:, None]) / sd[:, None]
            row.append(f"snorm: {acc(snorm):.2f}")
            print(f"cohort={name} k={k}: " + "  ".join(row), flush=True)
    if hasattr(model, "members"):
        combine(model, te, query, support, eps.answer)


def combine(model, te, query, support, answer):
    """Print the accuracy of several rules that combine the members' cosines [M, E, Q, N] of the tasks."""
    blocks = [unit_rows(np.asarray(b)) for b in model.member_blocks(te)]
    sims = np.stack([np.einsum("eqd,end->eqn", b[query], b[support]) for b in blocks])

    def acc(s):
        return evaluate.percent_right(s, answer)

    print("members alone (each on the input the ensemble gives it): " + ", ".join(f"{acc(s):.2f}" for s in sims))
    rules = {"mean cosine": sims.mean(0),
             "per-query z-score": ((sims - sims.mean(-1, keepdims=True)) / sims.std(-1, keepdims=True)).mean(0),
             "member spread": (sims / sims.std(axis=(1, 2, 3), keepdims=True)).mean(0)}
    for t in (0.02, 0.05, 0.1):
        p = np.exp((sims - sims.max(-1, keepdims=True)) / t)
        rules[f"mean softmax T={t}"] = (p / p.sum(-1, keepdims=True)).mean(0)
    print("  ".join(f"{k}: {acc(v):.2f}" for k, v in rules.items()))


if __name__ == "__main__":
    main()
