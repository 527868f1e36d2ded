"""Probe: slant normalisation (moment deskewing) of each character at test time, on held-out alphabets.

Drawers slant their characters differently. Each image (ink bright, 105 x 105) is sheared along x about
its ink's centre of mass by -f * alpha, alpha = cov(x, y) / var(y) of the ink (the classic deskew of
handwritten digits), for factors f; then each member of the model embeds it as usual (its own crop,
resize and whitening) and 20-way 1-shot within-alphabet tasks are scored with the mean of the members'
cosines (f = 0 is what eval.py gives). The models were trained on unsheared characters. Use
validation alphabets (background split) to choose, never evaluation ones:

  python bench/deskew_probe.py --checkpoint pretrained/omniglot --alphabets Futurama --episodes 400 --seed 1
"""
import pathlib
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import siamjax  # noqa: E402
from siamjax.eval import episodes as evaluate  # noqa: E402
from siamjax.data import load_omniglot  # noqa: E402
from siamjax.data.preprocess import Preprocessing  # noqa: E402
from siamjax.infer.ensemble import Ensemble  # noqa: E402
from siamjax.infer.whitening import unit_rows  # noqa: E402
from whitening_probe import probe_parser  # noqa: E402  (bench/, the script's folder)


def slant(img: np.ndarray) -> tuple[float, float, float]:
    """(alpha, cy, cx) of one float image [H, W] with bright ink: x-shear per row and the ink's centroid."""
    w = img / max(float(img.sum()), 1e-6)
    y, x = np.mgrid[: img.shape[0], : img.shape[1]]
    cy, cx = float((w * y).sum()), float((w * x).sum())
    vyy = float((w * (y - cy) ** 2).sum())
    vxy = float((w * (x - cx) * (y - cy)).sum())
    return (vxy / vyy if vyy > 1e-6 else 0.0), cy, cx


def deskew(img: np.ndarray, factor: float, alpha: float, cy: float, cx: float) -> np.ndarray:
    """float image [H, W] (bright ink) sheared so that its ink's x-y covariance shrinks by ``factor``
    (1 = removed), about the ink's centre of mass, same shape, bilinear; (alpha, cy, cx) = slant(img)."""
    m = np.array([[1.0, 0.0], [factor * alpha, 1.0]])  # output (y, x) -> input (y, x + f a (y - cy))
    c = np.array([cy, cx])
    return ndimage.affine_transform(img, m, offset=c - m @ c, order=1, mode="constant", cval=0.0)


def main():
    ap = probe_parser(__doc__, tta_shift=False)
    ap.add_argument("--factors", default="0,0.5,1")
    args = ap.parse_args()
    model = siamjax.load(args.checkpoint)
    members = model.members if isinstance(model, Ensemble) else [model]
    raw = load_omniglot(args.data_dir, "background", Preprocessing(size=105, invert=True), alphabets=args.alphabets.split(","))
    eps = evaluate.make_episodes(raw.labels, raw.groups, raw.instances, 20, 1, args.episodes, "within",
                                 seed=args.seed)
    support, query = eps.support[:, :, 0], eps.query
    imgs = raw.images[..., 0].astype(np.float32) / 255.0  # ink bright (inverted)
    slants = [slant(im) for im in imgs]  # once per image, for every factor
    alphas = np.array([a for a, _, _ in slants])
    print(f"{eps.num_questions} questions, {args.alphabets}; slant alpha: median |a| {np.median(np.abs(alphas)):.3f}, "
          f"90th percentile {np.percentile(np.abs(alphas), 90):.3f}", flush=True)
    for f in [float(s) for s in args.factors.split(",")]:
        x = imgs if f == 0 else np.stack([deskew(im, f, *sl) for im, sl in zip(imgs, slants)])
        x = 1.0 - np.clip(x, 0.0, 1.0)[..., None]  # back to dark ink on light paper, as stored
        sims, line = 0.0, []
        for m in members:
            e = unit_rows(m.embed(x))
            s = np.einsum("eqd,end->eqn", e[query], e[support])
            line.append(evaluate.percent_right(s, eps.answer))
            sims = sims + s
        acc = evaluate.percent_right(sims, eps.answer)
        print(f"factor {f:4.2f}: all {acc:6.2f}%   members " + " ".join(f"{a:.2f}" for a in line), flush=True)


if __name__ == "__main__":
    main()
