"""Training config checks and what a config builds: the twin, its metadata, the loss settings.

A config is a nested ``ml_collections.ConfigDict`` (groups data, augment, model, loss, optim, parallel, eval:
:mod:`siamjax.config_layout`, which holds every key's default). :func:`check_config` names unknown keys and
wrong types, fills the keys a config leaves out from the defaults, and refuses settings that cannot work,
before any work starts, with the fix in the message.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from siamjax.config_layout import DEFAULTS, FREE
from siamjax.data.augment import AffineConfig
from siamjax.data.preprocess import Preprocessing
from siamjax.data.sources import parse_invert, preprocessing_from_config  # noqa: F401 (part of this module's API)
from siamjax.data.views import ViewConfig
from siamjax.nn.projection import ProjectionSpec
from siamjax.nn.twin import Twin, make_twin
from siamjax.train.schema import check_keys_and_types


LOSSES = ("triplet", "proto", "cosface", "arcface", "contrastive", "bce", "simsiam", "simclr")

PK_LOSSES = ("triplet", "proto", "cosface", "arcface")  # P x K batches of class-labelled images

# Margin softmaxes over one learned vector per training class (siamjax.losses.cosface_loss / arcface_loss):
# loss.name alone, or config.loss.proxy_loss, the kind of proxy term added to triplet / proto.
MARGIN_LOSSES = ("cosface", "arcface")

PAIR_LOSSES = ("contrastive", "bce")

SSL_LOSSES = ("simsiam", "simclr")  # unsupervised: two views of each unlabelled image

# config.model.compute_dtype -> the encoder's ``dtype`` (activations, convolutions, matrix products) in the
# training step. Parameters, optimizer state, BatchNorm statistics, embeddings, head and loss stay float32.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

AFFINE_KEYS = ("rotation_deg", "shear", "scale_min", "scale_max", "translate_px", "prob", "flip_prob")  # config.augment's


def fill_defaults(cfg: ml_collections.ConfigDict, defaults: dict = DEFAULTS, prefix: str = "") -> None:
    """Add to ``cfg`` (in place) every key of the layout it leaves out, at its default."""
    with cfg.unlocked():
        for key, value in defaults.items():
            if key not in cfg:
                cfg[key] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
            elif isinstance(value, dict) and f"{prefix}{key}" not in FREE and hasattr(cfg[key], "keys"):
                fill_defaults(cfg[key], value, f"{prefix}{key}.")


def check_config(cfg: ml_collections.ConfigDict) -> None:
    """Raise ValueError with the fix for settings that cannot work, before any work starts: unknown keys
    (with the closest valid ones) and wrong types first (:mod:`siamjax.train.schema`), then values. Keys
    the config leaves out are added at their defaults (:data:`siamjax.config_layout.DEFAULTS`)."""
    check_keys_and_types(cfg)
    fill_defaults(cfg)
    loss, head, data = cfg.loss.name, cfg.model.head, cfg.data
    if loss not in LOSSES:
        raise ValueError(f"config.loss.name={loss!r}; choose one of {LOSSES}")
    if loss == "contrastive" and head == "koch":
        raise ValueError("config.loss.name='contrastive' needs a distance; the 'koch' head has none: "
                         "use --config.loss.name=bce with model.head=koch, or a euclidean/cosine/correlation head")
    if loss in PK_LOSSES and head == "koch":
        raise ValueError(f"config.loss.name={loss!r} ranks distances; use model.head=euclidean|cosine|correlation")
    if loss in SSL_LOSSES:
        if head == "koch":
            raise ValueError(f"config.loss.name={loss!r} is unsupervised: its model is used by nearest neighbours; "
                             "use model.head=cosine|correlation|euclidean")
        for key in ("rotate_classes", "mirror_classes"):
            if data[key]:
                raise ValueError(f"config.data.{key} makes classes from labels; config.loss.name={loss!r} reads "
                                 f"no labels: set --config.data.{key}=False")
        if train_views_from_config(cfg) is not None:
            raise ValueError(f"config.augment.train_views distorts the images of a supervised loss; "
                             f"config.loss.name={loss!r} makes its two views with config.augment.views")
        projection_from_config(cfg)  # ValueError for bad sizes
        views_from_config(cfg)  # ValueError naming unknown view keys or bad values
        ratio = float(cfg.loss.collapse_ratio)
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"config.loss.collapse_ratio={ratio} must lie in [0, 1) (0 turns the warning off)")
        if float(cfg.loss.ssl_temperature) <= 0:
            raise ValueError("config.loss.ssl_temperature must be > 0")
    else:
        train_views_from_config(cfg)  # ValueError naming unknown view keys or bad values
    check_margin_settings(cfg)
    check_distill_settings(cfg)
    if float(cfg.optim.proxy_lr_multiplier) <= 0:
        raise ValueError(f"config.optim.proxy_lr_multiplier={cfg.optim.proxy_lr_multiplier} must be > 0 "
                         "(1 = the encoder's rate)")
    if data.batch_size < 2:
        raise ValueError(f"config.data.batch_size must be >= 2, got {data.batch_size}")
    if loss in MARGIN_LOSSES and data.images_per_class < 1:
        raise ValueError(f"config.data.images_per_class={data.images_per_class}: give K >= 1 images of each class")
    if loss in PK_LOSSES and data.batch_size % data.images_per_class:
        raise ValueError(f"config.data.batch_size={data.batch_size} is not a multiple of "
                         f"config.data.images_per_class={data.images_per_class} (P x K batches)")
    if loss in PAIR_LOSSES and data.batch_size % 2:
        raise ValueError(f"config.data.batch_size={data.batch_size} must be even: half positive, half negative pairs")
    for key, value in (("optim.train_steps", cfg.optim.train_steps), ("log_every", cfg.log_every),
                       ("eval.eval_every", cfg.eval.eval_every), ("checkpoint_every", cfg.checkpoint_every)):
        if value < 1:
            raise ValueError(f"config.{key} must be >= 1, got {value}")
    if cfg.model.compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"config.model.compute_dtype={cfg.model.compute_dtype!r}; choose one of "
                         f"{tuple(COMPUTE_DTYPES)}")
    if "dtype" in cfg.model.kwargs:
        raise ValueError("config.model.kwargs.dtype is set by config.model.compute_dtype (float32 | bfloat16); "
                         "remove model.kwargs.dtype and use --config.model.compute_dtype")
    if loss in PK_LOSSES and loss not in MARGIN_LOSSES and data.images_per_class < 2:
        raise ValueError(f"config.data.images_per_class={data.images_per_class}: a P x K loss ({loss}) needs K >= 2 "
                         "images of each class in a batch to form a positive pair")
    lr, wd = float(cfg.optim.learning_rate), float(cfg.optim.weight_decay)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"config.optim.learning_rate={lr}: give a finite number > 0 (e.g. 1e-3)")
    if not (math.isfinite(wd) and wd >= 0):
        raise ValueError(f"config.optim.weight_decay={wd}: give a finite number >= 0")
    for key in ("keep_latest", "keep_best"):
        if cfg[key] < 1:
            raise ValueError(f"config.{key}={cfg[key]}: keep at least 1 checkpoint (keep_latest: what a rerun resumes "
                             "from; keep_best: what siamjax.load serves)")
    check_embedding_shape(cfg)


def check_distill_settings(cfg) -> None:
    """ValueError, one line with the fix, for distillation settings that cannot work (the targets file's
    contents are checked against the training data by siamjax.train.distill.read_targets)."""
    c = cfg.loss
    weight = float(c.distill_weight)
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"config.loss.distill_weight={weight} must be >= 0 (0 turns distillation off)")
    if weight == 0:
        return
    if c.name not in PK_LOSSES or c.name in MARGIN_LOSSES:
        raise ValueError(f"config.loss.distill_weight > 0 distils over P x K batches of triplet / proto; "
                         f"config.loss.name={c.name!r}: set --config.loss.distill_weight=0")
    if not c.distill_targets:
        raise ValueError("config.loss.distill_weight > 0 needs --config.loss.distill_targets=FILE.npz (made by "
                         "python -m siamjax.cli.distill_targets)")
    if not pathlib.Path(c.distill_targets).is_file():
        raise ValueError(f"config.loss.distill_targets={c.distill_targets!r}: no such file (make it with "
                         "python -m siamjax.cli.distill_targets)")
    for key in ("distill_temperature", "distill_teacher_temperature"):
        value = float(c[key])
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"config.loss.{key}={value} must be > 0")


def needs_class_vectors(cfg) -> bool:
    """True when the loss trains one vector per training class (``params["proxies"]``, made by
    siamjax.train.state.create_state): loss.name cosface / arcface, or a proxy term (proxy_weight > 0)."""
    return cfg.loss.name in MARGIN_LOSSES or float(cfg.loss.proxy_weight) > 0


def margin_loss_name(cfg) -> str | None:
    """Which margin softmax runs over the class vectors: loss.name when it is one, else loss.proxy_loss when
    the proxy term is on, else None."""
    if cfg.loss.name in MARGIN_LOSSES:
        return cfg.loss.name
    return cfg.loss.proxy_loss if float(cfg.loss.proxy_weight) > 0 else None


def check_margin_settings(cfg) -> None:
    """ValueError, one line with the fix, for proxy / margin-softmax settings that cannot work."""
    c, loss = cfg.loss, cfg.loss.name
    if c.proxy_loss not in MARGIN_LOSSES:
        raise ValueError(f"config.loss.proxy_loss={c.proxy_loss!r}; choose one of {MARGIN_LOSSES}")
    weight = float(c.proxy_weight)
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"config.loss.proxy_weight={weight} must be >= 0 (0 turns the proxy loss off)")
    if weight > 0 and loss in MARGIN_LOSSES:
        raise ValueError(f"config.loss.name={loss!r} is itself a margin softmax over the class vectors; "
                         "config.loss.proxy_weight > 0 would add a second one: set --config.loss.proxy_weight=0")
    if weight > 0 and loss not in PK_LOSSES:
        raise ValueError(f"config.loss.proxy_weight > 0 adds a loss over class proxies to a P x K loss "
                         f"({PK_LOSSES}); config.loss.name={loss!r} has no class labels per image: set "
                         "--config.loss.proxy_weight=0")
    kind = margin_loss_name(cfg)
    if kind is None:
        return
    scale, margin = float(c.proxy_scale), float(c.proxy_margin)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"config.loss.proxy_scale must be > 0 and finite, got {scale} (the {kind} logits' scale)")
    if kind == "arcface" and not 0 <= margin < math.pi / 2:
        raise ValueError(f"config.loss.proxy_margin={margin}: arcface's margin is an angle in radians in [0, pi/2) "
                         f"(e.g. 0.5 = {math.degrees(0.5):.1f} degrees)")
    if kind == "cosface" and not (math.isfinite(margin) and 0 <= margin < 2):
        raise ValueError(f"config.loss.proxy_margin={margin}: cosface's margin is a cosine offset in [0, 2) "
                         "(e.g. 0.35)")


def check_embedding_shape(cfg) -> int:
    """The embedding width D of the config's encoder at its image size (shapes only, nothing computed);
    ValueError, naming the keys, when the encoder cannot take that size or its embedding is empty."""
    size, channels, name = int(cfg.data.image_size), int(cfg.data.channels), cfg.model.name
    if size < 1:
        raise ValueError(f"config.data.image_size={size}: give a positive number of pixels")
    twin = twin_from_config(cfg, compute_dtype="float32")
    x = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)
    try:
        variables = jax.eval_shape(lambda k: twin.init(k, (size, size, channels)), jax.random.key(0))
        dim = int(jax.eval_shape(twin.embed, variables, x).shape[-1])
    except Exception as e:  # noqa: BLE001 - a shape error deep inside the encoder, reported by the keys that cause it
        raise ValueError(f"config.model.name={name!r} cannot take config.data.image_size={size} "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:160]}); koch needs 105, conv4 and resnet "
                         "any size >= 2 ** blocks") from None
    if dim < 1:
        raise ValueError(f"config.data.image_size={size} leaves {name}'s embedding empty (width {dim}); use a larger "
                         f"image size (conv4 halves it once per block: at least 2 ** blocks pixels)")
    return dim


def projection_from_config(cfg) -> dict | None:
    """The projector / predictor sizes of an unsupervised config (a ProjectionSpec dict), else None."""
    if cfg.loss.name not in SSL_LOSSES:
        return None
    return ProjectionSpec.from_dict({"method": cfg.loss.name, **dict(cfg.model.projection)}).to_dict()


def train_views_from_config(cfg):
    """``siamjax.data.views.ViewConfig`` of ``cfg.augment.train_views`` for a supervised loss: the keys given on
    top of ``ViewConfig.none()`` (every other component off), applied to each training image after Koch's
    affine distortions (e.g. elastic_prob, elastic_alpha, elastic_sigma, stroke_prob); None when it turns
    nothing on."""
    given = dict(cfg.augment.train_views or {})
    if not given:
        return None

    try:
        views = ViewConfig.from_dict({**dataclasses.asdict(ViewConfig.none()), **given})
    except ValueError as e:  # unknown keys or bad values, named
        raise ValueError(f"config.augment.train_views: {e}") from None
    return None if views.is_identity else views


def views_from_config(cfg):
    """``siamjax.data.views.ViewConfig`` of ``cfg.augment.views`` (missing keys keep the preset of the data's
    channels)."""
    preset = ViewConfig.photos() if int(cfg.data.channels) == 3 else ViewConfig.handwriting()
    given = dict(cfg.augment.views or {})
    try:
        return ViewConfig.from_dict({**dataclasses.asdict(preset), **given})
    except ValueError as e:  # unknown keys or bad values, named
        raise ValueError(f"config.augment.views: {e}") from None


def twin_from_config(cfg, bn_axis_name: Any = "twin", compute_dtype: str | None = None) -> Twin:
    """The twin of ``cfg``; its encoder computes in ``compute_dtype`` (default ``cfg.model.compute_dtype``).
    The parameter tree is the same for every compute dtype (float32 parameters: Flax's ``param_dtype``),
    so twins of different dtypes share variables."""
    name = compute_dtype or cfg.model.compute_dtype
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype={name!r}; choose one of {tuple(COMPUTE_DTYPES)}")
    kwargs = dict(cfg.model.kwargs)
    if name != "float32":  # float32 builds exactly the encoder it always did
        kwargs["dtype"] = COMPUTE_DTYPES[name]
    return make_twin(cfg.model.name, cfg.model.head, kwargs, bn_axis_name=bn_axis_name,
                     projection=projection_from_config(cfg))


def model_meta(cfg, spec: Preprocessing) -> dict:
    """What :func:`siamjax.load` needs to rebuild the model (stored with every checkpoint)."""
    model = {"model": cfg.model.name, "model_kwargs": dict(cfg.model.kwargs), "head": cfg.model.head}
    if cfg.loss.name in SSL_LOSSES:
        model["projection"] = projection_from_config(cfg)
    return {"config": cfg.to_dict(), "preprocessing": spec.to_dict(), "model": model}


def augment_config(cfg) -> AffineConfig | None:
    """Koch's affine distortions of ``cfg.augment`` (None when ``enabled`` is off)."""
    a = cfg.augment
    return AffineConfig.from_dict({k: a[k] for k in AFFINE_KEYS}) if a.enabled else None


def validation_protocol(cfg) -> dict:
    """How validation tasks are drawn: Omniglot's are Lake's (within one alphabet, support and queries
    from fixed drawers); other data's draw classes from all groups and each class's images freely."""
    if cfg.data.source == "omniglot":
        return {"protocol": "within", "same_instance": True}
    return {"protocol": "across", "same_instance": False}
