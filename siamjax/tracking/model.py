"""SiamFC (Bertinetto et al. 2016): one fully-convolutional encoder for the exemplar and the search
region, cross-correlated into a response map whose peak is the target's new position.

Geometry (defaults, SiamFC's halved): exemplar 63x63 -> features 4x4, search 127x127 -> 12x12,
response 9x9 with a stride of 8 px in the search crop. No padding anywhere, so a response cell sees
the same window of the search crop whatever its position (translation equivariance), and the centre
cell of the response looks at the centre of the search crop.

Images are float ``[N, H, W, 3]`` in 0..255 (the crops of :mod:`siamjax.tracking.crops`); the network
scales them to about [-1, 1] itself.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamjax.nn import fastconv

STRIDE = 8  # three 2x2 max-pools


class SiamFCEncoder(nn.Module):
    """conv3x3 - BN - ReLU - pool, three times, then a linear conv3x3: ``[N, H, W, 3]`` ->
    ``[N, (((H - 2) // 2 - 2) // 2 - 2) // 2 - 2, ..., widths[-1]]`` (63 -> 4, 127 -> 12). VALID
    convolutions, total stride 8, receptive field 38 px."""

    widths: Sequence[int] = (24, 48, 96, 128)
    bn_axis_name: Any = None
    fast_cpu: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = fastconv.Conv if self.fast_cpu else nn.Conv
        x = (x - 127.5) / 64.0
        for width in self.widths[:-1]:
            x = conv(width, (3, 3), padding="VALID", use_bias=False)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name)(x)
            x = fastconv.max_pool_2x2(nn.relu(x), fast=self.fast_cpu)
        return conv(self.widths[-1], (3, 3), padding="VALID")(x)


def cross_correlate(z: jax.Array, x: jax.Array) -> jax.Array:
    """Each exemplar's features as the kernel over its search features.

    z: ``[N, hz, wz, C]``, x: ``[N, hx, wx, C]`` -> ``[N, hx - hz + 1, wx - wz + 1]``, the sum over
    the window of the channel dot products (one grouped convolution over the batch)."""
    n, hz, wz, c = z.shape
    _, hx, wx, _ = x.shape
    lhs = jnp.transpose(x, (1, 2, 0, 3)).reshape(1, hx, wx, n * c)  # the batch as channel groups
    rhs = jnp.transpose(z, (1, 2, 3, 0)).reshape(hz, wz, c, n)  # HWIO: one output per group
    out = jax.lax.conv_general_dilated(lhs, rhs, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       feature_group_count=n)
    return jnp.transpose(out[0], (2, 0, 1))


class SiamFC(nn.Module):
    """Encoder + cross-correlation + SiamFC's "adjust" (a learned scale and bias of the response).

    ``__call__(z, x)``: exemplar crops ``[N, ez, ez, 3]`` and search crops ``[N, ex, ex, 3]`` ->
    response logits ``[N, r, r]``. :meth:`embed` and :meth:`respond` split it for the tracker, which
    embeds the exemplar once and correlates it with several scaled search crops every frame."""

    widths: Sequence[int] = (24, 48, 96, 128)
    bn_axis_name: Any = None
    fast_cpu: bool = True

    def setup(self):
        self.encoder = SiamFCEncoder(self.widths, self.bn_axis_name, self.fast_cpu)
        self.scale = self.param("adjust_scale", nn.initializers.constant(1e-3), ())
        self.bias = self.param("adjust_bias", nn.initializers.zeros, ())

    def embed(self, images, train: bool = False):
        return self.encoder(images, train=train)

    def respond(self, z_feat, x_feat):
        """``[N, hz, wz, C]`` x ``[N, hx, wx, C]`` -> logits ``[N, r, r]``."""
        return self.scale * cross_correlate(z_feat, x_feat) + self.bias

    def __call__(self, z, x, train: bool = False):
        return self.respond(self.embed(z, train), self.embed(x, train))


def response_size(exemplar: int, search: int) -> int:
    """Side of the response map for these crop sides (e.g. 63, 127 -> 9)."""
    f = lambda s: ((((s - 2) // 2 - 2) // 2 - 2) // 2) - 2
    return f(search) - f(exemplar) + 1


def label_map(size: int, offset: jax.Array, radius: float) -> jax.Array:
    """Positive (1) cells within ``radius`` cells of the target, negative (0) elsewhere.

    offset: ``[N, 2]`` the target's position relative to the response centre, in cells (x, y).
    Returns float32 ``[N, size, size]``."""
    c = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
    dx = c[None, None, :] - offset[:, 0, None, None]
    dy = c[None, :, None] - offset[:, 1, None, None]
    return (jnp.sqrt(dx * dx + dy * dy) <= radius).astype(jnp.float32)


def balanced_logistic_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """SiamFC's loss: mean over the maps of ``sum w * log(1 + exp(-y v))``, y = +-1, with the positives
    and the negatives of each map each weighing 1/2 in all. logits, labels: ``[N, r, r]``."""
    pos = labels
    neg = 1.0 - labels
    n_pos = jnp.maximum(pos.sum((1, 2), keepdims=True), 1.0)
    n_neg = jnp.maximum(neg.sum((1, 2), keepdims=True), 1.0)
    w = 0.5 * pos / n_pos + 0.5 * neg / n_neg
    y = 2.0 * labels - 1.0
    return jnp.mean(jnp.sum(w * jax.nn.softplus(-y * logits), axis=(1, 2)))
