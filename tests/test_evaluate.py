"""One-shot episodes, batched scoring and the Lake-layout run reader."""
import numpy as np
import pytest
from PIL import Image

from siamjax.eval import episodes as evaluate
from siamjax.data.lake_runs import read_runs


def _fake_labels(groups=3, classes_per_group=(25, 20, 6), drawers=20):
    labels, grp, inst = [], [], []
    c = 0
    for g in range(groups):
        for _ in range(classes_per_group[g]):
            for d in range(drawers):
                labels.append(c), grp.append(g), inst.append(d)
            c += 1
    return np.array(labels), np.array(grp), np.array(inst)


def test_within_alphabet_episodes_follow_lake_protocol():
    labels, groups, inst = _fake_labels()
    eps = evaluate.make_episodes(labels, groups, inst, ways=20, shots=1, episodes=50, protocol="within", seed=3)
    assert eps.support.shape == (50, 20, 1) and eps.query.shape == (50, 20) and eps.answer.shape == (50, 20)
    for e in range(50):
        sup, qry = eps.support[e, :, 0], eps.query[e]
        assert len(set(groups[np.concatenate([sup, qry])])) == 1  # one alphabet
        assert groups[sup[0]] != 2  # the 6-class alphabet cannot host a 20-way task
        assert len(set(labels[sup])) == 20  # 20 distinct characters
        assert len(set(inst[sup])) == 1 and len(set(inst[qry])) == 1  # one drawer each ...
        assert inst[sup[0]] != inst[qry[0]]  # ... and different drawers
        np.testing.assert_array_equal(labels[sup][eps.answer[e]], labels[qry])  # answers point at the class
    again = evaluate.make_episodes(labels, groups, inst, ways=20, shots=1, episodes=50, protocol="within", seed=3)
    np.testing.assert_array_equal(eps.query, again.query)


def test_across_and_k_shot_episodes():
    labels, groups, inst = _fake_labels()
    eps = evaluate.make_episodes(labels, groups, inst, ways=5, shots=5, episodes=200, protocol="across", seed=0)
    assert eps.support.shape == (200, 5, 5)
    assert any(len(set(groups[eps.support[e].ravel()])) > 1 for e in range(200))  # mixes alphabets
    for e in range(20):
        assert len(set(inst[eps.support[e, 0]])) == 5  # 5 different drawers per class
        assert not set(inst[eps.support[e, 0]]) & {inst[eps.query[e, 0]]}


def test_episode_errors_are_clear():
    labels, groups, inst = _fake_labels(groups=1, classes_per_group=(6,))
    with pytest.raises(ValueError, match="no group .* has 20 classes"):
        evaluate.make_episodes(labels, groups, inst, 20, 1, 5, "within")
    with pytest.raises(ValueError, match="20-way tasks need 20 classes"):
        evaluate.make_episodes(labels, groups, inst, 20, 1, 5, "across")
    with pytest.raises(ValueError, match="protocol"):
        evaluate.make_episodes(labels, groups, inst, 5, 1, 5, "lake")
    with pytest.raises(ValueError, match="protocol:ways:shots"):
        evaluate.parse_tasks("within:20")


def test_accuracy_of_perfect_and_uninformative_scorers():
    labels, groups, inst = _fake_labels()
    eps = evaluate.make_episodes(labels, groups, inst, ways=20, shots=1, episodes=40, protocol="within", seed=1)
    onehot = np.eye(labels.max() + 1, dtype=np.float32)[labels]  # an embedding that knows the class
    perfect = evaluate.one_shot_accuracy(lambda a, b: a @ b.T, onehot, eps)
    assert perfect["accuracy"] == 1.0 and perfect["ci95"] == 0.0 and perfect["questions"] == 800
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(len(labels), 32)).astype(np.float32)  # knows nothing
    chance = evaluate.one_shot_accuracy(lambda a, b: a @ b.T, noise, eps)
    assert abs(chance["accuracy"] - 1 / 20) < 0.04
    acc, ci = evaluate.accuracy_with_ci(np.array([1, 0, 1, 1]))
    assert acc == 0.75 and ci == pytest.approx(1.96 * np.sqrt(0.75 * 0.25 / 4))


def test_percent_right_picks_each_questions_best_class_and_checks_shapes():
    scores = np.array([[[0.9, 0.1, 0.0], [0.2, 0.3, 0.1]],
                       [[0.0, 0.0, 0.5], [0.4, 0.6, 0.6]]])  # [E=2, Q=2, W=3]; a tie picks the first
    assert evaluate.percent_right(scores, np.array([[0, 1], [2, 2]])) == 75.0
    assert evaluate.percent_right(scores, np.array([[1, 0], [0, 0]])) == 0.0
    with pytest.raises(ValueError, match="one row of class scores per answer"):
        evaluate.percent_right(scores, np.zeros((2, 3), int))


def _write_runs(root, runs=3, n=20, wrong=False):
    """Lake-layout runs whose test items are copies of training images (shuffled)."""
    rng = np.random.default_rng(0)
    for r in range(1, runs + 1):
        run = root / f"run{r:02d}"
        (run / "training").mkdir(parents=True)
        (run / "test").mkdir()
        imgs = rng.random((n, 40, 40)) > 0.7
        perm = rng.permutation(n)
        lines = []
        for c in range(n):
            Image.fromarray(imgs[c]).save(run / "training" / f"class{c + 1:02d}.png")
        for i, c in enumerate(perm):
            Image.fromarray(imgs[c]).save(run / "test" / f"item{i + 1:02d}.png")
            label = (c + 1) % n if wrong else c
            lines.append(f"run{r:02d}/test/item{i + 1:02d}.png run{r:02d}/training/class{label + 1:02d}.png")
        (run / "class_labels.txt").write_text("\n".join(lines) + "\n")


def _pixel_scorer():
    flat = lambda imgs: np.stack([np.asarray(i, np.float32).ravel() for i in imgs])
    return flat, lambda a, b: -((a[:, None] - b[None]) ** 2).sum(-1)


@pytest.mark.parametrize("wrong,error", [(False, 0.0), (True, 100.0)])
def test_lake_runs_error(tmp_path, wrong, error):
    _write_runs(tmp_path, wrong=wrong)
    runs = read_runs(tmp_path)
    assert [r.name for r in runs] == ["run01", "run02", "run03"]
    r = evaluate.evaluate_lake_runs(*_pixel_scorer(), runs)
    assert r["error"] == error and r["runs"] == 3 and r["questions"] == 60


def test_lake_runs_malformed(tmp_path):
    _write_runs(tmp_path, runs=1)
    (tmp_path / "run01" / "class_labels.txt").write_text("test/item01.png training/class99.png\n")
    with pytest.raises(ValueError, match="class99.png is not among the training images"):
        read_runs(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_runs(tmp_path / "nope")
