"""One ConvSpec as a single-op OpenVINO model.

Inputs (all runtime Parameters, so one compiled model serves every call of the spec):

- ``x``: the input, (N, C_in, *spatial);
- ``w``: the weight in OpenVINO's layout, which for ungrouped ops is clconv's (torch's)
  layout and for grouped ops is the same memory reshaped with a leading groups axis
  (:func:`ov_weight_shape`; the kernel passes a free NumPy view);
- ``b`` (when the spec has a bias): shape (1, C_out, 1, ...), added after the op.

Ops: Convolution / GroupConvolution, ConvolutionBackpropData /
GroupConvolutionBackpropData, all with explicit ``pads_begin``/``pads_end``,
``strides``, ``dilations`` and (transposed) ``output_padding``: clconv's semantics map
one to one (for transposed ops the pads are what is cropped from each end of the
full result, as in ConvSpec), except where OpenVINO gets it wrong: an
``output_padding`` >= stride (possible when dilation > stride) becomes a zero Pad
after the op (:meth:`ConvSpec.output_padding_within_stride`: with a 1x1 kernel, stride 1
and output_padding, OpenVINO 2026.4's CPU plugin ignores pads_begin, shifting the result by
the crop), and a crop that starts past the end of the full result builds no model at all
(:attr:`ConvSpec.crops_past_result`). Padding modes other than zeros are a Pad op (``reflect``, ``edge``) or, for ``circular``, a Slice + Concat per spatial dim
(OpenVINO's Pad has no wrap mode), in front of an unpadded convolution.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops

from clconv.spec import ConvSpec

#: clconv padding_mode -> OpenVINO Pad pad_mode (circular is built from slices).
PAD_MODES = {"reflect": "reflect", "replicate": "edge"}


def ov_weight_shape(spec: ConvSpec) -> tuple[int, ...]:
    """The weight shape OpenVINO's op takes: clconv's, with a groups axis for grouped ops."""
    if spec.groups == 1:
        return spec.weight_shape
    g, k = spec.groups, spec.kernel
    if spec.transposed:  # (C_in, C_out/G, *k) -> (G, C_in/G, C_out/G, *k)
        return (g, spec.in_per_group, spec.out_per_group, *k)
    return (g, spec.out_per_group, spec.in_per_group, *k)  # (C_out, C_in/G, *k) -> (G, C_out/G, C_in/G, *k)


def bias_shape(spec: ConvSpec) -> tuple[int, ...]:
    return (1, spec.out_channels) + (1,) * spec.ndim


def _circular(x: ov.Node, spec: ConvSpec) -> ov.Node:
    """Wrap-around padding: per spatial dim, concat(tail, x, head)."""
    for i, (n, before, after) in enumerate(zip(spec.in_size, spec.pad_before, spec.pad_after)):
        axis = 2 + i
        parts = []
        if before:
            parts.append(_slice(x, n - before, n, axis))
        parts.append(x)
        if after:
            parts.append(_slice(x, 0, after, axis))
        if len(parts) > 1:
            x = ops.concat(parts, axis)
    return x


def _slice(x: ov.Node, start: int, stop: int, axis: int) -> ov.Node:
    start_, stop_, step, axes = (np.array([v], dtype=np.int64) for v in (start, stop, 1, axis))
    return ops.slice(x, start_, stop_, step, axes)


def build_model(spec: ConvSpec) -> ov.Model:
    """The single-op model of ``spec`` (see the module docstring for its inputs)."""
    dtype = np.dtype(spec.dtype)
    x = ops.parameter(list(spec.input_shape), dtype, name="x")
    w = ops.parameter(list(ov_weight_shape(spec)), dtype, name="w")
    params = [x, w]
    data: ov.Node = x
    pads_begin, pads_end = list(spec.pad_before), list(spec.pad_after)
    if spec.padding_mode != "zeros":
        zeros = [0, 0]
        if spec.padding_mode == "circular":
            data = _circular(x, spec)
        else:
            data = ops.pad(x, np.array(zeros + pads_begin, np.int64), np.array(zeros + pads_end, np.int64),
                           PAD_MODES[spec.padding_mode])
        pads_begin = pads_end = [0] * spec.ndim
    common = dict(strides=list(spec.stride), pads_begin=pads_begin, pads_end=pads_end,
                  dilations=list(spec.dilation), auto_pad="explicit")
    if spec.transposed:
        op = ops.group_convolution_backprop_data if spec.groups > 1 else ops.convolution_backprop_data
        common["pads_end"], out_pad, extra = spec.output_padding_within_stride()
        y = op(data, w, output_padding=out_pad, **common)
        if any(extra):
            zeros = [0] * (2 + spec.ndim)
            y = ops.pad(y, np.array(zeros, np.int64), np.array([0, 0] + extra, np.int64), "constant")
    else:
        op = ops.group_convolution if spec.groups > 1 else ops.convolution
        y = op(data, w, **common)
    if spec.bias:
        b = ops.parameter(list(bias_shape(spec)), dtype, name="b")
        params.append(b)
        y = ops.add(y, b)
    model = ov.Model([y], params, "clconv_" + spec.name)
    got = tuple(model.output(0).get_shape())
    if got != spec.output_shape:  # the op's shape rules disagree with clconv's: never run it
        raise ValueError(f"OpenVINO infers output shape {got} for {spec.describe()}, clconv expects {spec.output_shape}")
    return model
