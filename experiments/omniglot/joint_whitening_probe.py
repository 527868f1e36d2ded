"""Probe: one within-class whitening over all members of an ensemble at once, on held-out background alphabets.

Each member of ``pretrained/omniglot`` is whitened on its own (siamjax.infer.whitening), and the ensemble
scores a pair with the mean of its members' cosines. That mean is the cosine of the members' unit
embeddings laid side by side, x = [u_1, ..., u_M] / sqrt(M). The members share most of their errors
(round 26 of docs/omniglot_history.md): drawer-to-drawer variation that all of them mistake for a
difference between characters. A second, joint map over x, fitted like siamjax.infer.whitening's
(identity plus rank k, shrinkage in units of the mean eigenvalue) on the training alphabets' images,
weighs each such direction once, however many members carry it. Scores 20-way 1-shot within-alphabet
tasks on the held-out alphabets with the shipped scoring ("as shipped") and with the joint map for
each rank and shrinkage:

  python bench/joint_whitening_probe.py --checkpoint pretrained/omniglot --alphabets Futurama --episodes 400 --seed 1
"""
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.infer import whitening  # noqa: E402
from siamjax.eval import episodes as evaluate
from siamjax.data import load_omniglot  # noqa: E402
from siamjax.infer.whitening import unit_rows  # noqa: E402
from whitening_probe import probe_parser  # noqa: E402  (bench/, the script's folder)


def side_by_side(model, e: np.ndarray) -> np.ndarray:
    """Ensemble embeddings [N, sum D_m] -> float32 [N, sum D_m]: each member's block at unit length, all / sqrt(M)."""
    blocks = [unit_rows(np.asarray(b, np.float32)) for b in model.member_blocks(e)]
    return np.concatenate(blocks, axis=1) / np.sqrt(len(blocks))


def top_eigen(r: np.ndarray, k: int, iters: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Scaled residuals r [N, D] (S = r^T r is the covariance) -> S's k largest eigenvalues [k] in
    ascending order, their eigenvectors [D, k] and trace(S), by subspace iteration (S never formed)."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(r.T @ (r @ rng.normal(size=(r.shape[1], k + 32)).astype(r.dtype)))[0]
    for _ in range(iters):
        q = np.linalg.qr(r.T @ (r @ q))[0]
    small = (r @ q).T @ (r @ q)  # q^T S q [k + 32, k + 32]
    w, v = np.linalg.eigh(small.astype(np.float64))
    return w[-k:], (q @ v[:, -k:].astype(q.dtype)), float(np.einsum("ij,ij->", r, r))


def joint_map(mean: np.ndarray, rank: int, shrinkage: float, eig) -> whitening.Whitening:
    """siamjax.infer.whitening's map (identity plus rank k) around ``mean`` [D] from :func:`top_eigen`'s
    spectrum of the within-class covariance, without forming the [D, D] matrix."""
    w, v, trace = eig
    w, v, d = np.maximum(w[-rank:], 0.0), v[:, -rank:], len(mean)
    return whitening.from_spectrum(w, v, (trace - w.sum()) / (d - rank), trace / d, mean, shrinkage)


def main():
    ap = probe_parser(__doc__, tta_shift=False)
    ap.add_argument("--ranks", default="64,128,256")
    ap.add_argument("--shrinkages", default="1,3,10")
    args = ap.parse_args()
    model = siamjax.load(args.checkpoint)  # as shipped: each member whitened, with its pooled block
    if not hasattr(model, "members"):
        raise SystemExit(f"{args.checkpoint}: give an ensemble folder")
    data = load_omniglot(args.data_dir, "background", model.preprocessing)
    held = args.alphabets.split(",")
    train, test = data.select_groups(held, exclude=True), data.select_groups(held)
    eps = evaluate.make_episodes(test.labels, test.groups, test.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    support, query = eps.support[:, :, 0], eps.query
    e = model.embed_preprocessed(test.images)
    te = side_by_side(model, e)
    shipped = np.asarray(model.pairwise(e[:64], e[:64]))
    np.testing.assert_allclose(te[:64] @ te[:64].T, shipped, atol=2e-4)  # the mean of the members' cosines
    base = evaluate.percent_right(np.einsum("eqd,end->eqn", te[query], te[support]), eps.answer)
    print(f"{eps.num_questions} questions on {args.alphabets}, D = {te.shape[1]}; as shipped: {base:.3f}% "
          f"({round(base * eps.num_questions / 100)} right)", flush=True)
    tr = side_by_side(model, model.embed_preprocessed(train.images))
    r, dof = whitening.within_class_residuals(tr, train.labels)
    ranks = [int(s) for s in args.ranks.split(",")]
    eig = top_eigen(r / np.sqrt(dof), max(ranks))
    mean = tr.mean(0)
    print(f"fitted on {len(tr)} images of {len(tr) - dof} training characters; top eigenvalues "
          f"{eig[0][-1]:.2e} .. {eig[0][-max(ranks)]:.2e}, mean {eig[2] / tr.shape[1]:.2e}", flush=True)
    for k in ranks:
        row = []
        for lam in [float(s) for s in args.shrinkages.split(",")]:
            z = unit_rows(joint_map(mean, k, lam, eig).apply(te))
            acc = evaluate.percent_right(np.einsum("eqd,end->eqn", z[query], z[support]), eps.answer)
            row.append(f"shrinkage {lam:g}: {acc:.3f}% ({round(acc * eps.num_questions / 100)})")
        print(f"rank {k}: " + "  ".join(row), flush=True)


if __name__ == "__main__":
    main()
