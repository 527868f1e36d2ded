"""The trainer's config keys and their types: typos and wrong types fail before any work starts.

:func:`check_keys_and_types` compares an ``ml_collections.ConfigDict`` with :data:`SCHEMA`
(key -> accepted Python types; a nested dict for a nested ConfigDict). ``model_kwargs`` is free
(the encoder's own keyword arguments). An unknown key is reported with the closest valid ones.
"""
from __future__ import annotations

import difflib
from typing import Any, Mapping

__all__ = ["SCHEMA", "ConfigError", "check_keys_and_types", "suggest"]

_NUM = (int, float)
_SEQ = (tuple, list)
FREE = object()  # any value (a dict of the encoder's keyword arguments)

SCHEMA: dict[str, Any] = {
    # data (all sources)
    "seed": int, "data": str, "data_dir": str, "image_size": int, "channels": int, "invert": (bool, str),
    "crop_to_ink": bool, "ink_threshold": float, "crop_margin": float, "keep_aspect": bool,
    "crop_frame": str, "crop_radius": float,
    "init_from": str,
    # omniglot
    "alphabets": _SEQ, "val_alphabets": _SEQ,
    # image folders / zips (configs/folder.py)
    "split_by": str, "val_fraction": float, "lazy": (bool, str, int), "cache_items": int,
    "max_bad_fraction": float, "max_pixels": int, "min_images_per_class": int, "holdout_classes": _SEQ,
    "val_classes": _SEQ,
    # TensorFlow Datasets (--config.data=tfds:NAME)
    "tfds_data_dir": (str, type(None)), "tfds_train_split": str,
    # model
    "model": str, "model_kwargs": FREE, "head": str, "compute_dtype": str,
    # loss and sampling
    "loss": str, "margin": _NUM, "mining": str, "triplet_reduction": str, "images_per_class": int,
    "same_alphabet_negatives": _NUM, "batch_size": int, "proto_temperature": _NUM, "groups_per_batch": int,
    "rotate_classes": bool, "mirror_classes": bool, "proxy_weight": _NUM, "proxy_scale": _NUM, "proxy_margin": _NUM,
    "proxy_lr_multiplier": _NUM,
    # supervised losses: siamjax.data.views.ViewConfig keys (checked there) applied after the affine distortions
    "train_views": FREE,
    # unsupervised (loss simsiam | simclr): projector / predictor sizes, views (siamjax.data.views.ViewConfig keys,
    # checked there), NT-Xent temperature, SimSiam's stop-gradient, the collapse warning's threshold
    "projection": {"hidden": int, "dim": int, "layers": int, "predictor_hidden": int}, "views": FREE,
    "ssl_temperature": _NUM, "stop_gradient": bool, "collapse_ratio": _NUM,
    # optimiser
    "optimizer": str, "learning_rate": _NUM, "weight_decay": _NUM, "warmup_steps": int, "train_steps": int,
    "augment": {"enabled": bool, "rotation_deg": _NUM, "shear": _NUM, "scale_min": _NUM, "scale_max": _NUM,
                "translate_px": _NUM, "prob": _NUM},
    # devices
    "parallel": str, "num_devices": int,
    # bookkeeping
    "log_every": int, "eval_every": int, "checkpoint_every": int, "val_episodes": int, "val_ways": int,
    "keep_latest": int, "keep_best": int,
}


class ConfigError(ValueError):
    """A config key that does not exist or a value of the wrong type."""


def suggest(name: str, valid) -> str:
    """' (did you mean 'a', 'b'?)' for close matches of ``name`` among ``valid``, else ''."""
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


def _check(cfg: Mapping, schema: Mapping, prefix: str) -> None:
    for key in cfg.keys():
        path = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(f"unknown config key config.{path}{suggest(key, schema)}; valid keys here: "
                              f"{', '.join(sorted(schema))}")
        want, value = schema[key], cfg[key]
        if want is FREE:
            continue
        if isinstance(want, dict):
            if not hasattr(value, "keys"):
                raise ConfigError(f"config.{path} must be a group of settings ({', '.join(sorted(want))}), "
                                  f"got {value!r}")
            _check(value, want, f"{path}.")
            continue
        types = want if isinstance(want, tuple) else (want,)
        if isinstance(value, bool) and bool not in types:  # bool is an int subclass: refuse it for numbers
            ok = False
        elif float in types and isinstance(value, int):
            ok = True
        else:
            ok = isinstance(value, types)
        if not ok:
            hint = ""
            if _SEQ[0] in types and isinstance(value, str):
                hint = f" (a tuple of names: --config.{path}=\"('{value}',)\")"
            raise ConfigError(f"config.{path}={value!r} has type {type(value).__name__}; expected "
                              f"{_type_names(types)}{hint}")


def check_keys_and_types(cfg: Mapping, schema: Mapping | None = None) -> None:
    """Raise :class:`ConfigError` naming the first unknown key (with close matches) or mistyped value.
    ``schema``: another trainer's keys (default: the twin trainer's :data:`SCHEMA`)."""
    _check(cfg, SCHEMA if schema is None else schema, "")
