"""siamjax.data.tfds_source: TFDS data sources read without TensorFlow, offline.

Two kinds of data, neither downloaded:

* a tiny dataset really prepared in ``tmp_path`` (ArrayRecord files written by TFDS' own
  GeneratorBasedBuilder machinery, which needs no TensorFlow when the images are given as encoded
  bytes). Its builder class is defined without registering it, so ``load_tfds`` opens the copy from
  its files alone (a read-only builder), as on a machine that received a prepared folder.
* ``tfds.testing.mock_data`` for Omniglot's own builder (``MockPolicy.USE_CODE``: no metadata files,
  random examples). Asked for with ``SkipDecoding`` (as ``load_tfds`` does), the mock encodes its
  random images with ``tf.image.encode_png``; the test swaps that one function for PIL so that the
  mock runs without TensorFlow.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

tfds = pytest.importorskip("tensorflow_datasets")

from tensorflow_datasets.core import registered  # noqa: E402

from siamjax.data.lazy import LazyImages  # noqa: E402
from siamjax.data.preprocess import Preprocessing, preprocess_image  # noqa: E402
from siamjax.data import tfds_source  # noqa: E402
from siamjax.data.tfds_source import TfdsNotPreparedError, load_tfds  # noqa: E402

NAME = "siamjax_tiny_shapes"
CLASSES = ["circle", "square", "triangle", "star"]
STYLES = ["thin", "bold"]
SPEC = Preprocessing(size=16, channels=1, invert="auto")


def _raw_items(split: str) -> list[tuple[np.ndarray, int, int]]:
    """(RGB image of varying size, label, style); 'train' holds classes 0, 1, 3 only."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = [0, 1, 3] if split == "train" else [0, 2]
    items = []
    for i in range(12 if split == "train" else 4):
        h, w = 20 + 5 * (i % 3), 24 + 3 * (i % 2)
        img = np.full((h, w, 3), 255, np.uint8)  # white paper ...
        img[rng.integers(0, h, 40), rng.integers(0, w, 40)] = rng.integers(0, 120, (40, 3))  # ... dark ink
        items.append((img, labels[i % len(labels)], i % 2))
    return items


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _builder_cls():
    with registered.skip_registration():  # not registered: read back from the files alone

        class SiamjaxTinyShapes(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                    "index": np.int64,
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                    "label": tfds.features.ClassLabel(names=CLASSES),
                    "style": tfds.features.ClassLabel(names=STYLES),
                }))

            def _split_generators(self, dl_manager):
                del dl_manager
                return {s: self._generate_examples(s) for s in ("train", "test")}

            def _generate_examples(self, split):
                for i, (img, label, style) in enumerate(_raw_items(split)):
                    yield i, {"index": i, "image": _png(img), "label": label, "style": style}

    return SiamjaxTinyShapes


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory) -> str:
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builder = _builder_cls()(data_dir=data_dir)
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(compute_stats=tfds.download.ComputeStatsMode.SKIP))
    return data_dir


def _records(data_dir: str, split: str) -> list[dict]:
    """The split's records in storage order, fully decoded by TFDS itself (for reference)."""
    source = tfds.data_source(NAME, split=split, data_dir=data_dir, download=False)
    return [source[i] for i in range(len(source))]


def test_prepared_dataset_labels_groups_names_images(prepared_dir):
    data = load_tfds("tfds:" + NAME, "train", SPEC, data_dir=prepared_dir, group_key="style")
    records = _records(prepared_dir, "train")
    raw = _raw_items("train")
    assert len(data) == len(records) == 12
    assert isinstance(data.images, LazyImages)
    assert data.images.shape == (12, 16, 16, 1) and data.images.dtype == np.uint8
    # Labels dense over the classes present (0, 1, 3), in class-id order; names follow.
    assert data.class_names == ["circle", "square", "star"]
    dense = {0: 0, 1: 1, 3: 2}
    np.testing.assert_array_equal(data.labels, [dense[int(r["label"])] for r in records])
    assert data.group_names == STYLES
    np.testing.assert_array_equal(data.groups, [int(r["style"]) for r in records])
    # instances: rank within the class, in record order.
    seen: dict[int, int] = {}
    expected = []
    for lab in data.labels.tolist():
        expected.append(seen.get(lab, 0))
        seen[lab] = expected[-1] + 1
    np.testing.assert_array_equal(data.instances, expected)
    # Images: preprocess_image of the raw pixels written, row by row.
    want = np.stack([preprocess_image(raw[int(r["index"])][0], SPEC) for r in records])
    np.testing.assert_array_equal(data.images[:], want)
    np.testing.assert_array_equal(np.stack([preprocess_image(r["image"], SPEC) for r in records]), want)


def test_default_group_and_rgb(prepared_dir):
    spec = Preprocessing(size=8, channels=3, invert=False)
    data = load_tfds(NAME, "test", spec, data_dir=prepared_dir)
    assert data.group_names == [NAME] and set(data.groups.tolist()) == {0}
    assert data.class_names == ["circle", "triangle"]
    raw = _raw_items("test")
    records = _records(prepared_dir, "test")
    want = np.stack([preprocess_image(raw[int(r["index"])][0], spec) for r in records])
    np.testing.assert_array_equal(np.asarray(data.images), want)
    assert load_tfds(NAME, "train[:5]+test", SPEC, data_dir=prepared_dir).images.shape[0] == 9


def test_lazy_decoding(prepared_dir, monkeypatch):
    # TFDS must never decode the images (SkipDecoding): siamjax decodes them with PIL, on demand.
    def no_tfds_decode(self, example):
        raise AssertionError("TFDS decoded an image")

    monkeypatch.setattr(tfds.features.Image, "decode_example_np", no_tfds_decode)
    data = load_tfds(NAME, "train", SPEC, data_dir=prepared_dir, cache_items=4)
    assert data.images.decoded == 0  # the label pass decoded nothing
    data.images[[3, 5, 3]]
    assert data.images.decoded == 2
    data.images[[5]]
    assert data.images.decoded == 2  # cached
    sub = data.subset(np.arange(6))
    assert sub.images.decoded == 2  # a view decodes nothing
    sub.images[:]
    assert data.images.decoded == 6


def test_unknown_split_lists_splits(prepared_dir):
    with pytest.raises(ValueError, match=r"unknown split 'validation'.*available splits: 'train', 'test'|"
                                         r"unknown split 'validation'.*available splits: 'test', 'train'"):
        load_tfds(NAME, "validation", SPEC, data_dir=prepared_dir)
    with pytest.raises(ValueError, match=r"unknown split 'tset'.*did you mean 'test'"):
        load_tfds(NAME, "train+tset[:2]", SPEC, data_dir=prepared_dir)


def test_wrong_feature_keys_list_features(prepared_dir):
    with pytest.raises(ValueError, match=r"no feature 'lable'.*did you mean 'label'.*'image' \(Image\)"):
        load_tfds(NAME, "train", SPEC, data_dir=prepared_dir, label_key="lable")
    with pytest.raises(ValueError, match=r"'style' .*is a ClassLabel, not a tfds.features.Image"):
        load_tfds(NAME, "train", SPEC, data_dir=prepared_dir, image_key="style")
    with pytest.raises(ValueError, match=r"no feature 'alphabet' \(asked for as the group feature\).*'style'"):
        load_tfds(NAME, "train", SPEC, data_dir=prepared_dir, group_key="alphabet")


def test_unknown_dataset_suggests_close_names(tmp_path):
    with pytest.raises(ValueError, match=r"unknown TFDS dataset 'omniglott'.*did you mean 'omniglot'"):
        load_tfds("tfds:omniglott", "train", SPEC, data_dir=str(tmp_path))


def _no_downloads(monkeypatch, error=ConnectionError("Failed to resolve 'github.com' (no internet)")):
    def offline(*args, **kwargs):
        raise error

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", offline)
    monkeypatch.setattr(tfds.download.DownloadManager, "download", offline)


def _check_instructions(msg: str, tmp_path) -> None:
    assert f"'omniglot' is not prepared in {tmp_path}/omniglot/3.0.0" in msg
    assert "tfds build omniglot --file_format=array_record --data_dir=" in msg
    assert f"copy /some/folder/omniglot/ to {tmp_path}/omniglot/" in msg
    assert "--config.data.tfds_data_dir" in msg
    assert "Traceback" not in msg


def test_not_prepared_no_internet_fails_fast(tmp_path, monkeypatch):
    """No DNS for the download hosts: one message at once, instead of TFDS's minutes of retries."""
    _no_downloads(monkeypatch)
    looked_up = []
    monkeypatch.setattr(tfds_source, "_resolves", lambda host: looked_up.append(host) and False)

    def no_prepare(*args, **kwargs):  # where TFDS would retry each download with back-off for minutes
        pytest.fail("download_and_prepare was called although no download host resolves")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_prepare)
    with pytest.raises(TfdsNotPreparedError) as info:
        load_tfds("tfds:omniglot", "train", SPEC, data_dir=str(tmp_path))
    assert looked_up == ["github.com"]
    msg = str(info.value)
    _check_instructions(msg, tmp_path)
    assert "(cannot resolve github.com: no internet access" in msg
    assert info.value.__cause__ is None and not info.value.__context__
    assert not (tmp_path / "omniglot").exists()

    with pytest.raises(TfdsNotPreparedError, match=r"not prepared in .*\(download=False\)"):
        load_tfds("omniglot", "train", SPEC, data_dir=str(tmp_path), download=False)


def test_not_prepared_download_failure_message(tmp_path, monkeypatch):
    """Names resolve but the download fails: TFDS's error in one line, no traceback chained."""
    _no_downloads(monkeypatch)
    monkeypatch.setattr(tfds_source, "_resolves", lambda host: True)
    with pytest.raises(TfdsNotPreparedError) as info:
        load_tfds("tfds:omniglot", "train", SPEC, data_dir=str(tmp_path))
    msg = str(info.value)
    _check_instructions(msg, tmp_path)
    assert "downloading and preparing it here failed with ConnectionError: Failed to resolve 'github.com'" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert isinstance(info.value.cause, ConnectionError)
    assert not (tmp_path / "omniglot" / "3.0.0").exists()


def test_tfrecord_copy_names_the_conversion(prepared_dir, tmp_path):
    """A dataset prepared as tfrecord (TFDS's default) has no random access: say how to convert it."""
    import json
    import shutil

    shutil.copytree(prepared_dir, tmp_path / "tfds")
    info_path = tmp_path / "tfds" / NAME / "1.0.0" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["fileFormat"] = "tfrecord"
    info_path.write_text(json.dumps(info))
    with pytest.raises(TfdsNotPreparedError, match=r"(?s)prepared in .* as tfrecord, which cannot be read at random.*"
                                                   r"tfds convert_format --dataset_version_dir=.*1\.0\.0 "
                                                   r"--out_file_format=array_record"):
        load_tfds(NAME, "train", SPEC, data_dir=str(tmp_path / "tfds"))


def test_omniglot_names():
    assert tfds_source._omniglot_class_name("Japanese_(hiragana)_3") == "Japanese_(hiragana)/character04"
    assert tfds_source._omniglot_class_name("Latin_6") == "Latin/character07"
    assert tfds_source._omniglot_class_name("17") == "17"


def test_omniglot_through_mock_data(monkeypatch):
    """tfds.testing.mock_data serves Omniglot's own builder (features, default keys) with random data."""
    from tensorflow_datasets.core.features import image_feature

    def encode_png_with_pil(self, np_image):  # the mock's only TensorFlow use
        return _png(np_image)

    monkeypatch.setattr(image_feature._ImageEncoder, "_encode_image", encode_png_with_pil)
    # mock_data makes download_and_prepare a no-op; siamjax's DNS check before it must agree.
    monkeypatch.setattr(tfds_source, "_resolves", lambda host: True)
    n = 24
    with tfds.testing.mock_data(num_examples=n, policy=tfds.testing.MockPolicy.USE_CODE):
        data = load_tfds("tfds:omniglot", "train", SPEC)
        features = tfds.builder("omniglot").info.features
    fake = tfds.testing.mocking.RandomFakeGenerator(features, n)
    raw = [fake[i] for i in range(n)]
    labels = np.array([int(r["label"]) for r in raw])
    alphabets = np.array([int(r["alphabet"]) for r in raw])
    assert len(data) == n and data.images.decoded == 0
    np.testing.assert_array_equal(data.labels, np.unique(labels, return_inverse=True)[1].ravel())
    np.testing.assert_array_equal(data.groups, np.unique(alphabets, return_inverse=True)[1].ravel())
    assert data.class_names == [features["label"].names[v] for v in np.unique(labels)]
    assert data.group_names == [features["alphabet"].names[v] for v in np.unique(alphabets)]
    want = np.stack([preprocess_image(r["image"], SPEC) for r in raw])
    np.testing.assert_array_equal(data.images[:], want)
    assert data.images.decoded == n


def test_train_py_config_on_a_tfds_dataset(prepared_dir, tmp_path):
    """--config.data.source=tfds:NAME trains end to end (held-out images of every class for validation)."""
    from configs import folder as folder_config
    import siamjax.train as train_lib

    c = folder_config.get_config()
    c.data.source = "tfds:" + NAME
    c.data.tfds_data_dir = prepared_dir
    c.data.tfds_train_split = "train"
    c.data.split_by, c.data.val_fraction = "image", 0.5
    c.data.image_size, c.eval.val_ways, c.eval.val_episodes = 16, 2, 4
    c.data.batch_size, c.data.images_per_class, c.optim.train_steps, c.optim.warmup_steps = 8, 4, 4, 1
    c.log_every = c.eval.eval_every = c.checkpoint_every = 4
    result = train_lib.train(c, tmp_path / "w", progress=False)
    assert result["step"] == 4 and np.isfinite(result["loss"]) and 0.0 <= result["val_accuracy"] <= 1.0
