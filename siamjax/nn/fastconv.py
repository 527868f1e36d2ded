"""Faster CPU training for stride-1 convolutions and 2x2 max-pooling (same mathematics as Flax's).

On XLA:CPU (jax 0.10) the forward convolution and its input gradient mostly run well (YNNPACK /
Eigen), but the *weight* gradient is lowered to a convolution whose "kernel" is the whole output
image, which runs at a few GFLOP/s, and the gradient of ``reduce_window`` max (``select_and_scatter``)
is slow too. Copies are built by stacking on a second-minor or major axis: XLA:CPU's concatenation
along the minor axis ran at ~1 GB/s.

Here:

* :func:`conv2d` is a ``jax.custom_vjp`` 2-D convolution (NHWC input, HWIO kernel, stride 1, no
  dilation, one feature group, ``"SAME"`` / ``"VALID"`` / explicit non-negative padding). Its weight
  gradient is one matrix product per chunk of images (:func:`conv_weight_grad`). Its forward and input
  gradient are XLA's (``lax.conv_general_dilated`` and its transpose: bit-identical to Flax's
  ``nn.Conv``) except for large kernels with many input channels (Koch's 7x7 and 4x4 layers), where
  XLA:CPU's convolution measured 2-4x slower than matrix products (``forward="auto"``; equal to float
  rounding).
* :func:`max_pool_2x2` is ``nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")`` (odd sizes drop
  the last row / column) computed by a reshape and a max, whose gradient goes, through a mask, to the
  first maximum of each window in row-major order: the element ``select_and_scatter`` picks.
* :class:`Conv` is a drop-in ``nn.Conv`` (same fields, same ``kernel`` / ``bias`` parameters, same
  automatic name ``Conv_<i>``) that uses :func:`conv2d` when it can and ``nn.Conv``'s computation
  otherwise (strides, dilation, groups, masks, circular padding...).

The fast path is taken only when ``fast=True`` *and* ``jax.default_backend() == "cpu"`` at trace time,
so GPU / TPU programs keep XLA's native convolution and pooling (and stay forward-differentiable:
a ``custom_vjp`` function supports reverse mode only; pass ``fast=False`` / ``fast_cpu=False`` for
``jax.jvp`` / ``jax.jacfwd`` / higher-order derivatives on CPU).
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Pads = tuple[tuple[int, int], tuple[int, int]]

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
_SCHEMES = ("auto", "im2col", "rows")


def use_fast_path(fast: bool = True) -> bool:
    """True when the fast CPU path should be traced: ``fast`` and the default backend is the CPU."""
    return bool(fast) and jax.default_backend() == "cpu"


def conv_pads(padding: str | Sequence, in_hw: Sequence[int], k_hw: Sequence[int]) -> Pads:
    """``"SAME"`` / ``"VALID"`` / ``[(lo, hi), (lo, hi)]`` / int -> ((lo, hi), (lo, hi)) for stride 1."""
    if isinstance(padding, str):
        p = padding.upper()
        if p not in ("SAME", "VALID"):
            raise ValueError(f"conv2d: padding {padding!r} is not SAME, VALID or explicit pairs")
        pads = lax.padtype_to_pads(tuple(in_hw), tuple(k_hw), (1, 1), p)
    elif isinstance(padding, int):
        pads = [(padding, padding)] * 2
    else:
        pads = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    if len(pads) != 2:
        raise ValueError(f"conv2d: need 2 spatial paddings, got {pads}")
    return pads  # type: ignore[return-value]


def _conv(x, w, pads: Pads, precision):
    return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=DIMENSION_NUMBERS,
                                    precision=precision)


def _divisor_for_rows(n: int, rows_per_image: int, want_rows: int, bytes_per_image: int, max_bytes: int) -> int:
    """The fewest images (a divisor of n) giving >= want_rows matrix rows within max_bytes of patches."""
    cap = max(1, max_bytes // max(bytes_per_image, 1))
    want = -(-want_rows // max(rows_per_image, 1))
    good = [d for d in range(1, n + 1) if n % d == 0 and want <= d <= cap]
    return good[0] if good else _largest_divisor_at_most(n, cap)


def _conv_rows_matmul(x, w, pads: Pads):
    """The convolution as matrix products: kernel rows on the input side, columns on the output side.

    Z = E [N*Ho*Wp, kh*C] . W [(i, c), (j, o)] -> [N, Ho, Wp, kw, O], y[.., x, o] = sum_j Z[.., x + j, j, o].
    In chunks of images (bounded memory). Used where XLA:CPU's convolution is slow (large kernels with
    many input channels: Koch's 7x7 and 4x4 layers run 2-4x faster this way).
    """
    kh, kw, c, o = w.shape
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    n, hp, wp, _ = xp.shape
    ho, wo = hp - kh + 1, wp - kw + 1
    wr = w.transpose(0, 2, 1, 3).reshape(kh * c, kw * o)

    def one(xc):
        m = xc.shape[0]
        e = jnp.stack([xc[:, i:i + ho] for i in range(kh)], axis=-2).reshape(m * ho * wp, kh * c)
        z = jnp.dot(e, wr, preferred_element_type=jnp.float32).reshape(m, ho, wp, kw, o)
        y = z[:, :, 0:wo, 0, :]
        for j in range(1, kw):
            y = y + z[:, :, j:j + wo, j, :]
        return y.astype(x.dtype)

    chunk = _divisor_for_rows(n, ho * wp, 16384, ho * wp * (kh * c + kw * o) * 4, 256 << 20)
    if chunk == n:
        return one(xp)

    def body(t, y):
        part = one(lax.dynamic_slice_in_dim(xp, t * chunk, chunk, 0))
        return lax.dynamic_update_slice_in_dim(y, part, t * chunk, 0)

    return lax.fori_loop(0, n // chunk, body, jnp.zeros((n, ho, wo, o), x.dtype))


_FORWARDS = ("auto", "lax", "matmul")


def _forward_impl(kernel_shape, forward: str) -> str:
    """"lax" (XLA's convolution) or "matmul" (:func:`_conv_rows_matmul`) for a stride-1 kernel.

    "auto": matmul for kernels of >= 16 taps with >= 16 input channels (Koch's 7x7 and 4x4 layers,
    where XLA:CPU's convolution measured 2-4x slower), XLA's convolution otherwise (conv4 / ResNet
    3x3, and one-channel inputs, where it is the faster).
    """
    if forward not in _FORWARDS:
        raise ValueError(f"forward must be one of {_FORWARDS}, got {forward!r}")
    if forward != "auto":
        return forward
    kh, kw, c, _ = kernel_shape
    return "matmul" if kh * kw >= 16 and c >= 16 else "lax"


# ---------------------------------------------------------------------------------- weight gradient
def _largest_divisor_at_most(n: int, cap: int) -> int:
    cap = max(1, min(n, cap))
    return max(d for d in range(1, cap + 1) if n % d == 0)


def _scheme_costs(x_shape, dy_shape, k_shape) -> dict[str, int]:
    """Elements of patch matrices per image for the two matrix-product layouts."""
    _, _, _, c = x_shape
    _, ho, wo, o = dy_shape
    kh, kw = k_shape[:2]
    wp = wo + kw - 1
    return {"im2col": ho * wo * (kh * kw * c + o), "rows": ho * wp * (kh * c + kw * o)}


def _grad_im2col(xp, dy, kh: int, kw: int, with_bias: bool):
    """All kh*kw taps on the input side: patches [kh*kw, M, C] . dY [M, O] -> [kh*kw, C, O].

    Returns (dW [kh, kw, C, O], db [O] or None). The taps are stacked on a major axis (contiguous
    copies: XLA:CPU's minor-axis concatenation is several times slower) and the contraction runs over
    the M = N*Ho*Wo output pixels.
    """
    n, ho, wo, o = dy.shape
    c = xp.shape[-1]
    m = n * ho * wo
    pat = jnp.stack([xp[:, i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)]).reshape(kh * kw, m, c)
    d2 = dy.reshape(m, o)
    g = lax.dot_general(pat, d2, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)  # [kh*kw, C, O]
    db = jnp.sum(d2, axis=0, dtype=jnp.float32) if with_bias else None
    return g.reshape(kh, kw, c, o), db


def _grad_rows(xp, dy, kh: int, kw: int, with_bias: bool):
    """Kernel rows on the input side, kernel columns on the output side.

    dW[i, j, c, o] = sum_{n, y, x'} xp[n, y + i, x', c] * dY[n, y, x' - j, o] over the padded width x',
    so E = [xp rows shifted by i] (M' x kh*C) and D = [dY shifted right by j] (M' x kw*O) give every
    tap in one product E^T D (kh*C x kw*O), with M' = N*Ho*Wp rows: each operand is copied kh or kw
    times instead of kh*kw times (stacked on the second-minor axis: XLA:CPU's minor-axis concatenation
    is several times slower).
    """
    n, ho, wo, o = dy.shape
    c = xp.shape[-1]
    wp = xp.shape[2]
    m = n * ho * wp
    e = jnp.stack([xp[:, i:i + ho, :, :] for i in range(kh)], axis=-2).reshape(m, kh * c)
    dyp = jnp.pad(dy, ((0, 0), (0, 0), (kw - 1, wp - wo), (0, 0)))  # dY at column offset kw - 1
    d = jnp.stack([dyp[:, :, kw - 1 - j:kw - 1 - j + wp, :] for j in range(kw)], axis=-2).reshape(m, kw * o)
    g = lax.dot_general(e, d, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)  # [kh*c, kw*o]
    db = jnp.sum(dy, axis=(0, 1, 2), dtype=jnp.float32) if with_bias else None
    return g.reshape(kh, c, kw, o).transpose(0, 2, 1, 3), db


def _chunk_images(n: int, scheme: str, per_image_bytes: int, rows_per_image: int, chunk_bytes: int | None) -> int:
    """Images per step of the weight-gradient loop (a divisor of n).

    im2col (memory-bound, few channels): the most images whose patches fit in ``chunk_bytes``
    (default 32 MiB). rows: the fewest images giving >= 1024 contraction rows (keeps the patches in
    cache; measured best on conv4 and Koch), at most ``chunk_bytes`` (default 64 MiB) of patches.
    """
    if scheme == "im2col":
        cap = (chunk_bytes or 32 << 20) // max(per_image_bytes, 1)
        return _largest_divisor_at_most(n, cap)
    cap = max(1, (chunk_bytes or 64 << 20) // max(per_image_bytes, 1))
    want = -(-1024 // max(rows_per_image, 1))
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    good = [d for d in divisors if d >= want and d <= cap]
    return good[0] if good else _largest_divisor_at_most(n, cap)


def conv_weight_grad(x, dy, kernel_shape: Sequence[int], pads: Pads, *, scheme: str = "auto",
                     chunk_bytes: int | None = None, with_bias: bool = False):
    """Weight (and bias) gradient of a stride-1 NHWC/HWIO convolution by matrix products.

    x [N, H, W, C], dy [N, Ho, Wo, O] (cotangent of the output), kernel_shape (kh, kw, C, O) ->
    dW [kh, kw, C, O] float32, or (dW, db [O]) with ``with_bias``. ``scheme``: "im2col" (all taps on
    the input side), "rows" (kernel rows on the input side, columns on the output side) or "auto"
    (whichever copies fewer elements). The images are processed in chunks (a ``fori_loop``
    accumulates them; see ``_chunk_images``), which bounds the memory (Koch's 10x10 taps at 105x105)
    and keeps the patches in cache.
    """
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {_SCHEMES}, got {scheme!r}")
    kh, kw, c, o = (int(s) for s in kernel_shape)
    n = x.shape[0]
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    ho, wo = dy.shape[1:3]
    if (xp.shape[1] - kh + 1, xp.shape[2] - kw + 1) != (ho, wo):
        raise ValueError(f"conv_weight_grad: dy {dy.shape} does not match x {x.shape}, kernel {kernel_shape}, "
                         f"pads {pads}")
    costs = _scheme_costs(x.shape, dy.shape, (kh, kw, c, o))
    if scheme == "auto":
        scheme = min(costs, key=costs.get)
    fn = _grad_im2col if scheme == "im2col" else _grad_rows
    one = lambda a, b: fn(a, b, kh, kw, with_bias)  # noqa: E731
    rows = ho * (wo if scheme == "im2col" else xp.shape[2])
    chunk = _chunk_images(n, scheme, costs[scheme] * 4, rows, chunk_bytes)
    if chunk == n:
        dw, db = one(xp, dy)
    else:
        def body(t, acc):
            start = t * chunk
            part = one(lax.dynamic_slice_in_dim(xp, start, chunk, 0), lax.dynamic_slice_in_dim(dy, start, chunk, 0))
            return jax.tree_util.tree_map(jnp.add, acc, part)

        zeros = (jnp.zeros((kh, kw, c, o), jnp.float32), jnp.zeros((o,), jnp.float32) if with_bias else None)
        dw, db = lax.fori_loop(0, n // chunk, body, zeros)
    return (dw, db) if with_bias else dw


# ------------------------------------------------------------------------------------- convolution
@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _conv_fast(x, w, b, pads: Pads, precision, scheme: str, forward: str):
    return _conv_bias(x, w, b, pads, precision, forward)


def _conv_bias(x, w, b, pads, precision, forward: str = "lax"):
    """The convolution in ``x.dtype``: kernel and bias are cast to it (mixed precision: float32
    parameters, bfloat16 activations)."""
    w = w.astype(x.dtype)
    y = _conv_rows_matmul(x, w, pads) if forward == "matmul" else _conv(x, w, pads, precision)
    return y if b is None else y + b.astype(x.dtype).reshape((1, 1, 1, -1))


def _conv_fast_fwd(x, w, b, pads, precision, scheme, forward):
    return _conv_bias(x, w, b, pads, precision, forward), (x, w, b)


def _input_grad(x, w, dy, pads: Pads, precision, forward: str):
    """dL/dx: XLA's own transpose of the convolution, or for ``forward="matmul"`` layers the same
    "full" convolution (dY padded by k - 1 - pad, kernel rotated 180 degrees, C and O swapped) by
    matrix products."""
    w = w.astype(x.dtype)
    kh, kw = w.shape[:2]
    full = tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip((kh, kw), pads))
    if forward == "matmul" and min(min(p) for p in full) >= 0:
        return _conv_rows_matmul(dy, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2), full).astype(x.dtype)
    _, vjp_x = jax.vjp(lambda x_: _conv(x_, w, pads, precision), x)
    return vjp_x(dy)[0]


def _conv_fast_bwd(pads, precision, scheme, forward, res, dy):
    # x and dy are in the compute dtype, w and b in the parameter dtype: the weight and bias
    # gradients are accumulated in float32 (preferred_element_type) and returned in the parameter
    # dtype, never rounded to the compute dtype on the way.
    x, w, b = res
    dx = _input_grad(x, w, dy, pads, precision, forward)
    if b is None:
        dw = conv_weight_grad(x, dy, w.shape, pads, scheme=scheme)
        return dx, dw.astype(w.dtype), None
    dw, db = conv_weight_grad(x, dy, w.shape, pads, scheme=scheme, with_bias=True)
    return dx, dw.astype(w.dtype), db.astype(b.dtype)


_conv_fast.defvjp(_conv_fast_fwd, _conv_fast_bwd)


def conv2d(x, kernel, padding: str | Sequence = "SAME", bias=None, *, precision=None, fast: bool = True,
           scheme: str = "auto", forward: str = "auto"):
    """Stride-1 convolution x [N, H, W, C] (NHWC) * kernel [kh, kw, C, O] (HWIO) (+ bias [O]).

    Values equal ``lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=("NHWC",
    "HWIO", "NHWC")) + bias``. On the CPU backend (and ``fast``) the weight and bias gradients are
    computed by matrix products (see :func:`conv_weight_grad`, ``scheme``); the forward and the input
    gradient are XLA's convolutions or, for large kernels with many input channels, matrix products
    (``forward``: "auto", "lax" or "matmul"; see ``_forward_impl``; equal to float rounding).
    Elsewhere everything is XLA's. Extra leading batch axes of ``x`` are flattened into N.

    The convolution runs in ``x.dtype`` (``kernel`` and ``bias`` are cast to it): with bfloat16 ``x``
    and float32 parameters the activations are bfloat16, while the fast path's weight and bias
    gradients are accumulated in float32 and returned in the parameters' own dtype.
    """
    if kernel.ndim != 4 or x.shape[-1] != kernel.shape[2]:
        raise ValueError(f"conv2d: x {x.shape} (NHWC) and kernel {kernel.shape} (HWIO) do not match")
    if bias is not None and bias.shape != (kernel.shape[3],):
        raise ValueError(f"conv2d: bias {bias.shape} does not match kernel {kernel.shape}")
    lead = x.shape[:-3]
    if len(lead) != 1:
        x = x.reshape((-1,) + x.shape[-3:])
    pads = conv_pads(padding, x.shape[1:3], kernel.shape[:2])
    if use_fast_path(fast) and min(min(p) for p in pads) >= 0:
        y = _conv_fast(x, kernel, bias, pads, precision, scheme, _forward_impl(kernel.shape, forward))
    else:
        y = _conv_bias(x, kernel, bias, pads, precision)
    return y.reshape(lead + y.shape[1:]) if len(lead) != 1 else y


# ------------------------------------------------------------------------------------ max pooling
def _pool_crop(x):
    h, w = x.shape[-3:-1]
    ho, wo = h // 2, w // 2
    xc = x[..., :2 * ho, :2 * wo, :]
    return xc.reshape(x.shape[:-3] + (ho, 2, wo, 2, x.shape[-1]))


@jax.custom_vjp
def _max_pool_fast(x):
    return jnp.max(_pool_crop(x), axis=(-4, -2))


def _max_pool_fast_fwd(x):
    y = jnp.max(_pool_crop(x), axis=(-4, -2))
    return y, (x, y)


_POOL_GRAD = "mask"


def _max_pool_fast_bwd(res, g):
    x, y = res
    if _POOL_GRAD == "mask":
        return _max_pool_bwd_mask(x, y, g)
    xr = _pool_crop(x)  # [..., Ho, 2, Wo, 2, C]
    # window position a*2 + b of each element; the gradient goes to the FIRST maximum in row-major
    # window order, the element select_and_scatter (XLA's max-pool gradient, `ge` select) picks
    pos = (2 * lax.broadcasted_iota(jnp.int32, (2, 1, 2, 1), 0) + lax.broadcasted_iota(jnp.int32, (2, 1, 2, 1), 2))
    first = jnp.min(jnp.where(xr == y[..., :, None, :, None, :], pos, 4), axis=(-4, -2))  # [..., Ho, Wo, C]
    dx = jnp.where(pos == first[..., :, None, :, None, :], g[..., :, None, :, None, :], jnp.zeros((), g.dtype))
    ho, wo = y.shape[-3:-1]
    dx = dx.reshape(x.shape[:-3] + (2 * ho, 2 * wo, x.shape[-1]))
    h, w = x.shape[-3:-1]
    if (h, w) != (2 * ho, 2 * wo):
        pad = [(0, 0)] * (x.ndim - 3) + [(0, h - 2 * ho), (0, w - 2 * wo), (0, 0)]
        dx = jnp.pad(dx, pad)
    return (dx,)


def _max_pool_bwd_mask(x, y, g):
    eq = _pool_crop(x) == y[..., :, None, :, None, :]  # [..., Ho, 2, Wo, 2, C]
    e00, e01 = eq[..., :, 0, :, 0, :], eq[..., :, 0, :, 1, :]
    e10, e11 = eq[..., :, 1, :, 0, :], eq[..., :, 1, :, 1, :]
    m = [e00, e01 & ~e00, e10 & ~(e00 | e01), e11 & ~(e00 | e01 | e10)]
    zero = jnp.zeros((), g.dtype)
    row0 = jnp.stack([jnp.where(m[0], g, zero), jnp.where(m[1], g, zero)], axis=-2)
    row1 = jnp.stack([jnp.where(m[2], g, zero), jnp.where(m[3], g, zero)], axis=-2)
    dx = jnp.stack([row0, row1], axis=-4)
    ho, wo = y.shape[-3:-1]
    dx = dx.reshape(x.shape[:-3] + (2 * ho, 2 * wo, x.shape[-1]))
    h, w = x.shape[-3:-1]
    if (h, w) != (2 * ho, 2 * wo):
        dx = jnp.pad(dx, [(0, 0)] * (x.ndim - 3) + [(0, h - 2 * ho), (0, w - 2 * wo), (0, 0)])
    return (dx,)


_max_pool_fast.defvjp(_max_pool_fast_fwd, _max_pool_fast_bwd)


def max_pool_2x2(x, fast: bool = True):
    """``nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")`` for x [..., H, W, C].

    On the CPU backend (and ``fast``) it is a reshape + max with a mask gradient; elsewhere it is
    ``nn.max_pool`` itself. Odd H / W drop the last row / column, as VALID pooling does.
    """
    if x.ndim < 3 or x.shape[-3] < 2 or x.shape[-2] < 2 or not use_fast_path(fast):
        return nn.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="VALID")
    return _max_pool_fast(x)


# ------------------------------------------------------------------------------------ Linen module
class Conv(nn.Conv):
    """``nn.Conv`` with the fast CPU weight gradient of :func:`conv2d` where it applies.

    Same fields, same parameters (``kernel`` [kh, kw, C_in, features], ``bias`` [features]) and the
    same automatic name (``Conv_<i>``) as ``nn.Conv``, so parameter trees and checkpoints are
    interchangeable. The fast path needs a 2-D kernel, stride 1, no dilation, one feature group, no
    mask, and ``"SAME"`` / ``"VALID"`` / explicit non-negative padding; any other configuration, or
    ``fast_cpu=False``, or a non-CPU backend, computes exactly what ``nn.Conv`` computes.
    """

    fast_cpu: bool = True
    weight_grad_scheme: str = "auto"  # see conv_weight_grad
    forward: str = "auto"  # see conv2d

    def _fast_applicable(self, inputs) -> bool:
        ks = (self.kernel_size,) if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
        if len(ks) != 2 or inputs.ndim < 3:
            return False

        def ones(v):
            return v is None or (v == 1 if isinstance(v, int) else all(int(s) == 1 for s in v))

        pad = self.padding
        pad_ok = (isinstance(pad, str) and pad.upper() in ("SAME", "VALID")) or isinstance(pad, int) or (
            not isinstance(pad, str) and isinstance(pad, Sequence) and len(pad) == 2)
        return (use_fast_path(self.fast_cpu) and pad_ok and ones(self.strides) and ones(self.input_dilation)
                and ones(self.kernel_dilation) and self.feature_group_count == 1 and self.mask is None
                and self.conv_general_dilated is None and self.conv_general_dilated_cls is None)

    @nn.compact
    def __call__(self, inputs):
        if not self._fast_applicable(inputs):
            return self._flax_conv(inputs)
        ks = tuple(self.kernel_size) if not isinstance(self.kernel_size, int) else (self.kernel_size,)
        kernel = self.param("kernel", self.kernel_init, ks + (inputs.shape[-1], self.features),
                            self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        # Only the inputs are cast here: conv2d casts the parameters to the inputs' dtype inside its
        # custom_vjp, so their gradients come back in float32 without a round trip through bfloat16.
        inputs, _, _ = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        pads = nn.linear.canonicalize_padding(self.padding, 2)
        return conv2d(inputs, kernel, pads, bias, precision=self.precision, fast=True,
                      scheme=self.weight_grad_scheme, forward=self.forward)

    def _flax_conv(self, inputs):
        # nn.Conv.__call__'s body, run in this module's scope (same parameters, same computation)
        return _FLAX_CONV_CALL(self, inputs)


_FLAX_CONV_CALL = getattr(nn.Conv.__call__, "__wrapped__", nn.Conv.__call__)  # the unwrapped method
