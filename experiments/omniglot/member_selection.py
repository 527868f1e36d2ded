"""Probe: which members an ensemble under a size cap should keep, scored on held-out background tasks.

Embeds the held-out alphabets once with every member of an ensemble folder (as shipped: each member's
stored whitening applied, each seeing the ensemble's preprocessed array its own way), keeps each
member's all-pairs similarity matrix, and scores 20-way 1-shot within-alphabet tasks for:
every member alone, the whole folder, and every subset that keeps the members named in --keep and
drops at most --drop_max others, listed best first among those whose members' folders fit in
--cap_mb (what pretrained/omniglot may weigh). The ensemble's similarity is the mean of its members'
(siamjax.infer.ensemble), so a subset's score is exactly what that subset, built as a folder, would score.

  python bench/member_selection.py --checkpoint /tmp/cand --alphabets Futurama --episodes 400 --seed 1 \
      --keep proxiescrop_seed1 --drop_max 2 --cap_mb 25

Sizes are the bytes of each member's folder (du -b); the manifest and a README add a few kB.
"""
import argparse
import itertools
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.eval import episodes as evaluate  # noqa: E402
from siamjax.infer import ensemble as ensemble_lib
from siamjax.data import load_omniglot  # noqa: E402


def folder_bytes(path: pathlib.Path) -> int:
    """Total size in bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def member_similarities(ens, images: np.ndarray) -> list[np.ndarray]:
    """Each member's float64 [N, N] similarity of the preprocessed ``images`` [N, S, S, C]."""
    e = ens.embed_preprocessed(images)
    return [np.asarray(m.pairwise(b, b), np.float64)
            for m, b in zip(ens.members, (np.asarray(x) for x in ens.member_blocks(e)))]


def predictions(sim: np.ndarray, eps: evaluate.Episodes) -> np.ndarray:
    """sim float [N, N] over all images -> the chosen class per query, int [E, Q] (1-shot episodes)."""
    support = eps.support[:, :, 0]  # [E, W]
    return np.take_along_axis(sim[eps.query], support[:, None, :], axis=2).argmax(-1)


def subset_accuracy(sims: list[np.ndarray], chosen, eps: evaluate.Episodes) -> float:
    """Accuracy (%) of 1-shot episodes ``eps`` when the members ``chosen`` (indices) are averaged."""
    s = np.mean([sims[i] for i in chosen], axis=0)
    return 100 * float((predictions(s, eps) == eps.answer).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="an ensemble folder (ensemble.json)")
    ap.add_argument("--data_dir", default="../shared/data/omniglot")
    ap.add_argument("--alphabets", required=True, help="held-out background alphabets, comma-separated")
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", default="", help="members every listed subset keeps, comma-separated")
    ap.add_argument("--drop_max", type=int, default=2, help="most members a listed subset drops")
    ap.add_argument("--cap_mb", type=float, default=25.0, help="most MB (1e6 bytes) a listed subset may weigh")
    ap.add_argument("--top", type=int, default=15, help="subsets listed")
    args = ap.parse_args()

    root = pathlib.Path(args.checkpoint)
    if not ensemble_lib.is_ensemble(root):
        sys.exit(f"{root} is not an ensemble folder (no {ensemble_lib.MANIFEST})")
    dirs = ensemble_lib.member_dirs(root)
    names = [d.name for d in dirs]
    keep_names = [k for k in args.keep.split(",") if k]
    unknown = [k for k in keep_names if k not in names]
    if unknown:
        sys.exit(f"--keep names {unknown}, which are not members of {root} ({names})")
    keep = {names.index(k) for k in keep_names}
    sizes = [folder_bytes(d) / 1e6 for d in dirs]

    ens = siamjax.load(root)
    data = load_omniglot(args.data_dir, "background", ens.preprocessing).select_groups(args.alphabets.split(","))
    eps = evaluate.make_episodes(data.labels, data.groups, data.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    sims = member_similarities(ens, data.images)
    everyone = list(range(len(names)))
    print(f"{len(data.images)} images, {args.episodes} tasks (seed {args.seed}), {eps.num_questions} questions")
    for i, n in enumerate(names):
        print(f"  alone  {n:<22} {sizes[i]:5.2f} MB  {subset_accuracy(sims, [i], eps):6.2f}%")
    print(f"  all {len(names)} members {sum(sizes):6.2f} MB  {subset_accuracy(sims, everyone, eps):6.2f}%")
    rows = []
    droppable = [i for i in everyone if i not in keep]
    for k in range(args.drop_max + 1):
        for dropped in itertools.combinations(droppable, k):
            chosen = [i for i in everyone if i not in dropped]
            mb = sum(sizes[i] for i in chosen)
            if mb <= args.cap_mb:
                rows.append((subset_accuracy(sims, chosen, eps), mb, [names[i] for i in dropped]))
    rows.sort(key=lambda r: (-r[0], r[1]))
    print(f"subsets keeping {sorted(keep_names) or 'any'}, dropping <= {args.drop_max}, "
          f"<= {args.cap_mb} MB: {len(rows)}, best first")
    for acc, mb, dropped in rows[:args.top]:
        print(f"  {acc:6.2f}%  {mb:5.2f} MB  without {', '.join(dropped) or 'none'}")


if __name__ == "__main__":
    main()
