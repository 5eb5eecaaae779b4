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


def _check(cl_device, xs, ws, dtype="float32", bias=True, **params):
    x, w, b = _arrays(xs, ws, dtype, bias)
    fn = FUNCS[len(xs) - 2]
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


def test_transposed_is_declined_with_a_reason(cl_device):
    spec = ConvSpec.from_shapes("conv_transpose", (1, 4, 5, 5), (4, 2, 3, 3), stride=2)
    support = DirectBlocked().supports(spec, cl_device)
    assert not support.ok and "transposed" in support.reason
