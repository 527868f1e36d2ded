"""The twin trainer's config: its groups, every key's default, and the upgrade of stored (flat) configs.

A twin config (configs/*.py, ``siamjax.load(path).meta["config"]``) is a nested ``ml_collections.ConfigDict``:

  seed, init_from, log_every, checkpoint_every, keep_latest, keep_best       (top level: the run)
  data.*      what is read, how it is preprocessed, and how batches are sampled from it
  augment.*   image distortions during training (Koch's affine ones, train_views, the SSL views)
  model.*     encoder, its keyword arguments, head, compute dtype, SSL projector
  loss.*      loss and its settings
  optim.*     optimiser and learning-rate schedule (train_steps included: it ends the cosine decay)
  parallel.*  devices
  eval.*      validation during training

:data:`DEFAULTS` holds every key at the value a config that leaves it out gets; for a key added after
checkpoints were written, that is the value those runs ran with, so :func:`upgrade_config` of any stored
config (flat, as written before the groups existed, or nested) is the complete config of that run.
The configs in configs/ are :func:`upgrade_config` of what they change. Types: siamjax.train.schema.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import ml_collections

__all__ = ["DEFAULTS", "FLAT_NAMES", "GROUPS", "default_config", "flatten", "new_name", "upgrade_config"]

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    # A checkpoint (workdir or step folder) of the same model, head and image shape whose weights start a
    # fresh run (e.g. one trained on Omniglot); "" = random initialisation.
    "init_from": "",
    "log_every": 25,
    "checkpoint_every": 250,
    "keep_latest": 2,
    "keep_best": 1,
    "data": {
        # omniglot (the background alphabets of dir) | folder (a class-per-subfolder folder or zip at dir:
        # ROOT/<class>/<image> or ROOT/<group>/<class>/<image>) | tfds:NAME (a prepared TensorFlow Datasets
        # dataset; tfds:omniglot: the val_alphabets are held out of tfds_train_split)
        "source": "folder",
        "dir": "",
        "image_size": 28,  # every image is resized (area-averaged / antialiased) to image_size^2
        "channels": 1,  # 1 = grey, 3 = RGB
        # Polarity: "auto" flips each image whose mean is light (dark ink on light paper -> high values);
        # True / "true" flips every image, False / "false" none (photos).
        "invert": "auto",
        # Crop each image to its ink's bounding box (pixels above ink_threshold once ink is high), widened by
        # crop_margin x the box's longer side; keep_aspect resizes the longer side to image_size and pads the
        # shorter one (centred, background 0) instead of stretching. Off: the whole image is resized.
        "crop_to_ink": False,
        "ink_threshold": 0.5,
        "crop_margin": 0.02,
        "keep_aspect": False,
        # crop_frame="moments" crops instead to a square centred on the ink's centre of mass, of half-side
        # crop_radius x the ink's RMS distance from it (siamjax.data.preprocess; crop_margin then unused).
        "crop_frame": "box",
        "crop_radius": 2.0,
        # omniglot (and tfds:omniglot): background alphabets to read (empty = all 30; must include
        # val_alphabets) and those held out of training for validation (model selection) tasks.
        "alphabets": (),
        "val_alphabets": (),
        # Training images turned by 90/180/270 degrees become new classes (4x the classes; square images)
        # ... and mirror images (left-right) too, after any turns (8x the classes with both).
        "rotate_classes": False,
        "mirror_classes": False,
        # folder / tfds: classes never used for training or validation (kept for testing), as fnmatch
        # patterns of class names ("class" or "group/class"), e.g. ("s3[1-9]", "s40"); validation classes
        # (patterns, e.g. whole writers: split_by / val_fraction are then unused); else split_by "class"
        # (held-out classes: one-shot) or "image" (held-out images), val_fraction of them held out.
        "holdout_classes": (),
        "val_classes": (),
        "split_by": "class",
        "val_fraction": 0.2,
        # folder: "auto" decodes all images at start unless there are more than 20,000 (or > 256 MB once
        # decoded), then decodes on demand with an LRU cache of cache_items; "yes" always on demand, "no" never.
        "lazy": "auto",
        "cache_items": 4096,
        "max_bad_fraction": 0.01,  # corrupt / oversized / wrong-format files skipped up to this share
        "max_pixels": 50_000_000,  # images declaring more pixels are never decoded (decompression-bomb guard)
        "min_images_per_class": 2,  # classes with fewer usable images are excluded (no positive pair)
        # tfds: "" = TFDS's default folder ($TFDS_DATA_DIR or ~/tensorflow_datasets).
        "tfds_data_dir": "",
        "tfds_train_split": "train",
        # Batches (global, split over every device of every process): batch_size images per step (triplet,
        # proto, simsiam, simclr) or pairs per step (contrastive, bce). P x K batches (triplet, proto):
        # K = images_per_class, P = batch_size // K classes (short classes repeat), spread over all groups
        # (groups_per_batch 0) or drawn from G groups (alphabets). Pair batches: share of negatives drawn from
        # the same group (alphabet; one group: no effect).
        "batch_size": 128,
        "images_per_class": 4,
        "groups_per_batch": 0,
        "same_alphabet_negatives": 0.5,
    },
    "augment": {
        # Koch et al.'s affine distortions, on device, each image independently (translation at 28 px);
        # enabled switches these only.
        "enabled": True,
        "rotation_deg": 10.0,
        "shear": 0.3,
        "scale_min": 0.8,
        "scale_max": 1.2,
        "translate_px": 2.0 * 28 / 105,
        "prob": 0.5,
        "flip_prob": 0.0,  # left-right mirror with this probability, its own coin (faces; never handwriting)
        # Supervised losses: handwriting distortions after the affine ones (siamjax.data.views.ViewConfig keys
        # on top of ViewConfig.none(); all off here): a smooth elastic field (longest vector elastic_alpha px)
        # with probability elastic_prob, a 3 x 3 stroke dilation or erosion with probability stroke_prob.
        "train_views": {"elastic_prob": 0.0, "elastic_alpha": 0.0, "elastic_sigma": 3.0, "stroke_prob": 0.0},
        # simsiam / simclr: the two views of each image (ViewConfig keys over the preset of the data's
        # channels: ViewConfig.handwriting() for 1, .photos() for 3; empty = the preset).
        "views": {},
    },
    "model": {
        "name": "conv4",  # conv4 | koch | resnet (siamjax.nn.encoders)
        "kwargs": {},  # the encoder's keyword arguments (e.g. width, widths, embed_dim)
        "head": "cosine",  # euclidean | cosine | correlation | koch
        # Training-step precision: float32 | bfloat16. bfloat16 runs the encoder's activations, convolutions
        # and matrix products in bfloat16 while parameters, optimizer state, BatchNorm statistics, embeddings,
        # head and loss stay float32. Validation, eval.py and siamjax.load compute in float32. May change
        # when a run is resumed.
        "compute_dtype": "float32",
        # simsiam / simclr: projector (hidden, dim, layers) and SimSiam's predictor (predictor_hidden; 0: none).
        "projection": {"hidden": 512, "dim": 256, "layers": 2, "predictor_hidden": 0},
    },
    "loss": {
        # triplet (P x K batches with online mining) | proto (prototypical, P x K batches) | cosface | arcface
        # (P x K batches: a margin softmax over one learned vector per training class alone, with proxy_scale
        # and proxy_margin) | contrastive | bce (balanced pair batches) | simsiam | simclr (unsupervised: two
        # views of each unlabelled image).
        "name": "triplet",
        "margin": 0.2,  # triplet, contrastive
        "mining": "semihard",  # triplet: all | hard | semihard
        "triplet_reduction": "avg_nonzero",  # mean over active triplets (pml's default) | mean (over all mined)
        "proto_temperature": 0.1,  # proto: logits = -squared distance / temperature
        # triplet / proto: add proxy_weight x a margin softmax over one learned vector per training class; 0 = off.
        # proxy_loss: cosface (logits = proxy_scale * (cosine - proxy_margin at the image's own class)) | arcface
        # (own class: proxy_scale * cos(angle + proxy_margin), proxy_margin in RADIANS, in [0, pi/2); pml's
        # ArcFaceLoss takes degrees). loss.name cosface / arcface use proxy_scale and proxy_margin too.
        "proxy_weight": 0.0,
        "proxy_loss": "cosface",  # added later: every earlier run's proxy term was CosFace
        "proxy_scale": 10.0,
        "proxy_margin": 0.1,
        "ssl_temperature": 0.1,  # simclr: NT-Xent temperature
        "stop_gradient": True,  # simsiam: False is the paper's ablation, which collapses
        "collapse_ratio": 0.25,  # simsiam / simclr: warn when std(normalised z) * sqrt(dim) falls below it
        # triplet / proto: add distill_weight x a relational distillation loss (siamjax.losses.
        # relational_distillation_loss: the student's similarities / distill_temperature, the teacher's /
        # distill_teacher_temperature) towards the teacher whose targets file distill_targets holds
        # (python -m siamjax.cli.distill_targets; siamjax.train.distill); 0 = off.
        "distill_weight": 0.0,
        "distill_targets": "",
        "distill_temperature": 0.1,
        "distill_teacher_temperature": 0.1,
    },
    "optim": {
        "name": "adam",  # adam | adamw | sgd
        "learning_rate": 3e-3,  # peak of a linear warm-up over warmup_steps, then a cosine decay to train_steps
        "weight_decay": 0.0,  # adamw
        "warmup_steps": 50,
        "train_steps": 1500,
        "proxy_lr_multiplier": 1.0,  # the class proxies' learning rate over the encoder's
    },
    "parallel": {
        # The global batch is split over num_devices local devices (0 = all): pmap | shard_map (jit +
        # shard_map over a device mesh).
        "mode": "pmap",
        "num_devices": 0,
    },
    "eval": {
        "val_ways": 5,  # N of the N-way one-shot validation tasks
        "val_episodes": 100,  # one-shot validation episodes (val_ways questions each)
        "eval_every": 250,
    },
}

GROUPS = tuple(k for k, v in DEFAULTS.items() if isinstance(v, dict))

# Entries whose value is a free dict (replaced whole, never merged: keys checked by their own reader).
FREE = ("model.kwargs", "augment.train_views", "augment.views")

_GROUPED = {  # group -> the keys of the old flat config that moved into it under their own name
    "data": ("image_size", "channels", "invert", "crop_to_ink", "ink_threshold", "crop_margin", "keep_aspect",
             "crop_frame", "crop_radius", "alphabets", "val_alphabets", "rotate_classes", "mirror_classes",
             "holdout_classes", "val_classes", "split_by", "val_fraction", "lazy", "cache_items",
             "max_bad_fraction", "max_pixels", "min_images_per_class", "tfds_data_dir", "tfds_train_split",
             "batch_size", "images_per_class", "groups_per_batch", "same_alphabet_negatives"),
    "model": ("head", "compute_dtype", "projection"),
    "loss": ("margin", "mining", "triplet_reduction", "proto_temperature", "proxy_weight", "proxy_scale",
             "proxy_margin", "ssl_temperature", "stop_gradient", "collapse_ratio"),
    "optim": ("learning_rate", "weight_decay", "warmup_steps", "train_steps", "proxy_lr_multiplier"),
    "parallel": ("num_devices",),
    "eval": ("val_ways", "val_episodes", "eval_every"),
    "augment": ("train_views", "views"),
}
# Every key of a flat config (every checkpoint written before the groups existed) -> its dotted name now.
# The top-level keys (seed, init_from, log_every, checkpoint_every, keep_latest, keep_best) and augment
# (a group already) kept theirs.
FLAT_NAMES: dict[str, str] = {
    "data": "data.source", "data_dir": "data.dir", "model": "model.name", "model_kwargs": "model.kwargs",
    "loss": "loss.name", "optimizer": "optim.name", "parallel": "parallel.mode",
    **{key: f"{group}.{key}" for group, keys in _GROUPED.items() for key in keys},
}
_OLD_GROUPS = ("model_kwargs", "projection", "train_views", "views")  # old keys that held sub-keys


def new_name(old: str) -> str | None:
    """The dotted name now of an old flat override path (``learning_rate`` -> ``optim.learning_rate``,
    ``projection.dim`` -> ``model.projection.dim``, ``data`` -> ``data.source``); None when ``old`` is no
    old flat name, or kept its name."""
    head, dot, rest = old.partition(".")
    if head not in FLAT_NAMES or (dot and head not in _OLD_GROUPS):
        return None
    return FLAT_NAMES[head] + dot + rest


def _get(d: Mapping, dotted: str):
    for part in dotted.split("."):
        d = d[part]
    return d


def _merge(base: dict, over: Mapping, prefix: str = "") -> dict:
    """``base`` (a plain nested dict, changed in place) with ``over`` on top: groups merge key by key,
    free dicts and values are replaced; unknown keys are kept (the schema check names them)."""
    for key, value in over.items():
        path = prefix + key
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        if isinstance(value, Mapping) and isinstance(base.get(key), dict) and path not in FREE:
            _merge(base[key], value, path + ".")
        else:
            base[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
    return base


def _nest(d: Mapping) -> dict:
    """A stored config with its old flat keys moved to their groups (nested keys pass through)."""
    out: dict = {}
    for key, value in d.items():
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        is_group = key in GROUPS and isinstance(value, Mapping)  # nested already
        target = FLAT_NAMES.get(key, key) if not is_group else key
        *parents, name = target.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if isinstance(value, Mapping) and isinstance(node.get(name), dict):
            node[name].update(value)
        else:
            node[name] = value
    return out


def upgrade_config(d: Mapping | None = None) -> ml_collections.ConfigDict:
    """The complete nested config of ``d``: a stored config dict (flat, as every checkpoint written before
    the groups existed, or nested; a ConfigDict too) with missing keys filled from :data:`DEFAULTS`."""
    d = {} if d is None else (d.to_dict() if hasattr(d, "to_dict") else d)
    return ml_collections.ConfigDict(_merge(copy.deepcopy(DEFAULTS), _nest(d)))


def default_config() -> ml_collections.ConfigDict:
    """:data:`DEFAULTS` as a ConfigDict."""
    return upgrade_config({})


def flatten(d: Mapping, prefix: str = "", free: bool = True) -> dict[str, Any]:
    """``{dotted name: value}`` of a nested dict or ConfigDict (``free=False``: free dicts stay whole)."""
    out = {}
    for key, value in d.items():
        path = prefix + key
        if hasattr(value, "keys") and (free or path not in FREE):
            out.update(flatten(value, path + ".", free))
        else:
            out[path] = value
    return out
