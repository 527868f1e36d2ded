"""MNIST IDX loader on the real test set (read in place from ../shared/data/mnist_test), its errors on
broken files, the polarity convention, and ``eval.py --data mnist`` (Koch's transfer test)."""
import gzip
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from siamjax.data.mnist import _paper, load_mnist, read_idx_images, read_idx_labels
from siamjax.data.preprocess import Preprocessing, preprocess_image

REPO = pathlib.Path(__file__).resolve().parents[1]
CLASS_SIZES = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # PROVENANCE.md of the files


@pytest.fixture(scope="module")
def mnist_dir(data_root):
    return data_root / "mnist_test"


def test_reads_the_real_test_set(mnist_dir):
    raw = read_idx_images(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert raw.shape == (10_000, 28, 28) and raw.dtype == np.uint8
    assert raw.mean() < 0.2 * 255  # as stored: light digits on a black background
    data = load_mnist(mnist_dir, Preprocessing(size=28, invert=True))
    assert len(data) == 10_000 and data.images.shape == (10_000, 28, 28, 1)
    assert np.bincount(data.labels).tolist() == CLASS_SIZES
    assert data.class_names == [str(d) for d in range(10)] and data.group_names == ["mnist"]
    assert (data.groups == 0).all()
    for c in (0, 9):  # instances: rank within the class, in file order
        assert data.instances[data.labels == c].tolist() == list(range(CLASS_SIZES[c]))
    np.testing.assert_array_equal(data.labels[:10], read_idx_labels(mnist_dir / "t10k-labels-idx1-ubyte.gz")[:10])
    # Polarity: ink high on a 0 background, as Omniglot after preprocessing; here exactly the stored bytes.
    np.testing.assert_array_equal(data.images[..., 0], raw)
    auto = load_mnist(mnist_dir, Preprocessing(size=28, invert="auto"))
    np.testing.assert_array_equal(auto.images, data.images)
    kept = load_mnist(mnist_dir, Preprocessing(size=28, invert=False))  # a model trained without inversion
    np.testing.assert_array_equal(kept.images[..., 0], 255 - raw)


def test_polarity_is_omniglots():
    """An Omniglot PNG (PIL mode "1": True = white paper, False = ink) and an MNIST digit with the same
    strokes come out identical under every polarity setting."""
    rng = np.random.default_rng(0)
    ink = rng.random((28, 28)) < 0.15
    omniglot_png = ~ink  # bool, paper True
    mnist_bytes = np.where(ink, 255, 0).astype(np.uint8)
    for invert in (True, "auto", False):
        spec = Preprocessing(size=28, invert=invert)
        want = preprocess_image(omniglot_png, spec)
        np.testing.assert_array_equal(preprocess_image(_paper(mnist_bytes), spec), want)
        if invert is not False:
            assert want[ink].min() == 255 and want[~ink].max() == 0


def _idx(magic, dims, payload):
    return np.array([magic, *dims], ">u4").tobytes() + bytes(payload)


def _write(folder, images, labels, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, content in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / stem).write_bytes(content)
    return folder


GOOD_IMAGES = _idx(0x803, (3, 2, 2), range(12))
GOOD_LABELS = _idx(0x801, (3,), [7, 0, 7])


def test_small_files_gzip_or_not(tmp_path):
    spec = Preprocessing(size=2, invert=True)
    for compress in (True, False):
        data = load_mnist(_write(tmp_path / str(compress), GOOD_IMAGES, GOOD_LABELS, compress), spec)
        assert data.labels.tolist() == [7, 0, 7] and data.instances.tolist() == [0, 0, 1]
        assert data.images[:, :, :, 0].tolist() == np.arange(12).reshape(3, 2, 2).tolist()


@pytest.mark.parametrize("images,labels,error", [
    (GOOD_IMAGES[:-3], GOOD_LABELS, "truncated image file: the header announces 3 x 2 x 2 = 12 bytes, the file holds 9"),
    (GOOD_IMAGES[:10], GOOD_LABELS, "truncated image file: 10 bytes, shorter than the 16-byte IDX header"),
    (GOOD_IMAGES + b"\0", GOOD_LABELS, "longer than its header announces"),
    (_idx(0x801, (3, 2, 2), range(12)), GOOD_LABELS, "not an IDX image file: magic number 0x00000801, expected 0x00000803"),
    (GOOD_IMAGES, _idx(0x803, (3,), [1, 2, 3]), "not an IDX label file"),
    (GOOD_IMAGES, _idx(0x801, (2,), [1, 2]), "holds 3 images but .* holds 2 labels"),
    (GOOD_IMAGES, _idx(0x801, (3,), [1, 2, 10]), "labels must be digits 0-9, found 10"),
    (_idx(0x803, (100000, 1000, 1000), []), GOOD_LABELS, "claims 100000000000 bytes"),
], ids=["short-payload", "short-header", "trailing-bytes", "image-magic", "label-magic", "count-mismatch",
        "label-range", "huge-header"])
def test_broken_idx_content(tmp_path, images, labels, error):
    with pytest.raises(ValueError, match=error):
        load_mnist(_write(tmp_path, images, labels), Preprocessing(size=2))


def test_broken_gzip_files(tmp_path, mnist_dir):
    real = (mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()
    labels = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(labels)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(real[:len(real) // 3])  # an interrupted download
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: unreadable gzip data .*truncated or corrupt"):
        load_mnist(folder, Preprocessing(size=28))
    bad = bytearray(real)
    bad[len(bad) // 2] ^= 0xFF  # a flipped byte in the compressed stream
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="truncated|corrupt"):
        load_mnist(folder, Preprocessing(size=28))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"<html>Not Found</html>" * 3)  # neither gzip nor IDX
    with pytest.raises(ValueError, match="not an IDX image file"):
        load_mnist(folder, Preprocessing(size=28))
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="no t10k-images-idx3-ubyte.gz"):
        load_mnist(folder, Preprocessing(size=28))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_mnist(tmp_path / "absent", Preprocessing(size=28))
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_mnist(folder, Preprocessing(size=28), split="validation")


def test_eval_cli_mnist_transfer(omniglot_dir, mnist_dir, tmp_path):
    """eval.py --data mnist: 10-way one-shot on MNIST with an (untrained) Omniglot checkpoint, the same
    accuracy as computed here from the same weights and episodes (classes' own images, no drawers)."""
    import jax.numpy as jnp

    import siamjax
    from siamjax.eval import episodes as evaluate
    from tests.test_train import save_fresh_checkpoint, small_config

    _, _, spec = save_fresh_checkpoint(tmp_path / "ckpt", small_config(omniglot_dir))
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "eval.py", "--checkpoint", str(tmp_path / "ckpt"), "--data", "mnist",
                           "--data_dir", str(mnist_dir), "--tasks", "across:10:1,across:10:5", "--episodes", "20",
                           "--seed", "3", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "10000 images, 10 classes, 1 groups" in proc.stdout
    got = json.loads(out.read_text())["tasks"]
    data = load_mnist(mnist_dir, spec)
    model = siamjax.load(tmp_path / "ckpt")
    for r, shots in zip(got, (1, 5)):
        eps = evaluate.make_episodes(data.labels, data.groups, data.instances, 10, shots, 20, "across", seed=3,
                                     same_instance=False)
        used = np.unique(np.concatenate([eps.support.ravel(), eps.query.ravel()]))  # embed only these
        emb = np.zeros((len(data), model.embed_preprocessed(data.images[:1]).shape[1]), np.float32)
        emb[used] = model.embed_preprocessed(data.images[used])
        emb = jnp.asarray(emb)
        want = evaluate.one_shot_accuracy(model.pairwise_jax, emb, eps)
        assert r["ways"] == 10 and r["questions"] == 200 and r["shots"] == shots
        assert r["accuracy"] == pytest.approx(want["accuracy"])
