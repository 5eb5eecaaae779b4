"""NumPy convolution math: the float64 reference (the oracle) and a fast im2col/BLAS path.

Layouts are the public API's: input (N, C_in, *spatial), weight (C_out,
C_in/g, *k) for conv and (C_in, C_out/g, *k) for conv_transpose. Nothing here
writes to its arguments.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...spec import ConvSpec

_NP_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}

#: Bound on the im2col column buffer; larger calls are chunked over the batch.
IM2COL_CHUNK_BYTES = 64 * 2**20


def compute_dtype(spec: ConvSpec) -> np.dtype:
    """The precision the fast path computes in: float16 is stored, but computed in float32."""
    return np.dtype(np.float32 if spec.dtype == "float16" else spec.dtype)


def pad_input(spec: ConvSpec, x: np.ndarray) -> np.ndarray:
    """The input padded as ``spec.padding_mode`` says (returns ``x`` itself when unpadded)."""
    if not any(spec.pad_before + spec.pad_after):
        return x
    widths = [(0, 0), (0, 0)] + [tuple(p) for p in spec.padding]
    return np.pad(x, widths, mode=_NP_PAD_MODE[spec.padding_mode])


def _spatial(nd: int) -> tuple[slice, ...]:
    return (slice(None),) * nd


def reference(spec: ConvSpec, x: Any, w: Any, b: Any = None) -> np.ndarray:
    """The exact result in float64: every product and sum in float64, fixed order.

    This is the oracle every backend is compared against. It is written as a
    loop over kernel taps (an independent formulation from im2col), each tap
    one float64 contraction over input channels.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if spec.transposed:
        out = _reference_transposed(spec, x, w)
    else:
        out = _reference_conv(spec, x, w)
    if b is not None:
        out += np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * spec.ndim)
    return out


def _reference_conv(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    n, g, cig, cog = spec.batch, spec.groups, spec.in_per_group, spec.out_per_group
    xp = pad_input(spec, x)
    xg = xp.reshape((n, g, cig) + xp.shape[2:])
    wg = w.reshape((g, cog, cig) + spec.kernel)
    out = np.zeros((n, g, cog) + spec.out_size)
    for tap in np.ndindex(*spec.kernel):
        sl = tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s)
            for t, d, o, s in zip(tap, spec.dilation, spec.out_size, spec.stride)
        )
        xs = xg[(slice(None),) * 3 + sl]
        out += np.einsum("gij,ngj...->ngi...", wg[(slice(None),) * 3 + tap], xs)
    return out.reshape(spec.output_shape)


def _full_transposed_size(spec: ConvSpec) -> tuple[int, ...]:
    """Size of the transposed result before cropping: every position an input reaches, plus output_padding."""
    return tuple(
        (i - 1) * s + d * (k - 1) + 1 + op
        for i, s, d, k, op in zip(spec.in_size, spec.stride, spec.dilation, spec.kernel, spec.output_padding)
    )


def _crop(spec: ConvSpec, full: np.ndarray) -> np.ndarray:
    sl = tuple(
        slice(pb, pb + o) for pb, o in zip(spec.pad_before, spec.out_size)
    )
    return full[(slice(None),) * (full.ndim - spec.ndim) + sl]


def _reference_transposed(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    n, g, cig, cog = spec.batch, spec.groups, spec.in_per_group, spec.out_per_group
    full = _full_transposed_size(spec)
    buf = np.zeros((n, g, cog) + full)
    xg = x.reshape((n, g, cig) + spec.in_size)
    wg = w.reshape((g, cig, cog) + spec.kernel)
    for tap in np.ndindex(*spec.kernel):
        sl = tuple(
            slice(t * d, t * d + (i - 1) * s + 1, s)
            for t, d, i, s in zip(tap, spec.dilation, spec.in_size, spec.stride)
        )
        buf[(slice(None),) * 3 + sl] += np.einsum("gji,ngj...->ngi...", wg[(slice(None),) * 3 + tap], xg)
    return np.ascontiguousarray(_crop(spec, buf)).reshape(spec.output_shape)


# ----------------------------------------------------------------- im2col path
def im2col_workspace_bytes(spec: ConvSpec) -> int:
    """Peak scratch of :func:`im2col`: one chunk of columns plus the padded input copy."""
    item = compute_dtype(spec).itemsize
    k = math.prod(spec.kernel)
    if spec.transposed:
        per_image = spec.out_channels * k * math.prod(spec.in_size) * item
        full = spec.out_channels * math.prod(_full_transposed_size(spec)) * item
        per_image += full
    else:
        per_image = spec.in_channels * k * math.prod(spec.out_size) * item
    padded = spec.in_channels * math.prod(
        s + a + b for s, a, b in zip(spec.in_size, spec.pad_before, spec.pad_after)
    ) * item
    chunk = max(1, min(spec.batch, IM2COL_CHUNK_BYTES // max(per_image, 1)))
    return chunk * (per_image + padded)


def _chunks(spec: ConvSpec) -> int:
    item = compute_dtype(spec).itemsize
    k = math.prod(spec.kernel)
    size = spec.out_size if not spec.transposed else spec.in_size
    channels = spec.in_channels if not spec.transposed else spec.out_channels
    per_image = max(channels * k * math.prod(size) * item, 1)
    return max(1, min(spec.batch, IM2COL_CHUNK_BYTES // per_image))


def im2col(spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Convolution by im2col + one batched BLAS matmul per chunk of images, in the compute dtype."""
    ct = compute_dtype(spec)
    x = np.asarray(x, dtype=ct)
    w = np.asarray(w, dtype=ct)
    out = np.empty(spec.output_shape, dtype=ct)
    step = _chunks(spec)
    fn = _im2col_transposed if spec.transposed else _im2col_conv
    for start in range(0, spec.batch, step):
        stop = min(spec.batch, start + step)
        out[start:stop] = fn(spec, x[start:stop], w)
    if b is not None:
        out += np.asarray(b, dtype=ct).reshape((1, -1) + (1,) * spec.ndim)
    return out


def _im2col_conv(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    g, cig, cog = spec.groups, spec.in_per_group, spec.out_per_group
    xp = np.ascontiguousarray(pad_input(spec, x))
    es = xp.itemsize
    st = xp.strides  # (sN, sC, *sP)
    shape = (n, g, cig) + spec.kernel + spec.out_size
    strides = (
        (st[0], cig * st[1], st[1])
        + tuple(d * sp for d, sp in zip(spec.dilation, st[2:]))
        # a dim with one output never steps: its stride may be any int (2**70 overflows as_strided)
        + tuple((s if o > 1 else 0) * sp for s, o, sp in zip(spec.stride, spec.out_size, st[2:]))
    )
    assert es == xp.dtype.itemsize
    windows = as_strided(xp, shape=shape, strides=strides, writeable=False)
    kk = cig * math.prod(spec.kernel)
    cols = windows.reshape(n, g, kk, math.prod(spec.out_size))  # the im2col copy
    wg = w.reshape(g, cog, kk)
    res = np.matmul(wg[None], cols)  # (n, g, cog, O)
    return res.reshape((n, spec.out_channels) + spec.out_size)


def _im2col_transposed(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """col2im: one GEMM to columns (weight^T @ input), then a strided add per kernel tap."""
    n = x.shape[0]
    g, cig, cog = spec.groups, spec.in_per_group, spec.out_per_group
    k = math.prod(spec.kernel)
    xg = np.ascontiguousarray(x).reshape(n, g, cig, math.prod(spec.in_size))
    wt = w.reshape(g, cig, cog * k).transpose(0, 2, 1)  # (g, cog*k, cig)
    cols = np.matmul(wt[None], xg).reshape((n, g, cog) + spec.kernel + spec.in_size)
    full = _full_transposed_size(spec)
    buf = np.zeros((n, g, cog) + full, dtype=x.dtype)
    for tap in np.ndindex(*spec.kernel):
        sl = tuple(
            slice(t * d, t * d + (i - 1) * s + 1, s)
            for t, d, i, s in zip(tap, spec.dilation, spec.in_size, spec.stride)
        )
        buf[(slice(None),) * 3 + sl] += cols[(slice(None),) * 3 + tap]
    return _crop(spec, buf).reshape((n, spec.out_channels) + spec.out_size)
