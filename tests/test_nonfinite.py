"""Diverged weights are never saved or loaded: a run stops at the first step whose parameters,
gradients, loss or validation numbers are not finite, before validating or saving it; CheckpointIO.save
refuses non-finite weights; siamjax.load refuses a checkpoint that holds some (issue 49)."""
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import siamjax
import siamjax.train as train_lib
from siamjax import checkpoint as ckpt_lib
from siamjax.train import trainer
from tests.test_train import small_config


def _step_dirs(workdir: pathlib.Path) -> list[pathlib.Path]:
    return [p for sub in (ckpt_lib.LATEST, ckpt_lib.BEST) if (workdir / sub).is_dir()
            for p in sorted((workdir / sub).iterdir()) if p.name.isdigit()]


def _all_finite(step_dir: pathlib.Path) -> bool:
    """Read with Orbax directly (not through the checks under test)."""
    v = ocp.StandardCheckpointer().restore(step_dir.resolve() / "variables")
    return all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(v))


@pytest.mark.parametrize("log_every,checkpoint_every", [(1, 1), (100, 2)])
def test_a_huge_learning_rate_stops_before_any_nonfinite_weights_are_saved(omniglot_dir, tmp_path, log_every,
                                                                           checkpoint_every):
    """learning_rate=1e30: the weights turn NaN while the triplet loss stays finite (0.0), so a check of the
    loss alone never fired. The run stops at the first bad step (seen at the next log, or at the next save
    when logging is rare), names it and the last good checkpoint, and every checkpoint left in the
    workdir holds finite weights, all of them from before the bad step."""
    cfg = small_config(omniglot_dir, optim=dict(learning_rate=1e30, train_steps=12, warmup_steps=1),
                       eval=dict(eval_every=100), checkpoint_every=checkpoint_every, log_every=log_every)
    with pytest.raises(FloatingPointError) as err:
        train_lib.train(cfg, tmp_path, progress=False)
    message = str(err.value)
    m = re.match(r"the weights or gradients became non-finite at step (\d+) \(the loss was still [-+0-9.e]+\); "
                 r"training stopped before saving anything from that step: the last good checkpoint \(step (\d+)\) "
                 r"is kept in .*Lower the learning rate", message)
    assert m, message
    bad_step, kept = int(m.group(1)), int(m.group(2))
    dirs = _step_dirs(tmp_path)
    assert dirs and all(_all_finite(d) for d in dirs), dirs
    assert all(int(d.name) < bad_step for d in dirs), (bad_step, dirs)
    io = ckpt_lib.CheckpointIO(tmp_path)
    try:
        assert io.latest_step() == kept
    finally:
        io.close()


def test_nonfinite_validation_stops_before_saving(omniglot_dir, tmp_path, monkeypatch):
    original = trainer.make_validator

    def broken(*args, **kwargs):
        validate = original(*args, **kwargs)
        return lambda variables: {**validate(variables), "val_accuracy": float("nan")}

    monkeypatch.setattr(trainer, "make_validator", broken)
    cfg = small_config(omniglot_dir, optim=dict(train_steps=6), eval=dict(eval_every=4), checkpoint_every=2,
                       log_every=100)
    with pytest.raises(FloatingPointError, match=r"validation at step 4 gave val_accuracy=nan; .*last good "
                                                 r"checkpoint \(step 2\) is kept"):
        train_lib.train(cfg, tmp_path, progress=False)
    assert [int(d.name) for d in _step_dirs(tmp_path)] == [2]


def _variables(value):
    return {"params": {"conv": {"kernel": np.full((3, 3), value, np.float32), "bias": np.zeros(3, np.float32)}},
            "batch_stats": {"bn": {"count": np.arange(3, dtype=np.int32)}}}


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_checkpoint_io_refuses_to_save_nonfinite_weights(tmp_path, value):
    io = ckpt_lib.CheckpointIO(tmp_path)
    try:
        io.save(1, _variables(1.0), {"step": np.int32(1)}, {"step": 1}, force=True)
        with pytest.raises(FloatingPointError, match=r"step 3: .*params/conv/kernel"):
            io.save(3, _variables(value), {"step": np.int32(3)}, {"step": 3}, metrics={"val_accuracy": 0.5},
                    force=True)
        io.wait()
        assert io.latest.all_steps() == [1] and io.best.all_steps() == []
    finally:
        io.close()
    assert not (tmp_path / ckpt_lib.LATEST / "3").exists() and not (tmp_path / ckpt_lib.BEST / "3").exists()


def _nan_step_folder(omniglot_dir, root: pathlib.Path) -> pathlib.Path:
    """A step folder as training writes it, but with NaN weights, written with Orbax directly."""
    cfg = small_config(omniglot_dir)
    spec = train_lib.preprocessing_from_config(cfg)
    twin = train_lib.twin_from_config(cfg)
    variables = twin.init(jax.random.key(0), (spec.size, spec.size, spec.channels))
    variables = jax.tree_util.tree_map(lambda x: jnp.full_like(x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating)
                                       else x, variables)
    step_dir = root / ckpt_lib.BEST / "7"
    step_dir.mkdir(parents=True)
    writer = ocp.StandardCheckpointer()
    writer.save(step_dir.resolve() / "variables", variables)
    writer.wait_until_finished()
    ocp.Checkpointer(ocp.JsonCheckpointHandler()).save(step_dir.resolve() / "meta",
                                                       {**train_lib.model_meta(cfg, spec), "step": 7, "metrics": {}})
    return step_dir


def test_loading_nonfinite_weights_is_refused_in_one_line(omniglot_dir, tmp_path):
    step_dir = _nan_step_folder(omniglot_dir, tmp_path)
    for path in (step_dir, tmp_path):  # the step folder, or the workdir that holds it
        with pytest.raises(ValueError, match=r"not finite") as err:
            siamjax.load(path)
        message = str(err.value)
        assert "\n" not in message and str(step_dir.resolve()) in message and "allow_nonfinite=True" in message
    model = siamjax.load(step_dir, allow_nonfinite=True)  # asked for explicitly: read as they are
    assert np.isnan(np.asarray(jax.tree_util.tree_leaves(model.variables["params"])[0])).all()
