"""Training: config checks, train state, the jitted per-device step, validation and the loop.

The step is one pure function of (state, batch): the augmentation key is ``fold_in(seed, step)``
and the batch is a function of ``(seed, step)`` (see :mod:`siamjax.data.samplers`), so a resumed
run repeats an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from absl import logging

from siamjax import checkpoint as ckpt_lib
from siamjax import distributed, parallel, train_loop
from siamjax.config_schema import check_keys_and_types
from siamjax.workdir_check import check_workdir_writable, check_free_space, tree_bytes
from siamjax.augment import AffineConfig, apply_affine, sample_affine
from siamjax.data.dataset import LabeledImages, with_mirrored_classes, with_rotated_classes
from siamjax.data.omniglot import load_omniglot
from siamjax.data.preprocess import OPTIONAL_FIELDS, Preprocessing, to_float
from siamjax.data.samplers import BalancedPairSampler, PKSampler, UnlabeledSampler
from siamjax.evaluate import make_episodes, one_shot_accuracy
from siamjax.losses import (bce_loss, contrastive_loss, ntxent_loss, output_std, prototypical_loss, proxy_softmax_loss,
                            simsiam_loss, triplet_loss)
from siamjax.siamese import TWIN_AXIS, Twin, make_twin
from siamjax.train_loop import TRAIN_ONLY, state_variables, train_items, with_train_items

LOSSES = ("triplet", "proto", "contrastive", "bce", "simsiam", "simclr")
PK_LOSSES = ("triplet", "proto")  # P x K batches of class-labelled images
PAIR_LOSSES = ("contrastive", "bce")
SSL_LOSSES = ("simsiam", "simclr")  # unsupervised: two views of each unlabelled image
# Unsupervised settings a config may leave out (configs/omniglot_simsiam.py sets them all); config.views
# defaults to siamjax.views.ViewConfig.handwriting() (1 channel) or .photos() (3 channels).
SSL_DEFAULTS = {"projection": {"hidden": 512, "dim": 256, "layers": 2, "predictor_hidden": 0},
                "ssl_temperature": 0.1, "stop_gradient": True, "collapse_ratio": 0.25}
# Keys added after checkpoints were written, with the value that reproduces what those runs did (also the
# value a config without the key gets).
LATER_KEYS = {"proto_temperature": 0.1, "groups_per_batch": 0, "rotate_classes": False, "mirror_classes": False,
              "proxy_weight": 0.0, "proxy_scale": 10.0, "proxy_margin": 0.1, "proxy_lr_multiplier": 1.0,
              "train_views": {"elastic_prob": 0.0, "elastic_alpha": 0.0, "elastic_sigma": 3.0, "stroke_prob": 0.0}}
# config.compute_dtype -> the encoder's ``dtype`` (activations, convolutions, matrix products) in the
# training step. Parameters, optimizer state, BatchNorm statistics, embeddings, head and loss stay float32.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class TrainState(train_state.TrainState):
    batch_stats: Any = None


# ----------------------------------------------------------------------------------------- config
def check_config(cfg: ml_collections.ConfigDict) -> None:
    """Raise ValueError with the fix for settings that cannot work, before any work starts: unknown keys
    (with the closest valid ones) and wrong types first (:mod:`siamjax.config_schema`), then values."""
    check_keys_and_types(cfg)
    if cfg.loss not in LOSSES:
        raise ValueError(f"config.loss={cfg.loss!r}; choose one of {LOSSES}")
    if cfg.loss == "contrastive" and cfg.head == "koch":
        raise ValueError("config.loss='contrastive' needs a distance; the 'koch' head has none: "
                         "use --config.loss=bce with head=koch, or a euclidean/cosine/correlation head")
    if cfg.loss in PK_LOSSES and cfg.head == "koch":
        raise ValueError(f"config.loss={cfg.loss!r} ranks distances; use head=euclidean|cosine|correlation")
    if cfg.loss in SSL_LOSSES:
        if cfg.head == "koch":
            raise ValueError(f"config.loss={cfg.loss!r} is unsupervised: its model is used by nearest neighbours; "
                             "use head=cosine|correlation|euclidean")
        for key in ("rotate_classes", "mirror_classes"):
            if cfg.get(key, False):
                raise ValueError(f"config.{key} makes classes from labels; config.loss={cfg.loss!r} reads "
                                 f"no labels: set --config.{key}=False")
        if train_views_from_config(cfg) is not None:
            raise ValueError(f"config.train_views distorts the images of a supervised loss; config.loss={cfg.loss!r} "
                             "makes its two views with config.views")
        projection_from_config(cfg)  # ValueError for bad sizes
        views_from_config(cfg)  # ValueError naming unknown view keys or bad values
        ratio = float(cfg.get("collapse_ratio", SSL_DEFAULTS["collapse_ratio"]))
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"config.collapse_ratio={ratio} must lie in [0, 1) (0 turns the warning off)")
        if float(cfg.get("ssl_temperature", SSL_DEFAULTS["ssl_temperature"])) <= 0:
            raise ValueError("config.ssl_temperature must be > 0")
    else:
        train_views_from_config(cfg)  # ValueError naming unknown view keys or bad values
    if proxy_weight(cfg) < 0:
        raise ValueError(f"config.proxy_weight={proxy_weight(cfg)} must be >= 0 (0 turns the proxy loss off)")
    if proxy_weight(cfg) > 0:
        if cfg.loss not in PK_LOSSES:
            raise ValueError(f"config.proxy_weight > 0 adds a loss over class proxies to a P x K loss ({PK_LOSSES}); "
                             f"config.loss={cfg.loss!r} has no class labels per image: set --config.proxy_weight=0")
        if float(cfg.get("proxy_scale", LATER_KEYS["proxy_scale"])) <= 0:
            raise ValueError("config.proxy_scale must be > 0")
    if proxy_lr_multiplier(cfg) <= 0:
        raise ValueError(f"config.proxy_lr_multiplier={proxy_lr_multiplier(cfg)} must be > 0 (1 = the encoder's rate)")
    if cfg.batch_size < 2:
        raise ValueError(f"config.batch_size must be >= 2, got {cfg.batch_size}")
    if cfg.loss in PK_LOSSES and cfg.batch_size % cfg.images_per_class:
        raise ValueError(f"config.batch_size={cfg.batch_size} is not a multiple of "
                         f"config.images_per_class={cfg.images_per_class} (P x K batches)")
    if cfg.loss in PAIR_LOSSES and cfg.batch_size % 2:
        raise ValueError(f"config.batch_size={cfg.batch_size} must be even: half positive, half negative pairs")
    for key in ("train_steps", "log_every", "eval_every", "checkpoint_every"):
        if cfg[key] < 1:
            raise ValueError(f"config.{key} must be >= 1, got {cfg[key]}")
    compute_dtype = cfg.get("compute_dtype", "float32")
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"config.compute_dtype={compute_dtype!r}; choose one of {tuple(COMPUTE_DTYPES)}")
    if "dtype" in cfg.model_kwargs:
        raise ValueError("config.model_kwargs.dtype is set by config.compute_dtype (float32 | bfloat16); "
                         "remove model_kwargs.dtype and use --config.compute_dtype")


def parse_invert(value) -> bool | str:
    """``config.invert`` -> Preprocessing.invert: a bool, or a string ("auto", "true"/"yes", "false"/"no"),
    since ml_collections keeps a field's type (a config whose default is "auto" takes "false" on the
    command line)."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "yes", "1"):
            return True
        if v in ("false", "no", "0"):
            return False
        if v == "auto":
            return "auto"
        raise ValueError(f"config.invert={value!r}; use auto, true or false")
    return bool(value)


def preprocessing_from_config(cfg) -> Preprocessing:
    """The config's Preprocessing. The crop / aspect keys (``OPTIONAL_FIELDS``: crop_to_ink, ink_threshold,
    crop_margin, keep_aspect, crop_frame, crop_radius) are absent from older configs and then take
    Preprocessing's own defaults (no crop); Preprocessing checks the values given."""
    optional = {name: cfg.get(name, default) for name, default in OPTIONAL_FIELDS.items()}
    return Preprocessing(size=int(cfg.image_size), channels=int(cfg.get("channels", 1)), invert=parse_invert(cfg.invert),
                         **optional)


def projection_from_config(cfg) -> dict | None:
    """The projector / predictor sizes of an unsupervised config (a ProjectionSpec dict), else None."""
    if cfg.loss not in SSL_LOSSES:
        return None
    from siamjax.projection import ProjectionSpec

    sizes = {**SSL_DEFAULTS["projection"], **dict(cfg.get("projection") or {})}
    return ProjectionSpec.from_dict({"method": cfg.loss, **sizes}).to_dict()


def train_views_from_config(cfg):
    """``siamjax.views.ViewConfig`` of ``cfg.train_views`` for a supervised loss: the keys given on top of
    ``ViewConfig.none()`` (every other component off), applied to each training image after Koch's
    affine distortions (e.g. elastic_prob, elastic_alpha, elastic_sigma, stroke_prob); None when the config
    has no such key or it turns nothing on."""
    given = dict(cfg.get("train_views") or {})
    if not given:
        return None
    from siamjax.views import ViewConfig

    try:
        views = ViewConfig.from_dict({**dataclasses.asdict(ViewConfig.none()), **given})
    except ValueError as e:  # unknown keys or bad values, named
        raise ValueError(f"config.train_views: {e}") from None
    return None if views.is_identity else views


def views_from_config(cfg):
    """``siamjax.views.ViewConfig`` of ``cfg.views`` (missing keys keep the preset of the data's channels)."""
    from siamjax.views import ViewConfig

    preset = ViewConfig.photos() if int(cfg.get("channels", 1)) == 3 else ViewConfig.handwriting()
    given = dict(cfg.get("views") or {})
    return ViewConfig.from_dict({**dataclasses.asdict(preset), **given})  # ValueError names unknown keys


def twin_from_config(cfg, bn_axis_name: Any = "twin", compute_dtype: str | None = None) -> Twin:
    """The twin of ``cfg``; its encoder computes in ``compute_dtype`` (default ``cfg.compute_dtype``,
    float32 when the config has no such key). The parameter tree is the same for every compute dtype
    (float32 parameters: Flax's ``param_dtype``), so twins of different dtypes share variables."""
    name = compute_dtype or cfg.get("compute_dtype", "float32")
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype={name!r}; choose one of {tuple(COMPUTE_DTYPES)}")
    kwargs = dict(cfg.model_kwargs)
    if name != "float32":  # float32 builds exactly the encoder it always did
        kwargs["dtype"] = COMPUTE_DTYPES[name]
    return make_twin(cfg.model, cfg.head, kwargs, bn_axis_name=bn_axis_name, projection=projection_from_config(cfg))


def model_meta(cfg, spec: Preprocessing) -> dict:
    """What :func:`siamjax.load` needs to rebuild the model (stored with every checkpoint)."""
    model = {"model": cfg.model, "model_kwargs": dict(cfg.model_kwargs), "head": cfg.head}
    if cfg.loss in SSL_LOSSES:
        model["projection"] = projection_from_config(cfg)
    return {"config": cfg.to_dict(), "preprocessing": spec.to_dict(), "model": model}


# ------------------------------------------------------------------------------------------- data
DATA_SOURCES = ("omniglot", "folder", "tfds:NAME")


def load_data(cfg) -> tuple[LabeledImages, LabeledImages, Preprocessing]:
    """(train, validation, preprocessing) from ``cfg.data``:

    - ``"omniglot"``: the background alphabets of ``cfg.data_dir``, split by ``cfg.val_alphabets``;
    - ``"folder"``: a class-per-subfolder folder or zip at ``cfg.data_dir``
      (:func:`siamjax.data.folder.load_image_folder`), split by ``cfg.split_by`` / ``cfg.val_fraction``;
    - ``"tfds:NAME"``: split ``cfg.tfds_train_split`` of a prepared TensorFlow Datasets dataset in
      ``cfg.tfds_data_dir`` (:func:`siamjax.data.tfds_source.load_tfds`): by ``cfg.val_alphabets``
      when the config has them and the data's groups include them (``tfds:omniglot``), else like a folder.
    """
    spec = preprocessing_from_config(cfg)
    source = str(cfg.data)
    if source == "omniglot":
        val_names = list(cfg.val_alphabets)
        wanted = list(cfg.alphabets) or None
        if wanted and set(val_names) - set(wanted):
            raise ValueError(f"config.val_alphabets {sorted(set(val_names) - set(wanted))} are not in config.alphabets")
        background = load_omniglot(cfg.data_dir, "background", spec, alphabets=wanted)
        train = background.select_groups(val_names, exclude=True)
        return _with_symmetry_classes(cfg, train), background.select_groups(val_names), spec
    if source == "folder":
        from siamjax.data.folder import load_image_folder, parse_lazy

        if not cfg.data_dir:
            raise ValueError("config.data='folder' needs --config.data_dir=PATH (a class-per-subfolder folder or zip)")
        data = load_image_folder(cfg.data_dir, spec, lazy=parse_lazy(cfg.get("lazy", "auto")),
                                 cache_items=int(cfg.get("cache_items", 4096)),
                                 max_bad_fraction=float(cfg.get("max_bad_fraction", 0.01)),
                                 max_pixels=int(cfg.get("max_pixels", 50_000_000)),
                                 min_images_per_class=int(cfg.get("min_images_per_class", 2)))
    elif source.startswith("tfds:") and len(source) > 5:
        from siamjax.data.tfds_source import load_tfds

        data = load_tfds(source[5:], str(cfg.get("tfds_train_split", "train")), spec,
                         data_dir=cfg.get("tfds_data_dir") or None, cache_items=int(cfg.get("cache_items", 4096)))
        val_names = list(cfg.get("val_alphabets", ()))
        if val_names and set(val_names) <= set(data.group_names):  # tfds:omniglot with an Omniglot config
            if list(cfg.get("alphabets", ())):
                data = data.select_groups(list(cfg.alphabets))
            return _with_symmetry_classes(cfg, data.select_groups(val_names, exclude=True)), data.select_groups(val_names), spec
    else:
        raise ValueError(f"config.data={source!r}; choose one of {DATA_SOURCES}")
    from siamjax.data.folder import split_dataset

    data = drop_classes(data, tuple(cfg.get("holdout_classes", ())))
    val_patterns = tuple(cfg.get("val_classes", ()))
    if val_patterns:  # named validation classes (e.g. a writer's genuine and forgery folders together)
        held = _match_classes(data, val_patterns, "val_classes")[data.labels]
        if held.all():
            raise ValueError(f"config.val_classes {val_patterns} match every class; nothing is left to train on")
        return data.subset(~held), data.subset(held), spec
    train, val = split_dataset(data, by=str(cfg.get("split_by", "class")), fraction=float(cfg.get("val_fraction", 0.2)),
                               seed=int(cfg.seed))
    return _with_symmetry_classes(cfg, train), val, spec


def _with_symmetry_classes(cfg, train: LabeledImages) -> LabeledImages:
    """The training split with its quarter turns (``cfg.rotate_classes``) and mirror images
    (``cfg.mirror_classes``) as extra classes."""
    if cfg.get("rotate_classes", LATER_KEYS["rotate_classes"]):
        train = with_rotated_classes(train)
    return with_mirrored_classes(train) if cfg.get("mirror_classes", LATER_KEYS["mirror_classes"]) else train


def _match_classes(data: LabeledImages, patterns: tuple[str, ...], key: str) -> np.ndarray:
    """bool [num_classes]: class names matching one of the ``fnmatch`` patterns (at least one must)."""
    import fnmatch

    match = np.array([any(fnmatch.fnmatchcase(name, p) for p in patterns) for name in data.class_names])
    if not match.any():
        raise ValueError(f"config.{key} {patterns} match no class; classes are named like {data.class_names[:3]}")
    return match


def drop_classes(data: LabeledImages, patterns: tuple[str, ...]) -> LabeledImages:
    """``data`` without the classes whose name matches one of the ``fnmatch`` patterns (e.g. a test set's
    identities, ``("s3[1-9]", "s40")``): they take no part in training or validation."""
    if not patterns:
        return data
    return data.subset(~_match_classes(data, patterns, "holdout_classes")[data.labels])


def make_batch_fn(cfg, data: LabeledImages, rows: slice = slice(None)) -> Callable[[int], dict]:
    """step -> host batch (NumPy): triplet ``{images [P*K,H,W,C] uint8, labels [P*K] int32}``,
    pairs ``{left, right [B,H,W,C] uint8, same [B] float32}``.

    ``rows``: the part of the global batch to build (with several processes, this process's rows
    ``[p*B/P, (p+1)*B/P)``, see :func:`siamjax.parallel.process_rows`). The global indices are a
    function of ``(seed, step)``, so every process agrees on them and reads only its own images.
    """
    if cfg.loss in SSL_LOSSES:
        return make_unlabeled_batch_fn(data.images, cfg.batch_size, cfg.seed, rows)
    if cfg.loss in PK_LOSSES:
        k = int(cfg.images_per_class)
        sampler = PKSampler(data.labels, data.groups, p=cfg.batch_size // k, k=k, seed=cfg.seed,
                            groups_per_batch=int(cfg.get("groups_per_batch", LATER_KEYS["groups_per_batch"])))

        def batch(step):
            idx = sampler(step)[rows]
            return {"images": data.images[idx], "labels": data.labels[idx].astype(np.int32)}
    else:
        sampler = BalancedPairSampler(data.labels, data.groups, batch_size=cfg.batch_size, seed=cfg.seed,
                                      same_group_negatives=cfg.same_alphabet_negatives)

        def batch(step):
            p = sampler(step)
            return {"left": data.images[p.left[rows]], "right": data.images[p.right[rows]],
                    "same": p.same[rows].astype(np.float32)}
    return batch


def make_unlabeled_batch_fn(images, batch_size: int, seed: int, rows: slice = slice(None)) -> Callable[[int], dict]:
    """step -> ``{images [B, H, W, C] uint8}``: uniform batches of unsupervised training. It is given the
    images only: labels, classes and groups never reach it."""
    sampler = UnlabeledSampler(len(images), batch_size, seed)

    def batch(step):
        return {"images": images[sampler(step)[rows]]}

    return batch


# ------------------------------------------------------------------------------------------- step
def validation_protocol(cfg) -> dict:
    """How validation tasks are drawn: Omniglot's are Lake's (within one alphabet, support and queries
    from fixed drawers); other data's draw classes from all groups and each class's images freely."""
    if cfg.data == "omniglot":
        return {"protocol": "within", "same_instance": True}
    return {"protocol": "across", "same_instance": False}


def make_batch_fn_checked(cfg, train: LabeledImages, val: LabeledImages, rows: slice = slice(None)):
    """:func:`make_batch_fn`, after checking that both splits can serve what the config asks of them
    (a ValueError naming the split, its size and the settings to change otherwise)."""
    try:
        make_episodes(val.labels, val.groups, val.instances, ways=cfg.val_ways, shots=1, episodes=1,
                      seed=cfg.seed + 1, **validation_protocol(cfg))
    except ValueError as e:
        raise ValueError(f"the validation split ({val.num_classes} classes in {val.num_groups} group(s), "
                         f"{len(val)} images) cannot make {cfg.val_ways}-way one-shot tasks: {e}; lower "
                         "config.val_ways or give validation more classes") from e
    try:
        return make_batch_fn(cfg, train, rows)
    except ValueError as e:
        raise ValueError(f"the training split ({train.num_classes} classes, {len(train)} images) cannot make "
                         f"config.loss={cfg.loss!r} batches of config.batch_size={cfg.batch_size}: {e}; lower "
                         "config.batch_size (a triplet batch holds batch_size / images_per_class classes)") from e


def make_optimizer(cfg) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Optimizer and its learning-rate schedule (linear warm-up, cosine decay to 0). With
    ``config.proxy_lr_multiplier`` m != 1, the loss's class proxies (``params["proxies"]``) get their own
    optimizer of the same kind at m x that schedule (its state then sits in an ``optax.multi_transform``)."""
    warmup = min(int(cfg.warmup_steps), max(int(cfg.train_steps) - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(warmup, 1), max(cfg.train_steps, 2))

    def optimizer(lr):
        if cfg.optimizer == "adam":
            return optax.adam(lr)
        if cfg.optimizer == "adamw":
            return optax.adamw(lr, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "sgd":
            return optax.sgd(lr, momentum=0.9, nesterov=True)
        raise ValueError(f"config.optimizer={cfg.optimizer!r}; choose adam, adamw or sgd")

    mult = proxy_lr_multiplier(cfg)
    if mult == 1.0:
        return optimizer(schedule), schedule

    def labels(params):
        return {k: jax.tree.map(lambda _, k=k: "proxies" if k == TRAIN_ONLY else "encoder", v) for k, v in params.items()}

    tx = optax.multi_transform({"encoder": optimizer(schedule), "proxies": optimizer(lambda s: mult * schedule(s))},
                               labels)
    return tx, schedule


def proxy_lr_multiplier(cfg) -> float:
    """The class proxies' learning rate over the encoder's (1: one optimizer for both)."""
    return float(cfg.get("proxy_lr_multiplier", LATER_KEYS["proxy_lr_multiplier"]))


def proxy_weight(cfg) -> float:
    """Weight of the class-proxy loss added to a P x K loss (0: none)."""
    return float(cfg.get("proxy_weight", LATER_KEYS["proxy_weight"]))


def create_state(twin: Twin, cfg, spec: Preprocessing, num_classes: int = 0) -> TrainState:
    """Fresh train state. With ``config.proxy_weight > 0`` its params also hold ``proxies``
    [num_classes, D] (normal, std 1/sqrt(D)), the learned class vectors of the proxy loss."""
    tx, _ = make_optimizer(cfg)
    proxies = proxy_weight(cfg) > 0
    if proxies and num_classes < 2:
        raise ValueError(f"config.proxy_weight > 0 needs a training split of >= 2 classes, got {num_classes}")

    def init(key):
        variables = twin.init(key, (spec.size, spec.size, spec.channels))
        params = variables["params"]
        if proxies:
            x = jnp.zeros((1, spec.size, spec.size, spec.channels), jnp.float32)
            dim = jax.eval_shape(lambda v: twin.embed(v, x), variables).shape[-1]
            # about unit length, so Adam's steps of ~learning_rate per coordinate turn them within tens of steps
            w = jax.random.normal(jax.random.fold_in(key, 1), (num_classes, dim)) / jnp.sqrt(float(dim))
            params = {**params, TRAIN_ONLY: w}
        return TrainState.create(apply_fn=None, params=params, tx=tx, batch_stats=variables.get("batch_stats"))

    # One compiled program rather than one per initialiser op: with several processes only process 0
    # writes the persistent compilation cache, so the others would compile every small op each run.
    return jax.jit(init)(jax.random.key(cfg.seed))


def augment_config(cfg) -> AffineConfig | None:
    a = cfg.augment.to_dict()
    return AffineConfig.from_dict({k: v for k, v in a.items() if k != "enabled"}) if a.get("enabled") else None


def make_train_step(twin: Twin, cfg, spec: Preprocessing, axis_name: str | None = None, num_shards: int = 1):
    """The per-device step ``(state, batch) -> (state, metrics)``.

    With ``axis_name`` (pmap / shard_map over ``num_shards`` devices) every device holds rows
    ``[i*b, (i+1)*b)`` of the global batch; gradients and metrics are averaged with ``pmean``, triplet
    losses mine over the whole global batch (embeddings are gathered), BatchNorm statistics cover the
    global batch, and each image's distortion depends on its global row only. So N steps on 8 devices
    equal N steps on 1 device with the same global batch, up to float rounding.

    The encoder computes in ``twin``'s dtype (:func:`twin_from_config`: ``cfg.compute_dtype``); the
    gradients, the optimizer update and the state are float32 whatever it is.
    """
    aug = augment_config(cfg)
    views = views_from_config(cfg) if cfg.loss in SSL_LOSSES else None
    extra_views = None if cfg.loss in SSL_LOSSES else train_views_from_config(cfg)
    _, schedule = make_optimizer(cfg)
    base_key = jax.random.key(cfg.seed)
    center = cfg.head == "correlation"
    normalize = cfg.head in ("cosine", "correlation")

    def shard_index():
        return jax.lax.axis_index(axis_name) if axis_name is not None else 0

    def prep(x, key):
        """uint8 [b, H, W, C] -> float, distorted with the matrices of its global rows, then given the
        config's train_views (each image's draw a function of its global row too)."""
        x = to_float(x, spec)
        b = x.shape[0]
        if aug is not None:
            mats = sample_affine(key, b * num_shards, aug)  # the whole global batch's draws
            x = apply_affine(x, jax.lax.dynamic_slice_in_dim(mats, shard_index() * b, b))
        if extra_views is not None:
            from siamjax.views import make_views
            x = make_views(jax.random.fold_in(key, 1), x, extra_views, row_offset=shard_index() * b)
        return x

    def gather(x):
        return jax.lax.all_gather(x, axis_name, tiled=True) if axis_name is not None else x

    def ssl_loss(variables, images, key):
        """Two views of every image (each a function of seed, step and the image's global row) ->
        SimSiam's or SimCLR's loss; NT-Xent's negatives are the other views of the whole global batch."""
        from siamjax.views import two_views

        x = to_float(images, spec)
        v = two_views(key, x, views, row_offset=shard_index() * x.shape[0])
        (_, z, p), stats = twin.project_views(variables, v)
        if cfg.loss == "simsiam":
            loss, m = simsiam_loss(p[0], p[1], z[0], z[1],
                                   stop_gradient=bool(cfg.get("stop_gradient", SSL_DEFAULTS["stop_gradient"])))
        else:
            zg = jnp.concatenate([gather(z[0]), gather(z[1])])  # [2B, P]: row i and i + B are one image
            loss, m = ntxent_loss(zg, temperature=float(cfg.get("ssl_temperature", SSL_DEFAULTS["ssl_temperature"])))
        m["output_std"] = output_std(gather(z[0]))  # over the global batch
        return loss, (m, stats)

    def step(state: TrainState, batch: dict):
        key = jax.random.fold_in(base_key, state.step)

        def loss_fn(params):
            variables = state_variables(state.replace(params=params))
            if cfg.loss in SSL_LOSSES:
                return ssl_loss(variables, batch["images"], key)
            if cfg.loss in PK_LOSSES:
                emb, stats = twin.embed_views(variables, prep(batch["images"], key)[None])
                e = gather(emb[0])
                e = e - e.mean(-1, keepdims=True) if center else e
                if cfg.loss == "triplet":
                    loss, m = triplet_loss(e, gather(batch["labels"]), margin=cfg.margin, mining=cfg.mining,
                                           normalize=normalize, reduction=cfg.triplet_reduction)
                else:
                    loss, m = prototypical_loss(e, gather(batch["labels"]), normalize=normalize,
                                                temperature=float(cfg.get("proto_temperature", LATER_KEYS["proto_temperature"])))
                if proxy_weight(cfg) > 0:
                    extra, pm = proxy_softmax_loss(e, gather(batch["labels"]), params[TRAIN_ONLY],
                                                   scale=float(cfg.get("proxy_scale", LATER_KEYS["proxy_scale"])),
                                                   margin=float(cfg.get("proxy_margin", LATER_KEYS["proxy_margin"])))
                    m = {**m, **pm, "proxy_loss": extra}
                    loss = loss + proxy_weight(cfg) * extra
            else:
                k1, k2 = jax.random.split(key)
                views = jnp.stack([prep(batch["left"], k1), prep(batch["right"], k2)])
                emb, stats = twin.embed_views(variables, views)
                if cfg.loss == "contrastive":
                    d = twin.distance(variables, emb[0], emb[1])
                    loss, m = contrastive_loss(d, batch["same"], margin=cfg.margin)
                else:
                    loss, m = bce_loss(twin.compare(variables, emb[0], emb[1]).logit, batch["same"])
            return loss, (m, stats)

        return train_loop.gradient_step(state, loss_fn, schedule, axis_name)

    return step


# ------------------------------------------------------------------------------------- validation
def make_embedder(twin: Twin, spec: Preprocessing, chunk: int = 512):
    """``(variables, uint8 images [N,H,W,C]) -> np.ndarray [N, D]``, jitted on fixed-size chunks."""
    fn = jax.jit(lambda v, x: twin.embed(v, to_float(x, spec)))

    def embed_all(variables, images: np.ndarray) -> np.ndarray:
        n = len(images)
        size = min(chunk, n)
        out = []
        for i in range(0, n, size):
            block = images[i:i + size]
            pad = size - len(block)
            if pad:
                block = np.concatenate([block, np.zeros((pad, *block.shape[1:]), block.dtype)])
            out.append(np.asarray(fn(variables, block))[:size - pad])
        return np.concatenate(out)

    return embed_all


def make_validator(twin: Twin, cfg, spec: Preprocessing, val: LabeledImages):
    """``variables -> {"val_accuracy", "val_ci95"}`` on fixed within-alphabet one-shot episodes."""
    episodes = make_episodes(val.labels, val.groups, val.instances, ways=cfg.val_ways, shots=1,
                             episodes=cfg.val_episodes, seed=cfg.seed + 1, **validation_protocol(cfg))
    embed_all = make_embedder(twin, spec)
    pairwise = jax.jit(twin.pairwise)

    def validate(variables) -> dict:
        emb = jnp.asarray(embed_all(variables, val.images))
        r = one_shot_accuracy(functools.partial(pairwise, variables), emb, episodes)
        return {"val_accuracy": r["accuracy"], "val_ci95": r["ci95"]}

    return validate


# ------------------------------------------------------------------------------------------- loop
# Settings that may change when a run is resumed; any other difference means another experiment.
# compute_dtype is one: parameters and optimizer state are float32 in every precision (same tree), and
# checkpoints written before the key existed (float32) resume under either value.
RESUMABLE_KEYS = {"train_steps", "log_every", "eval_every", "checkpoint_every", "val_episodes", "keep_latest",
                  "keep_best", "data_dir", "parallel", "num_devices", "compute_dtype", "lazy", "cache_items",
                  "tfds_data_dir", "init_from", "val_sequences", "val_frames", "tracker"}


def _check_resume_compatible(saved: dict, cfg) -> None:
    new = json.loads(cfg.to_json())
    # keys added after a run began take their old default (only in configs that have them)
    old = {**{k: v for k, v in LATER_KEYS.items() if k in new}, **saved.get("config", {})}
    for key in sorted(set(old) | set(new)):
        if key not in RESUMABLE_KEYS and old.get(key) != new.get(key):
            raise ValueError(f"the workdir holds a run with {key}={old.get(key)!r} but the config says "
                             f"{key}={new.get(key)!r}; use a new --workdir or the old setting")


def _restore_latest(ckpt: ckpt_lib.CheckpointIO, cfg, state: TrainState, workdir: pathlib.Path,
                    runner: parallel.Runner, best_metric: str = "val_accuracy"):
    """(state, start step, CheckpointIO) from the newest readable checkpoint. An unreadable one is
    reported, moved to ``WORKDIR/corrupt/`` (never deleted) and the previous one is tried.

    Arrays are restored replicated over all the runner's devices (every process takes part, as in
    saving), whatever device count wrote them; the returned state is this process's local copy."""
    while (step := ckpt.latest_step()) is not None:
        try:
            meta = ckpt.meta(step)
        except Exception as e:  # noqa: BLE001 - any failure to read means a damaged checkpoint
            meta, error = None, e
        if meta is not None:
            _check_resume_compatible(meta, cfg)  # a config mismatch is the user's to fix: raise
            try:
                variables, items, _ = ckpt.restore(step, runner.replicated_abstract(state_variables(state)),
                                                   runner.replicated_abstract(train_items(state)))
                variables, items = runner.local_copy(variables), runner.local_copy(items)
                return with_train_items(state, variables, items), step, ckpt
            except Exception as e:  # noqa: BLE001
                error = e
        ckpt.close()
        if distributed.is_primary():  # one process moves it; the others wait for that
            moved = ckpt_lib.quarantine(workdir, step)
            logging.error("checkpoint %d in %s is unreadable (%s: %s); moved it to %s, trying the previous one",
                          step, workdir, type(error).__name__, str(error).splitlines()[0][:200], moved)
            print(f"WARNING: checkpoint {step} is unreadable ({type(error).__name__}); moved to {moved}; "
                  "resuming from the previous one", file=sys.stderr)
        distributed.barrier(f"siamjax-quarantine-{step}")
        ckpt = ckpt_lib.CheckpointIO(workdir, keep_latest=cfg.keep_latest, keep_best=cfg.keep_best,
                                     best_metric=best_metric)
    return state, 0, ckpt


def _init_from_checkpoint(state: TrainState, cfg, spec: Preprocessing) -> TrainState:
    """``state`` with the params / batch_stats of the model at ``cfg.init_from`` (anything
    :func:`siamjax.load` reads), for a fresh run; the optimizer state and step stay new. The checkpoint
    must have the same model, model_kwargs, head and image shape (ValueError otherwise)."""
    from siamjax.api import load

    path = str(cfg.init_from)
    try:
        src = load(path)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"config.init_from={path!r}: cannot load a checkpoint there ({type(e).__name__}: {e})") from e
    if hasattr(src, "members"):
        raise ValueError(f"config.init_from={path!r} is an ensemble of {len(src.members)} models; start from one "
                         "of its member folders instead")
    mine = {"model": cfg.model, "model_kwargs": dict(cfg.model_kwargs), "head": cfg.head,
            "image_shape": [spec.size, spec.size, spec.channels]}
    m, p = src.meta["model"], src.preprocessing
    theirs = {"model": m["model"], "model_kwargs": dict(m.get("model_kwargs") or {}), "head": m["head"],
              "image_shape": [p.size, p.size, p.channels]}
    diff = [f"{k}: {theirs[k]!r} there, {mine[k]!r} here" for k in mine if json.dumps(mine[k], sort_keys=True)
            != json.dumps(theirs[k], sort_keys=True)]
    if diff:
        raise ValueError(f"config.init_from={path!r} holds another model ({'; '.join(diff)}); "
                         "use the same model, model_kwargs, head, image_size and channels")
    new = src.variables
    old = state_variables(state)
    if (jax.tree.structure(new) != jax.tree.structure(old)
            or [x.shape for x in jax.tree.leaves(new)] != [x.shape for x in jax.tree.leaves(old)]):
        raise ValueError(f"config.init_from={path!r}: its variables do not match this model's (tree or shapes differ)")
    logging.info("initialised params%s from %s", " and batch_stats" if "batch_stats" in new else "", src.path)
    params = jax.tree.map(jnp.asarray, new["params"])
    if TRAIN_ONLY in state.params:  # the loss's class proxies start fresh
        params = {**params, TRAIN_ONLY: state.params[TRAIN_ONLY]}
    return state.replace(params=params,
                         batch_stats=jax.tree.map(jnp.asarray, new["batch_stats"]) if "batch_stats" in new
                         else state.batch_stats)


def _collapse_logger(cfg, writer):
    """The loop's ``on_metrics`` hook of an unsupervised run: every step's output_std (and std * sqrt(P))
    to the writer, a loud warning on collapse; the last std and the count of collapsed steps to the summary."""
    from siamjax.collapse import CollapseMonitor

    monitor = CollapseMonitor(dim=int(projection_from_config(cfg)["dim"]),
                              threshold=float(cfg.get("collapse_ratio", SSL_DEFAULTS["collapse_ratio"])))

    def on_metrics(host: list[dict], done: int, say) -> dict:
        for i, m in enumerate(host):
            step = done - len(host) + i + 1
            std = float(np.asarray(m["output_std"]).reshape(-1)[0])
            writer.write(step, {"output_std": std, "output_std_ratio": monitor.ratio(std)})
            message = monitor.update(step, std)
            if message:
                logging.warning(message)
                say(f"WARNING: {message}")
        return {"output_std": float(np.asarray(host[-1]["output_std"]).reshape(-1)[0]),
                "collapsed_steps": monitor.collapsed_steps}

    return on_metrics


def train(cfg: ml_collections.ConfigDict, workdir: str | pathlib.Path, progress: bool = True) -> dict:
    """Train (resuming from ``workdir`` if it holds a checkpoint); returns the last metrics.

    SIGTERM / SIGINT stop after the current step with a checkpoint (``result["preempted"]`` is the
    signal number); rerunning resumes. The batch at step s and its distortions depend on (seed, s)
    only, so an interrupted and resumed run ends where an uninterrupted one does.

    With several processes (after :func:`siamjax.distributed.initialize`) every process runs this
    with the same config and workdir (a filesystem all of them see): each builds only its rows of
    every global batch, collectives span all devices, all take part in checkpoints, and process 0
    alone validates (sharing the result), prints and writes metrics. SIGTERM to any process stops
    all of them at the same step, with a checkpoint.
    """
    check_config(cfg)
    devices = parallel.select_devices(cfg.num_devices)  # global: every process's, process by process
    parallel.check_batch_divides(cfg.batch_size, len(devices))
    primary = distributed.is_primary()
    workdir = pathlib.Path(workdir)
    check_workdir_writable(workdir)  # fail now, not at the first checkpoint an hour later
    t0 = time.time()
    train_data, val_data, spec = load_data(cfg)
    make_batch = make_batch_fn_checked(cfg, train_data, val_data, parallel.process_rows(cfg.batch_size, len(devices)))
    twin = twin_from_config(cfg, bn_axis_name=(TWIN_AXIS, parallel.AXIS))
    state = create_state(twin, cfg, spec, num_classes=train_data.num_classes)
    runner = parallel.make_runner(
        make_train_step(twin, cfg, spec, axis_name=parallel.AXIS, num_shards=len(devices)), cfg.parallel, devices)
    if primary:  # every kept checkpoint holds the variables and the optimizer state, plus one being written
        check_free_space(workdir, tree_bytes((state.params, state.batch_stats, state.opt_state)),
                         copies=cfg.keep_latest + cfg.keep_best + 1)
    ckpt = ckpt_lib.CheckpointIO(workdir, keep_latest=cfg.keep_latest, keep_best=cfg.keep_best)
    meta = model_meta(cfg, spec)
    state, start, ckpt = _restore_latest(ckpt, cfg, state, workdir, runner)
    if start == 0 and cfg.get("init_from", ""):
        state = _init_from_checkpoint(state, cfg, spec)
    # Validation (model selection) computes in float32, as siamjax.load and eval.py do: the same
    # float32 weights, so the best checkpoint is chosen by the numbers its users will get.
    val_twin = twin_from_config(cfg, bn_axis_name=(TWIN_AXIS, parallel.AXIS), compute_dtype="float32")
    validate = make_validator(val_twin, cfg, spec, val_data) if primary else None
    writer = train_loop.metric_writer(workdir, primary)
    if start == 0:
        info = {"data_seconds": time.time() - t0, "train_images": len(train_data), "val_images": len(val_data),
                "devices": len(devices)}
        if distributed.process_count() > 1:
            info["processes"] = distributed.process_count()
        writer.write(0, info)
    placed = runner.put_state(state)
    del state
    # unsupervised: watch for collapse at every step
    on_metrics = _collapse_logger(cfg, writer) if cfg.loss in SSL_LOSSES else None
    kind = "within-alphabet" if cfg.data == "omniglot" else "one-shot"
    loop = train_loop.Loop(
        runner=runner, make_batch=make_batch, ckpt=ckpt, meta=meta, workdir=workdir, validate=validate,
        val_placeholder={"val_accuracy": 0.0, "val_ci95": 0.0},
        val_message=lambda done, val: (f"step {done}: val {cfg.val_ways}-way {kind} accuracy "
                                       f"{val['val_accuracy']:.3f} +- {val['val_ci95']:.3f}"),
        on_metrics=on_metrics, hidden=("output_std",))
    last = train_loop.run(loop, cfg, placed, start, writer, progress)
    last["train_seconds"] = time.time() - t0
    return last
