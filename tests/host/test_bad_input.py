"""Every class of bad input: the right exception type, a message naming the parameter and
its value, and no argument changed. Each bad call sits next to a good one that differs
only in the bad part, so that a rule which rejects too much fails here too."""

from __future__ import annotations

import re
import tracemalloc
from typing import Any, Callable

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import clconv
from clconv import ConvSpec
from clconv.errors import (
    ClconvError,
    ConvTypeError,
    ConvValueError,
    DeviceMemoryError,
    UnsupportedError,
)

BUILTIN = {ConvTypeError: TypeError, ConvValueError: ValueError, UnsupportedError: ValueError, DeviceMemoryError: MemoryError}


def pattern(*fragments: str) -> str:
    """A regex matching the literal fragments in this order."""
    return ".*".join(re.escape(f) for f in fragments)


def assert_raises(exc: type, fragments: tuple[str, ...], call: Callable[[], Any], *arrays: Any) -> None:
    """``call()`` raises ``exc`` whose message holds ``fragments`` in order; ``arrays`` are unchanged."""
    before = [(a.copy(), a.strides) for a in arrays if isinstance(a, np.ndarray)]
    with pytest.raises(exc, match=re.compile(pattern(*fragments), re.S)) as info:
        call()
    assert isinstance(info.value, ClconvError)
    assert isinstance(info.value, BUILTIN[exc])
    for a, (copy, strides) in zip([a for a in arrays if isinstance(a, np.ndarray)], before):
        assert np.array_equal(a, copy, equal_nan=a.dtype.kind == "f"), "an argument was modified by a failing call"
        assert a.strides == strides


def arrays(x_shape=(2, 3, 5, 5), w_shape=(4, 3, 3, 3), bias: int | None = 4, dtype="float32"):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, x_shape).astype(dtype)
    w = rng.uniform(-1, 1, w_shape).astype(dtype)
    b = None if bias is None else rng.uniform(-1, 1, bias).astype(dtype)
    return x, w, b


# ------------------------------------------------------------------ not arrays
@pytest.mark.parametrize(
    "which,bad,fragments",
    [
        ("input", "list", ("input=", "has type list")),
        ("input", 5, ("input=5 has type int",)),
        ("input", (2, 3, 5, 5), ("input=(2, 3, 5, 5) has type tuple",)),
        ("input", None, ("input=None has type NoneType",)),
        ("weight", "list", ("weight=", "has type list")),
        ("weight", (4, 3, 3, 3), ("weight=(4, 3, 3, 3) has type tuple",)),
        ("bias", "list", ("bias=", "has type list")),
        ("bias", 1.0, ("bias=1.0 has type float",)),
        ("bias", True, ("bias=True has type bool",)),
    ],
)
def test_non_array_arguments(which: str, bad: Any, fragments: tuple[str, ...]) -> None:
    x, w, b = arrays()
    args = {"input": x, "weight": w, "bias": b}
    args[which] = args[which].tolist() if bad == "list" else bad
    assert_raises(ConvTypeError, fragments, lambda: clconv.conv2d(args["input"], args["weight"], args["bias"]), x, w, b)
    assert clconv.conv2d(x, w, b, backend="numpy").shape == (2, 4, 3, 3)  # the good call


@pytest.mark.parametrize("fn", [clconv.conv1d, clconv.conv_transpose1d])
def test_non_array_input_other_functions(fn) -> None:
    w = np.ones((2, 2, 3), dtype=np.float32)
    assert_raises(ConvTypeError, ("input=", "has type list"), lambda: fn([[[1.0, 2.0, 3.0]] * 2], w), w)


# ---------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "complex64", "complex128", "bool", "object", "float128" if hasattr(np, "float128") else "longdouble"])
@pytest.mark.parametrize("which", ["input", "weight", "bias"])
def test_unsupported_dtypes(dtype: str, which: str) -> None:
    x, w, b = arrays()
    args = {"input": x, "weight": w, "bias": b}
    args[which] = args[which].astype(dtype)
    name = np.dtype(dtype).name
    assert_raises(ConvTypeError, (f"{which} has dtype {name}", "float16"), lambda: clconv.conv2d(args["input"], args["weight"], args["bias"]), *args.values())


@pytest.mark.parametrize(
    "xd,wd,bd,fragments",
    [
        ("float32", "float64", "float32", ("weight has dtype float64", "input has dtype float32")),
        ("float64", "float32", None, ("weight has dtype float32", "input has dtype float64")),
        ("float32", "float32", "float16", ("bias has dtype float16", "input has dtype float32")),
        ("float16", "float16", "float64", ("bias has dtype float64", "input has dtype float16")),
    ],
)
def test_mismatched_dtypes(xd: str, wd: str, bd: str | None, fragments) -> None:
    x, w, b = arrays()
    x, w = x.astype(xd), w.astype(wd)
    b = None if bd is None else b.astype(bd)
    assert_raises(ConvTypeError, fragments, lambda: clconv.conv2d(x, w, b), x, w, b)
    assert_raises(ConvTypeError, fragments, lambda: clconv.conv_transpose2d(x, np.ascontiguousarray(w.transpose(1, 0, 2, 3)), b), x, w, b)


# ----------------------------------------------------------------- ndim/shape
@pytest.mark.parametrize(
    "fn,x_shape,w_shape,fragments",
    [
        (clconv.conv2d, (3, 5, 5), (4, 3, 3, 3), ("input='shape (3, 5, 5)'", "4-D input")),
        (clconv.conv2d, (1, 1, 3, 5, 5), (4, 3, 3, 3), ("input='shape (1, 1, 3, 5, 5)'", "4-D input")),
        (clconv.conv1d, (1, 3, 5, 5), (4, 3, 3), ("input='shape (1, 3, 5, 5)'", "3-D input")),
        (clconv.conv3d, (1, 3, 5, 5), (4, 3, 3, 3, 3), ("input='shape (1, 3, 5, 5)'", "5-D input")),
        (clconv.conv2d, (1, 3, 5, 5), (4, 3, 3), ("weight='shape (4, 3, 3)'", "4-D weight")),
        (clconv.conv2d, (1, 3, 5, 5), (4, 3, 3, 3, 1), ("weight='shape (4, 3, 3, 3, 1)'", "4-D weight")),
        (clconv.conv_transpose2d, (1, 3, 5, 5), (3, 4, 3), ("weight='shape (3, 4, 3)'", "4-D weight")),
        (clconv.conv_transpose1d, (1, 3), (3, 4, 3), ("input='shape (1, 3)'", "3-D input")),
    ],
)
def test_wrong_ndim(fn, x_shape, w_shape, fragments) -> None:
    x, w, _ = arrays(x_shape, w_shape, None)
    assert_raises(ConvValueError, fragments, lambda: fn(x, w), x, w)


def test_scalar_and_4d_spatial_are_rejected() -> None:
    assert_raises(ConvValueError, ("input='shape (1, 1, 2, 2, 2, 2)'",), lambda: ConvSpec.from_shapes("conv", (1, 1, 2, 2, 2, 2), (1, 1, 1, 1, 1, 1)))
    x = np.zeros((), np.float32)
    assert_raises(ConvValueError, ("input='shape ()'",), lambda: clconv.conv2d(x, np.zeros((1, 1, 1, 1), np.float32)), x)


def test_channel_mismatch() -> None:
    x, w, b = arrays((2, 3, 5, 5), (4, 2, 3, 3))
    assert_raises(ConvValueError, ("weight='shape (4, 2, 3, 3)'", "C_in", "2 * 1 != 3"), lambda: clconv.conv2d(x, w, b), x, w, b)
    # transposed: weight.shape[0] is C_in
    wt = np.zeros((4, 2, 3, 3), np.float32)
    assert_raises(ConvValueError, ("weight='shape (4, 2, 3, 3)'", "C_in=3"), lambda: clconv.conv_transpose2d(x, wt), x, wt)
    assert clconv.conv_transpose2d(x, wt[:3], backend="numpy").shape == (2, 2, 7, 7)


def test_zero_sizes() -> None:
    x = np.zeros((1, 3, 0, 5), np.float32)
    w = np.zeros((4, 3, 1, 1), np.float32)
    assert_raises(ConvValueError, ("input='spatial size (0, 5)'",), lambda: clconv.conv2d(x, w), x, w)
    x = np.zeros((1, 0, 4, 4), np.float32)
    w = np.zeros((4, 0, 1, 1), np.float32)
    assert_raises(ConvValueError, ("input='C_in=0'",), lambda: clconv.conv2d(x, w), x, w)
    x = np.zeros((1, 3, 4, 4), np.float32)
    w = np.zeros((4, 3, 0, 1), np.float32)
    assert_raises(ConvValueError, ("weight='kernel size (0, 1)'",), lambda: clconv.conv2d(x, w), x, w)


# ---------------------------------------------------------------------- groups
def test_groups_not_dividing() -> None:
    x, w, _ = arrays((1, 4, 5, 5), (6, 1, 3, 3), None)
    assert_raises(ConvValueError, ("groups=3", "C_in=4"), lambda: clconv.conv2d(x, w, groups=3), x, w)
    x5 = np.zeros((1, 4, 5, 5), np.float32)
    w5 = np.zeros((5, 2, 3, 3), np.float32)
    assert_raises(ConvValueError, ("groups=2", "C_out=5"), lambda: clconv.conv2d(x5, w5, groups=2), x5, w5)
    wt = np.zeros((4, 2, 3, 3), np.float32)
    assert_raises(ConvValueError, ("groups=3", "C_in=4"), lambda: clconv.conv_transpose2d(x, wt, groups=3), x, wt)
    # the good calls
    assert clconv.conv2d(x, np.zeros((6, 2, 3, 3), np.float32), groups=2, backend="numpy").shape == (1, 6, 3, 3)
    assert clconv.conv_transpose2d(x, wt, groups=2, backend="numpy").shape == (1, 4, 7, 7)


@pytest.mark.parametrize("groups,exc,fragments", [
    (0, ConvValueError, ("groups=0", ">= 1")),
    (-2, ConvValueError, ("groups=-2", ">= 1")),
    (1.5, ConvTypeError, ("groups=1.5", "float")),
    (2.0, ConvTypeError, ("groups=2.0", "float")),
    ("2", ConvTypeError, ("groups='2'", "str")),
    (True, ConvTypeError, ("groups=True", "bool")),
    (None, ConvTypeError, ("groups=None",)),
])
def test_groups_bad_value_or_type(groups, exc, fragments) -> None:
    x, w, b = arrays((1, 4, 5, 5), (4, 2, 3, 3))
    assert_raises(exc, fragments, lambda: clconv.conv2d(x, w, b, groups=groups), x, w, b)
    assert clconv.conv2d(x, w, b, groups=np.int64(2), backend="numpy").shape == (1, 4, 3, 3)


@pytest.mark.parametrize("fn,w_shape,b_shape,fragments", [
    (clconv.conv2d, (4, 3, 3, 3), (3,), ("bias='shape (3,)'", "(4,)")),
    (clconv.conv2d, (4, 3, 3, 3), (4, 1), ("bias='shape (4, 1)'", "(4,)")),
    (clconv.conv2d, (4, 3, 3, 3), (), ("bias='shape ()'", "(4,)")),
    (clconv.conv_transpose2d, (3, 2, 3, 3), (3,), ("bias='shape (3,)'", "(2,)")),
])
def test_bias_wrong_shape(fn, w_shape, b_shape, fragments) -> None:
    x, w, _ = arrays((1, 3, 5, 5), w_shape, None)
    b = np.zeros(b_shape, np.float32)
    assert_raises(ConvValueError, fragments, lambda: fn(x, w, b), x, w, b)


# ------------------------------------------------------ stride and dilation
@pytest.mark.parametrize("param", ["stride", "dilation"])
@pytest.mark.parametrize("value,exc,fragments", [
    (0, ConvValueError, ("{p}=0", ">= 1")),
    (-1, ConvValueError, ("{p}=-1", ">= 1")),
    ((1, 0), ConvValueError, ("{p}=(1, 0)", ">= 1")),
    ([2, -3], ConvValueError, ("{p}=[2, -3]", ">= 1")),
    (1.5, ConvTypeError, ("{p}=1.5", "float")),
    (2.0, ConvTypeError, ("{p}=2.0", "float")),
    ((1, 1.5), ConvTypeError, ("{p}=(1, 1.5)",)),
    ((1, 1, 1), ConvValueError, ("{p}=(1, 1, 1)", "2 ints")),
    ((1,), ConvValueError, ("{p}=(1,)", "2 ints")),
    ((), ConvValueError, ("{p}=()", "2 ints")),
    ("2", ConvTypeError, ("{p}='2'", "str")),
    (None, ConvTypeError, ("{p}=None",)),
    (True, ConvTypeError, ("{p}=True", "bool")),
])
def test_stride_dilation(param: str, value, exc, fragments) -> None:
    x, w, b = arrays((1, 3, 9, 9), (4, 3, 3, 3))
    frags = tuple(f.format(p=param) for f in fragments)
    assert_raises(exc, frags, lambda: clconv.conv2d(x, w, b, **{param: value}), x, w, b)
    wt = np.zeros((3, 2, 3, 3), np.float32)
    assert_raises(exc, frags, lambda: clconv.conv_transpose2d(x, wt, **{param: value}), x, wt)
    assert clconv.conv2d(x, w, b, **{param: (2, np.int32(1))}, backend="numpy").dtype == np.float32


# --------------------------------------------------------------------- padding
@pytest.mark.parametrize("value,exc,fragments", [
    (-1, ConvValueError, ("padding=-1",)),
    ((1, -1), ConvValueError, ("padding=(1, -1)",)),
    (((1, 2), (0, -1)), ConvValueError, ("padding=((1, 2), (0, -1))",)),
    ((1, 1, 1), ConvValueError, ("padding=(1, 1, 1)", "2 ints")),
    ((1,), ConvValueError, ("padding=(1,)",)),
    (((1, 2, 3), (1, 1)), ConvValueError, ("padding=((1, 2, 3), (1, 1))", "(before, after) pairs")),
    (((1,), (1, 1)), ConvValueError, ("padding=((1,), (1, 1))",)),
    (((1.0, 2), (0, 0)), ConvValueError, ("padding=((1.0, 2), (0, 0))",)),
    ((1, "1"), ConvValueError, ("padding=(1, '1')",)),
    ("full", ConvValueError, ("padding='full'", "'valid' or 'same'")),
    ("SAME", ConvValueError, ("padding='SAME'",)),
    (1.5, ConvTypeError, ("padding=1.5", "float")),
    (None, ConvTypeError, ("padding=None",)),
    (True, ConvTypeError, ("padding=True", "bool")),
])
def test_padding_bad(value, exc, fragments) -> None:
    x, w, b = arrays((1, 3, 6, 6), (4, 3, 3, 3))
    assert_raises(exc, fragments, lambda: clconv.conv2d(x, w, b, padding=value), x, w, b)
    wt = np.zeros((3, 2, 3, 3), np.float32)
    assert_raises(exc, fragments, lambda: clconv.conv_transpose2d(x, wt, padding=value), x, wt)


def test_padding_good_forms_for_contrast() -> None:
    x, w, b = arrays((1, 3, 6, 6), (4, 3, 3, 3))
    assert clconv.conv2d(x, w, b, padding=((1, 2), 0), backend="numpy").shape == (1, 4, 7, 4)
    assert clconv.conv2d(x, w, b, padding=[[0, 1], [2, 0]], backend="numpy").shape == (1, 4, 5, 6)
    assert clconv.conv2d(x, w, b, padding=np.int64(1), backend="numpy").shape == (1, 4, 6, 6)


@pytest.mark.parametrize("fn,w_shape", [
    (clconv.conv_transpose1d, (3, 2, 3)),
    (clconv.conv_transpose2d, (3, 2, 3, 3)),
    (clconv.conv_transpose3d, (3, 2, 3, 3, 3)),
])
def test_same_for_transposed(fn, w_shape) -> None:
    nd = len(w_shape) - 2
    x, w, _ = arrays((1, 3) + (4,) * nd, w_shape, None)
    assert_raises(ConvValueError, ("padding='same'", "conv_transpose"), lambda: fn(x, w, padding="same"), x, w)
    assert fn(x, w, padding="valid", backend="numpy").shape == (1, 2) + (6,) * nd


@pytest.mark.parametrize("mode", ["mirror", "constant", "Zeros", "", None, 0])
def test_padding_mode_unknown(mode) -> None:
    x, w, b = arrays()
    assert_raises(ConvValueError, (f"padding_mode={mode!r}", "zeros, reflect, replicate, circular"), lambda: clconv.conv2d(x, w, b, padding=1, padding_mode=mode), x, w, b)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_mode_for_transposed(mode: str) -> None:
    assert_raises(ConvValueError, (f"padding_mode={mode!r}", "zeros only"), lambda: ConvSpec.from_shapes("conv_transpose", (1, 3, 5, 5), (3, 2, 3, 3), padding=1, padding_mode=mode))
    assert_raises(ConvValueError, (f"padding_mode={mode!r}", "zeros only"), lambda: ConvSpec(
        op="conv_transpose", batch=1, in_channels=3, out_channels=2, in_size=(5,), kernel=(3,), stride=(1,),
        dilation=(1,), pad_before=(1,), pad_after=(1,), padding_mode=mode))
    assert ConvSpec.from_shapes("conv_transpose", (1, 3, 5, 5), (3, 2, 3, 3), padding=1).out_size == (5, 5)
    assert ConvSpec.from_shapes("conv", (1, 3, 5, 5), (2, 3, 3, 3), padding=1, padding_mode=mode).out_size == (5, 5)


def test_reflect_padding_must_be_less_than_input() -> None:
    x, w, b = arrays((1, 3, 3, 6), (4, 3, 3, 3))
    for padding in (3, ((0, 3), (1, 1)), ((3, 0), (0, 0))):
        assert_raises(ConvValueError, ("padding=", "padding_mode='reflect'", "< the input size (3)", "dim 0"),
                      lambda: clconv.conv2d(x, w, b, padding=padding, padding_mode="reflect"), x, w, b)
    assert clconv.conv2d(x, w, b, padding=2, padding_mode="reflect", backend="numpy").shape == (1, 4, 5, 8)
    # "same" that would need more mirror than there is input
    x1 = np.zeros((1, 1, 2), np.float32)
    w1 = np.zeros((1, 1, 5), np.float32)
    assert_raises(ConvValueError, ("padding=((2, 2),)", "padding_mode='reflect'", "(2)"),
                  lambda: clconv.conv1d(x1, w1, padding="same", padding_mode="reflect"), x1, w1)
    # replicate has no such limit
    assert clconv.conv1d(x1, w1, padding="same", padding_mode="replicate", backend="numpy").shape == (1, 1, 2)


def test_circular_padding_at_most_input() -> None:
    x, w, b = arrays((1, 3, 6, 3), (4, 3, 3, 3))
    assert_raises(ConvValueError, ("padding=((0, 0), (4, 1))", "padding_mode='circular'", "<= the input size (3)", "dim 1"),
                  lambda: clconv.conv2d(x, w, b, padding=((0, 0), (4, 1)), padding_mode="circular"), x, w, b)
    assert clconv.conv2d(x, w, b, padding=((0, 0), (3, 1)), padding_mode="circular", backend="numpy").shape == (1, 4, 4, 5)


# --------------------------------------------------------------- output_padding
@pytest.mark.parametrize("kwargs,fragments", [
    (dict(stride=2, output_padding=2), ("output_padding=(2, 2)", "max(stride, dilation) = 2")),
    (dict(stride=1, output_padding=1), ("output_padding=(1, 1)", "max(stride, dilation) = 1")),
    (dict(stride=(2, 1), dilation=(1, 3), output_padding=(1, 3)), ("output_padding=(1, 3)", "= 3 on dim 1")),
    (dict(stride=2, dilation=3, output_padding=(0, 3)), ("output_padding=(0, 3)",)),
    (dict(stride=2, output_padding=-1), ("output_padding=-1", ">= 0")),
    (dict(stride=2, output_padding=(1, -1)), ("output_padding=(1, -1)", ">= 0")),
    (dict(stride=2, output_padding=(1, 1, 1)), ("output_padding=(1, 1, 1)",)),
])
def test_output_padding_bad(kwargs, fragments) -> None:
    x, _, _ = arrays((1, 3, 4, 4), (1, 1, 1, 1), None)
    w = np.zeros((3, 2, 3, 3), np.float32)
    assert_raises(ConvValueError, fragments, lambda: clconv.conv_transpose2d(x, w, **kwargs), x, w)


def test_output_padding_good_for_contrast() -> None:
    x = np.zeros((1, 3, 4, 4), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    assert clconv.conv_transpose2d(x, w, stride=2, dilation=3, output_padding=2, backend="numpy").shape == (1, 2, 15, 15)
    assert clconv.conv_transpose2d(x, w, stride=(2, 1), dilation=(1, 3), output_padding=(1, 2), backend="numpy").shape == (1, 2, 10, 12)


def test_output_padding_on_a_conv_spec() -> None:
    assert_raises(ConvValueError, ("output_padding=(1, 1)", "transposed convolution only"),
                  lambda: ConvSpec.from_shapes("conv", (1, 3, 8, 8), (2, 3, 3, 3), stride=2, output_padding=1))
    assert_raises(ConvValueError, ("output_padding=(1,)", "transposed convolution only"), lambda: ConvSpec(
        op="conv", batch=1, in_channels=3, out_channels=2, in_size=(8,), kernel=(3,), stride=(2,),
        dilation=(1,), pad_before=(0,), pad_after=(0,), output_padding=(1,)))
    assert ConvSpec.from_shapes("conv", (1, 3, 8, 8), (2, 3, 3, 3), stride=2, output_padding=0).out_size == (3, 3)


# ----------------------------------------------------------- sizes that fail
def test_kernel_larger_than_padded_input() -> None:
    x, w, b = arrays((1, 3, 4, 6), (4, 3, 5, 3))
    assert_raises(ConvValueError, ("weight='kernel size (5, 3)'", "spans 5", "dim 0", "only 4"), lambda: clconv.conv2d(x, w, b), x, w, b)
    assert clconv.conv2d(x, w, b, padding=((0, 1), 0), backend="numpy").shape == (1, 4, 1, 4)  # padding makes room
    # dilation makes the kernel span 7
    w3 = np.zeros((4, 3, 3, 1), np.float32)
    assert_raises(ConvValueError, ("weight='kernel size (3, 1)'", "spans 7", "dim 0", "only 6"),
                  lambda: clconv.conv2d(x, w3, padding=1, dilation=(3, 1)), x, w3)
    assert_raises(ConvValueError, ("weight='kernel size (3, 1)'", "spans 7"), lambda: clconv.conv2d(x, w3, padding="valid", dilation=3), x, w3)


def test_transposed_crop_leaves_nothing() -> None:
    x = np.zeros((1, 2, 2), np.float32)
    w = np.zeros((2, 1, 2), np.float32)  # full result length 3
    assert_raises(ConvValueError, ("padding=((2, 2),)", "crops the whole result", "would be -1"), lambda: clconv.conv_transpose1d(x, w, padding=2), x, w)
    assert_raises(ConvValueError, ("padding=((3, 0),)", "would be 0"), lambda: clconv.conv_transpose1d(x, w, padding=((3, 0),)), x, w)
    assert clconv.conv_transpose1d(x, w, padding=((2, 0),), backend="numpy").shape == (1, 1, 1)
    assert clconv.conv_transpose1d(x, w, padding=((3, 0),), output_padding=1, stride=2, backend="numpy").shape == (1, 1, 2)


def test_shape_beyond_the_int64_ceiling() -> None:
    assert_raises(ConvValueError, ("input='shape (4294967296, 2147483648, 2, 2)'", "at most"),
                  lambda: ConvSpec.from_shapes("conv", (2**32, 2**31, 2, 2), (1, 2**31, 1, 1)))


# ------------------------------------------- shapes instead of arrays (plan/explain)
@pytest.mark.parametrize("x_shape,w_shape,exc,fragments", [
    ((1, 3, 5.5, 5), (4, 3, 3, 3), ConvTypeError, ("input=(1, 3, 5.5, 5)", "tuple of ints")),
    ((1.0, 3, 5, 5), (4, 3, 3, 3), ConvTypeError, ("input=(1.0, 3, 5, 5)", "tuple of ints")),
    ((1, 3, 5, 5), (4.7, 3, 3, 3), ConvTypeError, ("weight=(4.7, 3, 3, 3)", "tuple of ints")),
    ((1, "3", 5, 5), (4, 3, 3, 3), ConvTypeError, ("input=(1, '3', 5, 5)", "tuple of ints")),
    ((1, 3, None, 5), (4, 3, 3, 3), ConvTypeError, ("input=(1, 3, None, 5)", "tuple of ints")),
    ((True, 3, 5, 5), (4, 3, 3, 3), ConvTypeError, ("input=(True, 3, 5, 5)", "tuple of ints")),
    (((1,), 3, 5, 5), (4, 3, 3, 3), ConvTypeError, ("input=((1,), 3, 5, 5)", "tuple of ints")),
    (5, (4, 3, 3, 3), ConvTypeError, ("input=5 has type int", "tuple of ints")),
    (None, (4, 3, 3, 3), ConvTypeError, ("input=None has type NoneType",)),
    ("abcd", (4, 3, 3, 3), ConvTypeError, ("input='abcd' has type str",)),
    ((1, 3, 5, 5), 4, ConvTypeError, ("weight=4 has type int",)),
    ((-1, 3, 5, 5), (4, 3, 3, 3), ConvValueError, ("input='batch -1'", ">= 0")),
    ((1, 3, -5, 5), (4, 3, 3, 3), ConvValueError, ("input='spatial size (-5, 5)'", ">= 1")),
    ((1, 3, 5, 5), (-4, 3, 3, 3), ConvValueError, ("weight='C_out=-4'", ">= 1")),
])
@pytest.mark.parametrize("entry", ["plan", "explain"])
def test_shapes_for_plan_and_explain(entry: str, x_shape, w_shape, exc, fragments) -> None:
    """plan/explain take shapes ahead of data: entries must be ints, not silently truncated."""
    fn = getattr(clconv, entry)
    assert_raises(exc, fragments, lambda: fn("conv2d", x_shape, w_shape, backend="numpy"))
    assert fn("conv2d", [1, 3, 5, 5], (4, np.int64(3), 3, 3), backend="numpy").spec.output_shape == (1, 4, 3, 3)


def test_plan_with_one_array_and_one_shape() -> None:
    x, w, _ = arrays((1, 3, 5, 5), (4, 3, 3, 3), None)
    assert_raises(ConvTypeError, ("input is an array but weight=(4, 3, 3, 3)", "both as arrays"),
                  lambda: clconv.plan("conv2d", x, (4, 3, 3, 3)), x)
    assert_raises(ConvTypeError, ("weight is an array but input=(1, 3, 5, 5)", "both as shapes"),
                  lambda: clconv.explain("conv2d", (1, 3, 5, 5), w), w)


@pytest.mark.parametrize("entry", ["plan", "explain"])
def test_plan_and_explain_unknown_keywords(entry: str) -> None:
    """Keywords of neither the function nor plan/explain: a TypeError naming the keyword and
    what is taken (it was Python's, naming ConvSpec.from_shapes, an internal name)."""
    fn = getattr(clconv, entry)
    x, w, _ = arrays((1, 3, 5, 5), (4, 3, 3, 3), None)
    for inputs in ((x, w), ((1, 3, 5, 5), (4, 3, 3, 3))):
        assert_raises(ConvTypeError, ("foo=1 is not accepted", "conv2d takes stride, padding, dilation, groups"),
                      lambda i=inputs: fn("conv2d", *i, foo=1), x, w)
        assert_raises(ConvTypeError, ("ndim=3 is not accepted",), lambda i=inputs: fn("conv2d", *i, ndim=3), x, w)
    assert_raises(ConvTypeError, ("dtype='float64' is not accepted with arrays", "float32", "shapes"),
                  lambda: fn("conv2d", x, w, dtype="float64"), x, w)
    assert_raises(ConvValueError, ("output_padding=(1, 1)", "transposed convolution only"),
                  lambda: fn("conv2d", x, w, output_padding=1), x, w)
    assert fn("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), dtype="float64", backend="numpy").spec.dtype == "float64"


def test_padding_mode_of_another_type() -> None:
    x, w, b = arrays()
    mode = np.array(["zeros", "reflect"])
    assert_raises(ConvValueError, ("padding_mode=array(['zeros', 'reflect']", "zeros, reflect, replicate, circular"),
                  lambda: clconv.conv2d(x, w, b, padding=1, padding_mode=mode), x, w, b)
    assert_raises(ConvValueError, ("padding_mode=['zeros']",), lambda: clconv.plan("conv2d", (1, 3, 5, 5), (4, 3, 3, 3), padding_mode=["zeros"]))


# --------------------------------------------------------------------- pins
@pytest.mark.parametrize("pins,exc,fragments", [
    (dict(backend="cuda"), UnsupportedError, ("backend='cuda'", "registered", "numpy")),
    (dict(device="numpy:gpu7"), UnsupportedError, ("device='numpy:gpu7'", "numpy:cpu")),
    (dict(backend="numpy", device="opencl:0:0"), UnsupportedError, ("device='opencl:0:0'", "backend 'numpy'")),
    (dict(algorithm="winograd9"), UnsupportedError, ("algorithm='winograd9'", "im2col", "reference")),
    (dict(backend="numpy", algorithm="fft"), UnsupportedError, ("algorithm='fft'", "backend 'numpy'")),
    (dict(algorithm=5), ConvTypeError, ("algorithm=5 has type int",)),
    (dict(backend=3), ConvTypeError, ("backend=3 has type int",)),
])
def test_unknown_pins(pins, exc, fragments) -> None:
    x, w, b = arrays()
    assert_raises(exc, fragments, lambda: clconv.conv2d(x, w, b, **pins), x, w, b)
    assert_raises(exc, fragments, lambda: clconv.explain("conv2d", x, w, b, **pins), x, w, b)
    assert clconv.conv2d(x, w, b, backend="numpy", device="numpy:cpu", algorithm="reference").shape == (2, 4, 3, 3)


# ------------------------------------------------------------ device memory
def _huge_views():
    """Arrays whose shapes describe petabytes, backed by one element each (zero strides).

    Returns the views and the tiny arrays behind them (the test checks those for
    changes: copying a view would allocate the petabyte)."""
    tiny_x = np.full(1, 0.5, np.float32)
    tiny_w = np.full(1, 0.25, np.float32)
    x = np.broadcast_to(tiny_x.reshape(1, 1, 1, 1), (1, 1, 2**24, 2**24))  # 1 PiB if it were real
    w = as_strided(tiny_w, shape=(2, 1, 1, 1), strides=(0, 0, 0, 0))
    return x, w, tiny_x, tiny_w


# Pinned to the numpy backend: another backend may refuse such a call for another
# reason first (then the dispatcher reports UnsupportedError with every reason).
@pytest.mark.parametrize("algorithm", ["auto", "reference", "im2col"])
def test_too_large_for_the_device_is_refused_before_allocating(algorithm: str) -> None:
    x, w, tiny_x, tiny_w = _huge_views()
    tracemalloc.start()
    try:
        assert_raises(DeviceMemoryError, ("1x1x16777216x16777216", "does not fit", "needs", "PiB", "numpy:cpu"),
                      lambda: clconv.conv2d(x, w, algorithm=algorithm, backend="numpy"), tiny_x, tiny_w)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"the refused call allocated {peak} bytes"
    assert tiny_x[0] == 0.5 and tiny_w[0] == 0.25


def test_too_large_transposed_is_refused_before_allocating() -> None:
    tiny = np.zeros(1, np.float64)
    x = as_strided(tiny, shape=(4, 1, 2**16, 2**16, 2**4), strides=(0,) * 5)  # 2 TiB input
    w = as_strided(tiny, shape=(1, 2, 2, 2, 2), strides=(0,) * 5)
    tracemalloc.start()
    try:
        assert_raises(DeviceMemoryError, ("conv_transpose3d 4x1x65536x65536x16", "does not fit", "TiB"),
                      lambda: clconv.conv_transpose3d(x, w, stride=4, backend="numpy"), tiny)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


class _ConvOnly(clconv.Algorithm):
    """An algorithm of another backend that cannot do transposed convolution at any size."""

    id = "convonly"

    def supports(self, spec, device):
        return clconv.Support.no("conv only", "unsupported") if spec.transposed else clconv.Support.yes()

    def prepare(self, spec, device):
        raise AssertionError("never chosen here")


class _ConvOnlyBackend(clconv.Backend):
    name = "convonly"

    def devices(self):
        return [clconv.Device(id="convonly:0", backend="convonly", name="conv only")]

    def algorithms(self):
        return [_ConvOnly()]


def test_too_large_unpinned_with_a_backend_that_cannot_do_the_op(fresh_host) -> None:
    """Unpinned: the numpy backend lacks the memory, another cannot do transposed convolution
    at all. The call fails for its size: DeviceMemoryError, not UnsupportedError."""
    import types

    @clconv.hookimpl
    def clconv_register_backends(register):
        register(_ConvOnlyBackend())

    fresh_host().register_plugin(types.SimpleNamespace(clconv_register_backends=clconv_register_backends), "convonly")
    tiny = np.zeros(1, np.float32)
    x = np.broadcast_to(tiny.reshape(1, 1, 1, 1), (1, 1, 2**20, 2**20))
    w = as_strided(tiny, shape=(1, 2, 3, 3), strides=(0,) * 4)
    assert_raises(DeviceMemoryError, ("does not fit on any device", "numpy:cpu", "convonly:0", "conv only"),
                  lambda: clconv.conv_transpose2d(x, w, stride=4, backend=None), tiny)
    # a call that fits but that nothing can run is still UnsupportedError, said plainly
    assert_raises(UnsupportedError, ("the pinned backend/device/algorithm cannot run", "conv only"),
                  lambda: clconv.conv_transpose2d(x[..., :4, :4], w, stride=4, backend="convonly"), tiny)
    from clconv import config

    clconv.configure(disable=[n for n in clconv.list_backends() if n != "convonly"])
    try:
        assert_raises(UnsupportedError, ("no registered backend can run", "conv only"),
                      lambda: clconv.conv_transpose2d(x[..., :4, :4], w, stride=4), tiny)
    finally:
        config.reset()


def test_explain_reports_memory_rejection_without_raising() -> None:
    x, w, _, _ = _huge_views()
    expl = clconv.explain("conv2d", x, w, backend="numpy")
    assert expl.chosen is None
    assert len(expl.rows()) >= 2
    assert {r["reason_kind"] for r in expl.rows()} == {"memory"}
    # and a small call of the same kind fits
    assert clconv.explain("conv2d", x[..., :8, :8], w, backend="numpy").chosen is not None


def test_a_remembered_valid_call_does_not_let_a_similar_invalid_one_through():
    """Repeated calls reuse their validated spec; a call differing only in a parameter's type,
    an array's type or a bias shape is still validated afresh."""
    import clconv as cc

    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((2, 2, 3, 3), np.float32)
    for _ in range(2):
        cc.conv2d(x, w, np.zeros(2, np.float32), stride=1, padding=(1, 1), backend="numpy")
    with pytest.raises(TypeError, match="stride=True"):
        cc.conv2d(x, w, np.zeros(2, np.float32), stride=True, padding=(1, 1), backend="numpy")
    with pytest.raises(ValueError, match="bias"):
        cc.conv2d(x, w, np.zeros(3, np.float32), stride=1, padding=(1, 1), backend="numpy")
    with pytest.raises(TypeError, match="input"):
        cc.conv2d(x.tolist(), w, np.zeros(2, np.float32), stride=1, padding=(1, 1), backend="numpy")
    with pytest.raises(TypeError, match="weight"):
        cc.conv2d(x, w.astype(np.float64), np.zeros(2, np.float32), stride=1, padding=(1, 1), backend="numpy")
