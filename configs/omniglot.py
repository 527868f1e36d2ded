"""Omniglot one-shot: a conv-4 twin trained on images_background, validated on held-out background
alphabets (20-way within-alphabet one-shot), never on the evaluation alphabets.

  python train.py --config configs/omniglot.py --workdir workdirs/omniglot     (the demo: make demo)
  python eval.py --checkpoint workdirs/omniglot --data_dir ../shared/data/omniglot

No argument gives the demo recipe (28 px, triplet loss, 1,500 steps). ``configs/omniglot.py:VARIANT``
(``--config=omniglot:VARIANT``) gives one of the recipes of pretrained/omniglot's members (VARIANTS below;
``make pretrained-omniglot`` runs them all), e.g. one member:

  python train.py --config configs/omniglot.py:moments64 --config.seed=1 \
      --workdir workdirs/omniglot_proxiescrophiresmoments_seed1

``koch105`` is no member: Koch et al.'s setting at its real scale (105 px, their network, head and distortions),
100,000 steps meant for a GPU (docs/scaling.md#koch-et-al-on-one-gpu).

Every member trains on 29 of the 30 background alphabets and validates on the 30th, Futurama, to pick
its step. How the recipes and seeds were chosen: experiments/omniglot/. Times are for one run on 2 CPU cores.
"""
from __future__ import annotations

import ml_collections

from siamjax.config_layout import upgrade_config


def base() -> ml_collections.ConfigDict:
    """The demo recipe (``get_config()``): conv-4 at 28 px, cosine head, semi-hard triplets, 1,500 steps.
    Every key not set here keeps its default (siamjax/config_layout.py, which explains each)."""
    return upgrade_config({
        "seed": 0,
        "data": {
            # The folder holding images_background.zip / images_evaluation.zip (or extracted folders).
            "source": "omniglot",
            "dir": "../shared/data/omniglot",
            "image_size": 28,  # Omniglot's 105x105 strokes, resized (area-averaged) to image_size^2
            "invert": True,  # Omniglot PNGs are dark ink on white: make ink the high value
            "alphabets": (),  # background alphabets to read (empty = all 30); must include val_alphabets
            # Background alphabets held out of training for validation (model selection) tasks.
            "val_alphabets": ("Bengali", "Futurama", "Hebrew", "Japanese_(katakana)", "Tifinagh"),
        },
        "eval": {"val_ways": 20},  # 20-way within-alphabet one-shot validation
    })


# Shared pieces of the variants. In a piece, "a.b": v sets one entry of a nested config, and a dict value
# replaces the whole nested config (model.kwargs: the encoder's keyword arguments).

# The one-shot recipe: 32 px (conv-4 ends on a 2 x 2 map that keeps where strokes are), 128 channels
# per block (a 512-d embedding), a prototypical loss over P x K batches, each character turned by 90,
# 180, 270 degrees and mirrored into 8 classes, 10,000 steps; Futurama alone validates.
ONESHOT = {
    "data.val_alphabets": ("Futurama",),
    "data.image_size": 32,
    "model.kwargs.width": 128,
    "augment.translate_px": 2.0 * 32 / 105,  # Koch's +-2 px at 105 px
    "loss.name": "proto",
    "loss.proto_temperature": 0.1,
    "data.images_per_class": 4,
    "data.rotate_classes": True,
    "data.mirror_classes": True,
    "data.batch_size": 128,
    "optim.learning_rate": 3e-3,
    "optim.warmup_steps": 200,
    "optim.train_steps": 10000,
    "eval.eval_every": 1000,
    "checkpoint_every": 1000,
    "eval.val_episodes": 200,  # 4000 validation questions: +-1 point at 90%
}
# Class proxies: blocks of 64, 128, 256, 256 channels (a 1024-d embedding) and, beside the prototypical
# loss, 0.1 x a CosFace loss over one learned vector per training class (scale 30, margin 0.2).
PROXIES = {
    "model.kwargs": {"widths": (64, 128, 256, 256)},
    "loss.proxy_weight": 0.1,
    "loss.proxy_scale": 30.0,
    "loss.proxy_margin": 0.2,
}
# Each character cropped to its strokes' bounding box (widened by 10% of its longer side), the longer
# side resized to image_size and the shorter padded; 4,000 steps (warm-up and cosine decay end there).
CROP = {"data.crop_to_ink": True, "data.keep_aspect": True, "data.crop_margin": 0.1, "optim.train_steps": 4000}
# 64 px with a fifth block in front (32, 64, 128, 256, 256 channels): still a 2 x 2 x 256 last map.
HIRES = {
    "data.image_size": 64,
    "augment.translate_px": 2.0 * 64 / 105,  # Koch's +-2 px at 105 px
    "model.kwargs": {"widths": (32, 64, 128, 256, 256)},
}
# Wide blocks of 96, 192, 384, 384 channels: 2.16M weights, a 1536-d embedding, about 1.8x the step cost.
WIDE = {"model.kwargs": {"widths": (96, 192, 384, 384)}}
# The frame of the crop: a square centred on the ink's centre of mass, of half-side 2 x the ink's RMS
# distance from it, so that one long or stray stroke no longer sets the whole frame.
MOMENTS = {"data.crop_frame": "moments", "data.crop_radius": 2.0, "data.keep_aspect": False}

# Koch, Zemel & Salakhutdinov (2015) at its real scale, for one GPU (docs/scaling.md#koch-et-al-on-one-gpu):
# the 105 x 105 canvas as it is (no resize), their network (siamjax.nn.encoders.Koch: four valid
# convolutions, a 4096-d sigmoid layer, 38.9M weights) and their head (logit = sum_k alpha_k |a_k - b_k| +
# bias) trained with binary cross-entropy on balanced pair batches of 128 pairs (their minibatch), each
# image distorted as in their paper: each of rotation +-10 deg, shear +-0.3 (x and y), scale 0.8-1.2 (x and
# y) and translation +-2 px applied with probability 0.5 (augment's defaults, translation at 105 px). Not
# theirs: Adam (1e-4 after a 2,000-step warm-up, cosine decay; not tuned) instead of SGD with per-layer
# learning rates and momenta and L2 penalties; the library's initialisation (LeCun normal) instead of
# N(0, 0.01) weights and N(0.5, 0.01) biases; online distortions of every image instead of 8 fixed
# distortions per pair; a fixed 100,000 steps (12.8M pairs, ~9.5 passes over their largest 1.35M-pair set)
# with the best validation step kept, instead of early stopping. Validation: 20-way within-alphabet one-shot on base()'s five held-out
# background alphabets. About 137 PFLOP of convolutions and matrix products (python bench/flops.py).
KOCH105 = {
    "data.image_size": 105,
    "model.name": "koch",
    "model.kwargs": {},
    "model.head": "koch",
    "loss.name": "bce",
    "data.batch_size": 128,  # pairs per step
    "augment.translate_px": 2.0,  # Koch's +-2 px, at 105 px
    "optim.name": "adam",
    "optim.learning_rate": 1e-4,
    "optim.warmup_steps": 2000,
    "optim.train_steps": 100000,
    "eval.eval_every": 5000,
    "checkpoint_every": 5000,
    "eval.val_episodes": 200,
    "log_every": 100,
}

# name: the pieces applied over base(), in order. Each comment: what the variant is, the pretrained/omniglot
# members trained with it (workdirs/omniglot_<member>; the Makefile's OMNIGLOT_RECIPES) and one run's time.
VARIANTS = {
    # the one-shot recipe; seed2 (about 48 min)
    "oneshot": (ONESHOT,),
    # class proxies over 20,000 steps; proxieslong_seed0 (about 2 h)
    "proxies_long": (ONESHOT, PROXIES, {"optim.train_steps": 20000}),
    # class proxies at 64 px over 7,000 steps; proxieshires_seed0 (about 1 h 35 min)
    "hires": (ONESHOT, PROXIES, HIRES, {"optim.train_steps": 7000}),
    # class proxies on characters cropped to their ink, 32 px; proxiescrop_seed1 and _seed2 (about 66 min)
    "crop": (ONESHOT, PROXIES, CROP),
    # crop with the wide blocks; proxiescropwide_seed0 (about 1 h 50 min)
    "crop_wide": (ONESHOT, PROXIES, CROP, WIDE),
    # crop at 64 px with five blocks; proxiescrophires_seed0 and _seed1 (about 2 h)
    "crop_hires": (ONESHOT, PROXIES, CROP, HIRES),
    # crop_hires over 6,000 steps; proxiescrophireslong_seed3 (about 1 h 40 min)
    "crop_hires_long": (ONESHOT, PROXIES, CROP, HIRES, {"optim.train_steps": 6000}),
    # crop_hires framed by the ink's moments; proxiescrophiresmoments_seed0 and _seed1 (about 66 min),
    # the two best members
    "moments64": (ONESHOT, PROXIES, CROP, HIRES, MOMENTS),
    # Koch et al. (2015) at its real scale, for an accelerator host (KOCH105 below); no pretrained member.
    "koch105": (KOCH105,),
}
# Variants that trained no member of pretrained/omniglot (the Makefile's OMNIGLOT_RECIPES names every other).
NOT_MEMBERS = ("koch105",)


def apply(c: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
    """``c`` with ``overrides`` set in order ("a.b" sets a nested entry; a dict replaces a nested config)."""
    for key, value in overrides.items():
        *path, name = key.split(".")
        target = c
        for part in path:
            target = target[part]
        target[name] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
    return c


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
    """The demo recipe (no argument, or ""), or the named variant of VARIANTS."""
    c = base()
    if not variant:
        return c
    if variant not in VARIANTS:
        raise ValueError(f"configs/omniglot.py has no variant {variant!r}; choose one of {', '.join(VARIANTS)} "
                         "(or none, for the demo recipe)")
    for overrides in VARIANTS[variant]:
        apply(c, overrides)
    return c
