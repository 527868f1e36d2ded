"""Test-time views beyond shifts: small turns and scalings of each image, compared on the same episodes.

Each member of a model (or an ensemble) embeds every image under a set of fixed affine views at its own
input size (after its own resize or crop), averages the unit embeddings over the views, then applies its
within-class whitening, exactly as ``siamjax.load(..., tta_shift=3)`` does for shifts; an ensemble then
scores a pair by the mean of its members' cosines. Prints the accuracy of 20-way 1-shot within-alphabet
tasks for each view set. Use validation alphabets (background split) to choose, never evaluation ones:

  python bench/tta_affine_probe.py --checkpoint pretrained/omniglot --alphabets Futurama \
      --episodes 400 --seed 1
"""
import pathlib
import sys

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.eval import episodes as evaluate  # noqa: E402
from siamjax.data.augment import affine_matrix, apply_affine  # noqa: E402
from siamjax.data import load_omniglot  # noqa: E402
from siamjax.infer.ensemble import Ensemble  # noqa: E402
from siamjax.infer.whitening import unit_rows  # noqa: E402
from whitening_probe import probe_parser  # noqa: E402  (bench/, the script's folder)

# A view: (turn in degrees, scale factor, dy, dx in pixels at the member's input size, as --tta_shift)
SHIFTS = [(0, 1.0, 0, 0), (0, 1.0, 3, 0), (0, 1.0, -3, 0), (0, 1.0, 0, 3), (0, 1.0, 0, -3)]
VIEW_SETS = {
    "none": [(0, 1.0, 0, 0)],
    "4 shifts of 3 px (--tta_shift 3)": SHIFTS,
    "turns of +-8 deg": [(0, 1.0, 0, 0), (8, 1.0, 0, 0), (-8, 1.0, 0, 0)],
    "scales 0.9, 1.1": [(0, 1.0, 0, 0), (0, 0.9, 0, 0), (0, 1.1, 0, 0)],
    "shifts + turns of +-8 deg": SHIFTS + [(8, 1.0, 0, 0), (-8, 1.0, 0, 0)],
    "shifts + scales 0.9, 1.1": SHIFTS + [(0, 0.9, 0, 0), (0, 1.1, 0, 0)],
    "shifts + turns + scales": SHIFTS + [(8, 1.0, 0, 0), (-8, 1.0, 0, 0), (0, 0.9, 0, 0), (0, 1.1, 0, 0)],
}


def warp(x: np.ndarray, turn: float, scale: float, dy: float, dx: float) -> np.ndarray:
    """uint8 [N, S, S, C] under one fixed affine view (about the centre; the border takes the corner's value)."""
    if (turn, scale, dy, dx) == (0, 1.0, 0, 0):
        return x
    m = affine_matrix(turn, 0.0, 0.0, scale, scale, dx, dy)
    fill = float(np.median(x[:, 0, 0, :]))
    out = apply_affine(jnp.asarray(x, jnp.float32), jnp.broadcast_to(m, (len(x), 2, 3)), fill)
    return np.clip(np.rint(np.asarray(out)), 0, 255).astype(np.uint8)


def member_embeddings(member, x: np.ndarray) -> dict:
    """For each view set: one member's whitened mean unit embedding [N, D] over its views of the member's
    own input ``x`` (each distinct view embedded once)."""
    views = {v: unit_rows(member._embed_views(warp(x, *v))) for v in dict.fromkeys(sum(VIEW_SETS.values(), []))}
    out = {}
    for name, vs in VIEW_SETS.items():
        e = np.mean([views[v] for v in vs], axis=0).astype(np.float32)
        out[name] = member.whitening.apply(e) if member.whitening is not None else e
    return out


def main():
    args = probe_parser(__doc__, tta_shift=False).parse_args()  # the view sets below include the shifts
    model = siamjax.load(args.checkpoint, block_pooling=False)  # the views of the last block alone
    members = model.members if isinstance(model, Ensemble) else [model]
    if any(m.meta["model"]["head"] != "cosine" for m in members):
        sys.exit("error: these views average unit-length embeddings; every member needs a cosine head")
    data = load_omniglot(args.data_dir, "background", model.preprocessing, alphabets=args.alphabets.split(","))
    eps = evaluate.make_episodes(data.labels, data.groups, data.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    inputs = [model._view(data.images, m.preprocessing) if isinstance(model, Ensemble) else data.images
              for m in members]
    support, query = eps.support[:, :, 0], eps.query  # [E, N], [E, Q]
    print(f"{eps.num_questions} questions, 20-way 1-shot within-alphabet, {args.alphabets}, {len(members)} member(s)")
    sims = dict.fromkeys(VIEW_SETS, 0.0)  # view set -> summed member cosines [E, Q, N]
    for m, x in zip(members, inputs):
        for name, e in member_embeddings(m, x).items():
            e = unit_rows(e)  # the cosine head compares unit rows
            sims[name] = sims[name] + np.einsum("eqd,end->eqn", e[query], e[support])
    for name, sim in sims.items():
        acc = evaluate.percent_right(sim, eps.answer)
        print(f"{name:34s} {acc:6.2f}%")


if __name__ == "__main__":
    main()
