"""The committed one-shot checkpoint (pretrained/omniglot, configs/omniglot_oneshot.py): it loads with
siamjax.load, was trained on images_background only, fits the size limit and scores Lake-protocol tasks
on the evaluation alphabets (read in place from ../shared/data/omniglot)."""
import pathlib

import jax.numpy as jnp
import pytest

import siamjax
from siamjax import evaluate
from siamjax.data.omniglot import load_omniglot

REPO = pathlib.Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "pretrained" / "omniglot"
# Measured on 100 episodes (2000 questions, seed 0) of 20-way 1-shot within-alphabet tasks of the 20
# evaluation alphabets, without test-time shifts (README, "One-shot Omniglot"); the bound leaves room
# for float differences between machines (a few questions), not for a worse model.
MEASURED = 0.866
BOUND = 0.02


@pytest.fixture(scope="module")
def model():
    return siamjax.load(CHECKPOINT)


def test_checkpoint_is_small_and_trained_on_background_only(model):
    size = sum(p.stat().st_size for p in CHECKPOINT.rglob("*") if p.is_file())
    assert size <= 25 * 2**20, f"{size / 2**20:.1f} MiB"
    cfg = model.config
    assert cfg.data == "omniglot" and list(cfg.alphabets) == []  # all 30 background alphabets, minus validation
    assert cfg.loss == "proto" and cfg.rotate_classes and cfg.mirror_classes and model.preprocessing.size == 32
    assert model.meta["model"] == {"model": "conv4", "model_kwargs": {"width": 128}, "head": "cosine"}


def test_checkpoint_scores_lake_tasks_on_the_evaluation_alphabets(model, omniglot_dir):
    data = load_omniglot(omniglot_dir, "evaluation", model.preprocessing)
    assert data.num_classes == 659 and data.num_groups == 20
    emb = jnp.asarray(model.embed_preprocessed(data.images))
    eps = evaluate.make_episodes(data.labels, data.groups, data.instances, ways=20, shots=1, episodes=100,
                                 protocol="within", seed=0)
    r = evaluate.one_shot_accuracy(model.pairwise_jax, emb, eps)
    assert r["questions"] == 2000
    assert abs(r["accuracy"] - MEASURED) <= BOUND, r
