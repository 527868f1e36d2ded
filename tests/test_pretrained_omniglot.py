"""The committed one-shot models (pretrained/omniglot, an ensemble whose members ensemble.json lists, and
pretrained/omniglot_distilled, one network distilled from it):
it loads with siamjax.load, every member was trained on images_background only, it fits the size limit,
its stored transforms fit its members, and it scores Lake-protocol tasks on the evaluation alphabets
(read in place from ../shared/data/omniglot). How the members were chosen: experiments/omniglot/."""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import siamjax
from siamjax.eval import episodes as evaluate
from siamjax.data.omniglot import alphabet_names, load_omniglot
from siamjax.infer.ensemble import Ensemble

REPO = pathlib.Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "pretrained" / "omniglot"
# Measured on 25 episodes (500 questions, seed 0) of 20-way 1-shot within-alphabet tasks of the 20
# evaluation alphabets, without test-time shifts: `python eval.py --checkpoint pretrained/omniglot
# --tasks within:20:1 --episodes 25`. The test asks for at least MEASURED - MARGIN: the margin leaves room
# for float differences between machines (a few questions), not for a worse model; a better model passes.
# (The README's figures use 400 episodes; 25 keep the test short.)
EPISODES = 25
MEASURED = 0.8940  # round 32 (rounds 20 and 23 with the pooled blocks: 0.8900; round 18 without them: 0.8940)
MARGIN = 0.02
DISTILLED = REPO / "pretrained" / "omniglot_distilled"
DISTILLED_MEASURED = 0.9000  # the same 25 episodes; 91.99% on the README's 400 (experiments/omniglot/README.md)


@pytest.fixture(scope="module")
def model():
    return siamjax.load(CHECKPOINT)


def test_the_distilled_network_is_one_small_model_trained_on_background_only(omniglot_dir):
    one = siamjax.load(DISTILLED)
    assert not isinstance(one, Ensemble) and one.members == [one]
    assert sum(p.stat().st_size for p in DISTILLED.rglob("*") if p.is_file()) <= 5 * 2**20
    cfg = one.config
    background = set(alphabet_names(omniglot_dir, "background"))
    assert cfg.data.source == "omniglot" and set(cfg.data.val_alphabets) <= background and not cfg.data.alphabets
    # started from one of the ensemble's members, trained towards the ensemble
    assert pathlib.Path(cfg.init_from).name in json.loads((CHECKPOINT / "ensemble.json").read_text())["members"]
    assert cfg.loss.distill_weight > 0 and one.whitening is None and one.block_pooling is None
    data = load_omniglot(omniglot_dir, "evaluation", one.preprocessing)
    eps = evaluate.make_episodes(data.labels, data.groups, data.instances, ways=20, shots=1, episodes=EPISODES,
                                 protocol="within", seed=0)
    used = np.unique(np.concatenate([eps.support.ravel(), eps.query.ravel()]))
    emb = np.zeros((len(data), one.embed_dim), np.float32)
    emb[used] = one.embed_preprocessed(data.images[used])
    r = evaluate.one_shot_accuracy(one.pairwise_jax, jnp.asarray(emb), eps)
    assert r["questions"] == 20 * EPISODES and r["accuracy"] >= DISTILLED_MEASURED - MARGIN, r


def test_checkpoint_is_small_and_trained_on_background_only(model, omniglot_dir):
    size = sum(p.stat().st_size for p in CHECKPOINT.rglob("*") if p.is_file())
    assert size <= 25 * 2**20, f"{size / 2**20:.1f} MiB"
    manifest = json.loads((CHECKPOINT / "ensemble.json").read_text())
    assert isinstance(model, Ensemble) and len(model.members) == len(manifest["members"]) >= 1
    assert [m.path.name for m in model.members] == manifest["members"]
    # stored at half size, loaded as float32
    assert {str(x.dtype) for x in jax.tree_util.tree_leaves(model.variables)} == {"float32"}
    background = set(alphabet_names(omniglot_dir, "background"))
    evaluation = set(alphabet_names(omniglot_dir, "evaluation"))
    for member in model.members:
        cfg = member.config
        assert cfg.data.source == "omniglot"  # the background alphabets (evaluation ones are another split)
        assert set(cfg.data.alphabets) <= background and set(cfg.data.val_alphabets) <= background
        assert not (set(cfg.data.val_alphabets) | set(cfg.data.alphabets)) & evaluation
        s = member.preprocessing
        encoder_dim = jax.eval_shape(member.twin.embed, member.variables,
                                     jnp.zeros((1, s.size, s.size, s.channels))).shape[-1]
        if member.whitening is not None:  # fitted on this member's own encoder embedding
            assert member.whitening.dim == encoder_dim
    assert model.embed_dim == sum(m.embed_dim for m in model.members)


def test_checkpoint_scores_lake_tasks_on_the_evaluation_alphabets(model, omniglot_dir):
    data = load_omniglot(omniglot_dir, "evaluation", model.preprocessing)
    assert data.num_classes == 659 and data.num_groups == 20
    eps = evaluate.make_episodes(data.labels, data.groups, data.instances, ways=20, shots=1, episodes=EPISODES,
                                 protocol="within", seed=0)
    used = np.unique(np.concatenate([eps.support.ravel(), eps.query.ravel()]))  # embed only these
    used_emb = model.embed_preprocessed(data.images[used])
    assert used_emb.shape[1] == model.embed_dim
    emb = np.zeros((len(data), used_emb.shape[1]), np.float32)
    emb[used] = used_emb
    emb = jnp.asarray(emb)
    r = evaluate.one_shot_accuracy(model.pairwise_jax, emb, eps)
    assert r["questions"] == 20 * EPISODES
    assert r["accuracy"] >= MEASURED - MARGIN, r
