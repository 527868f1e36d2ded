"""Prototypical loss, group-focused P x K batches and rotated classes."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamjax.data.dataset import LabeledImages, with_mirrored_classes, with_rotated_classes
from siamjax.data.samplers import PKSampler
from siamjax.losses import prototypical_loss


def _reference(x, labels, temperature, normalize):
    """Loop-by-loop leave-one-out prototypical loss in NumPy float64."""
    x = np.asarray(x, np.float64)
    if normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    classes = list(dict.fromkeys(labels.tolist()))
    losses, correct = [], []
    for i in range(len(x)):
        if (labels == labels[i]).sum() < 2:
            continue
        logits = []
        for c in classes:
            members = [j for j in range(len(x)) if labels[j] == c and j != i]
            proto = x[members].mean(0)
            logits.append(-np.sum((x[i] - proto) ** 2) / temperature)
        logits = np.array(logits)
        t = classes.index(labels[i])
        losses.append(np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[t])
        correct.append(np.argmax(logits) == t)
    return np.mean(losses), np.mean(correct), len(losses)


@pytest.mark.parametrize("normalize", [True, False])
def test_prototypical_loss_matches_loop_reference(normalize):
    rng = np.random.default_rng(0)
    labels = np.array([3, 3, 3, 7, 7, 1, 1, 1, 1, 9])  # class 9 has one image: a negative only
    x = rng.normal(size=(10, 5)).astype(np.float32)
    loss, m = prototypical_loss(jnp.asarray(x), jnp.asarray(labels), temperature=0.5, normalize=normalize)
    ref_loss, ref_acc, n = _reference(x, labels, 0.5, normalize)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5)
    np.testing.assert_allclose(float(m["accuracy"]), ref_acc, rtol=1e-6)
    assert float(m["num_queries"]) == n == 9


def test_prototypical_loss_gradient_is_finite_and_pulls_classes_apart():
    labels = jnp.array([0, 0, 1, 1])
    x = jnp.array([[1.0, 0.1], [1.0, -0.1], [0.9, 0.3], [0.9, -0.3]])
    g = jax.grad(lambda e: prototypical_loss(e, labels)[0])(x)
    assert np.isfinite(np.asarray(g)).all()
    before = float(prototypical_loss(x, labels)[0])
    after = float(prototypical_loss(x - 0.1 * g, labels)[0])
    assert after < before
    all_distinct, m = prototypical_loss(x, jnp.arange(4))
    assert float(all_distinct) == 0.0 and float(m["num_queries"]) == 0.0


def test_groups_per_batch_keeps_batches_within_few_groups():
    labels = np.repeat(np.arange(40), 5)
    groups = labels // 8  # 5 groups of 8 classes
    s = PKSampler(labels, groups, p=8, k=2, seed=3, groups_per_batch=1)
    for step in range(20):
        idx = s(step)
        assert len(np.unique(groups[idx])) == 1  # 8 classes fit in one group
        assert len(np.unique(labels[idx])) == 8
    s2 = PKSampler(labels, groups, p=12, k=2, seed=3, groups_per_batch=1)
    batch_groups = [len(np.unique(groups[s2(t)])) for t in range(20)]
    assert set(batch_groups) == {2}  # the first group runs out after 8 classes, one more joins
    spread = PKSampler(labels, groups, p=12, k=2, seed=3)
    assert max(len(np.unique(groups[spread(t)])) for t in range(20)) > 2
    np.testing.assert_array_equal(s2(5), s2(5))  # still a function of (seed, step)
    with pytest.raises(ValueError, match="groups_per_batch"):
        PKSampler(labels, groups, p=8, k=2, seed=3, groups_per_batch=-1)


def _two_marked_characters(instances=(0, 0)) -> LabeledImages:
    """Two 4x4 characters of alphabet "a", each a single mark near the top-left corner (row 0, column 1)."""
    img = np.zeros((2, 4, 4, 1), np.uint8)
    img[:, 0, 1] = 255
    return LabeledImages(img, labels=[0, 1], groups=[0, 0], instances=list(instances), class_names=["a/c1", "a/c2"],
                         group_names=["a"])


def test_rotated_classes_are_new_classes_in_new_groups():
    data = _two_marked_characters()
    img = data.images
    r = with_rotated_classes(data)
    assert len(r) == 8 and r.num_classes == 8 and r.num_groups == 4
    assert r.class_names[2] == "a/c1/rot90" and r.group_names[3] == "a/rot270"
    np.testing.assert_array_equal(r.labels, [0, 1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(r.groups, [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(r.images[2], np.rot90(img[0], 1, axes=(0, 1)))
    assert r.images[2, 2, 0, 0] == 255  # turned 90 degrees anticlockwise
    with pytest.raises(ValueError, match="square"):
        with_rotated_classes(LabeledImages(np.zeros((1, 4, 5, 1), np.uint8), [0], [0], [0], ["x"], ["g"]))


def test_mirrored_classes_follow_the_turns():
    data = _two_marked_characters(instances=(3, 5))
    m = with_mirrored_classes(data)
    assert len(m) == 4 and m.num_classes == 4 and m.num_groups == 2
    assert m.class_names == ["a/c1", "a/c2", "a/c1/mirror", "a/c2/mirror"] and m.group_names == ["a", "a/mirror"]
    np.testing.assert_array_equal(m.labels, [0, 1, 2, 3])
    np.testing.assert_array_equal(m.groups, [0, 0, 1, 1])
    np.testing.assert_array_equal(m.instances, [3, 5, 3, 5])
    assert m.images[2, 0, 2] == 255 and m.images[2, 0, 1] == 0  # column 1 of 4 mirrored to column 2
    both = with_mirrored_classes(with_rotated_classes(data))  # the 8 symmetries of the square
    assert both.num_classes == 16 and both.num_groups == 8
    assert len({b.tobytes() for b in both.images[both.labels % 2 == 0]}) == 8  # all distinct
    assert both.class_names[10] == "a/c1/rot90/mirror"


def test_runs_saved_before_the_new_keys_still_resume():
    """A checkpoint written before proto_temperature / groups_per_batch / rotate_classes / mirror_classes
    existed did what their defaults do: it resumes under the defaults and refuses other values."""
    from configs import omniglot
    from siamjax.train import check_resume_compatible

    from siamjax.config_layout import FLAT_NAMES, flatten

    cfg = omniglot.get_config()
    # as stored with a checkpoint before the config was nested: flat, under the old names
    old_name = {new: old for old, new in FLAT_NAMES.items()}
    saved = {}
    for path, value in flatten(json.loads(cfg.to_json()), free=False).items():
        parent, _, leaf = path.rpartition(".")
        if path in old_name:
            saved[old_name[path]] = value
        elif parent in old_name:  # projection's keys
            saved.setdefault(old_name[parent], {})[leaf] = value
        elif path.startswith("augment."):  # augment's own keys (augment was a group already)
            saved.setdefault("augment", {})[path.split(".", 1)[1]] = value
        elif "." in path:  # added after the config was nested (loss.proxy_loss): a flat run never stored it
            continue
        else:  # seed, log_every, ...
            saved[path] = value
    assert saved["learning_rate"] == cfg.optim.learning_rate and saved["augment"]["prob"] == cfg.augment.prob
    for key in ("proto_temperature", "groups_per_batch", "rotate_classes", "mirror_classes"):
        del saved[key]
    check_resume_compatible({"config": saved}, cfg)
    nested = json.loads(cfg.to_json())  # a nested stored config lacking them resumes too
    del nested["loss"]["proto_temperature"], nested["data"]["rotate_classes"]
    check_resume_compatible({"config": nested}, cfg)
    cfg.data.rotate_classes = True
    with pytest.raises(ValueError, match="rotate_classes"):
        check_resume_compatible({"config": saved}, cfg)
    cfg.data.rotate_classes = False
    cfg.data.mirror_classes = True
    with pytest.raises(ValueError, match="mirror_classes"):
        check_resume_compatible({"config": saved}, cfg)
