"""The committed unsupervised checkpoints (pretrained/omniglot_simsiam, pretrained/omniglot_simclr): they
load with siamjax.load, were trained on images_background without labels, fit the size limit and score
20-way one-shot tasks across the evaluation alphabets (read in place from ../shared/data/omniglot)."""
import pathlib

import jax.numpy as jnp
import pytest

import siamjax
from siamjax.eval import episodes as evaluate
from siamjax.data.omniglot import load_omniglot

REPO = pathlib.Path(__file__).resolve().parents[1]
# Measured on 100 episodes (2000 questions, seed 0) of 20-way 1-shot across-alphabet tasks of the 20
# evaluation alphabets (README, "Unsupervised training"). The test asks for at least MEASURED - MARGIN:
# the margin leaves room for float differences between machines (a few questions), not for a worse
# model; a better model passes.
MEASURED = {"simsiam": 0.833, "simclr": 0.761}
MARGIN = 0.02


@pytest.fixture(scope="module")
def evaluation(omniglot_dir):
    """Evaluation alphabets at the checkpoints' preprocessing (both: 32 px, ink high)."""
    spec = siamjax.load(REPO / "pretrained" / "omniglot_simsiam").preprocessing
    return spec, load_omniglot(omniglot_dir, "evaluation", spec)


@pytest.mark.parametrize("method", ["simsiam", "simclr"])
def test_unsupervised_checkpoint_loads_and_scores(method, evaluation):
    path = REPO / "pretrained" / f"omniglot_{method}"
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert size <= 25 * 2**20, f"{size / 2**20:.1f} MiB"
    model = siamjax.load(path)
    cfg = model.config
    assert cfg.data.source == "omniglot" and cfg.loss.name == method and not cfg.data.rotate_classes  # no labels read
    assert model.meta["model"]["projection"]["method"] == method
    spec, data = evaluation
    assert model.preprocessing == spec and data.num_classes == 659
    emb = jnp.asarray(model.embed_preprocessed(data.images))
    eps = evaluate.make_episodes(data.labels, data.groups, data.instances, ways=20, shots=1, episodes=100,
                                 protocol="across", seed=0)
    r = evaluate.one_shot_accuracy(model.pairwise_jax, emb, eps)
    assert r["questions"] == 2000
    assert r["accuracy"] >= MEASURED[method] - MARGIN, r
