"""Flax Linen encoders: image batch [N, H, W, C] float -> embedding [N, D] float32.

One parameter tree serves both branches of the twin: the encoder is applied to each image with the
same weights (see :mod:`siamjax.nn.twin`).

``fast_cpu`` (default True) takes, on the CPU backend only, the convolution weight gradient by matrix
products and a mask gradient for the 2x2 max-pools (:mod:`siamjax.nn.fastconv`): the same function and
the same parameter tree, several times faster to train on XLA:CPU. Set it False for forward-mode
differentiation (``jax.jvp``) on CPU; other backends ignore it.

BatchNorm layers take ``bn_axis_name``: during training their batch statistics are averaged over
those named axes (``"twin"``, the vmap axis over the two branches, so both images of every pair share
one set of statistics, and the device axis under pmap / shard_map).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from siamjax.nn import fastconv
from siamjax.nn.distances import l2_normalize

AxisNames = Any  # None, a name, or a tuple of names


def _max_pool(x, fast: bool = False):
    """``nn.max_pool`` 2x2 / stride 2 / VALID; with ``fast`` the same function with a cheaper CPU gradient."""
    return fastconv.max_pool_2x2(x, fast=fast)


def _conv_cls(fast: bool):
    """``nn.Conv``, or with ``fast`` the drop-in :class:`siamjax.nn.fastconv.Conv` (same parameters and names)."""
    return fastconv.Conv if fast else nn.Conv


def is_earlier_block(block, num_blocks: int | None = None) -> bool:
    """Whether ``block`` is an integer block index other than the last (-1), and, given ``num_blocks``,
    one of that encoder's blocks before its last (0 .. n - 2, or -n .. -2)."""
    if not isinstance(block, int) or isinstance(block, bool) or block == -1:
        return False
    return num_blocks is None or -num_blocks <= block < num_blocks - 1


def is_positive_weight(weight) -> bool:
    """Whether ``weight`` is a number (not a bool) > 0."""
    return isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight > 0


class Koch(nn.Module):
    """Koch, Zemel & Salakhutdinov (2015), exactly: 105x105x1 -> 4096 (sigmoid).

    conv 64@10x10 - ReLU - maxpool - conv 128@7x7 - ReLU - maxpool - conv 128@4x4 - ReLU - maxpool -
    conv 256@4x4 - ReLU - flatten - dense 4096 - sigmoid. Valid convolutions, 2x2 max-pools, stride 1.
    """

    features: int = 4096
    dtype: Any = jnp.float32
    bn_axis_name: AxisNames = None  # unused: Koch's network has no BatchNorm
    fast_cpu: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = lambda f, k: _conv_cls(self.fast_cpu)(f, (k, k), padding="VALID", dtype=self.dtype)
        pool = lambda y: _max_pool(y, self.fast_cpu)
        x = pool(nn.relu(conv(64, 10)(x)))
        x = pool(nn.relu(conv(128, 7)(x)))
        x = pool(nn.relu(conv(128, 4)(x)))
        x = nn.relu(conv(256, 4)(x))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(self.features, dtype=self.dtype)(x)
        return nn.sigmoid(x).astype(jnp.float32)


BLOCKS = "blocks"  # Conv4 sows each block's output under this name (collection "intermediates")


class Conv4(nn.Module):
    """The few-shot standard: four blocks of conv 3x3 (64, same, no bias) - BatchNorm - ReLU - maxpool 2x2.

    28x28 inputs give a 64-d embedding, 105x105 inputs give 6*6*64 = 2304. With ``embed_dim`` a final
    dense layer projects to that size. ``widths`` gives each block its own channel count instead of
    ``width`` x ``blocks`` (e.g. (64, 128, 256, 256): the embedding is 256 per final-map cell).

    ``pooled_block`` (an earlier block's index, e.g. -2; never the last) trains round 20's test-time
    block pooling (:mod:`siamjax.infer.block_pooling`) into the network: the embedding becomes
    [unit(last map, flattened) [D], sqrt(pooled_weight) * unit(that block's output, maximum over
    positions) [C_k]], so a cosine of two embeddings is (cos(last) + w cos(pooled)) / (1 + w) and the
    losses train both parts. It adds no weights. Not with ``embed_dim``.
    """

    width: int = 64
    blocks: int = 4
    widths: Sequence[int] | None = None
    embed_dim: int | None = None
    pooled_block: int | None = None
    pooled_weight: float = 2.0
    dtype: Any = jnp.float32
    bn_axis_name: AxisNames = None
    fast_cpu: bool = True

    def check_pooled_block(self) -> None:
        """ValueError unless ``pooled_block`` / ``pooled_weight`` fit this encoder (see the class docstring)."""
        if self.pooled_block is None:
            return
        n, b, w = len(self.block_widths()), self.pooled_block, self.pooled_weight
        if not is_earlier_block(b, n):
            raise ValueError(f"conv4 pooled_block={b!r}: give an earlier block of this {n}-block encoder "
                             f"(0 .. {n - 2}, or -{n} .. -2); the last block is the embedding already")
        if not is_positive_weight(w):
            raise ValueError(f"conv4 pooled_weight={w!r}: give a number > 0 (the pooled cosine's weight)")
        if self.embed_dim:
            raise ValueError("conv4 pooled_block cannot be combined with embed_dim: the pooled part is "
                             "appended after the flattened map, unprojected")

    def block_widths(self) -> tuple[int, ...]:
        """Channels of each block: ``widths``, or ``width`` repeated ``blocks`` times."""
        if self.widths is None:
            return (self.width,) * self.blocks
        widths = tuple(self.widths)
        if not widths or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
            raise ValueError(f"conv4 widths={self.widths!r}: give one positive integer channel count per block")
        return widths

    @nn.compact
    def __call__(self, x, train: bool = False):
        self.check_pooled_block()
        widths = self.block_widths()
        pooled_at = None if self.pooled_block is None else self.pooled_block % len(widths)
        pooled = None
        for i, width in enumerate(widths):
            # no bias: BatchNorm removes it (and Adam would turn its zero gradient into noise)
            x = _conv_cls(self.fast_cpu)(width, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
                             dtype=self.dtype)(x)
            x = _max_pool(nn.relu(x), self.fast_cpu)
            self.sow("intermediates", BLOCKS, x)  # kept only when "intermediates" is mutable: see block_outputs
            if i == pooled_at:
                pooled = jnp.max(x, axis=(1, 2)).astype(jnp.float32)  # [N, C_k]
        x = x.reshape((x.shape[0], -1))
        if self.embed_dim:
            x = nn.Dense(self.embed_dim, dtype=self.dtype)(x)
        x = x.astype(jnp.float32)
        if pooled is None:
            return x
        return jnp.concatenate([l2_normalize(x), jnp.sqrt(float(self.pooled_weight)) * l2_normalize(pooled)], axis=1)


class _BasicBlock(nn.Module):
    features: int
    stride: int
    dtype: Any
    bn_axis_name: AxisNames
    fast_cpu: bool = True

    @nn.compact
    def __call__(self, x, train: bool):
        norm = lambda **kw: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                         axis_name=self.bn_axis_name, dtype=self.dtype, **kw)
        conv = _conv_cls(self.fast_cpu)  # strided convolutions fall back to nn.Conv's computation
        y = conv(self.features, (3, 3), (self.stride, self.stride), padding="SAME", use_bias=False,
                 dtype=self.dtype)(x)
        y = nn.relu(norm()(y))
        y = conv(self.features, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype)(y)
        y = norm(scale_init=nn.initializers.zeros)(y)
        if x.shape[-1] != self.features or self.stride != 1:
            x = conv(self.features, (1, 1), (self.stride, self.stride), use_bias=False,
                     dtype=self.dtype)(x)
            x = norm()(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """A small ResNet: conv 3x3 stem, one basic block per stage (stride 2 after the first), global
    average pooling, optional dense projection to ``embed_dim``."""

    stage_widths: Sequence[int] = (64, 128, 256)
    stem_width: int = 32
    embed_dim: int | None = 128
    dtype: Any = jnp.float32
    bn_axis_name: AxisNames = None
    fast_cpu: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _conv_cls(self.fast_cpu)(self.stem_width, (3, 3), padding="SAME", use_bias=False,
                                     dtype=self.dtype)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name,
                         dtype=self.dtype)(x)
        x = nn.relu(x)
        for i, width in enumerate(self.stage_widths):
            x = _BasicBlock(width, 1 if i == 0 else 2, self.dtype, self.bn_axis_name, self.fast_cpu)(x, train)
        x = jnp.mean(x, axis=(1, 2))
        if self.embed_dim:
            x = nn.Dense(self.embed_dim, dtype=self.dtype)(x)
        return x.astype(jnp.float32)


ENCODERS = {"koch": Koch, "conv4": Conv4, "resnet": ResNet}


def make_encoder(name: str, **kwargs) -> nn.Module:
    """Build an encoder by name (``koch``, ``conv4``, ``resnet``) with keyword overrides."""
    if name not in ENCODERS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(ENCODERS)}")
    # lists (from JSON metadata or a config) become tuples: module attributes must be hashable
    return ENCODERS[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
