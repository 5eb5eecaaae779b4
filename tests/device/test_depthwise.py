"""The depthwise algorithm beyond the shared grid: random specs, both kernel forms, determinism.

The specs are drawn once from a fixed seed (stable test ids): 1D/2D/3D,
channel multipliers 1-3, strides, dilations and kernel sizes up to 3/3/7,
every padding mode with asymmetric padding, widths that are not multiples of
the vector width and widths smaller than it, and rows wide enough to be split
into chunks. Each runs in the form the device gets by default, and in the
other form too (the GPU form on a CPU, the CPU form on a GPU), so that both
kernels in kernels_cl/depthwise.cl are checked on whatever device runs the tests.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import clconv
from clconv.backends.numpy.ops import reference
from clconv.backends.opencl.algorithms.depthwise import MAX_CHUNK, VECW, Depthwise, choose_tile
from clconv.errors import ConvValueError
from clconv.spec import PADDING_MODES, ConvSpec

from .cases import TOLERANCE

FUNCS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


def _draw_spec(rng: np.random.Generator, nd: int, mode: str) -> tuple[ConvSpec, dict]:
    """One random valid depthwise spec (and its call parameters), drawn until valid."""
    while True:
        c_in = int(rng.integers(1, 5))
        mult = int(rng.integers(1, 4))
        kmax = {1: 7, 2: 7, 3: 3}[nd]
        kernel = tuple(int(rng.integers(1, kmax + 1)) for _ in range(nd))
        stride = tuple(int(rng.integers(1, 4)) for _ in range(nd))
        dilation = tuple(int(rng.integers(1, 4)) for _ in range(nd))
        # widths around the vector width and below it; the other dims small
        sizes = [int(rng.choice([1, 2, 3, 5, 7, 8, 9, 13, 17, 23, 30]))]
        sizes = [int(rng.integers(1, {1: 9, 2: 12, 3: 7}[nd] + 1)) for _ in range(nd - 1)] + sizes
        pads = []
        for n in sizes:
            limit = n - 1 if mode == "reflect" else n if mode == "circular" else 4
            pads.append((int(rng.integers(0, limit + 1)), int(rng.integers(0, limit + 1))))
        params = dict(stride=stride, dilation=dilation, padding=tuple(pads), groups=c_in, padding_mode=mode)
        batch = int(rng.integers(1, 3))
        try:
            spec = ConvSpec.from_shapes(
                "conv", (batch, c_in, *sizes), (c_in * mult, 1, *kernel), bias=bool(rng.integers(0, 2)), **params
            )
        except ConvValueError:
            continue  # e.g. a dilated kernel longer than the padded input
        return spec, params


def _random_specs(count: int = 48, seed: int = 20240607) -> list[tuple[str, ConvSpec, dict]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        nd = (1, 2, 2, 3)[i % 4]
        mode = PADDING_MODES[(i // 4) % len(PADDING_MODES)]
        spec, params = _draw_spec(rng, nd, mode)
        out.append((f"r{i:02d}-{nd}d-{mode}", spec, params))
    # rows wider than one chunk of the CPU form (split, with a partial last chunk)
    for name, size, kw, mode in (("wide-zeros", 2 * MAX_CHUNK + 37, 5, "zeros"),
                                 ("wide-reflect", MAX_CHUNK + 3, 3, "reflect")):
        params = dict(stride=1, dilation=2, padding=((kw, kw - 1),), groups=2, padding_mode=mode)
        spec = ConvSpec.from_shapes("conv", (1, 2, size), (4, 1, kw), bias=True, **params)
        out.append((name, spec, params))
    return out


SPECS = _random_specs()


def _arrays(spec: ConvSpec, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape).astype(dtype)
    w = rng.standard_normal(spec.weight_shape).astype(dtype)
    b = rng.standard_normal(spec.out_channels).astype(dtype) if spec.bias else None
    return x, w, b


def _error(y: np.ndarray, exact: np.ndarray) -> float:
    denom = np.linalg.norm(exact.ravel())
    return float(np.linalg.norm((y.astype(np.float64) - exact).ravel()) / (denom if denom else 1.0))


def _kernel(spec: ConvSpec, device, form: str):
    """The prepared depthwise kernel in the device's own form, or forced into the other one."""
    support = Depthwise().supports(spec, device)
    if not support.ok:
        pytest.skip(f"depthwise on {device.id}: {support.reason}")
    kernel = Depthwise().prepare(spec, device)
    if form == "other":
        own = kernel.tile
        if own.row_loop:
            kernel.tile = dataclasses.replace(own, row_loop=False, vw=4, wch=0, local=(8, 8, 1))
        else:
            kernel.tile = dataclasses.replace(own, row_loop=True, wch=min(spec.out_size[-1], MAX_CHUNK // 2),
                                              local=(1, 1, 1))
    return kernel


@pytest.mark.parametrize("form", ["own", "other"])
@pytest.mark.parametrize("name,spec,params", SPECS, ids=[s[0] for s in SPECS])
def test_random_specs_match_reference(cl_device, name, spec, params, form):
    kernel = _kernel(spec, cl_device, form)
    x, w, b = _arrays(spec, "float32")
    y = kernel(x, w, b)
    exact = reference(spec, x, w, b)
    assert y.shape == exact.shape and y.dtype == np.float32
    err = _error(y, exact)
    assert err <= TOLERANCE["float32"], f"{name} ({kernel.tile}): normwise relative error {err:.3e}"


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("name,spec,params", SPECS[::6], ids=[s[0] for s in SPECS[::6]])
def test_other_dtypes_match_reference(cl_device, name, spec, params, dtype):
    spec = dataclasses.replace(spec, dtype=dtype)
    kernel = _kernel(spec, cl_device, "own")
    x, w, b = _arrays(spec, dtype)
    y = kernel(x, w, b)
    assert y.dtype == np.dtype(dtype)
    err = _error(y, reference(spec, x, w, b))
    assert err <= TOLERANCE[dtype], f"{name} {dtype}: normwise relative error {err:.3e}"


@pytest.mark.parametrize("form", ["own", "other"])
def test_public_api_and_repeat_are_bitwise_equal(cl_device, form):
    """Same bits run after run, through the public API and through both forms."""
    x, w, b = _arrays(ConvSpec.from_shapes("conv", (2, 6, 19, 21), (12, 1, 3, 3), bias=True, groups=6), "float32", 1)
    params = dict(stride=(1, 2), padding=((1, 2), (0, 1)), groups=6)
    spec = clconv.explain("conv2d", x, w, b, device=cl_device.id, algorithm="depthwise", **params).spec
    kernel = _kernel(spec, cl_device, form)
    first = kernel(x, w, b)
    for _ in range(3):
        assert np.array_equal(kernel(x, w, b), first)
    via_api = clconv.conv2d(x, w, b, device=cl_device.id, algorithm="depthwise", **params)
    if form == "own":
        assert np.array_equal(via_api, first)
    assert _error(first, reference(spec, x, w, b)) <= TOLERANCE["float32"]


def test_tiny_and_ragged_widths(cl_device):
    """Widths below, at and just past the vector width, with padding on both sides."""
    for width in (1, 2, VECW - 1, VECW, VECW + 1, 2 * VECW + 3):
        spec = ConvSpec.from_shapes("conv", (1, 3, 4, width), (3, 1, 3, 3), groups=3, padding=1, bias=True)
        x, w, b = _arrays(spec, "float32", width)
        for form in ("own", "other"):
            y = _kernel(spec, cl_device, form)(x, w, b)
            assert _error(y, reference(spec, x, w, b)) <= TOLERANCE["float32"], (width, form)


def test_dispatcher_prefers_depthwise(cl_device):
    x = np.zeros((1, 8, 10, 10), np.float32)
    w = np.zeros((8, 1, 3, 3), np.float32)
    expl = clconv.explain("conv2d", x, w, device=cl_device.id, padding=1, groups=8)
    assert expl.chosen is not None and expl.chosen.algorithm.id == "depthwise"


@pytest.mark.parametrize(
    "fn,xs,ws,params,reason",
    [
        ("conv2d", (1, 4, 6, 6), (4, 2, 3, 3), {"groups": 2}, "not depthwise"),
        ("conv2d", (1, 4, 6, 6), (4, 4, 3, 3), {}, "not depthwise"),
        ("conv_transpose2d", (1, 4, 6, 6), (4, 1, 3, 3), {"groups": 4}, "transposed"),
        ("conv1d", (1, 2, 400), (2, 1, 344), {"groups": 2}, "taps"),
    ],
)
def test_unsupported_specs_say_why(cl_device, fn, xs, ws, params, reason):
    expl = clconv.explain(fn, np.zeros(xs, np.float32), np.zeros(ws, np.float32),
                          device=cl_device.id, algorithm="depthwise", **params)
    cand = expl.candidates[0]
    assert not cand.support.ok and reason in cand.support.reason


def test_cpu_tiles_fit_local_memory(cl_device):
    """The CPU form shrinks its tile to the device's local memory (or gives way to the GPU form)."""
    spec = ConvSpec.from_shapes("conv", (1, 2, 9, 9, 300), (2, 1, 7, 7, 7), groups=2, padding=3)
    tile = choose_tile(spec, cl_device)
    assert tile.local_bytes(spec) <= cl_device.local_mem_bytes


@pytest.mark.parametrize("form", ["own", "other"])
def test_float16_storage_is_exact_and_rounds_to_nearest_even(cl_device, form):
    """Every float16 value goes through unchanged (times 1); products round to nearest even."""
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    x = bits.view(np.float16).reshape(1, 1, -1)
    spec = ConvSpec.from_shapes("conv", x.shape, (1, 1, 1), dtype="float16")
    kernel = _kernel(spec, cl_device, form)
    one = np.ones((1, 1, 1), np.float16)
    y = kernel(x, one)
    np.testing.assert_array_equal(y, x)  # NaNs compare equal; -0 may come back as +0
    # x * w is exact in float32 (11 + 11 significant bits), so the only rounding is the
    # store; these weights make ties whose lower neighbour is odd and ties where it is even
    w = np.array([1 + 2.0**-10, 1 + 3 * 2.0**-10], np.float16).reshape(2, 1, 1)
    spec2 = ConvSpec.from_shapes("conv", x.shape, w.shape, dtype="float16")
    with np.errstate(over="ignore", invalid="ignore"):
        expected = (x.astype(np.float32) * w.astype(np.float32).reshape(1, 2, 1)).astype(np.float16)
    np.testing.assert_array_equal(_kernel(spec2, cl_device, form)(x, w), expected)
