"""TensorFlow Datasets (TFDS) as a data source, read without TensorFlow.

:func:`load_tfds` opens a prepared TFDS dataset through TFDS' random-access data source
(``builder.as_data_source``, what ``tfds.data_source`` returns: ArrayRecord files, no ``tf.data``,
no TensorFlow), reads every record's label and group once with the image feature left encoded
(``tfds.decode.SkipDecoding``), and returns a :class:`~siamjax.data.dataset.LabeledImages` whose
images are a :class:`~siamjax.data.lazy.LazyImages`: a row is read from its ArrayRecord file,
decoded with PIL and passed through :func:`~siamjax.data.preprocess.preprocess_image` when a batch
first asks for it.

Reading needs only ``tensorflow-datasets`` and ``array_record``. *Preparing* a dataset (download
and generation, ``tfds build``) needs internet access and, for most TFDS builders (Omniglot's
included), TensorFlow; on a machine without them, an unprepared dataset ends in one
:class:`TfdsNotPreparedError` that says what to run where.

Omniglot (``tfds:omniglot``): splits ``train`` (= images_background, 30 alphabets), ``test``
(= images_evaluation, 20 alphabets), ``small1``, ``small2`` (``background`` / ``evaluation`` are
accepted as aliases of train / test); groups are alphabets and class names follow
:func:`~siamjax.data.omniglot.load_omniglot` ("Latin/character07"), so alphabet lists written for
the folder loader (``config.data.val_alphabets``) apply unchanged. TFDS does not store Omniglot's
drawer, so ``instances`` is the rank of an image within its class (record order), as for every
TFDS dataset.
"""
from __future__ import annotations

import difflib
import io
import os
import re
import socket
import urllib.parse
from typing import Any

import numpy as np

from siamjax.data.dataset import LabeledImages, rank_within_class
from siamjax.data.lazy import DEFAULT_CACHE_ITEMS, LazyImages
from siamjax.data.preprocess import Preprocessing, preprocess_image

__all__ = ["load_tfds", "TfdsNotPreparedError", "PREFIX"]

# ``config.data.source`` values naming a TFDS dataset start with this.
PREFIX = "tfds:"
# Group feature used by default, per dataset (others: one group for the whole split).
_DEFAULT_GROUP_KEYS = {"omniglot": "alphabet"}
# Split aliases per dataset (the names siamjax's own loaders use).
_SPLIT_ALIASES = {"omniglot": {"background": "train", "images_background": "train",
                               "evaluation": "test", "images_evaluation": "test"}}
# Records read per request during the label pass.
_LABEL_CHUNK = 1024


class TfdsNotPreparedError(FileNotFoundError):
    """The TFDS dataset is not prepared (or not readable at random) in ``data_dir`` and could not be
    downloaded and prepared here; the message says what to run, where."""


# ---------------------------------------------------------------------------------------------
# Public API


def load_tfds(name: str, split: str, spec: Preprocessing, *, data_dir: str | None = None,
              image_key: str | None = None, label_key: str | None = None, group_key: str | None = None,
              cache_items: int = DEFAULT_CACHE_ITEMS, download: bool = True,
              decode_threads: int = 4) -> LabeledImages:
    """A TFDS split as :class:`LabeledImages` with lazily decoded images.

    Args:
        name: TFDS name (``"omniglot"``, ``"mnist"``, ``"my_ds/config:1.0.0"``); a leading
            ``"tfds:"`` is ignored.
        split: TFDS split (``"train"``, ``"test"``, ``"train[:80%]"``, ``"train+test"``).
        spec: preprocessing applied to every image (on first access).
        data_dir: TFDS data folder (the one holding ``<name>/<version>/``); None = TFDS's default
            (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
        image_key: image feature; default: the first ``tfds.features.Image`` feature.
        label_key: class feature; default: ``"label"`` (or the only ``ClassLabel`` feature).
        group_key: group feature (e.g. Omniglot's ``"alphabet"``); default: ``"alphabet"`` for
            Omniglot, else the whole split is one group named after the dataset.
        cache_items: decoded images kept in memory (LRU); 0 = none.
        download: when the dataset is not prepared in ``data_dir``, try to download and prepare it
            (in ArrayRecord format) first. Without internet this fails, and the error says how to
            prepare the data elsewhere.
        decode_threads: threads decoding the misses of one batch.

    Returns:
        LabeledImages: ``images`` a LazyImages ``uint8 [N, spec.size, spec.size, spec.channels]``;
        ``labels`` / ``groups`` dense in order of the TFDS class / group ids present in the split;
        ``class_names`` / ``group_names`` from the ``ClassLabel`` names (else the values);
        ``instances`` = rank within the class.

    Raises:
        ValueError: unknown dataset (close matches listed), split (available splits listed) or
            feature key (features listed), or a feature of an unsupported kind.
        TfdsNotPreparedError: not prepared in ``data_dir`` and not downloadable/preparable here,
            or prepared only in a format without random access (tfrecord).
    """
    tfds = _import_tfds()
    ds_name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if data_dir is not None:
        data_dir = os.path.expanduser(os.fspath(data_dir))
    base_name = ds_name.split("/")[0].split(":")[0]
    builder = _make_builder(tfds, ds_name, data_dir)
    features = builder.info.features
    image_key, label_key, group_key = _resolve_keys(tfds, ds_name, base_name, features, image_key,
                                                    label_key, group_key)
    split = _resolve_split(ds_name, base_name, builder, split)
    source = _open_source(tfds, ds_name, builder, split, image_key, download)

    n = len(source)
    if n == 0:
        raise ValueError(f"TFDS dataset {ds_name!r} split {split!r} holds no examples")
    labels_raw, groups_raw = _label_pass(source, n, label_key, group_key)

    label_ids, class_names = _densify(labels_raw, features[label_key])
    if group_key is None:
        group_ids, group_names = np.zeros(n, np.int32), [base_name]
    else:
        group_ids, group_names = _densify(groups_raw, features[group_key])
    if base_name == "omniglot" and label_key == "label":
        class_names = [_omniglot_class_name(c) for c in class_names]

    images = LazyImages(_make_loader(source, image_key, spec), n, (spec.size, spec.size, spec.channels),
                        cache_items=cache_items, threads=decode_threads)
    return LabeledImages(images=images, labels=label_ids, groups=group_ids,
                         instances=rank_within_class(label_ids), class_names=class_names, group_names=group_names)


# ---------------------------------------------------------------------------------------------
# Builder, split, features


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - a dependency of siamjax
        raise ImportError("TFDS data sources need `pip install tensorflow-datasets array_record` "
                          f"(TensorFlow itself is not needed): {e}") from None
    return tfds


def _make_builder(tfds, ds_name: str, data_dir: str | None):
    """``tfds.builder`` with an unknown name turned into a ValueError listing close matches."""
    not_found = tfds.core.DatasetNotFoundError
    try:
        return tfds.builder(ds_name, data_dir=data_dir)
    except not_found:
        pass
    base = ds_name.split("/")[0].split(":")[0]
    try:
        known = sorted(tfds.list_builders(with_community_datasets=False))
    except Exception:  # noqa: BLE001 - the list only improves the message
        known = []
    where = f"TFDS {tfds.__version__}" + (f" nor prepared in {data_dir}" if data_dir else "")
    close = difflib.get_close_matches(base.lower(), known, n=5, cutoff=0.6)
    hint = ("did you mean " + ", ".join(repr(c) for c in close) + "?") if close else (
        "`python -c 'import tensorflow_datasets as tfds; print(tfds.list_builders())'` lists the names")
    raise ValueError(f"unknown TFDS dataset {ds_name!r}: not registered in {where}; {hint}") from None


def _feature_kinds(features) -> str:
    return ", ".join(f"{k!r} ({type(f).__name__})" for k, f in features.items())


def _resolve_keys(tfds, ds_name, base_name, features, image_key, label_key, group_key):
    """(image, label, group) feature keys, defaults filled in; group None = one group."""
    image_cls = tfds.features.Image
    class_label_cls = tfds.features.ClassLabel
    keys = list(features.keys())

    def check(kind: str, key: str) -> None:
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
            mean = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
            raise ValueError(f"TFDS dataset {ds_name!r} has no feature {key!r} (asked for as the {kind} "
                             f"feature); {mean}its features are: {_feature_kinds(features)}")

    if image_key is None:
        image_key = next((k for k in keys if isinstance(features[k], image_cls)), None)
        if image_key is None:
            raise ValueError(f"TFDS dataset {ds_name!r} has no tfds.features.Image feature; its features "
                             f"are: {_feature_kinds(features)}")
    check("image", image_key)
    if not isinstance(features[image_key], image_cls):
        raise ValueError(f"TFDS feature {image_key!r} of {ds_name!r} is a {type(features[image_key]).__name__}, "
                         f"not a tfds.features.Image; its features are: {_feature_kinds(features)}")
    if label_key is None:
        if "label" in keys:
            label_key = "label"
        else:
            class_labels = [k for k in keys if isinstance(features[k], class_label_cls)]
            if len(class_labels) != 1:
                raise ValueError(f"TFDS dataset {ds_name!r} has no 'label' feature; pass label_key= "
                                 f"(config.tfds_label_key) naming one of: {_feature_kinds(features)}")
            label_key = class_labels[0]
    check("label", label_key)
    if group_key is None:
        group_key = _DEFAULT_GROUP_KEYS.get(base_name)
        if group_key is not None and group_key not in keys:
            group_key = None
    if group_key is not None:
        check("group", group_key)
    for kind, key in (("label", label_key), ("group", group_key)):
        if key is not None and not _is_scalar_feature(features[key]):
            raise ValueError(f"TFDS feature {key!r} of {ds_name!r} cannot serve as the {kind}: it is a "
                             f"{type(features[key]).__name__} of shape {getattr(features[key], 'shape', '?')}, "
                             f"not a scalar ClassLabel, integer or text; its features are: "
                             f"{_feature_kinds(features)}")
    return image_key, label_key, group_key


def _is_scalar_feature(feature) -> bool:
    shape = getattr(feature, "shape", None)
    return shape == () or shape == []


def _split_parts(split: str) -> list[str]:
    """Split names inside a TFDS split expression ("train[:80%]+test" -> ["train", "test"])."""
    return [p.split("[")[0].strip() for p in str(split).split("+")]


def _resolve_split(ds_name: str, base_name: str, builder, split: str) -> str:
    aliases = _SPLIT_ALIASES.get(base_name, {})
    parts = []
    for part in str(split).split("+"):
        base, bracket, rest = part.strip().partition("[")
        parts.append(aliases.get(base.strip(), base.strip()) + bracket + rest)
    split = "+".join(parts)
    available = list(builder.info.splits.keys())
    if not available:  # splits unknown until prepared (or a mocked builder): TFDS checks on read
        return split
    for part in _split_parts(split):
        if part not in available:
            close = difflib.get_close_matches(part, available, n=3, cutoff=0.5)
            mean = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
            alias = "".join(f"; {a!r} = {t!r}" for a, t in aliases.items() if not a.startswith("images_"))
            raise ValueError(f"unknown split {part!r} of TFDS dataset {ds_name!r}; {mean}available splits: "
                             f"{', '.join(repr(s) for s in available)}{alias}")
    return split


# ---------------------------------------------------------------------------------------------
# Opening the data source (and the offline error)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 300:
        first = first[:300] + "..."
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _not_prepared_message(ds_name: str, builder, reason: str) -> str:
    root = str(builder.data_dir_root)
    dest = str(builder.data_path)
    ds_folder = ds_name.split("/")[0].split(":")[0]
    return (
        f"TFDS dataset {ds_name!r} is not prepared in {dest} ({reason}).\n"
        "Prepare it once on a machine with internet access (generating most TFDS datasets, Omniglot's "
        "included, needs TensorFlow there; reading it here does not):\n"
        f"    pip install tensorflow tensorflow-datasets\n"
        f"    tfds build {ds_name} --file_format=array_record --data_dir=/some/folder\n"
        f"then copy /some/folder/{ds_folder}/ to {root}/{ds_folder}/ on this machine, or point "
        f"--config.data.tfds_data_dir (load_tfds(data_dir=...), $TFDS_DATA_DIR) at the folder that holds "
        f"{ds_folder}/."
    )


def _open_source(tfds, ds_name: str, builder, split: str, image_key: str, download: bool):
    """``builder.as_data_source(split, decoders={image: SkipDecoding})`` (what ``tfds.data_source``
    does), preparing the dataset first when allowed, with every failure turned into one message."""
    if builder.is_prepared():
        formats = _available_formats(builder)
        random_access = {f.value for f in tfds.core.FileFormat.with_random_access()}
        if formats and not formats & random_access:
            raise TfdsNotPreparedError(
                f"TFDS dataset {ds_name!r} is prepared in {builder.data_path} as {', '.join(sorted(formats))}, "
                f"which cannot be read at random; siamjax reads {' or '.join(sorted(random_access))}. Convert "
                f"it in place, on a machine with TensorFlow (reading tfrecord files needs it):\n"
                f"    tfds convert_format --dataset_version_dir={builder.data_path} --out_file_format=array_record\n"
                f"or rebuild it with `tfds build {ds_name} --file_format=array_record`.")
    elif not download:
        raise TfdsNotPreparedError(_not_prepared_message(ds_name, builder, "download=False"))
    elif (offline := _offline_reason(builder)) is not None:
        # Without this check TFDS retries each download ~10 times with back-off: minutes of waiting.
        raise TfdsNotPreparedError(_not_prepared_message(ds_name, builder, offline))
    else:
        try:
            builder.download_and_prepare(file_format="array_record")
        except Exception as e:  # noqa: BLE001 - whatever failed deep inside TFDS, one clear message
            err = TfdsNotPreparedError(_not_prepared_message(
                ds_name, builder, f"downloading and preparing it here failed with {_one_line(e)}"))
            err.cause = e
            raise err from None
    decoders = {image_key: tfds.decode.SkipDecoding()}
    try:
        return builder.as_data_source(split=split, decoders=decoders)
    except (KeyError, ValueError) as e:
        available = list(builder.info.splits.keys())
        if available:
            raise ValueError(f"TFDS dataset {ds_name!r} cannot read split {split!r} ({_one_line(e)}); "
                             f"available splits: {', '.join(repr(s) for s in available)}") from None
        raise


def _resolves(host: str) -> bool:
    """Whether ``host``'s name resolves (a DNS lookup; nothing is sent to the host)."""
    try:
        socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return True


def _offline_reason(builder) -> str | None:
    """"cannot resolve HOST, ...: no internet access" when none of the hosts in the builder's
    registered download URLs resolves; None when one does or the URLs are unknown."""
    try:
        urls = list(builder.url_infos or {})
    except Exception:  # noqa: BLE001 - no checksums file: let the download itself decide
        return None
    hosts = sorted({urllib.parse.urlsplit(u).hostname for u in urls} - {None})[:3]
    if not hosts or any(_resolves(h) for h in hosts):
        return None
    return f"cannot resolve {', '.join(hosts)}: no internet access, so it cannot be downloaded here"


def _available_formats(builder) -> set[str]:
    try:
        return {f.value for f in builder.info.available_file_formats()}
    except Exception:  # noqa: BLE001 - older TFDS / mocked info: let as_data_source decide
        return set()


# ---------------------------------------------------------------------------------------------
# Labels and groups


def _scalar(value: Any) -> Any:
    """A record's label value -> int or str."""
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _label_pass(source, n: int, label_key: str, group_key: str | None) -> tuple[list, list | None]:
    """Label (and group) value of every record, reading records in chunks.

    ``__getitems__`` (one batched ArrayRecord read per chunk) is ~2.5x faster than record by record
    (20,000 Omniglot-sized records: 2.3 s against 5.7 s on 2 cores); a source whose
    ``__getitems__`` does not work (``tfds.testing.mock_data``'s) is read record by record.
    """
    labels: list = []
    groups: list | None = [] if group_key is not None else None
    getitems = getattr(source, "__getitems__", None)
    for start in range(0, n, _LABEL_CHUNK):
        keys = list(range(start, min(n, start + _LABEL_CHUNK)))
        records = None
        if getitems is not None:
            try:
                records = getitems(keys)
            except TypeError:
                if start:
                    raise
                getitems = None
        if records is None:
            records = [source[k] for k in keys]
        for ex in records:
            labels.append(_scalar(ex[label_key]))
            if groups is not None:
                groups.append(_scalar(ex[group_key]))
    return labels, groups


def _densify(values: list, feature) -> tuple[np.ndarray, list[str]]:
    """Values -> dense int32 ids in sorted value order, and the names of the kept values."""
    names_of = getattr(feature, "names", None)
    kinds = {type(v) for v in values}
    if not kinds <= {int} and not kinds <= {str}:
        raise ValueError(f"TFDS label/group values must be integers or text, got {sorted(k.__name__ for k in kinds)}")
    uniq = sorted(set(values))
    index = {v: i for i, v in enumerate(uniq)}
    ids = np.fromiter((index[v] for v in values), dtype=np.int32, count=len(values))
    if names_of and kinds <= {int} and all(0 <= v < len(names_of) for v in uniq):
        names = [str(names_of[v]) for v in uniq]
    else:
        names = [str(v) for v in uniq]
    return ids, names


def _omniglot_class_name(name: str) -> str:
    """TFDS Omniglot's "<Alphabet>_<k>" (k = 0-based character) -> "<Alphabet>/character<k+1:02d>"."""
    m = re.fullmatch(r"(.+)_(\d+)", name)
    return f"{m.group(1)}/character{int(m.group(2)) + 1:02d}" if m else name


# ---------------------------------------------------------------------------------------------
# Images


def _decode_bytes(data: bytes) -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, ...) -> array that preprocess_image accepts."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode == "PA":
            im = im.convert("RGBA")
        elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
        elif im.mode == "I":
            arr = np.asarray(im)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise ValueError("32-bit integer image with values outside [0, 65535]")
            return arr.astype(np.uint16)
        return np.asarray(im)


def _raw_image(value: Any) -> np.ndarray:
    """A record's image value (encoded bytes, or an already decoded array) -> raw pixel array."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        value = value.item() if value.size == 1 else value
    if isinstance(value, np.bytes_):
        value = bytes(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(value))
    return np.asarray(value)


def _make_loader(source, image_key: str, spec: Preprocessing):
    def load(i: int) -> np.ndarray:
        try:
            return preprocess_image(_raw_image(source[int(i)][image_key]), spec)
        except Exception as e:  # noqa: BLE001 - name the record
            raise ValueError(f"TFDS record {i} ({image_key!r}): {_one_line(e)}") from e

    return load
