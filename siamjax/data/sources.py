"""The training and validation splits a config asks for: ``load_data(cfg) -> (train, val, preprocessing)``.

``cfg`` is a complete nested config (:func:`siamjax.config_layout.upgrade_config`; configs/): ``cfg.data.source``
names the source, ``cfg.data.dir`` where it lies; the preprocessing keys of ``cfg.data`` (image_size, channels,
invert, crop_*) make the :class:`~siamjax.data.preprocess.Preprocessing`.
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
    """``config.data.invert`` -> Preprocessing.invert: a bool, or a string ("auto", "true"/"yes", "false"/"no"),
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
        raise ValueError(f"config.data.invert={value!r}; use auto, true or false")
    return bool(value)


def preprocessing_from_config(cfg) -> Preprocessing:
    """The config's Preprocessing (``cfg.data``'s image_size, channels, invert and the crop / aspect keys,
    ``OPTIONAL_FIELDS``); Preprocessing checks the values."""
    d = cfg.data
    return Preprocessing(size=int(d.image_size), channels=int(d.channels), invert=parse_invert(d.invert),
                         **{name: d[name] for name in OPTIONAL_FIELDS})

DATA_SOURCES = ("omniglot", "folder", "tfds:NAME")


EVAL_SOURCES = ("omniglot", "folder", "tfds:NAME", "mnist")


def read_source(source: str, path: str | None, split: str, spec: Preprocessing, **options) -> LabeledImages:
    """One split of a named source, preprocessed with ``spec``; the one place that maps names to readers.

    ``omniglot``: ``split`` background | evaluation of the folder ``path`` (``options``: alphabets);
    ``folder``: the class-per-subfolder folder or zip ``path`` (``options``: those of
    :func:`siamjax.data.folder.load_image_folder`; ``split`` unused); ``tfds:NAME``: that prepared TFDS
    dataset's ``split`` in ``path`` (None: TFDS's default folder; ``options``: cache_items); ``mnist``: the
    IDX files in ``path``, ``split`` train | test."""
    if source == "omniglot":
        return load_omniglot(path, split, spec, **options)
    if source == "folder":
        from siamjax.data.folder import load_image_folder

        if not path:
            raise ValueError("a folder source needs a path: a class-per-subfolder folder or zip")
        return load_image_folder(path, spec, **options)
    if source.startswith("tfds:") and len(source) > 5:
        from siamjax.data.tfds_source import load_tfds

        return load_tfds(source[5:], split, spec, data_dir=path or None, **options)
    if source == "mnist":
        from siamjax.data.mnist import load_mnist

        return load_mnist(path, spec, split=split, **options)
    raise ValueError(f"--data={source!r}: no such data source; choose one of {', '.join(EVAL_SOURCES)}")


def load_data(cfg) -> tuple[LabeledImages, LabeledImages, Preprocessing]:
    """(train, validation, preprocessing) from ``cfg.data.source``:

    - ``"omniglot"``: the background alphabets of ``cfg.data.dir``, split by ``cfg.data.val_alphabets``;
    - ``"folder"``: a class-per-subfolder folder or zip at ``cfg.data.dir``
      (:func:`siamjax.data.folder.load_image_folder`), split by ``split_by`` / ``val_fraction``;
    - ``"tfds:NAME"``: split ``cfg.data.tfds_train_split`` of a prepared TensorFlow Datasets dataset in
      ``cfg.data.tfds_data_dir`` (:func:`siamjax.data.tfds_source.load_tfds`): by ``val_alphabets``
      when the config has them and the data's groups include them (``tfds:omniglot``), else like a folder.
    """
    spec = preprocessing_from_config(cfg)
    d = cfg.data
    source = str(d.source)
    if source == "omniglot":
        val_names = list(d.val_alphabets)
        wanted = list(d.alphabets) or None
        if wanted and set(val_names) - set(wanted):
            raise ValueError(f"config.data.val_alphabets {sorted(set(val_names) - set(wanted))} are not in "
                             "config.data.alphabets")
        background = read_source("omniglot", d.dir, "background", spec, alphabets=wanted)
        train = background.select_groups(val_names, exclude=True)
        return _with_symmetry_classes(cfg, train), background.select_groups(val_names), spec
    if source == "folder":
        from siamjax.data.folder import parse_lazy

        if not d.dir:
            raise ValueError("config.data.source='folder' needs --config.data.dir=PATH (a class-per-subfolder "
                             "folder or zip)")
        data = read_source("folder", d.dir, "", spec, lazy=parse_lazy(d.lazy), cache_items=int(d.cache_items),
                           max_bad_fraction=float(d.max_bad_fraction), max_pixels=int(d.max_pixels),
                           min_images_per_class=int(d.min_images_per_class))
    elif source.startswith("tfds:") and len(source) > 5:
        data = read_source(source, d.tfds_data_dir or None, str(d.tfds_train_split), spec,
                           cache_items=int(d.cache_items))
        val_names = list(d.val_alphabets)
        if val_names and set(val_names) <= set(data.group_names):  # tfds:omniglot with an Omniglot config
            if list(d.alphabets):
                data = data.select_groups(list(d.alphabets))
            return _with_symmetry_classes(cfg, data.select_groups(val_names, exclude=True)), data.select_groups(val_names), spec
    else:
        raise ValueError(f"config.data.source={source!r}; choose one of {DATA_SOURCES}")
    train, val = split_train_val(cfg, data)
    return _with_symmetry_classes(cfg, train), val, spec


def split_train_val(cfg, data: LabeledImages) -> tuple[LabeledImages, LabeledImages]:
    """A folder's or TFDS split's (train, validation) as ``cfg`` makes them: without ``cfg.data.holdout_classes``,
    by ``val_classes`` when given, else by ``split_by`` / ``val_fraction`` / ``cfg.seed``."""
    from siamjax.data.folder import split_dataset

    d = cfg.data
    data = drop_classes(data, tuple(d.holdout_classes))
    val_patterns = tuple(d.val_classes)
    if val_patterns:  # named validation classes (e.g. a writer's genuine and forgery folders together)
        held = _match_classes(data, val_patterns, "data.val_classes")[data.labels]
        if held.all():
            raise ValueError(f"config.data.val_classes {val_patterns} match every class; nothing is left to train on")
        return data.subset(~held), data.subset(held)
    return split_dataset(data, by=str(d.split_by), fraction=float(d.val_fraction), seed=int(cfg.seed))


def keep_classes(data: LabeledImages, patterns: Sequence[str]) -> LabeledImages:
    """``data`` with only the classes whose name matches one of the ``fnmatch`` patterns (at least one must)."""
    return data.subset(_match_classes(data, tuple(patterns), "classes")[data.labels])


def training_class_names(cfg, data: LabeledImages, source: str, data_dir: str, split: str) -> set[str]:
    """Names of ``data``'s classes that the run of ``cfg`` trained on, when ``data`` (read as ``source`` from
    ``data_dir``, ``split``) is that run's own data; an empty set otherwise. For a warning before scoring
    a model on classes it has seen. ``cfg``: a complete config (a stored one through
    :func:`siamjax.config_layout.upgrade_config`)."""
    d = cfg.data
    if source == "omniglot" and d.source == "omniglot" and split == "background":
        held = set(d.val_alphabets)
        wanted = set(d.alphabets) or set(data.group_names)
        return {n for n in data.class_names if n.split("/")[0] in wanted - held}
    same = (source == "folder" and d.source == "folder" and d.dir
            and pathlib.Path(str(d.dir)).resolve() == pathlib.Path(data_dir).resolve())
    if not same:
        return set()
    train, _ = split_train_val(cfg, data)
    return set(train.class_names)


def _with_symmetry_classes(cfg, train: LabeledImages) -> LabeledImages:
    """The training split with its quarter turns (``cfg.data.rotate_classes``) and mirror images
    (``cfg.data.mirror_classes``) as extra classes."""
    if cfg.data.rotate_classes:
        train = with_rotated_classes(train)
    return with_mirrored_classes(train) if cfg.data.mirror_classes else train


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
    return data.subset(~_match_classes(data, patterns, "data.holdout_classes")[data.labels])
