"""Test-time schemes for one-shot tasks, compared on the same episodes (docs/omniglot_history.md).

Embeds every image and its copies shifted by up to 3 px (and turned or mirrored) once, then scores
20-way 1-shot within-alphabet tasks with: no shifts; the mean embedding over several shift sets; the
best match over the support image's shifts; each task centred on the mean of its support embeddings;
the mean cosine over turned and mirrored copies of query and support. Use validation alphabets
(background split) to choose, never evaluation ones:

  python bench/tta_variants.py --checkpoint workdirs/omniglot_oneshot25 \
      --alphabets Bengali,Futurama,Hebrew,"Japanese_(katakana)",Tifinagh --episodes 200 --seed 1
"""
import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.eval import episodes as evaluate  # noqa: E402
from siamjax.infer.model import shift_image  # noqa: E402
from siamjax.infer.whitening import unit_rows  # noqa: E402
from siamjax.data import load_omniglot  # noqa: E402

MOVES = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)]
PLUS = {p: [(0, 0), (p, 0), (-p, 0), (0, p), (0, -p)] for p in (1, 2, 3)}
SHIFT_SETS = {
    "none": [(0, 0)],
    **{f"4 shifts of {p} px": PLUS[p] for p in (1, 2, 3)},
    "8 neighbours at 1 px": [m for m in MOVES if max(map(abs, m)) <= 1],
    "8 neighbours at 3 px": [m for m in MOVES if m == (0, 0) or (max(map(abs, m)) == 3 and (0 in m or abs(m[0]) == abs(m[1])))],
    "5 x 5 grid (up to 2 px)": [m for m in MOVES if max(map(abs, m)) <= 2],
    "7 x 7 grid (up to 3 px)": MOVES,
}


# (quarter turns, mirrored): transforms applied to query and support images alike
SYMMETRY_SETS = {
    "identity": [(0, False)],
    "identity + mirror": [(0, False), (0, True)],
    "4 turns": [(k, False) for k in range(4)],
    "8 symmetries": [(k, f) for f in (False, True) for k in range(4)],
}


def dihedral(images, turns: int, mirror: bool):
    """images [N, H, W, C] turned by turns x 90 degrees, then mirrored left-right."""
    x = np.rot90(images, turns, axes=(1, 2))
    return np.ascontiguousarray(x[:, :, ::-1] if mirror else x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data_dir", default="../shared/data/omniglot")
    ap.add_argument("--split", default="background")
    ap.add_argument("--alphabets", required=True, help="comma-separated alphabet names")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    model = siamjax.load(args.checkpoint)
    if model.meta["model"]["head"] not in ("cosine", "correlation"):
        sys.exit("error: these schemes average unit-length embeddings; the checkpoint needs a cosine head")
    data = load_omniglot(args.data_dir, args.split, model.preprocessing, alphabets=args.alphabets.split(","))
    eps = evaluate.make_episodes(data.labels, data.groups, data.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    views = {m: unit_rows(model.embed_preprocessed(shift_image(data.images, *m) if m != (0, 0) else data.images))
             for m in MOVES}
    support, query = eps.support[:, :, 0], eps.query  # [E, N], [E, Q]

    def accuracy(sim):  # [E, Q, N]
        return evaluate.percent_right(sim, eps.answer)

    def sims(eq, es):
        return np.einsum("eqd,end->eqn", eq[query], es[support])

    print(f"{eps.num_questions} questions, 20-way 1-shot within-alphabet, {args.alphabets}")
    for name, moves in SHIFT_SETS.items():
        e = unit_rows(np.mean([views[m] for m in moves], axis=0))
        centre = e[support].mean(1, keepdims=True)  # [E, 1, D]: the task's support mean
        centred = accuracy(np.einsum("eqd,end->eqn", unit_rows(e[query] - centre), unit_rows(e[support] - centre)))
        print(f"mean over {name:26s} {accuracy(sims(e, e)):6.2f}%   centred on the support mean {centred:6.2f}%")
    for name in ("8 neighbours at 1 px", "5 x 5 grid (up to 2 px)"):
        best = np.max([sims(views[(0, 0)], views[m]) for m in SHIFT_SETS[name]], axis=0)
        print(f"best match over the support's {name:26s} {accuracy(best):6.2f}%")
    # Symmetries applied to query and support alike: the mean of the cosines over the transforms (a
    # turned or mirrored character is a class of its own in training, so embeddings are not averaged).
    # Each (transform, move) is embedded once; the untransformed ones are the views above.
    turned = {((0, False), m): e for m, e in views.items()}

    def view(t, m):  # unit embeddings [N, D] of every image transformed by t, then moved by m
        if (t, m) not in turned:
            turned[(t, m)] = unit_rows(model.embed_preprocessed(shift_image(dihedral(data.images, *t), *m)))
        return turned[(t, m)]

    for name, transforms in SYMMETRY_SETS.items():
        for shifts in ("none", "4 shifts of 3 px"):
            per = [unit_rows(np.mean([view(t, m) for m in SHIFT_SETS[shifts]], axis=0)) for t in transforms]
            sim = np.mean([sims(e, e) for e in per], axis=0)
            print(f"mean cosine over {name:22s} shifts: {shifts:18s} {accuracy(sim):6.2f}%")


if __name__ == "__main__":
    main()
