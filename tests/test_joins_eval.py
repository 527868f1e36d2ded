"""Tests at the joins (issue 49, item 8): K-shot scoring groups each class's K support images, and a
run resumed on several devices ends with the weights of a run never interrupted. Each check is also
run against a deliberately broken copy of the code, which it must catch."""
import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from siamjax.eval import episodes as evaluate
from tests.conftest import subprocess_env

REPO = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# 1. K-shot scoring (K > 1)


def _labels(classes=40, groups=2, drawers=8):
    """``classes`` classes in ``groups`` alphabets, one image per (class, drawer)."""
    labels = np.repeat(np.arange(classes), drawers)
    return labels, labels % groups, np.tile(np.arange(drawers), classes)


def _dot(a, b):
    return a @ b.T


def _check_perfect_k_shot(ways, shots, protocol):
    """One-hot class embeddings: with the K shots of each class grouped together every query is right."""
    labels, groups, inst = _labels()
    eps = evaluate.make_episodes(labels, groups, inst, ways=ways, shots=shots, episodes=30, protocol=protocol, seed=2)
    assert eps.support.shape == (30, ways, shots)
    onehot = np.eye(labels.max() + 1, dtype=np.float32)[labels]
    r = evaluate.one_shot_accuracy(_dot, onehot, eps)
    assert r["accuracy"] == 1.0 and r["ci95"] == 0.0, r
    assert r["questions"] == 30 * ways and r["ways"] == ways


def _check_mean_over_own_shots(ways, shots):
    """Random embeddings where one shot alone often points elsewhere: predictions equal an independent
    loop's argmax of the mean similarity over each class's own K shots (near-ties left out)."""
    labels, groups, inst = _labels()
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(len(labels), 16)).astype(np.float32)
    eps = evaluate.make_episodes(labels, groups, inst, ways=ways, shots=shots, episodes=30, protocol="across", seed=4)
    pred = np.asarray(evaluate.episode_predictions(_dot, jnp.asarray(emb), eps))
    e64 = emb.astype(np.float64)
    want = np.zeros_like(pred)
    margin = np.zeros(pred.shape)
    first = np.zeros_like(pred)  # what the first shot alone would pick
    for e in range(eps.query.shape[0]):
        for q in range(eps.query.shape[1]):
            scores = np.array([np.mean([e64[eps.query[e, q]] @ e64[eps.support[e, n, k]] for k in range(shots)])
                               for n in range(ways)])
            top2 = np.sort(scores)[-2:]
            want[e, q], margin[e, q] = scores.argmax(), top2[1] - top2[0]
            first[e, q] = np.argmax([e64[eps.query[e, q]] @ e64[eps.support[e, n, 0]] for n in range(ways)])
    clear = margin > 1e-3
    assert clear.mean() > 0.9 and (first != want)[clear].mean() > 0.2  # the check has teeth
    np.testing.assert_array_equal(pred[clear], want[clear])


@pytest.mark.parametrize("ways,shots,protocol", [(20, 5, "within"), (5, 5, "across"), (20, 5, "across")])
def test_perfect_scorer_at_five_shots(ways, shots, protocol):
    _check_perfect_k_shot(ways, shots, protocol)


@pytest.mark.parametrize("ways", [20, 5])
def test_k_shot_score_is_the_mean_over_the_class_own_shots(ways):
    _check_mean_over_own_shots(ways, 5)


def _broken_predictions(aggregate):
    """episode_predictions with the per-class aggregation of [E, Q, N*K] similarities replaced."""
    def episode_predictions(pairwise, embeddings, episodes):
        e, n, k = episodes.support.shape
        sup = embeddings[jnp.asarray(episodes.support.reshape(e, n * k))]
        qry = embeddings[jnp.asarray(episodes.query)]
        sims = jnp.einsum("eqd,emd->eqm", qry, sup)
        return jnp.argmax(aggregate(sims, e, qry.shape[1], n, k), axis=-1)
    return episode_predictions


MUTANTS = {
    # shots interleaved across classes: [.., K, N] read as [.., N, K]
    "wrong_reshape": lambda s, e, q, n, k: s.reshape(e, q, k, n).mean(-2),
    "first_shot_only": lambda s, e, q, n, k: s.reshape(e, q, n, k)[..., 0],
    "max_not_mean": lambda s, e, q, n, k: s.reshape(e, q, n, k).max(-1),
}
CORRECT = lambda s, e, q, n, k: s.reshape(e, q, n, k).mean(-1)  # noqa: E731


def test_the_broken_copy_is_faithful_when_not_broken(monkeypatch):
    monkeypatch.setattr(evaluate, "episode_predictions", _broken_predictions(CORRECT))
    _check_perfect_k_shot(20, 5, "within")
    _check_mean_over_own_shots(20, 5)


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_wrong_k_shot_aggregation_is_caught(monkeypatch, mutant):
    monkeypatch.setattr(evaluate, "episode_predictions", _broken_predictions(MUTANTS[mutant]))
    for ways in (20, 5):
        with pytest.raises(AssertionError):
            _check_mean_over_own_shots(ways, 5)
    if mutant == "wrong_reshape":  # mixes classes: the perfect scorer falls to chance or below
        for ways, protocol in [(20, "within"), (5, "across")]:
            with pytest.raises(AssertionError):
                _check_perfect_k_shot(ways, 5, protocol)


def test_support_shots_interleaved_across_classes_is_caught(monkeypatch):
    real = evaluate.make_episodes

    def interleaved(*args, **kwargs):
        eps = real(*args, **kwargs)
        e, n, k = eps.support.shape
        return evaluate.Episodes(eps.support.transpose(0, 2, 1).reshape(e, n, k), eps.query, eps.answer)

    monkeypatch.setattr(evaluate, "make_episodes", interleaved)
    for ways, protocol in [(20, "within"), (5, "across"), (20, "across")]:
        with pytest.raises(AssertionError):
            _check_perfect_k_shot(ways, 5, protocol)


# ---------------------------------------------------------------------------------------------
# 2. Resume on several devices ends where an uninterrupted run ends

DEVICES = 4
# Run in a fresh process with DEVICES simulated CPU devices: argv = OMNIGLOT_DIR ROOT.
# An uninterrupted 8-step run, then the same run stopped after step 4 (the stop the multi-process
# preemption notifier triggers, at an exact step) and rerun to step 8 in the same workdir.
# Then the same stopped run resumed by a broken copy of the code ("reset_optimizer": the resume
# restores the weights but starts the optimizer state afresh). Prints one JSON line per variant.
RESUME_SCRIPT = r'''
import json, pathlib, shutil, sys
import jax, numpy as np
from siamjax import checkpoint as ckpt_lib
import siamjax.train as train_lib
from siamjax.train import distributed, resume
from siamjax.train.metric_writer import read_metrics
from tests.test_train import small_config

omniglot, root = sys.argv[1:]
root = pathlib.Path(root)
assert jax.local_device_count() == %d, jax.local_devices()

def config():
    return small_config(omniglot, optim=dict(train_steps=8), eval=dict(eval_every=8), data=dict(batch_size=32),
                        parallel=dict(num_devices=%d, mode="shard_map"), checkpoint_every=8)

def final(workdir):
    cfg = config()
    step_dir = ckpt_lib.resolve_checkpoint(workdir / "checkpoints")
    twin = train_lib.twin_from_config(cfg)
    shapes = jax.eval_shape(lambda k: twin.init(k, (28, 28, 1)), jax.random.key(0))
    leaves = jax.tree_util.tree_leaves(ckpt_lib.read_variables(step_dir, shapes))
    return ckpt_lib.read_meta(step_dir)["step"], [np.asarray(x) for x in leaves]

train_lib.train(config(), root / "full", progress=False)

class StopAfter4:  # what PreemptionSync reports when a preemption notice arrives at step 4
    def reached(self, step):
        return step == 4

real_sync = distributed.PreemptionSync
distributed.PreemptionSync = StopAfter4
first = train_lib.train(config(), root / "none", progress=False)
distributed.PreemptionSync = real_sync
shutil.copytree(root / "none", root / "reset_optimizer")  # the same stopped run, resumed by the mutant
s_full, full = final(root / "full")
loss = lambda w: {r["step"]: r["loss"] for r in read_metrics(w) if "loss" in r}
out = {}
real_with = resume.with_train_items
for variant in ("none", "reset_optimizer"):
    if variant == "reset_optimizer":
        resume.with_train_items = lambda state, variables, items: real_with(
            state, variables, {**items, "opt_state": state.opt_state})
    train_lib.train(config(), root / variant, progress=False)
    s_res, res = final(root / variant)
    out[variant] = {"stopped": first["step"], "preempted": bool(first.get("preempted")),
                    "steps": [s_full, s_res], "loss_steps": [r["step"] for r in read_metrics(root / variant) if "loss" in r],
                    "loss_diff": max(abs(loss(root / "full")[s] - loss(root / variant)[s]) for s in range(1, 9)),
                    "param_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(full, res)),
                    "param_scale": max(float(np.max(np.abs(a))) for a in full)}
print(json.dumps(out))
''' % (DEVICES, DEVICES)


def _resume_runs(omniglot_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(omniglot_dir), str(tmp_path)],
                          cwd=REPO, env=subprocess_env(devices=DEVICES, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_resume_matches(out):
    assert out["stopped"] == 4 and out["preempted"], out
    assert out["steps"] == [8, 8] and out["loss_steps"] == list(range(1, 9)), out
    assert out["loss_diff"] <= 1e-6, out
    assert out["param_diff"] <= 1e-6 * max(out["param_scale"], 1.0), out


def test_resume_on_several_devices_matches_an_uninterrupted_run(omniglot_dir, tmp_path):
    out = _resume_runs(omniglot_dir, tmp_path)
    _check_resume_matches(out["none"])
    with pytest.raises(AssertionError):  # a resume that loses the optimizer state is caught
        _check_resume_matches(out["reset_optimizer"])
