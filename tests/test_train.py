"""End to end on a slice of the real Omniglot zip: training lowers the loss, checkpoints round-trip,
training resumes, and eval.py reports the right accuracy for models known to be perfect or wrong."""
import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

import siamjax
from configs import omniglot as omniglot_config
from siamjax import checkpoint as ckpt_lib
import siamjax.train as train_lib
from siamjax.train.metric_writer import read_metrics

REPO = pathlib.Path(__file__).resolve().parents[1]
ALPHABETS = ("Alphabet_of_the_Magi", "Anglo-Saxon_Futhorc", "Arcadian", "Armenian")


def small_config(omniglot_dir, **overrides):
    c = omniglot_config.get_config()
    c.data.dir = str(omniglot_dir)
    c.data.alphabets = ALPHABETS
    c.data.val_alphabets = ("Armenian",)
    c.eval.val_ways = 5
    c.eval.val_episodes = 10
    c.data.batch_size = 32
    c.optim.train_steps = 40
    c.optim.warmup_steps = 5
    c.log_every = 1
    c.eval.eval_every = 20
    c.checkpoint_every = 20
    c.data.image_size = 28
    c.update(overrides)
    return c


def _losses(workdir):
    return [r["loss"] for r in read_metrics(workdir) if "loss" in r]


# Koch's BCE learns slower than the others, so it runs twice the steps, on a conv-4 half as wide
# (32 channels: the slowest case of this test, and the width only sets its cost).
@pytest.mark.parametrize("loss,head,steps,drop,width", [
    ("triplet", "cosine", 40, 0.8, 64), ("contrastive", "euclidean", 40, 0.8, 64), ("bce", "koch", 80, 0.85, 32),
    ("proto", "cosine", 40, 0.8, 64)])
def test_training_lowers_the_loss(omniglot_dir, tmp_path, loss, head, steps, drop, width):
    over = dict(loss=dict(name=loss), model=dict(head=head), optim=dict(learning_rate=3e-3, train_steps=steps),
                eval=dict(eval_every=steps // 2), checkpoint_every=steps // 2)
    if loss == "triplet":
        over["loss"].update(mining="all", triplet_reduction="mean")  # avg_nonzero hides progress: easy triplets drop out
    if loss == "proto":  # with quarter turns and mirror images as classes, from two alphabets (x symmetry) per batch
        over["data"] = dict(rotate_classes=True, mirror_classes=True, groups_per_batch=2)
    cfg = small_config(omniglot_dir, **over)
    cfg.model.kwargs.width = width
    result = train_lib.train(cfg, tmp_path, progress=False)
    losses = _losses(tmp_path)
    assert len(losses) == steps and all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < drop * np.mean(losses[:5]), losses
    assert 0.0 <= result["val_accuracy"] <= 1.0
    assert (tmp_path / "metrics.jsonl").is_file() and list((tmp_path / "tb").glob("events*"))
    assert ckpt_lib.resolve_checkpoint(tmp_path).parent.name == "best"


def test_resume_continues_from_the_latest_checkpoint(omniglot_dir, tmp_path):
    cfg = small_config(omniglot_dir, optim=dict(train_steps=20), eval=dict(eval_every=10), checkpoint_every=10)
    train_lib.train(cfg, tmp_path, progress=False)
    first = read_metrics(tmp_path)
    cfg.optim.train_steps = 30
    train_lib.train(cfg, tmp_path, progress=False)
    steps = [r["step"] for r in read_metrics(tmp_path)[len(first):] if "loss" in r]
    assert steps == list(range(21, 31))  # picked up at step 20, not from scratch
    assert ckpt_lib.CheckpointIO(tmp_path).latest_step() == 30
    cfg.model.name = "resnet"
    with pytest.raises(ValueError, match="model.name='conv4'.*new --workdir"):
        train_lib.train(cfg, tmp_path, progress=False)


def test_bad_configs_fail_before_work(omniglot_dir, tmp_path):
    with pytest.raises(ValueError, match="koch' head has none"):
        train_lib.train(small_config(omniglot_dir, loss=dict(name="contrastive"), model=dict(head="koch")), tmp_path)
    with pytest.raises(ValueError, match="multiple of"):
        train_lib.train(small_config(omniglot_dir, data=dict(batch_size=30, images_per_class=4)), tmp_path)
    with pytest.raises(ValueError, match="must be even"):
        train_lib.train(small_config(omniglot_dir, loss=dict(name="bce"), model=dict(head="koch"), data=dict(batch_size=31)), tmp_path)


def save_fresh_checkpoint(workdir, cfg):
    """A randomly initialised model saved exactly as train() saves one."""
    spec = train_lib.preprocessing_from_config(cfg)
    twin = train_lib.twin_from_config(cfg)
    state = train_lib.create_state(twin, cfg, spec)
    io = ckpt_lib.CheckpointIO(workdir)
    io.save(1, train_lib.state_variables(state), train_lib.train_items(state),
            {**train_lib.model_meta(cfg, spec), "step": 1}, metrics={"val_accuracy": 0.5})
    io.wait()
    io.close()
    return twin, train_lib.state_variables(state), spec


def test_checkpoint_round_trip_gives_identical_scores(omniglot_dir, tmp_path):
    cfg = small_config(omniglot_dir)
    twin, variables, spec = save_fresh_checkpoint(tmp_path, cfg)
    model = siamjax.load(tmp_path)
    rng = np.random.default_rng(0)
    raw = [rng.random((105, 105)) > 0.5 for _ in range(6)]  # bool images, as PIL opens Omniglot PNGs
    x = siamjax.data.preprocess.to_float(model.preprocess(raw), spec)
    jax.tree.map(np.testing.assert_array_equal, model.variables, variables)  # the weights: bit for bit
    # The scores: the same up to the rounding of two differently compiled programs (a few float32 ulps).
    want = twin.pair_scores(variables, x[:3], x[3:]).similarity
    np.testing.assert_allclose(model.score(raw[:3], raw[3:]), np.asarray(want), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.embed(raw), np.asarray(twin.embed(variables, x)), rtol=1e-6, atol=1e-6)
    assert model.meta["preprocessing"]["size"] == 28 and model.meta["model"]["model"] == "conv4"


def test_api_accepts_mixed_raw_images(omniglot_dir, tmp_path):
    cfg = small_config(omniglot_dir)
    save_fresh_checkpoint(tmp_path, cfg)
    model = siamjax.load(tmp_path)
    rng = np.random.default_rng(1)
    imgs = [rng.random((105, 105)) > 0.5, (rng.random((60, 80)) * 255).astype(np.uint8),
            (rng.random((50, 40, 3)) * 255).astype(np.uint8)]
    emb = model.embed(imgs)
    assert emb.shape == (3, 64) and emb.dtype == np.float32
    stacked = model.embed(np.stack([imgs[0]] * 2))
    np.testing.assert_allclose(stacked[0], emb[0], rtol=1e-5, atol=1e-6)
    s = model.score(imgs[:2], imgs[1:])
    assert s.shape == (2,)
    np.testing.assert_allclose(model.score(imgs[1:], imgs[:2]), s, rtol=1e-5, atol=1e-6)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        siamjax.load(tmp_path / "empty")


def _write_lake_runs(root, wrong):
    """Two runs whose test items are copies of Omniglot-like training images, labels right or shifted."""
    rng = np.random.default_rng(0)
    for r in (1, 2):
        run = root / f"run{r:02d}"
        (run / "training").mkdir(parents=True)
        (run / "test").mkdir()
        imgs = rng.random((20, 105, 105)) > 0.2
        lines = []
        for c in range(20):
            Image.fromarray(imgs[c]).save(run / "training" / f"class{c + 1:02d}.png")
        for i, c in enumerate(rng.permutation(20)):
            Image.fromarray(imgs[c]).save(run / "test" / f"item{i + 1:02d}.png")
            lines.append(f"run{r:02d}/test/item{i + 1:02d}.png run{r:02d}/training/class{(c + wrong) % 20 + 1:02d}.png")
        (run / "class_labels.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("wrong,error", [(0, 0.0), (1, 100.0)])
def test_eval_cli_on_lake_runs(omniglot_dir, tmp_path, wrong, error):
    save_fresh_checkpoint(tmp_path / "ckpt", small_config(omniglot_dir))
    _write_lake_runs(tmp_path / "runs", wrong)
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "eval.py", "--checkpoint", str(tmp_path / "ckpt"),
                           "--lake_runs", str(tmp_path / "runs"), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())["lake_runs"]
    assert r["error"] == error and r["runs"] == 2 and r["questions"] == 40
    assert f"mean error {error:.2f}%" in proc.stdout


def test_eval_cli_tasks_match_in_process_accuracy(omniglot_dir, tmp_path):
    """eval.py on real images gives exactly the accuracy computed here from the same weights, the
    same preprocessing (applied once) and the same episodes."""
    import jax.numpy as jnp

    from siamjax.eval import episodes as evaluate
    from siamjax.data.omniglot import load_omniglot
    from siamjax.data.preprocess import to_float

    cfg = small_config(omniglot_dir)
    twin, variables, spec = save_fresh_checkpoint(tmp_path / "ckpt", cfg)
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "eval.py", "--checkpoint", str(tmp_path / "ckpt"), "--data_dir",
                           str(omniglot_dir), "--split", "background", "--alphabets", "Armenian",
                           "--tasks", "within:5:1,across:5:2", "--episodes", "30", "--seed", "4", "--out", str(out),
                           "--grid", str(tmp_path / "grid.png"), "--knn", "1,3"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(out.read_text())["tasks"]
    data = load_omniglot(omniglot_dir, "background", spec, alphabets=["Armenian"])
    emb = twin.embed(variables, to_float(data.images, spec))
    for r, (protocol, ways, shots) in zip(got, [("within", 5, 1), ("across", 5, 2)]):
        eps = evaluate.make_episodes(data.labels, data.groups, data.instances, ways, shots, 30, protocol, seed=4)
        want = evaluate.one_shot_accuracy(lambda a, b: twin.pairwise(variables, a, b), jnp.asarray(emb), eps)
        assert r["accuracy"] == pytest.approx(want["accuracy"]) and r["questions"] == 150
    knn = evaluate.knn_accuracy(lambda a, b: twin.pairwise(variables, a, b), jnp.asarray(emb), data.labels, (1, 3))
    for k in (1, 3):
        assert json.loads(out.read_text())["knn"][str(k)]["accuracy"] == pytest.approx(knn[k]["accuracy"])
        assert f"{k}-NN over all {len(data)} images" in proc.stdout
    assert "5-way 1-shot within-alphabet: accuracy" in proc.stdout
    assert f"task picture: {tmp_path / 'grid.png'}" in proc.stdout
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_configurable_loss_has_one_entry_in_the_step_registry():
    from siamjax.train import step as step_lib

    assert set(step_lib.LOSS_TERMS) == set(train_lib.LOSSES)
    assert set(step_lib.EMBEDDING_LOSSES) == set(train_lib.PK_LOSSES)
    assert set(step_lib.PAIR_LOSSES) == set(train_lib.PAIR_LOSSES)
