"""The direct-blocked algorithm beyond the shared grid: block edges, padding modes with stride
and dilation, groups, the x-stationary form, the suite layers it is chosen for, every dtype,
every tunable block, determinism and non-contiguous input.
"""

from __future__ import annotations

import numpy as np
import pytest

import clconv
from clconv.backends.numpy.ops import reference
from clconv.backends.opencl.algorithms.direct_blocked import Block, DirectBlocked, choose_block
from clconv.spec import ConvSpec
from clconv.suites import suite

from .cases import TOLERANCE

ALG = "direct-blocked"
FUNCS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


def _arrays(xs, ws, dtype="float32", bias=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    return x, w, b


def _error(y, exact):
    denom = np.linalg.norm(exact.ravel())
    return float(np.linalg.norm((y.astype(np.float64) - exact).ravel()) / (denom or 1.0))


def _run_and_compare(cl_device, fn, x, w, b, dtype, params):
    """Run ``fn`` with direct-blocked on the device (skip when it declines the spec, with its
    reason) and compare with the float64 reference."""
    expl = clconv.explain(fn, x, w, b, device=cl_device.id, algorithm=ALG, **params)
    cand = expl.candidates[0]
    if not cand.support.ok:
        pytest.skip(cand.support.reason)
    y = getattr(clconv, fn)(x, w, b, device=cl_device.id, algorithm=ALG, **params)
    exact = reference(expl.spec, x, w, b)
    assert y.shape == exact.shape and y.dtype == np.dtype(dtype)
    err = _error(y, exact)
    assert err <= TOLERANCE[dtype], f"normwise relative error {err:.3e}"
    return y


def _check(cl_device, xs, ws, dtype="float32", bias=True, **params):
    x, w, b = _arrays(xs, ws, dtype, bias)
    fn = FUNCS[len(xs) - 2]
    return _run_and_compare(cl_device, fn, x, w, b, dtype, params)


# (id, input shape, weight shape, params): each block edge of the float32 default blocks
EDGES = [
    # C_out not a multiple of COB: the last channel block overlaps the one before
    ("cout-20", (1, 3, 9, 40), (20, 3, 3, 3), {"padding": 1}),
    ("cout-5-of-8", (2, 4, 6, 19), (5, 4, 3, 3), {}),
    ("cout-1", (1, 3, 7, 30), (1, 3, 3, 3), {"padding": 1}),
    # output width not a multiple of VW, smaller than VW, exactly one vector
    ("ow-21", (1, 2, 5, 23), (16, 2, 3, 3), {}),
    ("ow-3", (1, 2, 5, 5), (8, 2, 3, 3), {}),
    ("ow-16", (1, 2, 4, 18), (8, 2, 3, 3), {}),
    ("ow-33-pad", (1, 3, 4, 33), (16, 3, 3, 3), {"padding": 1}),
    # 1-pixel outputs
    ("one-pixel", (2, 5, 3, 3), (7, 5, 3, 3), {}),
    ("one-pixel-1d", (1, 4, 5), (9, 4, 5), {}),
    ("one-pixel-3d", (1, 2, 2, 2, 2), (3, 2, 2, 2, 2), {}),
    # wide rows: interior and border blocks in one row, both sides
    ("wide-row", (1, 3, 3, 200), (12, 3, 3, 5), {"padding": 2}),
    ("wide-stride2", (1, 3, 5, 230), (16, 3, 7, 7), {"padding": 3, "stride": 2}),
    ("wide-stride3", (1, 2, 3, 150), (8, 2, 3, 4), {"padding": (1, 2), "stride": 3}),
    # pointwise: runs as 1D over the flattened image
    ("pointwise", (2, 6, 5, 7), (10, 6, 1, 1), {}),
    ("pointwise-3d", (1, 3, 3, 4, 5), (4, 3, 1, 1, 1), {}),
    # x-stationary (a short reduction shared by several channel blocks)
    ("xstat-1d", (2, 1, 300), (48, 1, 10), {"stride": 5}),
    ("xstat-pad", (1, 1, 70), (40, 1, 3), {"padding": 4, "dilation": 2}),
    ("xstat-2d", (1, 1, 9, 37), (36, 1, 2, 3), {"padding": 1}),
    # groups
    ("groups-4x3", (2, 12, 7, 19), (12, 3, 3, 3), {"groups": 4, "padding": 1}),
    ("groups-cog3", (1, 8, 6, 21), (6, 4, 3, 2), {"groups": 2, "padding": (1, 0)}),
    ("depthwise", (1, 6, 9, 17), (12, 1, 3, 3), {"groups": 6, "padding": 1}),
    ("resnext-small", (1, 32, 10, 12), (32, 4, 3, 3), {"groups": 8, "padding": 1}),
    ("dilated-3d", (1, 4, 5, 6, 20), (6, 2, 2, 2, 3), {"groups": 2, "dilation": (1, 2, 3), "padding": 2}),
]


@pytest.mark.parametrize("xs,ws,params", [e[1:] for e in EDGES], ids=[e[0] for e in EDGES])
def test_block_edges(cl_device, xs, ws, params):
    _check(cl_device, xs, ws, **params)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize(
    "xs,ws,params",
    [
        ((2, 4, 9, 27), (6, 2, 3, 3), {"padding": ((2, 1), (1, 2)), "stride": (2, 1), "dilation": (1, 2), "groups": 2}),
        ((1, 3, 8, 41), (17, 3, 2, 5), {"padding": ((1, 0), (3, 4)), "stride": 2, "dilation": (3, 2)}),
        ((1, 2, 60), (4, 2, 7), {"padding": ((5, 6),), "stride": 3, "dilation": 2}),
        ((1, 1, 50), (32, 1, 4), {"padding": ((3, 2),), "stride": 2}),  # x-stationary
        ((1, 2, 4, 5, 18), (4, 2, 3, 2, 3), {"padding": 1, "stride": (1, 2, 2), "dilation": (2, 1, 1)}),
    ],
    ids=["2d-groups", "2d-dilated", "1d-stride3", "1d-xstat", "3d"],
)
def test_padding_modes_with_stride_and_dilation(cl_device, mode, xs, ws, params):
    _check(cl_device, xs, ws, padding_mode=mode, **params)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize(
    "xs,ws,params",
    [
        ((1, 3, 12, 40), (20, 3, 7, 7), {"padding": 3, "stride": 2}),
        ((1, 8, 9, 30), (8, 2, 3, 3), {"groups": 4, "padding": 1, "padding_mode": "reflect"}),
        ((1, 1, 200), (32, 1, 10), {"stride": 5}),
        ((2, 6, 5, 7), (10, 6, 1, 1), {}),
    ],
    ids=["stem-like", "groups-reflect", "xstat", "pointwise"],
)
def test_other_dtypes(cl_device, dtype, xs, ws, params):
    if dtype == "float64" and not cl_device.fp64:
        pytest.skip("device lacks cl_khr_fp64")
    _check(cl_device, xs, ws, dtype=dtype, **params)


SUITE_LAYERS = [
    layer for layer in suite("all")
    if layer.name in {
        "resnet50.stem-7x7s2", "resnext.3x3-g32-56", "audio.1d-1to512-k10s5",
        "small.3x3-16@8", "small.1x1-32@4", "small.1d-8@16", "small.dw3x3-32@7",
    }
]


@pytest.mark.parametrize("layer", SUITE_LAYERS, ids=[layer.name for layer in SUITE_LAYERS])
def test_suite_layers(cl_device, layer):
    """The layers direct-blocked is chosen for, at their suite shapes (batch 1)."""
    spec = layer.spec()
    assert spec.batch == 1
    _check(cl_device, spec.input_shape, spec.weight_shape, bias=spec.bias, **layer.params)


def _variant_specs():
    return [
        ("stem-like", ConvSpec.from_shapes("conv", (1, 3, 10, 45), (20, 3, 5, 5), stride=2, padding=2, bias=True)),
        ("grouped", ConvSpec.from_shapes("conv", (1, 16, 6, 30), (16, 4, 3, 3), groups=4, padding=1,
                                         padding_mode="circular", bias=True)),
        ("xstat", ConvSpec.from_shapes("conv", (2, 1, 160), (64, 1, 6), stride=3, padding=((2, 1),))),
    ]


@pytest.mark.parametrize("name,spec", _variant_specs(), ids=[n for n, _ in _variant_specs()])
def test_every_variant_matches(cl_device, name, spec):
    """Every block the tuner may pick computes the same result as the reference."""
    alg = DirectBlocked()
    if not alg.supports(spec, cl_device).ok:
        pytest.skip(alg.supports(spec, cl_device).reason)
    x, w, b = _arrays(spec.input_shape, spec.weight_shape, bias=spec.bias)
    exact = reference(spec, x, w, b)
    variants = alg.variants(spec, cl_device)
    assert variants[0] == choose_block(spec, cl_device).params() and len(variants) > 2
    for params in variants:
        y = alg.prepare_with(spec, cl_device, params)(x, w, b)
        err = _error(y, exact)
        assert err <= TOLERANCE["float32"], f"{alg.describe_params(params)}: error {err:.3e}"


def test_bad_block_is_refused(cl_device):
    spec = ConvSpec.from_shapes("conv", (1, 4, 8, 8), (4, 4, 3, 3))
    with pytest.raises(ValueError, match="does not fit"):
        DirectBlocked().prepare(spec, cl_device, Block(8, 16, 1).params())


def test_deterministic_repeats(cl_device):
    x, w, b = _arrays((1, 8, 20, 45), (24, 4, 3, 3), seed=3)
    runs = [clconv.conv2d(x, w, b, padding=1, groups=2, device=cl_device.id, algorithm=ALG) for _ in range(4)]
    for y in runs[1:]:
        assert np.array_equal(y.view(np.uint32), runs[0].view(np.uint32))


def test_non_contiguous_input(cl_device):
    x, w, b = _arrays((2, 6, 14, 50), (10, 3, 3, 3), seed=4)
    view = x[:, ::2, 1:13, ::2]  # strided channels, rows and columns
    fortran = np.asfortranarray(x)
    for arr in (view, fortran):
        groups = arr.shape[1] // w.shape[1]
        spec = ConvSpec.from_shapes("conv", arr.shape, w.shape, padding=1, groups=groups, bias=True)
        y = clconv.conv2d(arr, w, b, padding=1, groups=groups, device=cl_device.id, algorithm=ALG)
        assert _error(y, reference(spec, np.ascontiguousarray(arr), w, b)) <= TOLERANCE["float32"]


# ------------------------------------------------------------------ transposed (sub-pixel phases)
TFUNCS = {1: "conv_transpose1d", 2: "conv_transpose2d", 3: "conv_transpose3d"}


def _check_t(cl_device, xs, ws, dtype="float32", bias=True, **params):
    groups = params.get("groups", 1)
    x, w, _ = _arrays(xs, ws, dtype, bias=False)
    b = np.random.default_rng(1).standard_normal(ws[1] * groups).astype(dtype) if bias else None
    fn = TFUNCS[len(xs) - 2]
    return _run_and_compare(cl_device, fn, x, w, b, dtype, params)


def _stride_kernel_cases():
    out = []
    for s in (1, 2, 3, 4):
        for k in sorted({max(1, s - 1), s, s + 1, 2 * s + 1}):  # k < s, k = s, k not a multiple of s
            out.append((f"s{s}-k{k}", (2, 3, 6, 11), (3, 5, k, k), {"stride": s}))
    return out


@pytest.mark.parametrize("xs,ws,params", [c[1:] for c in _stride_kernel_cases()],
                         ids=[c[0] for c in _stride_kernel_cases()])
def test_transposed_strides_and_kernels(cl_device, xs, ws, params):
    _check_t(cl_device, xs, ws, **params)


# (id, input shape, weight shape (C_in, C_out/groups, k...), params)
TRANSPOSED = [
    ("output-padding", (1, 4, 5, 7), (4, 6, 3, 3), {"stride": 3, "padding": 1, "output_padding": (2, 1)}),
    ("crop-pairs", (2, 3, 6, 9), (3, 4, 4, 5), {"stride": 2, "padding": ((2, 0), (1, 3))}),
    ("crop-more-than-stride", (1, 2, 5, 12), (2, 3, 5, 7), {"stride": 2, "padding": ((3, 4), (5, 2))}),
    ("dilation-stride", (1, 3, 5, 8), (3, 4, 3, 3), {"stride": 2, "dilation": 2, "padding": 1, "output_padding": 1}),
    ("dilation-3-stride-2", (1, 2, 4, 10), (2, 3, 3, 4), {"stride": (1, 2), "dilation": (2, 3), "padding": (0, 2)}),
    ("dilation-over-stride", (1, 2, 6, 9), (2, 2, 2, 3), {"stride": 2, "dilation": 4, "output_padding": 3}),
    ("groups", (2, 8, 5, 6), (8, 3, 3, 4), {"stride": 2, "groups": 4, "padding": 1}),
    ("depthwise", (1, 6, 7, 7), (6, 1, 4, 4), {"stride": 2, "groups": 6, "padding": 1}),
    ("cout-21", (1, 5, 6, 6), (5, 21, 4, 4), {"stride": 2}),  # 3 even channel blocks
    ("cout-remainder", (1, 3, 4, 5), (3, 13, 3, 3), {"stride": 3}),
    ("cout-1", (1, 6, 5, 9), (6, 1, 4, 4), {"stride": 2, "padding": 1}),
    ("wide-row", (1, 2, 3, 70), (2, 8, 4, 4), {"stride": 2, "padding": 1}),  # interior and border blocks
    ("wide-stride3", (1, 2, 2, 90), (2, 4, 5, 5), {"stride": 3, "padding": 2}),
    ("one-pixel", (2, 3, 1, 1), (3, 4, 3, 3), {"stride": 2}),
    ("crop-to-one", (1, 3, 2, 2), (3, 2, 3, 3), {"stride": 2, "padding": 2}),
    ("stride1-pad", (1, 4, 6, 20), (4, 8, 3, 3), {"padding": 1}),
    ("pointwise", (2, 6, 5, 7), (6, 10, 1, 1), {}),
    ("1d", (2, 3, 40), (3, 6, 5), {"stride": 3, "padding": 2, "output_padding": 1}),
    ("1d-groups-dil", (1, 4, 33), (4, 2, 3), {"stride": 2, "groups": 2, "dilation": 3, "padding": (4,)}),
    ("3d", (1, 2, 3, 4, 9), (2, 3, 3, 2, 4), {"stride": (2, 1, 2), "padding": (1, 0, 1), "output_padding": (1, 0, 1)}),
    ("3d-groups", (1, 4, 3, 3, 5), (4, 2, 2, 2, 2), {"stride": 2, "groups": 2}),
    ("fcn-like", (1, 21, 8, 8), (21, 21, 4, 4), {"stride": 2}),
    ("fcn-s8", (1, 3, 4, 5), (3, 5, 16, 16), {"stride": 8, "padding": 4}),
    ("dcgan-thin", (2, 16, 8, 8), (16, 3, 4, 4), {"stride": 2, "padding": 1}),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("xs,ws,params", [c[1:] for c in TRANSPOSED], ids=[c[0] for c in TRANSPOSED])
def test_transposed(cl_device, xs, ws, params, bias):
    _check_t(cl_device, xs, ws, bias=bias, **params)


def test_transposed_unreached_outputs_get_the_bias(cl_device):
    """Kernel 1 < stride 3: two of three outputs per dim meet no tap and hold the bias exactly."""
    y = _check_t(cl_device, (1, 2, 4, 5), (2, 3, 1, 1), stride=3)
    b = np.random.default_rng(1).standard_normal(3).astype(np.float32)
    mask = np.ones(y.shape[2:], bool)
    mask[::3, ::3] = False
    assert np.array_equal(y[0][:, mask], np.broadcast_to(b[:, None], (3, int(mask.sum()))))


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize(
    "xs,ws,params",
    [
        ((1, 8, 6, 9), (8, 4, 4, 4), {"stride": 2, "padding": 1}),
        ((1, 4, 5, 7), (4, 6, 3, 5), {"stride": 3, "padding": ((1, 0), (2, 1)), "output_padding": 1}),
        ((1, 3, 30), (3, 5, 4), {"stride": 2, "dilation": 2}),
        ((1, 2, 2, 3, 18), (2, 3, 2, 3, 3), {"stride": (1, 2, 2), "padding": 1}),
    ],
    ids=["dcgan-like", "crop-op", "1d-dilated", "3d"],
)
def test_transposed_other_dtypes(cl_device, dtype, xs, ws, params):
    if dtype == "float64" and not cl_device.fp64:
        pytest.skip("device lacks cl_khr_fp64")
    _check_t(cl_device, xs, ws, dtype=dtype, **params)


T_SUITE = [layer for layer in suite("all") if layer.name in {"fcn.t4x4s2-21", "dcgan.t4x4s2-32-thin"}]


@pytest.mark.parametrize("layer", T_SUITE, ids=[layer.name for layer in T_SUITE])
def test_transposed_suite_layers(cl_device, layer):
    spec = layer.spec()
    xs = (min(spec.batch, 2), *spec.input_shape[1:])
    _check_t(cl_device, xs, spec.weight_shape, bias=spec.bias, **layer.params)


def test_transposed_every_variant_matches(cl_device):
    spec = ConvSpec.from_shapes("conv_transpose", (1, 6, 7, 37), (6, 10, 4, 4), stride=2, padding=1, bias=True)
    alg = DirectBlocked()
    x, w, _ = _arrays(spec.input_shape, spec.weight_shape, bias=False)
    b = np.random.default_rng(2).standard_normal(10).astype(np.float32)
    exact = reference(spec, x, w, b)
    variants = alg.variants(spec, cl_device)
    assert variants[0] == choose_block(spec, cl_device).params() and len(variants) > 2
    assert not any(v["xstat"] for v in variants)
    for params in variants:
        y = alg.prepare_with(spec, cl_device, params)(x, w, b)
        err = _error(y, exact)
        assert err <= TOLERANCE["float32"], f"{alg.describe_params(params)}: error {err:.3e}"


def test_transposed_deterministic_repeats(cl_device):
    x, w, _ = _arrays((1, 12, 9, 21), (12, 5, 4, 4), seed=5, bias=False)
    runs = [clconv.conv_transpose2d(x, w, stride=2, padding=1, groups=2, device=cl_device.id, algorithm=ALG)
            for _ in range(4)]
    for y in runs[1:]:
        assert np.array_equal(y.view(np.uint32), runs[0].view(np.uint32))


def test_transposed_refusals_say_why(cl_device):
    alg = DirectBlocked()
    wide = ConvSpec.from_shapes("conv_transpose", (1, 2, 3, 3), (2, 2, 3, 17), stride=(1, 17))
    support = alg.supports(wide, cl_device)
    assert not support.ok and "stride 17" in support.reason and "phases" in support.reason
    long = ConvSpec.from_shapes("conv_transpose", (1, 2, 3, 3), (2, 2, 1, 40), stride=2)
    support = alg.supports(long, cl_device)
    assert not support.ok and "kernel width 40" in support.reason
