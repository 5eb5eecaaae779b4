"""A naive nested-loop convolution oracle, written independently of clconv.

Plain Python loops over batch, output channel, output position, input channel
of the group and kernel tap, with the index arithmetic spelled out: stride,
dilation, asymmetric padding, each padding mode as an index mapping (never
``np.pad``), and the transposed convolution in its scatter form straight from
the definition. Sums are Python floats (float64). Shapes must be tiny.

It shares nothing with ``clconv`` (not even the parsing of ``padding="same"``)
so that a test comparing the two can catch a mistake on either side.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

__all__ = [
    "naive_conv",
    "naive_conv_transpose",
    "resolve_padding",
    "per_dim",
    "output_size",
    "transposed_output_size",
]


def per_dim(value: Any, nd: int) -> tuple[int, ...]:
    """An int, or a sequence of nd ints, as nd ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * nd
    value = tuple(int(v) for v in value)
    assert len(value) == nd, (value, nd)
    return value


def resolve_padding(
    padding: Any,
    in_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> list[tuple[int, int]]:
    """Per-dim (before, after) pairs from the public API's padding forms.

    ``"same"`` is ONNX SAME_UPPER: output size ceil(L / stride), and the total
    padding that needs split with the odd element at the END.
    """
    nd = len(in_size)
    if padding == "valid":
        return [(0, 0)] * nd
    if padding == "same":
        pairs = []
        for L, k, s, d in zip(in_size, kernel, stride, dilation):
            out = (L + s - 1) // s
            extent = d * (k - 1) + 1
            total = (out - 1) * s + extent - L
            if total < 0:
                total = 0
            before = total // 2
            pairs.append((before, total - before))
        return pairs
    if isinstance(padding, (int, np.integer)):
        return [(int(padding), int(padding))] * nd
    pairs = []
    for item in padding:
        if isinstance(item, (int, np.integer)):
            pairs.append((int(item), int(item)))
        else:
            a, b = item
            pairs.append((int(a), int(b)))
    assert len(pairs) == nd
    return pairs


def output_size(L: int, k: int, s: int, d: int, before: int, after: int) -> int:
    """Conv output length: the number of window starts that fit in the padded input."""
    extent = d * (k - 1) + 1
    count = 0
    start = 0
    while start + extent <= L + before + after:
        count += 1
        start += s
    return count


def transposed_output_size(L: int, k: int, s: int, d: int, before: int, after: int, op: int) -> int:
    """Transposed output length: last reachable position + 1 + output_padding, minus the crop."""
    last = (L - 1) * s + (k - 1) * d
    return last + 1 + op - before - after


def _source_index(p: int, L: int, mode: str) -> int | None:
    """Which input element the padded position ``p`` (relative to the input start) reads; None for zero."""
    if 0 <= p < L:
        return p
    if mode == "zeros":
        return None
    if mode == "replicate":
        return 0 if p < 0 else L - 1
    if mode == "reflect":
        # mirror about the first/last element, the edge itself not repeated
        if p < 0:
            q = -p
        else:
            q = 2 * (L - 1) - p
        assert 0 <= q < L, "reflect padding must be < the input size"
        return q
    if mode == "circular":
        if p < 0:
            q = p + L
        else:
            q = p - L
        assert 0 <= q < L, "circular padding must be <= the input size"
        return q
    raise AssertionError(f"unknown padding mode {mode!r}")


def _strides(shape: Sequence[int]) -> list[int]:
    """Element strides of a C-ordered array of this shape."""
    st = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        st[i] = st[i + 1] * shape[i + 1]
    return st


def naive_conv(
    x: Any,
    w: Any,
    b: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """out[n, co, o] = b[co] + sum_{ci, k} w[co, ci, k] * xpad[n, g*Cin_g + ci, o*s + k*d - pad_before]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nd = x.ndim - 2
    N, C_in = x.shape[:2]
    in_size = x.shape[2:]
    C_out, cig = w.shape[:2]
    kernel = w.shape[2:]
    stride = per_dim(stride, nd)
    dilation = per_dim(dilation, nd)
    pads = resolve_padding(padding, in_size, kernel, stride, dilation)
    assert cig * groups == C_in and C_out % groups == 0
    cog = C_out // groups
    out_size = [
        output_size(in_size[i], kernel[i], stride[i], dilation[i], *pads[i]) for i in range(nd)
    ]
    xf = x.ravel().tolist()
    wf = w.ravel().tolist()
    xs = _strides(x.shape)
    ws = _strides(w.shape)
    bf = None if b is None else np.asarray(b, dtype=np.float64).tolist()
    out = np.zeros((N, C_out, *out_size), dtype=np.float64)
    taps = list(itertools.product(*(range(k) for k in kernel)))
    for n in range(N):
        for co in range(C_out):
            g = co // cog
            for o in itertools.product(*(range(m) for m in out_size)):
                acc = 0.0
                for ci in range(cig):
                    c = g * cig + ci
                    for k in taps:
                        off = n * xs[0] + c * xs[1]
                        for i in range(nd):
                            p = o[i] * stride[i] + k[i] * dilation[i] - pads[i][0]
                            src = _source_index(p, in_size[i], padding_mode)
                            if src is None:
                                off = None
                                break
                            off += src * xs[2 + i]
                        if off is None:
                            continue  # a zero of the padding: contributes nothing
                        woff = co * ws[0] + ci * ws[1] + sum(k[i] * ws[2 + i] for i in range(nd))
                        acc += wf[woff] * xf[off]
                if bf is not None:
                    acc += bf[co]
                out[(n, co, *o)] = acc
    return out


def naive_conv_transpose(
    x: Any,
    w: Any,
    b: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> np.ndarray:
    """Scatter form: each x[n, ci, i] * w[ci, co_g, k] is added to out[n, g*Cout_g + co_g, i*s + k*d - pad_before].

    Positions that fall into the crop (before the start, or past the end after
    output_padding) are dropped; output_padding positions no input reaches hold
    just the bias.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nd = x.ndim - 2
    N, C_in = x.shape[:2]
    in_size = x.shape[2:]
    assert w.shape[0] == C_in and C_in % groups == 0
    cog = w.shape[1]
    C_out = cog * groups
    cig = C_in // groups
    kernel = w.shape[2:]
    stride = per_dim(stride, nd)
    dilation = per_dim(dilation, nd)
    out_pad = per_dim(output_padding, nd)
    assert padding != "same"
    pads = resolve_padding(padding, in_size, kernel, stride, dilation)
    out_size = [
        transposed_output_size(in_size[i], kernel[i], stride[i], dilation[i], *pads[i], out_pad[i])
        for i in range(nd)
    ]
    assert all(m >= 1 for m in out_size)
    out = np.zeros((N, C_out, *out_size), dtype=np.float64)
    taps = list(itertools.product(*(range(k) for k in kernel)))
    for n in range(N):
        for ci in range(C_in):
            g = ci // cig
            for i_pos in itertools.product(*(range(L) for L in in_size)):
                xv = float(x[(n, ci, *i_pos)])
                for cj in range(cog):
                    co = g * cog + cj
                    for k in taps:
                        pos = tuple(
                            i_pos[d] * stride[d] + k[d] * dilation[d] - pads[d][0] for d in range(nd)
                        )
                        if any(not (0 <= pos[d] < out_size[d]) for d in range(nd)):
                            continue  # cropped away
                        out[(n, co, *pos)] += xv * float(w[(ci, cj, *k)])
    if b is not None:
        out += np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * nd)
    return out


def naive(op: str, x: Any, w: Any, b: Any = None, **params: Any) -> np.ndarray:
    """Dispatch on op ('conv' or 'conv_transpose')."""
    if op == "conv":
        return naive_conv(x, w, b, **params)
    return naive_conv_transpose(x, w, b, **params)
