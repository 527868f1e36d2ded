"""N-way K-shot one-shot evaluation: episodes, batched scoring, accuracy with a 95% interval.

Two protocols on a :class:`~siamjax.data.dataset.LabeledImages` set (groups = alphabets,
instances = drawers):
  * ``within`` (Lake et al. 2015; Koch et al. 2015): every episode uses one alphabet; N characters of
    it; the K support images come from K drawers and the N queries (one per character) from another
    drawer, the same drawers for every character of the episode.
  * ``across``: the N characters are drawn from all alphabets; drawers as above.

An episode asks N questions (one query per class); accuracy is over all questions of all episodes,
so 20 episodes of 20-way tasks are Koch's "400 one-shot trials".
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Episodes:
    support: np.ndarray  # int64 [E, N, K] image indices (class n, shot k)
    query: np.ndarray  # int64 [E, Q] image indices
    answer: np.ndarray  # int64 [E, Q] the right class 0..N-1 for each query

    @property
    def ways(self) -> int:
        return self.support.shape[1]

    @property
    def num_questions(self) -> int:
        return self.query.size


def _instance_table(labels: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """[C, I] image index of (class, instance), -1 where absent."""
    table = -np.ones((labels.max() + 1, instances.max() + 1), np.int64)
    table[labels, instances] = np.arange(len(labels))
    return table


def make_episodes(labels: np.ndarray, groups: np.ndarray, instances: np.ndarray, ways: int, shots: int,
                  episodes: int, protocol: str = "within", seed: int = 0, same_instance: bool = True) -> Episodes:
    """Sample ``episodes`` N-way K-shot tasks (deterministic in ``seed``).

    labels, groups, instances: int [num_images]. ``same_instance=True`` (Omniglot, Lake's protocol):
    the support images of all classes come from the same K drawers and the queries from one other
    drawer; only classes that have every drawer used by an episode are eligible. ``False`` (a user's
    folders, where instance ids are just file ranks and classes differ in size): each class's K + 1
    images are drawn independently among its own. A ValueError says what is missing when no task can
    be built.
    """
    if protocol not in ("within", "across"):
        raise ValueError(f"protocol must be 'within' or 'across', got {protocol!r}")
    if ways < 2 or shots < 1:
        raise ValueError(f"need ways >= 2 and shots >= 1, got ways={ways}, shots={shots}")
    labels = np.asarray(labels)
    table = _instance_table(labels, np.asarray(instances))
    num_instances = table.shape[1]
    if shots + 1 > num_instances:
        raise ValueError(f"{shots}-shot tasks need {shots + 1} images per class; classes have at most {num_instances}")
    class_group = np.zeros(table.shape[0], np.int64)
    class_group[labels] = groups
    present = np.unique(labels)
    if not same_instance:  # classes with fewer than K + 1 images cannot take part
        counts = np.bincount(labels, minlength=table.shape[0])
        present = present[counts[present] >= shots + 1]
        members = [np.flatnonzero(labels == c) for c in range(table.shape[0])]
    by_group = {g: present[class_group[present] == g] for g in np.unique(class_group[present])}
    eligible_groups = [g for g, cs in by_group.items() if len(cs) >= ways]
    if protocol == "within" and not eligible_groups:
        raise ValueError(f"no group (alphabet) has {ways} classes for within-group {ways}-way tasks; "
                         f"largest has {max(len(c) for c in by_group.values())}")
    if protocol == "across" and len(present) < ways:
        raise ValueError(f"{ways}-way tasks need {ways} classes; the data has {len(present)}")
    rng = np.random.default_rng(seed)
    support = np.zeros((episodes, ways, shots), np.int64)
    query = np.zeros((episodes, ways), np.int64)
    for e in range(episodes):
        for _attempt in range(100):
            pool = by_group[eligible_groups[rng.integers(len(eligible_groups))]] if protocol == "within" else present
            classes = rng.choice(pool, size=ways, replace=False)
            if not same_instance:
                idx = np.stack([rng.choice(members[c], size=shots + 1, replace=False) for c in classes])
                break
            drawers = rng.choice(num_instances, size=shots + 1, replace=False)
            idx = table[classes[:, None], drawers[None, :]]  # [N, K+1]
            if (idx >= 0).all():
                break
        else:
            raise ValueError("could not find classes with images from the same drawers; is the data complete?")
        support[e] = idx[:, :shots]
        query[e] = idx[:, shots]
    answer = np.tile(np.arange(ways), (episodes, 1))
    perm = np.argsort(rng.random((episodes, ways)), axis=1)  # shuffle query order (no effect on accuracy)
    return Episodes(support, np.take_along_axis(query, perm, 1), np.take_along_axis(answer, perm, 1))


def episode_predictions(pairwise: Callable[[jax.Array, jax.Array], jax.Array], embeddings: jax.Array,
                        episodes: Episodes) -> jax.Array:
    """Predicted class per query, all episodes in one batched call.

    pairwise(a [Q, D], b [M, D]) -> similarity [Q, M]; embeddings [num_images, D] (each image embedded
    once). K-shot scores are the mean similarity over the K support images of a class.
    Returns int32 [E, Q].
    """
    e, n, k = episodes.support.shape
    sup = embeddings[jnp.asarray(episodes.support.reshape(e, n * k))]  # [E, N*K, D]
    qry = embeddings[jnp.asarray(episodes.query)]  # [E, Q, D]
    sims = jax.vmap(pairwise)(qry, sup)  # [E, Q, N*K]
    sims = sims.reshape(e, qry.shape[1], n, k).mean(-1)
    return jnp.argmax(sims, axis=-1)


def accuracy_with_ci(correct: np.ndarray) -> tuple[float, float]:
    """Mean of boolean decisions and the half-width of its 95% normal-approximation interval."""
    correct = np.asarray(correct, np.float64).ravel()
    if correct.size == 0:
        raise ValueError("no decisions to average")
    p = float(correct.mean())
    return p, 1.96 * math.sqrt(max(p * (1 - p), 0.0) / correct.size)


def percent_right(scores, answer: np.ndarray) -> float:
    """Accuracy in percent when each question picks its highest-scoring class: scores [..., W] (e.g. a
    task's similarities [E, Q, W]), answer int [...] (the right class's index) -> float in [0, 100]."""
    scores, answer = np.asarray(scores), np.asarray(answer)
    if scores.shape[:-1] != answer.shape:
        raise ValueError(f"scores {scores.shape} need one row of class scores per answer {answer.shape}")
    return 100 * float((scores.argmax(-1) == answer).mean())


def one_shot_accuracy(pairwise, embeddings, episodes: Episodes) -> dict:
    """Accuracy dict: ``accuracy``, ``ci95`` (half-width), ``questions``, ``episodes``, ``ways``."""
    return accuracy_summary(np.asarray(episode_predictions(pairwise, embeddings, episodes)), episodes)


def accuracy_summary(pred: np.ndarray, episodes: Episodes) -> dict:
    """:func:`one_shot_accuracy`'s dict from predictions int [E, Q]."""
    acc, ci = accuracy_with_ci(np.asarray(pred) == episodes.answer)
    return {"accuracy": acc, "ci95": ci, "questions": int(episodes.num_questions),
            "episodes": int(episodes.query.shape[0]), "ways": int(episodes.ways)}


def parse_tasks(spec: str) -> list[tuple[str, int, int]]:
    """``"within:20:1,across:5:5"`` -> [("within", 20, 1), ("across", 5, 5)] (protocol:ways:shots)."""
    tasks = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or parts[0] not in ("within", "across") or not all(p.isdigit() for p in parts[1:]):
            raise ValueError(f"bad task {item!r}: write protocol:ways:shots, e.g. within:20:1 or across:5:5")
        tasks.append((parts[0], int(parts[1]), int(parts[2])))
    if not tasks:
        raise ValueError("no tasks given")
    return tasks


def evaluate_lake_runs(embed: Callable, pairwise: Callable, runs) -> dict:
    """Lake-layout runs (:mod:`siamjax.data.lake_runs`): each query is classified by the most
    similar training image of its run. Returns ``error`` (mean percent error over runs), per-run
    errors and the pooled accuracy with its 95% interval.

    embed(list of raw images) -> [N, D]; pairwise(a [Q, D], b [M, D]) -> [Q, M].
    """
    errors, correct = [], []
    for run in runs:
        sims = np.asarray(pairwise(embed(run.queries), embed(run.support)))
        ok = sims.argmax(axis=1) == run.answers
        correct.append(ok)
        errors.append(100.0 * (1.0 - ok.mean()))
    acc, ci = accuracy_with_ci(np.concatenate(correct))
    return {"error": float(np.mean(errors)), "run_errors": [float(e) for e in errors],
            "runs": len(runs), "accuracy": acc, "ci95": ci, "questions": int(sum(map(len, correct)))}


def knn_accuracy(pairwise: Callable[[jax.Array, jax.Array], jax.Array], embeddings: jax.Array, labels: np.ndarray,
                 ks: Sequence[int] = (1,), block: int = 1024) -> dict[int, dict]:
    """Leave-one-out k-nearest-neighbour classification over one labelled set, for each k in ``ks``.

    Every image is classified by a vote of its k most similar *other* images (``pairwise(a [Q, D],
    b [N, D]) -> [Q, N]``, larger = more alike); a tie goes to the tied class with the nearest
    neighbour. Rows are scored ``block`` at a time ([block, N] similarities in memory).
    Returns {k: {"accuracy", "ci95", "questions"}}; ValueError if a k is < 1 or >= the number of images.
    """
    labels = np.asarray(labels)
    n = len(labels)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] >= n:
        raise ValueError(f"k-NN needs 1 <= k < number of images ({n}), got k = {ks}")
    kmax = ks[-1]
    embeddings = jnp.asarray(embeddings)

    @jax.jit
    def top(q_emb, q_idx, embeddings):  # the set as an argument, not a constant baked into the program
        sims = pairwise(q_emb, embeddings)  # [b, N]
        sims = jnp.where(jnp.arange(n)[None, :] == q_idx[:, None], -jnp.inf, sims)  # not itself
        return jax.lax.top_k(sims, kmax)[1]

    neighbours = []
    for i in range(0, n, block):
        idx = np.arange(i, min(i + block, n))
        pad = block - len(idx)
        q = np.concatenate([idx, np.full(pad, idx[-1])]) if pad else idx
        neighbours.append(np.asarray(top(embeddings[q], jnp.asarray(q), embeddings))[:len(idx)])
    nb_labels = labels[np.concatenate(neighbours)]  # [N, kmax], nearest first
    out = {}
    for k in ks:
        lab = nb_labels[:, :k]
        votes = (lab[:, :, None] == lab[:, None, :]).sum(-1)  # [N, k]: votes of each neighbour's class
        pred = lab[np.arange(n), np.argmax(votes, axis=1)]  # first (nearest) among the most voted
        acc, ci = accuracy_with_ci(pred == labels)
        out[k] = {"accuracy": acc, "ci95": ci, "questions": n}
    return out
