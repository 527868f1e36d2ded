"""Every config in configs/ builds, passes train.py's checks, and its encoder gives the embedding its
docstring promises (shapes only; no data, no training)."""
import importlib
import pathlib

import jax
import jax.numpy as jnp
import pytest

from siamjax import train_lib

CONFIG_NAMES = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[1] / "configs").glob("*.py")
                      if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_config_passes_checks(name):
    cfg = importlib.import_module(f"configs.{name}").get_config()
    if cfg.get("task", "twin") == "siamfc":  # train.py hands these to the tracker's trainer
        from siamjax.tracking import train as tracking_train
        tracking_train.check_config(cfg)
    else:
        train_lib.check_config(cfg)


@pytest.mark.parametrize("name, size, dim", [
    ("omniglot_oneshot", 32, 2 * 2 * 128),
    ("omniglot_oneshot_pyramid", 32, 2 * 2 * 256),
    ("omniglot_oneshot_proxies_wide", 32, 2 * 2 * 384),
    ("omniglot_oneshot_proxies_hires", 64, 2 * 2 * 256),  # a fifth block keeps the 2 x 2 final map
    ("omniglot_oneshot_proxies_crop_hires", 64, 2 * 2 * 256),
    ("omniglot_oneshot_proxies_crop_hires_pooled", 64, 2 * 2 * 256 + 256),  # + block -2's maximum
])
def test_omniglot_oneshot_embedding_sizes(name, size, dim):
    cfg = importlib.import_module(f"configs.{name}").get_config()
    assert cfg.image_size == size
    twin = train_lib.twin_from_config(cfg)
    shapes = jax.eval_shape(lambda: twin.init(jax.random.PRNGKey(0), (size, size, 1)))
    emb = jax.eval_shape(twin.embed, shapes, jnp.zeros((3, size, size, 1)))
    assert emb.shape == (3, dim)


def test_only_the_crop_recipe_crops_omniglot_to_the_ink():
    """configs/omniglot_oneshot_proxies_crop.py crops each character to its strokes (10% margin, aspect
    kept) before the 32 px resize; the other Omniglot configs resize the whole canvas."""
    crop = train_lib.preprocessing_from_config(
        importlib.import_module("configs.omniglot_oneshot_proxies_crop").get_config())
    assert (crop.size, crop.crop_to_ink, crop.keep_aspect, crop.crop_margin) == (32, True, True, 0.1)
    for name in ("omniglot", "omniglot_oneshot", "omniglot_oneshot_proxies"):
        spec = train_lib.preprocessing_from_config(importlib.import_module(f"configs.{name}").get_config())
        assert not spec.crop_to_ink and not spec.keep_aspect
