"""SiamFC training end to end on small sequence folders: config errors before any work, a run that
validates by tracking, saves, resumes exactly and loads for the tracker; the synthetic source."""
import json
import shutil

import jax
import numpy as np
import pytest

from configs.siamfc import get_config
from siamjax.train.schema import ConfigError
from siamjax.tracking import synthetic as syn
from siamjax.tracking.net import load_siamfc
from siamjax.tracking.sequences import write_otb
from siamjax.tracking.sources import SyntheticSequences
from siamjax.tracking.tracker import SiamFCTracker
from siamjax.tracking.train import check_config, train
from tests.conftest import subprocess_env
from tests.test_tracking_synthetic import SMALL, fake  # noqa: F401 (the tiny drawn image pool)


@pytest.fixture(scope="module")
def folders(fake, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("sequences")
    for split, indices in (("train", (0, 1)), ("val", (2,))):
        for i in indices:
            frames, boxes = syn.generate(fake, 0, i, 16, SMALL)
            write_otb(root / split / f"seq{i}", frames, boxes)
    return root / "train", root / "val"


def small_config(folders, **overrides):
    c = get_config()
    c.data, c.data_dir, c.val_data_dir = "folder", str(folders[0]), str(folders[1])
    c.widths = (8, 8, 8, 16)
    c.batch_size, c.train_steps, c.warmup_steps = 4, 4, 1
    c.eval_every, c.log_every, c.checkpoint_every = 4, 2, 2
    c.val_sequences, c.val_frames, c.num_devices = 1, 8, 1
    for k, v in overrides.items():
        c[k] = v
    return c


def test_bad_configs_fail_before_work(folders):
    c = small_config(folders)
    c.widhts = (8, 8)
    with pytest.raises(ConfigError, match="did you mean 'widths'"):
        check_config(c)
    with pytest.raises(ValueError, match="choose synthetic"):
        check_config(small_config(folders, data="otb"))
    with pytest.raises(ValueError, match="exemplar_size < search_size"):
        check_config(small_config(folders, exemplar_size=127, search_size=63))
    c = small_config(folders)
    c.tracker.window_inflence = 0.2
    with pytest.raises(ValueError, match="window_inflence"):
        check_config(c)
    with pytest.raises(ValueError, match="needs config.val_data_dir"):
        train(small_config(folders, val_data_dir=""), folders[0].parent / "wd_none", progress=False)


def _params(workdir):
    return jax.tree_util.tree_leaves(load_siamfc(workdir / "checkpoints").variables)


def test_trains_validates_resumes_exactly_and_tracks(folders, fake, tmp_path):  # noqa: F811
    cfg = small_config(folders, train_steps=8, eval_every=8, keep_latest=4)
    whole = train(cfg, tmp_path / "whole", progress=False)
    assert whole["step"] == 8 and 0.0 <= whole["val_auc"] <= 1.0 and np.isfinite(whole["loss"])
    # a run stopped after step 4: the same workdir without the later checkpoints
    shutil.copytree(tmp_path / "whole", tmp_path / "split")
    for step in (6, 8):
        shutil.rmtree(tmp_path / "split" / "checkpoints" / str(step))
    log = tmp_path / "split" / "metrics.jsonl"
    before = len(log.read_text().splitlines())
    again = train(cfg, tmp_path / "split", progress=False)
    assert again["step"] == 8
    resumed = [json.loads(line)["step"] for line in log.read_text().splitlines()[before:]]
    assert resumed and min(resumed) > 4  # it went on from step 4, not from 0
    for a, b in zip(_params(tmp_path / "whole"), _params(tmp_path / "split")):
        np.testing.assert_allclose(a, b, atol=1e-6)  # batches and steps are functions of (seed, step)
    logged = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_auc" in r and r["step"] == 8 for r in logged) and any("peak_hit" in r for r in logged)
    net = load_siamfc(tmp_path / "whole")  # best/ by validation AUC
    assert net.meta["kind"] == "siamfc" and net.exemplar_size == 63 and net.meta["step"] == 8
    frames, boxes = syn.generate(fake, 0, 2, 6, SMALL)  # the loaded checkpoint tracks
    pred, seconds = SiamFCTracker(net).track(list(frames), boxes[0])
    assert pred.shape == (6, 4) and np.all(np.isfinite(pred)) and seconds > 0
    np.testing.assert_allclose(pred[0], boxes[0])


def test_synthetic_source_draws_frames_of_the_specs(fake):  # noqa: F811
    src = SyntheticSequences(fake, seed=3, count=4, frames=10, frame_size=SMALL)
    assert len(src) == 4 and src.length(2) == 10
    spec = syn.make_spec(fake, 3, 2, num_frames=10, frame_size=SMALL)
    np.testing.assert_array_equal(src.box(2, 7), spec.boxes[7])
    np.testing.assert_array_equal(src.frame(2, 7), syn.render(spec, 7))
    with pytest.raises(ValueError, match="at least 1 synthetic sequence"):
        SyntheticSequences(fake, seed=0, count=0, frames=10, frame_size=SMALL)


PARALLEL_SCRIPT = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {repo!r})
from tests.test_siamfc_train import small_config
from siamjax.tracking.net import load_siamfc
from siamjax.tracking.train import train
folders = ({train!r}, {val!r})
out = {{}}
for devices, mode in ((1, "pmap"), (2, "shard_map")):  # the twin tests cover pmap over 8 devices
    wd = {root!r} + f"/{{devices}}-{{mode}}"
    r = train(small_config(folders, num_devices=devices, parallel=mode, train_steps=3, eval_every=3), wd,
              progress=False)
    out[f"{{devices}}:{{mode}}"] = {{"loss": r["loss"],
        "params": [np.asarray(x).ravel().tolist() for x in jax.tree_util.tree_leaves(load_siamfc(wd).variables)]}}
print(json.dumps(out))
"""


def test_two_devices_under_shard_map_match_one(folders, tmp_path):
    """Gradients, metrics and BatchNorm statistics are averaged over the devices: the global batch
    split over 2 simulated devices (jit + shard_map) trains the same weights as on 1 device (pmap)."""
    import pathlib
    import subprocess
    import sys

    repo = str(pathlib.Path(__file__).resolve().parents[1])
    code = PARALLEL_SCRIPT.format(repo=repo, train=str(folders[0]), val=str(folders[1]), root=str(tmp_path))
    env = subprocess_env(devices=2)
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    ref = out.pop("1:pmap")
    for name, r in out.items():
        assert abs(r["loss"] - ref["loss"]) < 1e-5, name
        for a, b in zip(r["params"], ref["params"]):
            np.testing.assert_allclose(a, b, atol=1e-4, err_msg=name)
