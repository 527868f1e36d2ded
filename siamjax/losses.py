"""Losses for Siamese / metric-learning training, pure ``jnp`` (jit- and grad-friendly).

Every loss returns ``(loss, metrics)``: ``loss`` a scalar array and ``metrics`` a dict of scalar
arrays. Distances are Euclidean (units of the embedding space; on L2-normalised embeddings they lie
in [0, 2]). A batch without any valid pair or triplet (e.g. all labels distinct, or all equal) gives
a loss of 0 with a finite (zero) gradient: every mean divides by ``max(count, 1)`` and every sqrt
has a finite gradient at 0.

The batch losses reproduce pytorch-metric-learning 2.9 (``ContrastiveLoss``,
``TripletMarginLoss`` with ``BatchHardMiner`` / ``TripletMarginMiner(type_of_triplets="semihard")``,
``NTXentLoss``) with their default ``AvgNonZeroReducer`` or a ``MeanReducer``; the margin softmaxes over
learned class vectors reproduce its ``CosFaceLoss`` and ``ArcFaceLoss`` (ArcFace's margin in radians here,
degrees there).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from siamjax.nn.distances import _safe_sqrt, l2_normalize, pairwise_distances  # noqa: F401 (re-exported)

Metrics = dict[str, jax.Array]

_REDUCTIONS = ("avg_nonzero", "mean")
_MININGS = ("all", "hard", "semihard")


def _masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``x`` over ``mask`` (same shape), 0 when the mask is empty."""
    mask = mask.astype(x.dtype)
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _reduce(terms: jax.Array, selected: jax.Array, reduction: str) -> jax.Array:
    """Mean of the selected ``terms`` (non-negative, zero outside ``selected``).

    "avg_nonzero": over the terms > 0 (pml's AvgNonZeroReducer); "mean": over all selected.
    """
    if reduction == "avg_nonzero":
        return _masked_mean(terms, terms > 0)
    if reduction == "mean":
        return _masked_mean(terms, selected)
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def contrastive_loss(distance: jax.Array, same: jax.Array, margin: float = 1.0, pos_margin: float = 0.0,
                     squared: bool = True) -> tuple[jax.Array, Metrics]:
    """Contrastive loss of a batch of pairs: distance [B] (>= 0), same [B] (bool or 0/1) -> scalar.

    ``squared=True`` (Hadsell, Chopra & LeCun 2006):
        mean(0.5 * (y * relu(d - pos_margin)^2 + (1 - y) * relu(margin - d)^2)).
    ``squared=False``: mean(y * relu(d - pos_margin) + (1 - y) * relu(margin - d)), the per-pair terms
    of pml's ``ContrastiveLoss``, but averaged over all B pairs (pml instead averages the non-zero
    positive and non-zero negative terms separately and adds them: see ``batch_contrastive_loss``).
    metrics: positive_distance / negative_distance (mean d over positive / negative pairs, 0 if none),
    active_fraction (fraction of pairs with a non-zero term).
    """
    y = jnp.asarray(same).astype(distance.dtype)
    pos = jax.nn.relu(distance - pos_margin)
    neg = jax.nn.relu(margin - distance)
    if squared:
        terms = 0.5 * (y * pos ** 2 + (1.0 - y) * neg ** 2)
    else:
        terms = y * pos + (1.0 - y) * neg
    metrics = {
        "positive_distance": _masked_mean(distance, y > 0),
        "negative_distance": _masked_mean(distance, y <= 0),
        "active_fraction": jnp.mean((terms > 0).astype(distance.dtype)),
    }
    return jnp.mean(terms), metrics


def _pair_masks(labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """labels [N] -> (positive [N, N]: same label, i != j; negative [N, N]: different label)."""
    same = labels[:, None] == labels[None, :]
    eye = jnp.eye(labels.shape[0], dtype=bool)
    return same & ~eye, ~same


def batch_contrastive_loss(embeddings: jax.Array, labels: jax.Array, pos_margin: float = 0.0,
                           neg_margin: float = 1.0, normalize: bool = True,
                           reduction: str = "avg_nonzero") -> tuple[jax.Array, Metrics]:
    """pml ``ContrastiveLoss`` over all ordered pairs i != j: embeddings [N, D], labels [N] -> scalar.

    Positive pairs give relu(d - pos_margin), negative pairs relu(neg_margin - d) (d Euclidean, between
    L2-normalised embeddings when ``normalize``); loss = mean of the positive terms + mean of the
    negative terms, each over its non-zero terms ("avg_nonzero", pml's default) or over all its pairs
    ("mean"). metrics: positive_distance, negative_distance (mean d over positive / negative pairs),
    active_fraction (non-zero terms / all pairs).
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    x = l2_normalize(embeddings) if normalize else embeddings
    d = pairwise_distances(x, x)
    pos_mask, neg_mask = _pair_masks(labels)
    pos_terms = jnp.where(pos_mask, jax.nn.relu(d - pos_margin), 0.0)
    neg_terms = jnp.where(neg_mask, jax.nn.relu(neg_margin - d), 0.0)
    loss = _reduce(pos_terms, pos_mask, reduction) + _reduce(neg_terms, neg_mask, reduction)
    active = jnp.sum((pos_terms > 0) | (neg_terms > 0)).astype(d.dtype)
    metrics = {
        "positive_distance": _masked_mean(d, pos_mask),
        "negative_distance": _masked_mean(d, neg_mask),
        "active_fraction": active / jnp.maximum(jnp.sum(pos_mask | neg_mask).astype(d.dtype), 1.0),
    }
    return loss, metrics


def triplet_loss(embeddings: jax.Array, labels: jax.Array, margin: float = 0.2, mining: str = "all",
                 normalize: bool = True, reduction: str = "avg_nonzero") -> tuple[jax.Array, Metrics]:
    """Triplet margin loss relu(d_ap - d_an + margin) in a P x K batch: embeddings [N, D], labels [N].

    ``mining`` selects the triplets (a, p, n) with label[p] == label[a], p != a, label[n] != label[a]:
      "all":      every valid triplet (an [N, N, N] mask);
      "hard":     pml ``BatchHardMiner``: per anchor with >= 1 positive and >= 1 negative, its
                  farthest positive and nearest negative (one triplet per anchor, [N, N] work);
      "semihard": pml ``TripletMarginMiner(type_of_triplets="semihard")``: 0 < d_an - d_ap <= margin.
    ``reduction``: "avg_nonzero" (mean over the non-zero terms, pml's default) or "mean" (over all
    selected triplets). d is Euclidean, between L2-normalised embeddings when ``normalize``.
    metrics: active_fraction (non-zero terms / selected), num_triplets (selected),
    positive_distance / negative_distance (mean d_ap / d_an over the selected triplets).
    """
    if mining not in _MININGS:
        raise ValueError(f"mining must be one of {_MININGS}, got {mining!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    x = l2_normalize(embeddings) if normalize else embeddings
    d = pairwise_distances(x, x)
    pos_mask, neg_mask = _pair_masks(labels)
    if mining == "hard":
        p_idx = jnp.argmax(jnp.where(pos_mask, d, -1.0), axis=1)
        n_idx = jnp.argmin(jnp.where(neg_mask, d, jnp.inf), axis=1)
        d_ap = jnp.take_along_axis(d, p_idx[:, None], axis=1)[:, 0]
        d_an = jnp.take_along_axis(d, n_idx[:, None], axis=1)[:, 0]
        selected = jnp.any(pos_mask, axis=1) & jnp.any(neg_mask, axis=1)  # [N]
    else:
        d_ap = d[:, :, None]  # [a, p, 1]
        d_an = d[:, None, :]  # [a, 1, n]
        selected = pos_mask[:, :, None] & neg_mask[:, None, :]  # [a, p, n]
        if mining == "semihard":
            gap = d_an - d_ap
            selected = selected & (gap > 0) & (gap <= margin)
        d_ap, d_an = jnp.broadcast_to(d_ap, selected.shape), jnp.broadcast_to(d_an, selected.shape)
    terms = jnp.where(selected, jax.nn.relu(d_ap - d_an + margin), 0.0)
    loss = _reduce(terms, selected, reduction)
    num = jnp.sum(selected).astype(d.dtype)
    metrics = {
        "active_fraction": jnp.sum(terms > 0).astype(d.dtype) / jnp.maximum(num, 1.0),
        "num_triplets": num,
        "positive_distance": _masked_mean(d_ap, selected),
        "negative_distance": _masked_mean(d_an, selected),
    }
    return loss, metrics


def bce_loss(logits: jax.Array, same: jax.Array) -> tuple[jax.Array, Metrics]:
    """Mean sigmoid binary cross-entropy (nats): logits [B], same [B] (bool or 0/1) -> scalar.

    metrics: accuracy (fraction with ``(logit > 0) == same``).
    """
    y = jnp.asarray(same).astype(logits.dtype)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))
    accuracy = jnp.mean(((logits > 0) == (y > 0.5)).astype(logits.dtype))
    return loss, {"accuracy": accuracy}


def ntxent_loss(embeddings: jax.Array, temperature: float = 0.1) -> tuple[jax.Array, Metrics]:
    """SimCLR NT-Xent: embeddings [2N, D], rows i and i + N two views of one image -> scalar (nats).

    Cosine similarity / temperature; every row is an anchor whose loss is -log softmax of its
    positive against all other rows (itself excluded); mean over the 2N anchors (= pml ``NTXentLoss``
    with one label per image). metrics: positive_similarity (mean cosine of the positive pairs),
    accuracy (fraction of anchors whose most similar other row is their positive).
    """
    n2 = embeddings.shape[0]
    if n2 % 2:
        raise ValueError(f"ntxent_loss needs an even number of rows (2N), got {n2}")
    x = l2_normalize(embeddings)
    cos = jnp.matmul(x, x.T, precision=jax.lax.Precision.HIGHEST)
    idx = jnp.arange(n2)
    pos_idx = (idx + n2 // 2) % n2
    logits = jnp.where(jnp.eye(n2, dtype=bool), -jnp.inf, cos / temperature)
    pos_logit = logits[idx, pos_idx]
    loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - pos_logit)
    metrics = {
        "positive_similarity": jnp.mean(cos[idx, pos_idx]),
        "accuracy": jnp.mean((jnp.argmax(logits, axis=1) == pos_idx).astype(cos.dtype)),
    }
    return loss, metrics


def prototypical_loss(embeddings: jax.Array, labels: jax.Array, temperature: float = 0.1,
                      normalize: bool = True) -> tuple[jax.Array, Metrics]:
    """Leave-one-out prototypical loss (Snell et al. 2017) in a P x K batch: embeddings [N, D], labels [N].

    Every image is a query; each class of the batch has a prototype, the mean of its images (the
    query's own class leaves the query out, so every image is scored against prototypes it is not
    part of). logits = -||x - prototype||^2 / temperature (x L2-normalised when ``normalize``, so
    squared distances lie in [0, 4]); loss = mean cross-entropy of the query's own class (nats) over
    the queries whose class has another image in the batch. Classes that occur once serve only as
    negatives. metrics: accuracy (nearest prototype is its own class), num_queries.
    """
    x = l2_normalize(embeddings) if normalize else embeddings
    n = x.shape[0]
    same = labels[:, None] == labels[None, :]  # [N, N]
    eye = jnp.eye(n, dtype=bool)
    # Column j stands for the class of image j; only each class's first image keeps its column.
    first = ~jnp.any(same & (jnp.arange(n)[None, :] < jnp.arange(n)[:, None]), axis=1)  # [N]
    sums = jnp.matmul(same.astype(x.dtype), x, precision=jax.lax.Precision.HIGHEST)  # [N(class of j), D]
    counts = jnp.sum(same, axis=1).astype(x.dtype)  # [N]
    own = same.astype(x.dtype)[:, :, None]  # [i, j, 1]: j is i's class, so leave i out
    protos = (sums[None, :, :] - own * x[:, None, :]) / jnp.maximum(counts[None, :, None] - own, 1.0)  # [i, j, D]
    sq = jnp.sum(jnp.square(x[:, None, :] - protos), axis=-1)  # [i, j]
    logits = jnp.where(first[None, :], -sq / temperature, -jnp.inf)
    target = jnp.argmax(same & first[None, :], axis=1)  # i's own class column
    valid = jnp.sum(same & ~eye, axis=1) > 0  # i's class has another image
    nll = jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]
    loss = _masked_mean(nll, valid)
    correct = (jnp.argmax(logits, axis=1) == target).astype(x.dtype)
    return loss, {"accuracy": _masked_mean(correct, valid), "num_queries": jnp.sum(valid).astype(x.dtype)}


def relational_distillation_loss(embeddings: jax.Array, teacher: jax.Array, groups: jax.Array,
                                 temperature: float = 0.1, teacher_temperature: float | None = None,
                                 normalize: bool = True) -> tuple[jax.Array, Metrics]:
    """Relational knowledge distillation over a batch: each image's softmax over its similarities to the
    other images of the batch should match the teacher's.

    embeddings [N, D] (the student's; L2-normalised when ``normalize``, so similarities are cosines);
    teacher [N, T]: rows whose dot products are the teacher's similarities (for an ensemble of M cosine
    models, each member's unit embedding / sqrt(M) side by side, so a dot product is the members' mean
    cosine); groups [N] int: only pairs of one group are compared (e.g. the same symmetry of the square,
    when the teacher saw only the upright images). For row i over the j != i of its group: p = softmax of
    teacher similarities / teacher_temperature (default: temperature; a smaller one when the teacher's
    similarities spread less), q = softmax of the student's / temperature; loss = mean over rows with such
    a j of KL(p || q) (nats). metrics: distill_agreement (the student's most similar image is the teacher's).
    """
    x = l2_normalize(embeddings) if normalize else embeddings
    t = teacher.astype(x.dtype)
    n = x.shape[0]
    valid = (groups[:, None] == groups[None, :]) & ~jnp.eye(n, dtype=bool)  # [N, N]
    hi = jax.lax.Precision.HIGHEST
    # Pairs of other groups (and i itself) get a logit of -1e30: no weight, and a finite softmax in a row
    # without any partner (left out of the mean).
    s_logits = jnp.where(valid, jnp.matmul(x, x.T, precision=hi) / temperature, -1e30)
    t_temp = temperature if teacher_temperature is None else teacher_temperature
    t_logits = jnp.where(valid, jnp.matmul(t, t.T, precision=hi) / t_temp, -1e30)
    rows = jnp.any(valid, axis=1)
    s_log = jax.nn.log_softmax(s_logits, axis=1)
    t_log = jax.nn.log_softmax(t_logits, axis=1)
    kl = jnp.sum(jnp.where(valid, jnp.exp(t_log) * (t_log - s_log), 0.0), axis=1)
    agree = (jnp.argmax(s_logits, 1) == jnp.argmax(t_logits, 1)).astype(x.dtype)
    return _masked_mean(kl, rows), {"distill_agreement": _masked_mean(agree, rows)}


def _class_cosines(embeddings: jax.Array, class_vectors: jax.Array) -> jax.Array:
    """Cosine of every embedding [N, D] with every class vector [C, D] (both L2-normalised) -> [N, C]."""
    return jnp.matmul(l2_normalize(embeddings), l2_normalize(class_vectors).T, precision=jax.lax.Precision.HIGHEST)


def _class_softmax(logits: jax.Array, onehot: jax.Array, cos: jax.Array,
                   labels: jax.Array) -> tuple[jax.Array, Metrics]:
    """Mean softmax cross-entropy (nats) of the own class over the N rows; accuracy: the nearest class
    vector (largest cosine, no margin) is the row's own class."""
    loss = jnp.mean(optax.softmax_cross_entropy(logits, onehot))
    correct = (jnp.argmax(cos, axis=1) == labels).astype(cos.dtype)
    return loss, {"accuracy": jnp.mean(correct)}


def cosface_loss(embeddings: jax.Array, labels: jax.Array, class_vectors: jax.Array, scale: float = 64.0,
                 margin: float = 0.35) -> tuple[jax.Array, Metrics]:
    """CosFace, the additive cosine margin (Wang et al. 2018): embeddings [N, D], labels [N] in 0..C-1,
    class_vectors [C, D] (one learned vector per training class) -> scalar (nats).

    logits [N, C] = ``scale * (cos(x, w_c) - margin * [c == label])`` (cosines between L2-normalised
    rows; ``margin`` a cosine offset, unitless), loss = mean over the N rows of the softmax cross-entropy
    of the own class. Every row competes with every class, not only the classes of its batch. Equals
    pml 2.9's ``CosFaceLoss(margin, scale)`` with ``W = class_vectors.T`` (its defaults: 0.35, 64; no
    regularizer, MeanReducer). metrics: accuracy (nearest class vector, by cosine, is the own class).
    """
    cos = _class_cosines(embeddings, class_vectors)  # [N, C]
    onehot = jax.nn.one_hot(labels, class_vectors.shape[0], dtype=cos.dtype)
    return _class_softmax(scale * (cos - margin * onehot), onehot, cos, labels)


def arcface_loss(embeddings: jax.Array, labels: jax.Array, class_vectors: jax.Array, scale: float = 64.0,
                 margin: float = 0.5) -> tuple[jax.Array, Metrics]:
    """ArcFace, the additive angular margin (Deng et al. 2019): embeddings [N, D], labels [N] in 0..C-1,
    class_vectors [C, D] -> scalar (nats). ``margin`` m is an angle in RADIANS, in [0, pi/2)
    (the paper's 0.5; pml's ``ArcFaceLoss(margin=...)`` takes degrees: m = radians(pml's), its default
    28.6 degrees = 0.4992 rad).

    With theta = acos(clip(cos(x, w_label), -1, 1)) the own class's logit is ``scale * cos(theta + m)``
    where theta <= pi - m, else ``scale * (cos(theta) - m * sin(m))`` (keeps it decreasing in theta);
    other classes ``scale * cos(x, w_c)``; loss = mean over the N rows of the softmax cross-entropy of
    the own class. Equals pml 2.9's ``ArcFaceLoss(margin=degrees(m), scale)`` with ``W = class_vectors.T``.
    cos(theta + m) is computed as cos * cos(m) - sin(theta) * sin(m), whose gradient is finite at
    theta = 0 and pi (pml's acos is not). metrics: accuracy (nearest class vector is the own class).
    """
    cos = _class_cosines(embeddings, class_vectors)  # [N, C]
    onehot = jax.nn.one_hot(labels, class_vectors.shape[0], dtype=cos.dtype)
    c = jnp.clip(jnp.take_along_axis(cos, labels[:, None], axis=1)[:, 0], -1.0, 1.0)  # own class, [N]
    cos_m, sin_m = jnp.cos(margin), jnp.sin(margin)  # margin may be traced
    shifted = c * cos_m - _safe_sqrt(1.0 - c * c) * sin_m  # cos(theta + m)
    target = jnp.where(c >= -cos_m, shifted, c - margin * sin_m)  # theta <= pi - m  <=>  cos >= cos(pi - m)
    logits = scale * jnp.where(onehot > 0, target[:, None], cos)
    return _class_softmax(logits, onehot, cos, labels)


def proxy_softmax_loss(embeddings: jax.Array, labels: jax.Array, proxies: jax.Array, scale: float = 10.0,
                       margin: float = 0.1) -> tuple[jax.Array, Metrics]:
    """:func:`cosface_loss` over learned class proxies [C, D] with siamjax's proxy-term defaults (scale 10,
    margin 0.1): the auxiliary term ``config.loss.proxy_weight`` adds to a P x K loss. Same value and
    gradients as ``cosface_loss``; its metric is named proxy_accuracy (the nearest proxy is the own class).
    """
    loss, m = cosface_loss(embeddings, labels, proxies, scale=scale, margin=margin)
    return loss, {"proxy_accuracy": m["accuracy"]}


def simsiam_loss(p1: jax.Array, p2: jax.Array, z1: jax.Array, z2: jax.Array,
                 stop_gradient: bool = True) -> tuple[jax.Array, Metrics]:
    """SimSiam (Chen & He 2021): symmetric negative cosine similarity with a stop-gradient on the targets.

    p1, p2: predictor outputs [N, D] of views 1 and 2; z1, z2: projector outputs [N, D] (the targets).
    loss = -(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2, averaged over N: in [-1, 1], -1 when every
    prediction points at the other view's target. metrics: output_std, the collapse diagnostic of
    :func:`output_std` on z1 (about 1/sqrt(D) when healthy, 0 when collapsed).
    ``stop_gradient=False`` is the paper's ablation (Sec. 4.1, Fig. 2): the network collapses.
    """
    sg = jax.lax.stop_gradient if stop_gradient else (lambda t: t)
    z1s, z2s = sg(z1), sg(z2)
    cos = lambda a, b: jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)  # noqa: E731
    loss = -0.5 * (jnp.mean(cos(p1, z2s)) + jnp.mean(cos(p2, z1s)))
    return loss, {"output_std": output_std(z1)}


def output_std(z: jax.Array) -> jax.Array:
    """Collapse diagnostic of SimSiam (Chen & He 2021, Fig. 2): the standard deviation over the batch of
    the L2-normalised outputs z [N, D], averaged over the D channels. Outputs spread evenly over the
    sphere give about 1/sqrt(D); a collapsed network (every output the same) gives 0."""
    return jnp.mean(jnp.std(l2_normalize(jax.lax.stop_gradient(z)), axis=0))
