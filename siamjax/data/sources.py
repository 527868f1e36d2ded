"""The training and validation splits a config asks for: ``load_data(cfg) -> (train, val, preprocessing)``.

``cfg`` is a flat ``ml_collections.ConfigDict`` (see configs/): ``data`` names the source, ``data_dir``
where it lies; the preprocessing keys (image_size, channels, invert, crop_*) make the
:class:`~siamjax.data.preprocess.Preprocessing`.
"""
from __future__ import annotations

import fnmatch
import pathlib
from typing import Sequence

import numpy as np

from siamjax.data.dataset import LabeledImages, with_mirrored_classes, with_rotated_classes
from siamjax.data.omniglot import load_omniglot
from siamjax.data.preprocess import OPTIONAL_FIELDS, Preprocessing


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
    train, val = split_train_val(cfg, data)
    return _with_symmetry_classes(cfg, train), val, spec


def split_train_val(cfg, data: LabeledImages) -> tuple[LabeledImages, LabeledImages]:
    """A folder's or TFDS split's (train, validation) as ``cfg`` makes them: without ``holdout_classes``,
    by ``val_classes`` when given, else by ``split_by`` / ``val_fraction`` / ``seed``."""
    from siamjax.data.folder import split_dataset

    data = drop_classes(data, tuple(cfg.get("holdout_classes", ())))
    val_patterns = tuple(cfg.get("val_classes", ()))
    if val_patterns:  # named validation classes (e.g. a writer's genuine and forgery folders together)
        held = _match_classes(data, val_patterns, "val_classes")[data.labels]
        if held.all():
            raise ValueError(f"config.val_classes {val_patterns} match every class; nothing is left to train on")
        return data.subset(~held), data.subset(held)
    return split_dataset(data, by=str(cfg.get("split_by", "class")), fraction=float(cfg.get("val_fraction", 0.2)),
                         seed=int(cfg.seed))


def keep_classes(data: LabeledImages, patterns: Sequence[str]) -> LabeledImages:
    """``data`` with only the classes whose name matches one of the ``fnmatch`` patterns (at least one must)."""
    return data.subset(_match_classes(data, tuple(patterns), "classes")[data.labels])


def training_class_names(cfg, data: LabeledImages, source: str, data_dir: str, split: str) -> set[str]:
    """Names of ``data``'s classes that the run of ``cfg`` trained on, when ``data`` (read as ``source`` from
    ``data_dir``, ``split``) is that run's own data; an empty set otherwise. For a warning before scoring
    a model on classes it has seen."""
    if source == "omniglot" and cfg.get("data") == "omniglot" and split == "background":
        held = set(cfg.get("val_alphabets", ()))
        wanted = set(cfg.get("alphabets", ())) or set(data.group_names)
        return {n for n in data.class_names if n.split("/")[0] in wanted - held}
    same = (source == "folder" and cfg.get("data") == "folder" and cfg.get("data_dir")
            and pathlib.Path(str(cfg.data_dir)).resolve() == pathlib.Path(data_dir).resolve())
    if not same:
        return set()
    train, _ = split_train_val(cfg, data)
    return set(train.class_names)


def _with_symmetry_classes(cfg, train: LabeledImages) -> LabeledImages:
    """The training split with its quarter turns (``cfg.rotate_classes``) and mirror images
    (``cfg.mirror_classes``) as extra classes."""
    if cfg.get("rotate_classes", False):
        train = with_rotated_classes(train)
    return with_mirrored_classes(train) if cfg.get("mirror_classes", False) else train


def _match_classes(data: LabeledImages, patterns: tuple[str, ...], key: str) -> np.ndarray:
    """bool [num_classes]: class names matching one of the ``fnmatch`` patterns (at least one must)."""
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
