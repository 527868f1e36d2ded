"""The committed face-verification checkpoint (pretrained/att_faces, configs/att_faces.py) on the AT&T /
ORL test identities s31..s40, read in place from ../shared/data/att_faces/att_faces.zip; and the
config's protocol: the test identities take no part in training or validation."""
import fnmatch
import io
import json
import pathlib
import re
import zipfile

import numpy as np
import PIL.Image
import pytest

import siamjax
from configs import att_faces as att_config
import siamjax.train as train_lib

REPO = pathlib.Path(__file__).resolve().parents[1]

CHECKPOINT = REPO / "pretrained" / "att_faces"
TEST_IDS = [f"s{i}" for i in range(31, 41)]
# Measured EER of the committed checkpoint on all 450 genuine / 4,500 impostor pairs of s31..s40 (README,
# "Faces (AT&T / ORL)"); the bound leaves room for float differences between machines, not for a worse model.
MEASURED_EER = 0.0889
EER_BOUND = 0.10


@pytest.fixture(scope="module")
def att_zip(data_root):
    path = data_root / "att_faces" / "att_faces.zip"
    if not path.is_file():
        pytest.fail(f"AT&T faces not found at {path}; see ../shared/data/att_faces/PROVENANCE.md")
    return path


def _read(zip_path, names):
    """Raw uint8 [112, 92] photos of the named identities, 1.pgm .. 10.pgm each, and their labels."""
    images, labels = [], []
    with zipfile.ZipFile(zip_path) as zf:
        members = [m for m in zf.namelist() if m.lower().endswith(".pgm")]
        for label, name in enumerate(names):
            mine = sorted((m for m in members if m.split("/")[-2] == name),
                          key=lambda m: int(re.sub(r"\D", "", m.rsplit("/", 1)[-1])))
            assert len(mine) == 10, (name, mine)
            images += [np.asarray(PIL.Image.open(io.BytesIO(zf.read(m)))) for m in mine]
            labels += [label] * len(mine)
    return images, np.asarray(labels)


def _eer(genuine, impostor):
    """Equal error rate: the point where FAR (impostor >= t) meets FRR (genuine < t), over all t."""
    t = np.unique(np.concatenate([genuine, impostor]))
    far = (impostor[None, :] >= t[:, None]).mean(1)
    frr = (genuine[None, :] < t[:, None]).mean(1)
    k = np.argmin(np.abs(far - frr))
    return float((far[k] + frr[k]) / 2)


def test_checkpoint_separates_unseen_faces(att_zip):
    model = siamjax.load(CHECKPOINT)
    assert model.preprocessing.channels == 1 and model.preprocessing.invert is False
    images, labels = _read(att_zip, TEST_IDS)
    assert images[0].shape == (112, 92) and images[0].dtype == np.uint8
    emb = model.embed(images)
    assert emb.shape[0] == 100 and np.all(np.isfinite(emb))
    i, j = np.triu_indices(len(labels), 1)
    scores = model.score_embeddings(emb[i], emb[j])
    same = labels[i] == labels[j]
    genuine, impostor = scores[same], scores[~same]
    assert len(genuine) == 450 and len(impostor) == 4500
    assert genuine.mean() > impostor.mean() + 0.2
    assert _eer(genuine, impostor) <= EER_BOUND
    # The stored threshold (chosen on validation identities) separates most test pairs too.
    calib = json.loads((CHECKPOINT / "calibration.json").read_text())
    t = calib["threshold"]
    assert "validation" in calib["source"] and 0.0 <= calib["far"] <= 0.2
    assert (genuine >= t).mean() > 0.8 and (impostor < t).mean() > 0.9
    # score() on raw images agrees with the embeddings (same preprocessing path).
    np.testing.assert_allclose(model.score(images[:3], images[3:6]),
                               model.score_embeddings(emb[:3], emb[3:6]), rtol=1e-5, atol=1e-5)


def test_config_keeps_test_identities_out(att_zip):
    c = att_config.get_config()
    c.data.dir = str(att_zip)
    train, val, spec = train_lib.load_data(c)
    names = list(train.class_names) + list(val.class_names)
    assert not [n for n in names if n in TEST_IDS]
    assert not [n for n in names for p in c.data.holdout_classes if fnmatch.fnmatchcase(n, p)]
    assert sorted(names, key=lambda n: int(n[1:])) == [f"s{i}" for i in range(1, 31)]
    assert not set(train.class_names) & set(val.class_names)
    assert val.num_classes >= c.eval.val_ways and len(train) + len(val) == 300
    assert spec.channels == 1 and spec.invert is False
