"""Training config checks and what a config builds: the twin, its metadata, the loss settings.

A config is a flat ``ml_collections.ConfigDict`` (configs/*.py). :func:`check_config` refuses settings
that cannot work, before any work starts, with the fix in the message.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import ml_collections

from siamjax.data.augment import AffineConfig
from siamjax.data.preprocess import Preprocessing
from siamjax.data.sources import parse_invert, preprocessing_from_config  # noqa: F401 (part of this module's API)
from siamjax.data.views import ViewConfig
from siamjax.nn.projection import ProjectionSpec
from siamjax.nn.twin import Twin, make_twin
from siamjax.train.schema import check_keys_and_types


LOSSES = ("triplet", "proto", "contrastive", "bce", "simsiam", "simclr")

PK_LOSSES = ("triplet", "proto")  # P x K batches of class-labelled images

PAIR_LOSSES = ("contrastive", "bce")

SSL_LOSSES = ("simsiam", "simclr")  # unsupervised: two views of each unlabelled image

# Unsupervised settings a config may leave out (configs/omniglot_simsiam.py sets them all); config.views
# defaults to siamjax.data.views.ViewConfig.handwriting() (1 channel) or .photos() (3 channels).
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

def check_config(cfg: ml_collections.ConfigDict) -> None:
    """Raise ValueError with the fix for settings that cannot work, before any work starts: unknown keys
    (with the closest valid ones) and wrong types first (:mod:`siamjax.train.schema`), then values."""
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

def projection_from_config(cfg) -> dict | None:
    """The projector / predictor sizes of an unsupervised config (a ProjectionSpec dict), else None."""
    if cfg.loss not in SSL_LOSSES:
        return None

    sizes = {**SSL_DEFAULTS["projection"], **dict(cfg.get("projection") or {})}
    return ProjectionSpec.from_dict({"method": cfg.loss, **sizes}).to_dict()

def train_views_from_config(cfg):
    """``siamjax.data.views.ViewConfig`` of ``cfg.train_views`` for a supervised loss: the keys given on top of
    ``ViewConfig.none()`` (every other component off), applied to each training image after Koch's
    affine distortions (e.g. elastic_prob, elastic_alpha, elastic_sigma, stroke_prob); None when the config
    has no such key or it turns nothing on."""
    given = dict(cfg.get("train_views") or {})
    if not given:
        return None

    try:
        views = ViewConfig.from_dict({**dataclasses.asdict(ViewConfig.none()), **given})
    except ValueError as e:  # unknown keys or bad values, named
        raise ValueError(f"config.train_views: {e}") from None
    return None if views.is_identity else views

def views_from_config(cfg):
    """``siamjax.data.views.ViewConfig`` of ``cfg.views`` (missing keys keep the preset of the data's channels)."""
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

def proxy_lr_multiplier(cfg) -> float:
    """The class proxies' learning rate over the encoder's (1: one optimizer for both)."""
    return float(cfg.get("proxy_lr_multiplier", LATER_KEYS["proxy_lr_multiplier"]))

def proxy_weight(cfg) -> float:
    """Weight of the class-proxy loss added to a P x K loss (0: none)."""
    return float(cfg.get("proxy_weight", LATER_KEYS["proxy_weight"]))

def augment_config(cfg) -> AffineConfig | None:
    a = cfg.augment.to_dict()
    return AffineConfig.from_dict({k: v for k, v in a.items() if k != "enabled"}) if a.get("enabled") else None

def validation_protocol(cfg) -> dict:
    """How validation tasks are drawn: Omniglot's are Lake's (within one alphabet, support and queries
    from fixed drawers); other data's draw classes from all groups and each class's images freely."""
    if cfg.data == "omniglot":
        return {"protocol": "within", "same_instance": True}
    return {"protocol": "across", "same_instance": False}
