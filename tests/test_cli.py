"""The installed commands' front: siamjax-eval's subcommands, --config short names and variants, the
one flag style, and small API promises (writable pairwise, members, clear errors)."""
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import siamjax
from siamjax.cli import eval as eval_cli
from siamjax.cli.config_flags import config_names, resolve_config, resolve_config_argv

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_eval_help_lists_every_subcommand(capsys):
    assert eval_cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for sub in ("oneshot", "pairs", "calibrate", "verify", "enrol", "identify", "track"):
        assert f"\n  {sub} " in out
    assert eval_cli.main(["nonsense"]) == 2
    assert "unknown subcommand 'nonsense'" in capsys.readouterr().err


def test_eval_oneshot_subcommand_and_default_take_the_same_flags():
    for argv in (["eval.py", "oneshot", "--helpshort"], ["eval.py", "--helpshort"]):
        proc = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "--checkpoint" in proc.stdout and "--tasks" in proc.stdout


def test_config_short_names_variants_and_clear_errors(tmp_path):
    names = config_names()
    assert {"omniglot", "att_faces", "signatures", "folder", "siamfc"} <= set(names) and "common" not in names
    path, _, variant = resolve_config("omniglot:moments64").partition(":")
    assert pathlib.Path(path).name == "omniglot.py" and variant == "moments64"
    assert resolve_config_argv(["x", "--config", "att_faces"])[2].endswith("att_faces.py")
    mine = tmp_path / "mine.py"
    mine.write_text("")
    assert resolve_config(f"{mine}:v") == f"{mine}:v"  # a file is taken as it is
    with pytest.raises(ValueError, match="no installed config 'omniglott'.*omniglot"):
        resolve_config("omniglott")
    with pytest.raises(ValueError, match="no config file missing.py"):
        resolve_config("missing.py")


def test_train_refuses_an_unknown_config_name_in_one_line():
    proc = subprocess.run([sys.executable, "train.py", "--config=nope", "--workdir=/tmp/never"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no installed config 'nope'" in proc.stderr


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.test_gallery import write_checkpoint
    return siamjax.load(write_checkpoint(tmp_path_factory.mktemp("cli") / "m"))


def test_pairwise_is_writable_and_a_model_lists_itself_as_its_member(model):
    e = np.random.default_rng(0).normal(size=(3, model.embed_dim)).astype(np.float32)
    sim = model.pairwise(e, e)
    sim[0, 0] = 5.0  # a NumPy array the caller owns
    assert model.members == [model]


def test_embed_views_needs_a_view_axis(model):
    s = model.preprocessing
    x = jnp.zeros((2, s.size, s.size, s.channels))
    with pytest.raises(ValueError, match=r"\[V, N, H, W, C\]"):
        model.twin.embed_views(model.variables, x)
    emb, _ = model.twin.embed_views(model.variables, x[None], train=False)
    assert emb.shape[:2] == (1, 2)


def test_load_names_the_loader_of_a_tracker_checkpoint():
    with pytest.raises(ValueError, match="load_siamfc"):
        siamjax.load(REPO / "pretrained" / "siamfc")


def test_pmap_batches_are_placed_on_the_devices_before_the_step():
    from siamjax.train import parallel

    devices = jax.local_devices()
    runner = parallel.make_runner(lambda s, b: (s, {}), "pmap", devices)
    placed = runner.put_batch({"x": np.zeros((2 * len(devices), 3), np.float32)})
    assert isinstance(placed["x"], jax.Array) and placed["x"].shape == (len(devices), 2, 3)
    assert set(placed["x"].sharding.device_set) == set(devices)


def test_model_and_ensemble_share_one_interface(model, tmp_path):
    from siamjax.infer import Embedder
    from siamjax.infer.build_ensemble import write_ensemble

    ens = siamjax.load(write_ensemble(tmp_path / "ens", [model.path, model.path], names=["a", "b"]))
    for m in (model, ens):
        assert isinstance(m, Embedder)
    assert len(ens.members) == 2 and ens.embed_dim == 2 * model.embed_dim


def test_a_truncated_weight_file_is_one_clear_error(model, tmp_path):
    import shutil

    step = tmp_path / "step"
    shutil.copytree(model.path, step)
    data = max((p for p in (step / "variables").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(ValueError, match="the weights cannot be read .*damaged or incomplete") as error:
        siamjax.load(step)
    assert len(str(error.value).splitlines()) == 1
    proc = subprocess.run([sys.executable, "eval.py", "--checkpoint", str(step)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "damaged or incomplete" in proc.stderr


def test_an_empty_batch_embeds_to_zero_rows_of_the_full_width(model):
    s = model.preprocessing
    e = model.embed_preprocessed(np.zeros((0, s.size, s.size, s.channels), np.uint8))
    assert e.shape == (0, model.embed_dim) and e.dtype == np.float32


def test_episodes_must_be_positive():
    proc = subprocess.run([sys.executable, "eval.py", "--checkpoint", "x", "--episodes", "0"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "--episodes=0" in proc.stderr and "Traceback" not in proc.stderr
