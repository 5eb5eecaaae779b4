"""One ConvSpec as a single-node ONNX model (plus a Pad node for non-zero padding modes).

Inputs ``x`` (N, C_in, *spatial), ``w`` (clconv's layout, which is ONNX's for Conv and
ConvTranspose alike) and, with a bias, ``b`` (C_out,) as the node's third input; output ``y``.

Semantics map one to one:

- Conv ``pads`` = [begin..., end...] are clconv's pad_before/pad_after.
- ConvTranspose: with explicit ``pads`` and no ``output_shape``, ONNX's output size is
  stride * (in - 1) + output_padding + dilation * (k - 1) + 1 - pads_begin - pads_end, the
  full result cropped by ``pads_begin`` at the start and ``pads_end`` at the end, with
  ``output_padding`` extra elements at the end: exactly ConvSpec's crop semantics,
  asymmetric crops included.
  ONNX Runtime refuses output_padding >= stride (clconv allows it when dilation > stride):
  see :meth:`ConvSpec.output_padding_within_stride`. A crop that starts past the end of the
  full result leaves nothing for a ConvTranspose to compute
  (:attr:`ConvSpec.crops_past_result`): no model is built for it.
- padding_mode reflect / replicate / circular: a Pad node (mode ``reflect`` / ``edge`` /
  ``wrap``) in front of an unpadded Conv. ``wrap`` needs opset 19.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from clconv.spec import ConvSpec

OPSET = 19
IR_VERSION = 9
ELEM_TYPE = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE}
#: clconv padding_mode -> ONNX Pad mode
PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def build_model(spec: ConvSpec) -> bytes:
    """The serialized ONNX model of ``spec`` (checked by onnx.checker)."""
    et = ELEM_TYPE[spec.dtype]
    inputs = [helper.make_tensor_value_info("x", et, list(spec.input_shape)),
              helper.make_tensor_value_info("w", et, list(spec.weight_shape))]
    nodes, initializers = [], []
    data = "x"
    pads = list(spec.pad_before) + list(spec.pad_after)
    if spec.padding_mode != "zeros":
        pad_amounts = [0, 0] + list(spec.pad_before) + [0, 0] + list(spec.pad_after)
        initializers.append(helper.make_tensor("pads", TensorProto.INT64, [len(pad_amounts)], pad_amounts))
        nodes.append(helper.make_node("Pad", ["x", "pads"], ["x_padded"], mode=PAD_MODES[spec.padding_mode]))
        data, pads = "x_padded", [0] * (2 * spec.ndim)
    if spec.bias:
        inputs.append(helper.make_tensor_value_info("b", et, [spec.out_channels]))
    attrs: dict[str, Any] = dict(kernel_shape=list(spec.kernel), strides=list(spec.stride),
                                 dilations=list(spec.dilation), group=spec.groups, pads=pads)
    extra = [0] * spec.ndim
    if spec.transposed:
        pads_end, attrs["output_padding"], extra = spec.output_padding_within_stride()
        attrs["pads"] = list(spec.pad_before) + pads_end
    op = "ConvTranspose" if spec.transposed else "Conv"
    if not any(extra):
        nodes.append(helper.make_node(op, [data, "w"] + (["b"] if spec.bias else []), ["y"], **attrs))
    else:
        tail = [0, 0] + [0] * spec.ndim + [0, 0] + extra
        initializers.append(helper.make_tensor("tail", TensorProto.INT64, [len(tail)], tail))
        nodes.append(helper.make_node(op, [data, "w"], ["y_full"], **attrs))
        nodes.append(helper.make_node("Pad", ["y_full", "tail"], ["y_padded" if spec.bias else "y"]))
        if spec.bias:
            shape = [1, spec.out_channels] + [1] * spec.ndim
            initializers.append(helper.make_tensor("bias_shape", TensorProto.INT64, [len(shape)], shape))
            nodes.append(helper.make_node("Reshape", ["b", "bias_shape"], ["b_nd"]))
            nodes.append(helper.make_node("Add", ["y_padded", "b_nd"], ["y"]))
    graph = helper.make_graph(nodes, "clconv_" + spec.name, inputs,
                              [helper.make_tensor_value_info("y", et, list(spec.output_shape))], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="clconv")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_spec(spec: ConvSpec) -> ConvSpec:
    """The smallest spec with the same node kinds, dtype, rank, grouping, padding and bias.

    Execution providers accept or refuse a node by its type, dtype, rank and attributes,
    not by its sizes, so a session of this spec says whether ``spec`` can run.
    """
    nd = spec.ndim
    if spec.is_depthwise:
        c_in, per_group, g = 2, 1, 2
    elif spec.groups > 1:
        c_in, per_group, g = 4, 2, 2
    else:
        c_in, per_group, g = 1, 1, 1
    padded = spec.padding_mode != "zeros" or any(spec.pad_before + spec.pad_after)
    common = dict(bias=spec.bias, groups=g, dtype=spec.dtype, padding=1 if padded else 0)
    if spec.transposed:
        # output_padding >= stride (possible when dilation > stride) builds a different graph
        big = any(o >= s for o, s in zip(spec.output_padding, spec.stride))
        return ConvSpec.from_shapes("conv_transpose", (1, c_in, *(3,) * nd), (c_in, per_group, *(2,) * nd),
                                    stride=1 if big else 2, dilation=2 if big else 1,
                                    output_padding=1 if any(spec.output_padding) else 0, **common)
    return ConvSpec.from_shapes("conv", (1, c_in, *(3,) * nd), (per_group * g, per_group, *(2,) * nd),
                                padding_mode=spec.padding_mode, **common)


def sample_arrays(spec: ConvSpec) -> dict[str, np.ndarray]:
    feed = {"x": np.ones(spec.input_shape, spec.dtype), "w": np.ones(spec.weight_shape, spec.dtype)}
    if spec.bias:
        feed["b"] = np.ones(spec.out_channels, spec.dtype)
    return feed
