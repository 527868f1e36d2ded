"""``python -m siamjax.cli.views --data_dir DIR --out views.png``: a picture of Omniglot characters and random
unsupervised views of each (:mod:`siamjax.data.views`)."""
from __future__ import annotations

import jax

from siamjax.data.views import ViewConfig, make_views


def main(argv: list[str] | None = None) -> None:
    import argparse
    import pathlib

    import numpy as np

    p = argparse.ArgumentParser(prog="python -m siamjax.cli.views",
                                description="Draw Omniglot background characters and random views of each.")
    p.add_argument("--data_dir", required=True, help="folder holding images_background.zip")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--images", type=int, default=8, help="rows: characters drawn at random")
    p.add_argument("--views", type=int, default=6, help="random views per character")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from siamjax.data.omniglot import load_omniglot
    from siamjax.data.preprocess import Preprocessing, to_float

    spec = Preprocessing(size=args.image_size, channels=1, invert=True)
    data = load_omniglot(args.data_dir, "background", spec)
    rows = np.random.default_rng(args.seed).choice(len(data.images), size=args.images, replace=False)
    x = to_float(data.images[np.sort(rows)], spec)
    cfg = ViewConfig.handwriting()
    key = jax.random.key(args.seed)
    views = [np.asarray(make_views(jax.random.fold_in(key, v), x, cfg)) for v in range(args.views)]
    grid = np.stack([np.asarray(x)] + views, axis=1)  # [images, 1 + views, H, W, 1]

    from siamjax.eval.plots import pyplot

    plt = pyplot()

    nr, nc = grid.shape[:2]
    fig, axes = plt.subplots(nr, nc, figsize=(1.2 * nc, 1.2 * nr), squeeze=False)
    for i in range(nr):
        for j in range(nc):
            ax = axes[i, j]
            ax.imshow(1.0 - grid[i, j, ..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("original" if j == 0 else f"view {j}", fontsize=8)
    fig.suptitle(f"ViewConfig.handwriting(), {args.image_size} px, seed {args.seed}", fontsize=9)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
