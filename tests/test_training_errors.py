"""Bad settings and failures during training: one clear message, before any work where possible, and
nothing already in the workdir lost (unknown or mistyped config keys, a split too small for its tasks,
a read-only or full disk, a loss that turns NaN)."""
import errno
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import pytest

import siamjax.train as train_lib
from siamjax import checkpoint as ckpt_lib
from siamjax.train import trainer
from siamjax.train import workdir as workdir_check
from siamjax.train.schema import ConfigError
from tests.test_train import small_config

REPO = pathlib.Path(__file__).resolve().parents[1]


def _files(root: pathlib.Path) -> dict:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _with(cfg, **values):
    """A copy of ``cfg`` with ``values`` set regardless of ConfigDict's type safety (as a config file can);
    a dict value sets keys of that group."""
    d = cfg.to_dict()
    for key, value in values.items():
        d[key] = {**d[key], **value} if isinstance(value, dict) else value
    return ml_collections.ConfigDict(d)


def test_unknown_key_and_wrong_type_in_a_config(omniglot_dir, tmp_path):
    cfg = small_config(omniglot_dir)
    cfg.optim.learing_rate = 0.1
    with pytest.raises(ConfigError, match=r"unknown config key config.optim.learing_rate \(did you mean "
                                          r"'optim.learning_rate'"):
        train_lib.train(cfg, tmp_path / "w")
    cfg = small_config(omniglot_dir)
    cfg.learing_rate = 0.1  # a key of a group, given at the top level: the closest dotted names
    with pytest.raises(ConfigError, match=r"unknown config key config.learing_rate \(did you mean 'optim.learning_rate'"):
        train_lib.check_config(cfg)
    cfg = small_config(omniglot_dir)
    cfg.learning_rate = 0.1  # an old flat key: its name now
    with pytest.raises(ConfigError, match=r"config.learning_rate is config.optim.learning_rate now"):
        train_lib.check_config(cfg)
    cfg = small_config(omniglot_dir)
    cfg.augment.prb = 0.5
    with pytest.raises(ConfigError, match=r"config.augment.prb \(did you mean 'augment.prob'"):
        train_lib.check_config(cfg)
    cfg = _with(small_config(omniglot_dir), data=dict(val_alphabets="Armenian"))  # a string where names are meant
    with pytest.raises(ConfigError, match=r"val_alphabets='Armenian' has type str; expected tuple or list "
                                          r"\(a tuple of names"):
        train_lib.check_config(cfg)
    cfg = _with(small_config(omniglot_dir), data=dict(batch_size=True))
    with pytest.raises(ConfigError, match="batch_size=True has type bool; expected int"):
        train_lib.check_config(cfg)
    assert not (tmp_path / "w").exists()  # nothing was created


def _run_train(args, tmp_path):
    return subprocess.run([sys.executable, str(REPO / "train.py"), "--workdir", str(tmp_path / "w"),
                           "--config", str(REPO / "configs" / "omniglot.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_cli_unknown_override_and_bad_value_one_line(tmp_path):
    r = _run_train(["--config.optim.learing_rate=0.1"], tmp_path)
    assert r.returncode != 0
    assert "unknown config key --config.optim.learing_rate (did you mean 'optim.learning_rate'?)" in r.stderr
    assert "Traceback" not in r.stderr
    # an old flat key, and one that names a group now: one line naming the new key
    for old, new in (("learning_rate=0.1", "optim.learning_rate"), ("data=folder", "data.source"),
                     ("model_kwargs.width=8", "model.kwargs.width")):
        r = _run_train([f"--config.{old}"], tmp_path)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        line = f"error: --config.{old.split('=')[0]} is --config.{new} now"
        assert line in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _run_train(["--config.augment.prob=often"], tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--config.augment.prob=often: could not convert string to float: 'often'" in r.stderr
    assert not (tmp_path / "w").exists()


def test_cli_missing_data_is_one_line_and_keeps_the_workdir(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "notes.txt").write_text("mine")
    r = _run_train([f"--config.data.dir={tmp_path / 'nowhere'}"], tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "error: FileNotFoundError: Omniglot path" in r.stderr and "does not exist" in r.stderr
    assert (tmp_path / "w" / "notes.txt").read_text() == "mine"


def test_split_too_small_for_validation_tasks(omniglot_dir, tmp_path):
    cfg = small_config(omniglot_dir, eval=dict(val_ways=60))  # Armenian has 41 characters
    with pytest.raises(ValueError, match=r"validation split \(41 classes in 1 group.*lower config.eval.val_ways"):
        train_lib.train(cfg, tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_read_only_workdir_fails_before_training(omniglot_dir, tmp_path, monkeypatch):
    work = tmp_path / "w"
    work.mkdir()
    (work / "keep.txt").write_text("precious")
    work.chmod(0o555)
    try:
        if os.access(work, os.W_OK):  # root ignores permissions: make the probe meet a read-only disk
            def read_only(path):
                raise OSError(errno.EROFS, "Read-only file system", str(path))

            monkeypatch.setattr(workdir_check, "_probe", read_only)
        monkeypatch.setattr(train_lib, "load_data", lambda cfg: pytest.fail("data read before the workdir check"))
        with pytest.raises(workdir_check.WorkdirError, match=rf"cannot write to the workdir {work}: "
                                                             r"(the filesystem is read-only|permission denied)"):
            train_lib.train(small_config(omniglot_dir), work)
    finally:
        work.chmod(0o755)
    assert _files(work) == {pathlib.Path("keep.txt"): b"precious"}


def test_full_disk_fails_before_training(omniglot_dir, tmp_path, monkeypatch):
    work = tmp_path / "w"
    work.mkdir()
    (work / "keep.txt").write_text("precious")
    usage = workdir_check.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(workdir_check.shutil, "disk_usage", lambda p: usage._replace(free=8 << 20))
    with pytest.raises(workdir_check.WorkdirError, match=r"has 8 MiB free but the run needs about \d+ MiB"):
        train_lib.train(small_config(omniglot_dir), work)
    assert _files(work) == {pathlib.Path("keep.txt"): b"precious"}


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(omniglot_dir, tmp_path, monkeypatch):
    """The loss turns NaN at step 7; checkpoints every 5 steps, logging only every 100: the run stops
    at the step-10 save, names step 7, writes no checkpoint after step 5, and step 5 still restores."""
    original = train_lib.make_train_step

    def poisoned(*args, **kwargs):
        step_fn = original(*args, **kwargs)

        def step(state, batch):
            new, metrics = step_fn(state, batch)
            bad = new.step >= 7
            metrics = dict(metrics, loss=jnp.where(bad, jnp.nan, metrics["loss"]))
            new = new.replace(params=jax.tree.map(lambda p: jnp.where(bad, jnp.nan, p), new.params))
            return new, metrics

        return step

    monkeypatch.setattr(trainer, "make_train_step", poisoned)
    cfg = small_config(omniglot_dir, optim=dict(train_steps=20), eval=dict(eval_every=100), checkpoint_every=5, log_every=100)
    with pytest.raises(FloatingPointError, match=r"the loss became nan at step 7; .*last good checkpoint "
                                                 r"\(step 5\) is kept"):
        train_lib.train(cfg, tmp_path, progress=False)
    io = ckpt_lib.CheckpointIO(tmp_path)
    try:
        assert io.latest_step() == 5
    finally:
        io.close()
    monkeypatch.setattr(trainer, "make_train_step", original)
    result = train_lib.train(small_config(omniglot_dir, optim=dict(train_steps=6), eval=dict(eval_every=100), checkpoint_every=5, log_every=100), tmp_path, progress=False)
    assert result["step"] == 6 and result["loss"] == result["loss"]  # resumed from step 5, finite


@pytest.mark.parametrize("values, message", [
    ({"data": {"image_size": 8}, "model": {"kwargs": {"blocks": 4}}}, r"config.data.image_size=8 leaves conv4's embedding empty"),
    ({"data": {"image_size": 28}, "model": {"name": "koch", "head": "koch"}, "loss": {"name": "bce"}},
     r"config.model.name='koch' cannot take config.data.image_size=28"),
    ({"data": {"images_per_class": 1, "batch_size": 32}}, r"config.data.images_per_class=1: .*K >= 2"),
    ({"optim": {"learning_rate": -1e-3}}, r"config.optim.learning_rate=-0.001: give a finite number > 0"),
    ({"optim": {"learning_rate": float("nan")}}, r"config.optim.learning_rate=nan"),
    ({"keep_latest": 0}, r"config.keep_latest=0: keep at least 1"),
    ({"keep_latest": -1}, r"config.keep_latest=-1: keep at least 1"),
    ({"keep_best": 0}, r"config.keep_best=0: keep at least 1"),
])
def test_degenerate_settings_are_refused_in_one_line_before_any_work(omniglot_dir, tmp_path, values, message):
    cfg = _with(small_config(omniglot_dir), **values)
    with pytest.raises(ValueError, match=message):
        train_lib.train(cfg, tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").rglob("*.jsonl"))  # nothing started


def test_the_embedding_width_check_accepts_the_shipped_configs():
    from siamjax.configs import omniglot

    assert train_lib.check_embedding_shape(omniglot.get_config()) == 64  # 28 px: 1 x 1 x 64
