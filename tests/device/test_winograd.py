"""The OpenCL Winograd algorithms beyond the shared grid: tile edges, padding, batches, channel
counts off the GEMM blocks, dilation and padding modes (phase images), chunking, the filter-transform cache, NaN/Inf, determinism, and the
measured error of F(2x2,3x3) and F(4x4,3x3) on ResNet-like data."""

from __future__ import annotations

import os

import numpy as np
import pytest

from clconv.backends.numpy.ops import reference
from clconv.backends.opencl import weightcache
from clconv.backends.opencl.algorithms import winograd
from clconv.conformance.runner import check_result
from clconv.conformance.tolerances import tolerance
from clconv.spec import ConvSpec

DTYPES = ("float32", "float64", "float16")
VARIANTS = {"f2": winograd.WinogradF2, "f4": winograd.WinogradF4}


def _spec(xs, ws, dtype="float32", bias=True, **params):
    return ConvSpec.from_shapes("conv", xs, ws, bias=bias, dtype=dtype, **params)


def _arrays(spec, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape).astype(spec.dtype)
    w = (rng.standard_normal(spec.weight_shape) * scale).astype(spec.dtype)
    b = rng.standard_normal(spec.out_channels).astype(spec.dtype) if spec.bias else None
    return x, w, b


def _kernel(variant, spec, device):
    if spec.dtype == "float64" and not device.fp64:
        pytest.skip(f"{device.id} lacks fp64")
    alg = VARIANTS[variant]()
    support = alg.supports(spec, device)
    assert support, support.reason
    return alg.prepare(spec, device)


def _check(variant, spec, device, seed=0):
    """Run the kernel with out= poisoned; the conformance check (NaN/Inf pattern, the winograd
    tolerance normwise and elementwise, every element written) must pass."""
    kernel = _kernel(variant, spec, device)
    x, w, b = _arrays(spec, seed)
    x0, w0 = x.copy(), w.copy()
    out = np.full(spec.output_shape, np.nan, dtype=spec.dtype)
    y = kernel(x, w, b, out=out)
    assert y is out
    check_result(spec, "winograd", x, w, b, y)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    return kernel, y


# ------------------------------------------------------------------ geometry
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "xs,ws,params",
    [
        # odd sizes: the last tile row and column stick out of the output
        ((1, 3, 7, 9), (5, 3, 3, 3), {"padding": 1}),
        ((2, 4, 11, 5), (3, 4, 3, 3), {}),
        # tiny inputs: 1x1 and 2x2 with padding (one partial tile)
        ((1, 2, 1, 1), (3, 2, 3, 3), {"padding": 1}),
        ((2, 3, 2, 2), (4, 3, 3, 3), {"padding": 1}),
        ((1, 1, 2, 1), (1, 1, 3, 3), {"padding": ((1, 0), (2, 0))}),
        # asymmetric padding, large on one side (whole tiles of zeros)
        ((1, 3, 6, 7), (4, 3, 3, 3), {"padding": ((0, 2), (3, 1))}),
        ((2, 2, 5, 5), (2, 2, 3, 3), {"padding": ((4, 0), (0, 5))}),
        # batch > 1 with tile rows shorter than a tile block (blocks straddle rows and images)
        ((5, 3, 6, 6), (4, 3, 3, 3), {"padding": 1}),
        # a wide image: many full tile blocks in one row
        ((1, 2, 5, 67), (3, 2, 3, 3), {"padding": (1, 2)}),
    ],
    ids=["odd", "odd-valid", "1x1", "2x2", "2x1-asym", "asym", "asym-big", "batch5", "wide"],
)
def test_geometry(cl_device, variant, dtype, xs, ws, params):
    _check(variant, _spec(xs, ws, dtype, **params), cl_device)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_many_channels_off_the_blocks(cl_device, variant, dtype):
    """C_in = 67 (long reductions, not a multiple of anything), C_out = 37 (channel blocks padded
    with zero channels), no bias."""
    _check(variant, _spec((2, 67, 9, 10), (37, 67, 3, 3), dtype, bias=False, padding=1), cl_device)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("groups", [2, 3])
def test_groups(cl_device, variant, groups):
    _check(variant, _spec((2, 6 * groups, 7, 8), (5 * groups, 6, 3, 3), groups=groups, padding=1), cl_device)


# ------------------------------------------------------------------ dilation: phase images
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "xs,ws,params,bias",
    [
        # even sizes, dilation 2: four 8x8 phases
        ((1, 4, 12, 12), (5, 4, 3, 3), {"padding": 2, "dilation": 2}, True),
        # odd sizes, dilation 3, no bias: phases of unequal output counts (cropped)
        ((2, 3, 13, 11), (4, 3, 3, 3), {"padding": 3, "dilation": 3}, False),
        # dilation 6, asymmetric padding (one side none)
        ((1, 3, 17, 14), (4, 3, 3, 3), {"padding": ((6, 2), (0, 6)), "dilation": 6}, True),
        # DeepLab's dilation 12 on 33x33: 5x5 phases with 3x3 outputs (F(4x4) tiles mostly wasted)
        ((1, 5, 33, 33), (6, 5, 3, 3), {"padding": 12, "dilation": 12}, True),
        # 'same' with dilation 2 on an odd size
        ((1, 3, 10, 9), (3, 3, 3, 3), {"padding": "same", "dilation": 2}, True),
        # anisotropic dilation, valid along one axis
        ((2, 2, 13, 11), (3, 2, 3, 3), {"padding": (0, 3), "dilation": (2, 3)}, True),
        ((1, 2, 9, 16), (3, 2, 3, 3), {"padding": (1, 2), "dilation": (1, 2)}, False),
        # groups and batch > 1
        ((3, 6, 11, 12), (4, 3, 3, 3), {"padding": 2, "dilation": 2, "groups": 2}, True),
        # output of one row: one phase has no output at all
        ((1, 2, 5, 9), (2, 2, 3, 3), {"padding": ((0, 0), (2, 2)), "dilation": 2}, True),
    ],
    ids=["d2-even", "d3-odd-nobias", "d6-asym", "d12-33", "d2-same", "aniso-23", "aniso-12",
         "d2-groups-batch3", "d2-one-row"],
)
def test_dilated(cl_device, variant, dtype, xs, ws, params, bias):
    spec = _spec(xs, ws, dtype, bias=bias, **params)
    assert winograd.gathers(spec)
    _check(variant, spec, cl_device)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("dilation", [1, 2, 3], ids=lambda d: f"d{d}")
def test_padding_modes(cl_device, variant, mode, dilation):
    """The gather writes the padding values, so every mode works, dilated or not (asymmetric,
    up to the size limits of reflect and circular)."""
    pads = ((2 * dilation, dilation), (0, 3 * dilation)) if mode != "reflect" else ((dilation, 2), (3, dilation))
    spec = _spec((2, 3, 3 * dilation + 4, 3 * dilation + 5), (4, 3, 3, 3), padding=pads, dilation=dilation,
                 padding_mode=mode)
    _check(variant, spec, cl_device)


@pytest.mark.parametrize("dtype", ("float32", "float16"))
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("chunk", ["images", "rows"])
def test_dilated_chunks(cl_device, variant, dtype, chunk, monkeypatch):
    """Chunks of phase images (straddling the phases of one image) and of tile rows of one phase
    image, with reflect padding (the non-finite fallback and the gather read through the mode)."""
    spec = _spec((3, 4, 19, 17), (5, 4, 3, 3), dtype, padding=((3, 1), (2, 2)), dilation=(3, 2),
                 padding_mode="reflect")
    phases = winograd.phase_spec(spec)
    assert phases.batch == 3 * 6 and phases.padding == ((0, 0), (0, 0))
    whole = winograd.make_plan(phases, cl_device, VARIANTS[variant].mt)
    one = whole.workspace_bytes() // whole.nimg
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1 if chunk == "rows" else 4 * one + one // 2)
    plan = winograd.make_plan(phases, cl_device, VARIANTS[variant].mt)
    if chunk == "rows":
        assert plan.nimg == 1 and plan.nth < plan.th
    else:
        assert plan.nth == plan.th and 1 < plan.nimg < phases.batch and plan.nimg % 6
    _check(variant, spec, cl_device)


@pytest.mark.parametrize("variant", VARIANTS)
def test_dilated_nan_and_inf_propagate(cl_device, variant):
    """The direct fallback of the output transform reads with the dilation and the padding mode."""
    spec = _spec((2, 4, 14, 13), (5, 4, 3, 3), padding=(4, 2), dilation=(4, 2), padding_mode="circular")
    kernel = _kernel(variant, spec, cl_device)
    x, w, b = _arrays(spec, seed=4)
    x[0, 1, 0, 5] = np.nan  # read through the circular padding too
    x[1, 3, 7, 12] = np.inf
    y = kernel(x, w, b)
    check_result(spec, "winograd", x, w, b, y)
    assert np.isnan(y).any() and np.isinf(y).any()


def test_phase_spec():
    spec = _spec((2, 8, 33, 33), (16, 8, 3, 3), padding=12, dilation=12, padding_mode="replicate")
    p = winograd.phase_spec(spec)
    assert (p.batch, p.in_size, p.out_size, p.dilation, p.padding_mode) == (288, (5, 5), (3, 3), (1, 1), "zeros")
    assert (p.in_channels, p.out_channels, p.groups, p.bias) == (8, 16, 1, spec.bias)
    plain = _spec((2, 8, 9, 9), (16, 8, 3, 3), padding=1)
    assert winograd.phase_spec(plain) is plain and not winograd.gathers(plain)


# ------------------------------------------------------------------ chunking
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_chunks_of_images(cl_device, variant, dtype, monkeypatch):
    """A budget of about two images: several chunks of whole images, the last one shorter."""
    spec = _spec((5, 5, 9, 10), (6, 5, 3, 3), dtype, padding=1)
    whole = winograd.make_plan(spec, cl_device, VARIANTS[variant].mt)
    one = whole.workspace_bytes() // whole.nimg
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 2 * one + one // 2)
    plan = winograd.make_plan(spec, cl_device, VARIANTS[variant].mt)
    chunks = list(plan.chunks())
    assert plan.nth == plan.th and 1 < plan.nimg < spec.batch and len(chunks) > 2
    assert sum(c.nimg for c in chunks) == spec.batch
    _check(variant, spec, cl_device)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_chunks_of_tile_rows(cl_device, variant, dtype, monkeypatch):
    """A budget smaller than one image: chunks of a few tile rows of one image at a time."""
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    spec = _spec((2, 3, 17, 13), (4, 3, 3, 3), dtype, padding=(2, 1))
    plan = winograd.make_plan(spec, cl_device, VARIANTS[variant].mt)
    chunks = list(plan.chunks())
    assert plan.nimg == 1 and plan.nth == 1 and len(chunks) == spec.batch * plan.th
    _check(variant, spec, cl_device)


def test_workspace_is_bounded(cl_device):
    budget = winograd.budget_bytes(cl_device)
    for cls in VARIANTS.values():
        alg = cls()
        for spec in (
            _spec((32, 256, 56, 56), (256, 256, 3, 3), padding=1),
            _spec((1, 64, 512, 512), (64, 64, 3, 3), padding=1),
        ):
            plan = winograd.make_plan(spec, cl_device, cls.mt)
            assert plan.workspace_bytes() <= budget, spec.describe()
            assert alg.workspace_bytes(spec, cl_device) == plan.workspace_bytes() + plan.u_bytes()


# ------------------------------------------------------------------ the filter-transform cache
@pytest.mark.parametrize("variant", VARIANTS)
def test_filter_cache_reuses_and_recomputes(cl_device, variant):
    spec = _spec((2, 8, 9, 9), (16, 8, 3, 3), padding=1)
    kernel = _kernel(variant, spec, cl_device)
    x, w, b = _arrays(spec, seed=1)
    _, w2, _ = _arrays(spec, seed=2)
    y1 = kernel(x, w, b)
    assert (kernel.filter_transforms, kernel.filter_cache_hits) == (1, 0)
    y1b = kernel(x, w.copy(), b)  # equal bytes in another array: a hit
    assert (kernel.filter_transforms, kernel.filter_cache_hits) == (1, 1)
    np.testing.assert_array_equal(y1, y1b)
    y2 = kernel(x, w2, b)  # a different weight of the same shape: computed, and right
    assert kernel.filter_transforms == 2
    check_result(spec, "winograd", x, w2, b, y2)
    assert kernel(x, w, b).tobytes() == y1.tobytes()  # the first weight is still cached
    assert (kernel.filter_transforms, kernel.filter_cache_hits) == (2, 2)
    w[3, 2, 1, 0] += 1.0  # an in-place change of a NumPy weight is detected
    y3 = kernel(x, w, b)
    assert kernel.filter_transforms == 3
    check_result(spec, "winograd", x, w, b, y3)
    kernel.clear_filter_cache()
    kernel(x, w, b)
    assert kernel.filter_transforms == 4


def test_filter_cache_is_bounded(cl_device, monkeypatch):
    monkeypatch.setattr(weightcache, "FILTER_CACHE_ENTRIES", 2)
    spec = _spec((1, 4, 6, 6), (4, 4, 3, 3), bias=False, padding=1)
    kernel = _kernel("f2", spec, cl_device)
    x, _, _ = _arrays(spec)
    weights = [_arrays(spec, seed=s)[1] for s in range(3)]
    for w in weights:
        kernel(x, w)
    assert len(kernel.filter_cache.entries) == 2 and kernel.filter_transforms == 3
    kernel(x, weights[0])  # evicted (least recently used): computed again
    assert kernel.filter_transforms == 4
    kernel(x, weights[2])
    assert kernel.filter_transforms == 4


@pytest.mark.parametrize("variant", VARIANTS)
def test_device_arrays_and_device_weight_cache(cl_device, variant):
    """pyopencl arrays in, a pyopencl array out; a device weight is cached by its buffer."""
    import pyopencl.array as cl_array

    spec = _spec((2, 5, 8, 7), (6, 5, 3, 3), padding=1)
    kernel = _kernel(variant, spec, cl_device)
    x, w, b = _arrays(spec)
    q = cl_device.queue
    xd, wd, bd = (cl_array.to_device(q, a) for a in (x, w, b))
    y = kernel(xd, wd, bd)
    assert isinstance(y, cl_array.Array)
    check_result(spec, "winograd", x, w, b, y.get(q))
    kernel(xd, wd, bd)
    assert (kernel.filter_transforms, kernel.filter_cache_hits) == (1, 1)
    # documented: an in-place change of a device weight is not detected until the cache is cleared
    w2 = _arrays(spec, seed=5)[1]
    wd.set(w2, queue=q)
    kernel.clear_filter_cache()
    check_result(spec, "winograd", x, w2, b, kernel(xd, wd, bd).get(q))
    assert kernel.filter_transforms == 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_constant_weights_plan_skips_the_weight_check(cl_device, variant, monkeypatch):
    """clconv.plan(..., constant_weights=True): the NumPy weight goes to the device once, its
    transformed filter is found by buffer from then on (no byte comparison), the result has
    the plain plan's bits; a new weight object is made resident in its turn; an in-place change
    is not seen (the documented promise)."""
    import clconv

    spec = _spec((2, 6, 9, 8), (7, 6, 3, 3), padding=1)
    x, w, b = _arrays(spec, seed=6)
    _, w2, _ = _arrays(spec, seed=7)
    pins = {"device": cl_device.id, "algorithm": VARIANTS[variant].id, "padding": 1}
    plain = clconv.plan("conv2d", x, w, b, **pins)
    expected = plain(x, w, b)
    p = clconv.plan("conv2d", x, w, b, constant_weights=True, **pins)
    compared = []
    real = weightcache.same_bytes
    monkeypatch.setattr(weightcache, "same_bytes", lambda a, c: compared.append(1) or real(a, c))
    for _ in range(3):
        assert p(x, w, b).tobytes() == expected.tobytes()
    assert compared == [] and p.kernel.filter_cache_hits >= 2
    check_result(spec, "winograd", x, w2, b, p(x, w2, b))
    assert compared == []
    before = w2.copy()
    w2[0, 0, 1, 1] += 5.0  # in place: not seen, by the plan's promise; the plain plan sees it
    stale, fresh = p(x, w2, b), plain(x, w2, b)
    assert stale.tobytes() != fresh.tobytes()
    assert stale.tobytes() == plain(x, before, b).tobytes()
    check_result(spec, "winograd", x, w2, b, fresh)


# ------------------------------------------------------------------ NaN, Inf, determinism
@pytest.mark.parametrize("dtype", ("float32", "float16"))
@pytest.mark.parametrize("variant", VARIANTS)
def test_nan_and_inf_propagate_as_in_a_direct_convolution(cl_device, variant, dtype):
    """A NaN or Inf spreads over a whole Winograd tile; the output transform falls back to a direct
    sum there, so the NaN/Inf pattern equals the reference's, and so do the other outputs."""
    spec = _spec((2, 4, 10, 9), (5, 4, 3, 3), dtype, padding=1)
    kernel = _kernel(variant, spec, cl_device)
    x, w, b = _arrays(spec, seed=3)
    x[0, 1, 4, 4] = np.nan
    x[1, 2, 0, 8] = np.inf
    x[1, 0, 9, 0] = -np.inf
    y = kernel(x, w, b)
    check_result(spec, "winograd", x, w, b, y)
    assert np.isnan(y).any() and np.isinf(y).any()


def test_overflow_in_the_transforms_is_repaired(cl_device):
    """F(4x4)'s input transform scales by up to 25 (B^T d B): float32 values near 1e37 overflow
    there, though the convolution itself does not. Those tiles are computed directly (finite, and
    exact zeros where the direct sum is zero)."""
    spec = _spec((1, 1, 6, 6), (1, 1, 3, 3), "float32", bias=False)
    kernel = _kernel("f4", spec, cl_device)
    x = np.zeros(spec.input_shape, np.float32)
    x[0, 0, 2, 2] = 3e37
    x[0, 0, 3, 3] = -3e37
    w = np.zeros(spec.weight_shape, np.float32)
    w[0, 0, 1, 1] = 0.5
    y = kernel(x, w)
    assert np.isfinite(y).all()
    check_result(spec, "winograd", x, w, None, y)


@pytest.mark.parametrize("variant", VARIANTS)
def test_deterministic(cl_device, variant):
    spec = _spec((2, 19, 13, 11), (21, 19, 3, 3), padding=1)
    kernel = _kernel(variant, spec, cl_device)
    x, w, b = _arrays(spec)
    first = kernel(x, w, b)
    kernel.clear_filter_cache()  # the filter transform too
    assert kernel(x, w, b).tobytes() == first.tobytes()
    assert kernel(x, w, b).tobytes() == first.tobytes()


# ------------------------------------------------------------------ support and cost
@pytest.mark.parametrize(
    "xs,ws,params,reason",
    [
        ((1, 2, 8, 8), (2, 2, 5, 5), {}, "3x3 kernels only"),
        ((1, 2, 8, 8), (2, 2, 3, 3), {"stride": 2}, "stride 1 only"),
        ((1, 2, 8, 8), (2, 2, 3, 3), {"stride": 2, "dilation": 2}, "stride 1 only"),
        ((1, 4, 8, 8), (4, 1, 3, 3), {"groups": 4}, "depthwise"),
        ((1, 2, 8), (2, 2, 3), {}, "2D convolutions only"),
    ],
)
def test_declines_with_a_reason(cl_device, xs, ws, params, reason):
    spec = _spec(xs, ws, **params)
    for cls in VARIANTS.values():
        support = cls().supports(spec, cl_device)
        assert not support and reason in support.reason


def test_declines_transposed(cl_device):
    spec = ConvSpec.from_shapes("conv_transpose", (1, 2, 8, 8), (2, 2, 3, 3))
    assert "transposed" in winograd.WinogradF4().supports(spec, cl_device).reason


def test_cost_sees_the_wasted_tiles_of_tiny_phases(cl_device):
    """DeepLab's 3x3 layers: dilation 2 costs about what the undilated layer does; dilation 12
    (5x5 phases, 3x3 outputs each) counts whole tiles (F(4x4): 16 outputs computed per 9, F(2x2):
    16 per 9 in four tiles), the zero margins of 144 phase images' rows and strided gather/scatter
    bytes, so both cost well above dilation 2, and F(2x2) more than F(4x4) in FLOPs."""
    from clconv import costmodel

    def spec(d):
        return _spec((1, 256, 33, 33), (256, 256, 3, 3), padding=d, dilation=d)

    for cls in VARIANTS.values():
        alg = cls()
        c1, c2, c12 = (alg.cost(spec(d), cl_device) for d in (1, 2, 12))
        assert c1.flops <= c2.flops < c12.flops and c2.bytes < c12.bytes
        assert costmodel.predict(spec(12), cl_device, alg) > 1.5 * costmodel.predict(spec(2), cl_device, alg)
    f2, f4 = (cls().cost(spec(12), cl_device) for cls in VARIANTS.values())
    assert f2.flops > f4.flops
    # GEMM FLOPs of the phase tiles: 144 phases x 4 (F2) or 1 (F4) tiles, padded to the GEMM block
    assert f4.flops >= 36 * 256 * 256 * 144 * 2


def test_cost_counts_the_winograd_work(cl_device):
    spec = _spec((1, 256, 14, 14), (256, 256, 3, 3), bias=False, padding=1)
    f2 = winograd.WinogradF2().cost(spec, cl_device)
    f4 = winograd.WinogradF4().cost(spec, cl_device)
    # GEMM part: 16 (36) positions x C_out x C_in x tiles x 2, tiles padded to the GEMM block
    assert f2.flops >= 16 * 256 * 256 * 49 * 2
    assert f4.flops >= 36 * 256 * 256 * 16 * 2
    assert f4.flops < f2.flops < spec.flops
    # the transformed weight is read every call: F(4x4)'s is 36/16 times F(2x2)'s
    assert f4.bytes > f2.bytes > spec.nbytes("weight")
    assert f2.launches >= 4 + winograd.WinogradF2().host_launches(cl_device)


# ------------------------------------------------------------------ measured error
def test_measured_error_on_resnet_like_data(cl_device, capsys):
    """He-initialized weights, N(0, 1) activations, ResNet-50's 3x3 layers at reduced spatial size:
    the normwise error of both variants stays within the winograd tolerance (printed)."""
    rows = []
    for c, hw in ((64, 28), (128, 14), (256, 14), (512, 7)):
        spec = _spec((1, c, hw, hw), (c, c, 3, 3), bias=False, padding=1)
        x, w, _ = _arrays(spec, seed=c, scale=np.sqrt(2.0 / (c * 9)))
        exact = reference(spec, x, w, None)
        for name, cls in VARIANTS.items():
            y = cls().prepare(spec, cl_device)(x, w)
            err = float(np.linalg.norm((y.astype(np.float64) - exact).ravel()) / np.linalg.norm(exact.ravel()))
            rows.append((spec.describe(), name, err))
            assert err <= tolerance("winograd", "float32")[1], (spec.describe(), name, err)
    with capsys.disabled():
        print()
        for desc, name, err in rows:
            print(f"    winograd {name} normwise error {err:.2e}  {desc}")
    f2 = max(e for _, n, e in rows if n == "f2")
    f4 = max(e for _, n, e in rows if n == "f4")
    assert f2 < f4  # F(4x4) trades accuracy for fewer multiplications


class _PoisonedCL:
    """pyopencl, except that every buffer it allocates starts filled with NaN bits."""

    def __init__(self, queue):
        import pyopencl as cl

        self._cl, self._queue = cl, queue

    def __getattr__(self, name):
        return getattr(self._cl, name)

    def Buffer(self, ctx, flags, size, *args, **kwargs):  # pyopencl's name
        buf = self._cl.Buffer(ctx, flags, size, *args, **kwargs)
        self._cl.enqueue_fill_buffer(self._queue, buf, np.uint8(0xFF), 0, size)
        self._queue.finish()
        return buf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "xs,ws,params",
    [
        ((2, 3, 9, 8), (4, 3, 3, 3), {"padding": 1}),
        ((3, 6, 7, 5), (10, 3, 3, 3), {"groups": 2, "padding": ((0, 2), (1, 0))}),
        ((1, 5, 13, 21), (19, 5, 3, 3), {"padding": 1}),
        ((1, 64, 14, 14), (37, 64, 3, 3), {"padding": 1}),
        ((2, 3, 11, 10), (4, 3, 3, 3), {"padding": ((3, 1), (2, 2)), "dilation": (3, 2), "padding_mode": "reflect"}),
    ],
    ids=["basic", "groups-asym", "odd", "channels", "dilated-reflect"],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
def test_reads_only_what_it_writes(cl_device, variant, dtype, xs, ws, params, chunked, monkeypatch):
    """Every buffer the algorithm allocates (transformed weight, workspace) filled with NaN bits
    first changes no bit of the result: nothing a kernel reads into an output was left unwritten
    (a NaN read would give a NaN output, or a direct-fallback tile with other rounding)."""
    spec = _spec(xs, ws, dtype, **params)
    x, w, b = _arrays(spec)
    clean = _kernel(variant, spec, cl_device)(x, w, b)
    monkeypatch.setattr(winograd, "cl", _PoisonedCL(cl_device.queue))
    if chunked:
        monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    poisoned = _kernel(variant, spec, cl_device)(x, w, b)
    assert poisoned.tobytes() == clean.tobytes()


# ------------------------------------------------------------------ every block shape
TILINGS = [
    winograd.Tiling(vw=16, nv=2, tm=8),  # AVX-512 CPUs
    winograd.Tiling(vw=16, nv=4, tm=4),  # AVX-512, at most 4 tiles
    winograd.Tiling(vw=8, nv=2, tm=4),  # AVX2 CPUs
    winograd.Tiling(vw=4, nv=2, tm=4),  # other devices
    winograd.Tiling(vw=8, nv=1, tm=8),
    winograd.Tiling(vw=16, nv=1, tm=16),  # AVX-512, 9-16 tiles (two input-transform segments)
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("tile", TILINGS, ids=lambda t: f"{t.vw}x{t.nv}x{t.tm}")
def test_every_block_shape(cl_device, variant, dtype, tile, monkeypatch):
    """The blocks other devices get, checked here: the macros compile and compute right."""
    monkeypatch.setattr(winograd, "tiling", lambda spec, device, tiles: tile)
    _check(variant, _spec((2, 9, 11, 7), (21, 9, 3, 3), dtype, padding=(1, 2)), cl_device)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_tunable_variant_of_a_dilated_spec(cl_device, variant):
    """variants() of a dilated spec are those of its phase spec, and each computes right."""
    spec = _spec((1, 8, 13, 12), (40, 8, 3, 3), padding=2, dilation=2)
    alg = VARIANTS[variant]()
    variants = alg.variants(spec, cl_device)
    assert variants == alg.variants(winograd.phase_spec(spec), cl_device) and len(variants) > 1
    x, w, b = _arrays(spec)
    for v in variants:
        kernel = alg.prepare_with(spec, cl_device, v)
        assert kernel.params == v
        check_result(spec, "winograd", x, w, b, kernel(x, w, b))


# ------------------------------------------------------------------ input transform reading x
def _direct_x(kernel):
    return any(("DIRECT_X", 1) in key[2] for key in kernel.__dict__.get("_programs", {}))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tm", [8, 4])
@pytest.mark.parametrize(
    "xs,ws,params,chunk",
    [
        # rows narrower than a run's loads (every row through the bounds-checked stage), runs
        # that straddle tile rows and images, asymmetric padding
        ((3, 5, 9, 11), (6, 5, 3, 3), {"padding": ((1, 2), (2, 1))}, None),
        # interior runs read straight from x; tile-row chunks of one image (r0 > 0, n0 > 0)
        ((2, 4, 30, 45), (8, 4, 3, 3), {"padding": 1}, "rows"),
        ((1, 6, 21, 40), (4, 3, 3, 3), {"groups": 2}, None),  # no padding, groups
    ],
    ids=["narrow", "chunked", "groups"],
)
def test_input_transform_reading_x_matches_the_padded_copy(cl_device, variant, dtype, tm, xs, ws, params, chunk,
                                                         monkeypatch):
    """The input transform reading x itself (DIRECT_X: production runs it for F(4x4); forced
    here for F(2x2) too) gives the same bits as reading pad_input's zero-padded copy
    (``CLCONV_WINOGRAD_PAD=1``), NaN/Inf at the border included, and the reference's result."""
    _direct_against_padded(cl_device, variant, dtype, winograd.Tiling(vw=8, nv=1, tm=tm), xs, ws, params, chunk,
                           monkeypatch)


@pytest.mark.parametrize("variant", VARIANTS)
def test_input_transform_reading_x_in_tall_blocks(cl_device, variant, monkeypatch):
    """16-tile blocks (TALL_BLOCK: the input transform takes them in two segments of 8 and
    writes both into the block's V rows): runs straddling tile rows and images, tile-row chunks,
    a last block of fewer tiles; reading x and the padded copy agree, with the reference."""
    _direct_against_padded(cl_device, variant, "float32", winograd.Tiling(vw=16, nv=1, tm=16), (2, 4, 30, 45),
                           (20, 4, 3, 3), {"padding": 1}, "rows", monkeypatch)


def _direct_against_padded(cl_device, variant, dtype, tile, xs, ws, params, chunk, monkeypatch):
    monkeypatch.setattr(winograd, "reads_x_directly",
                        lambda spec, mt: spec.dtype != "float16" and not winograd.gathers(spec)
                        and os.environ.get("CLCONV_WINOGRAD_PAD", "0") != "1")
    monkeypatch.setattr(winograd, "tiling", lambda spec, device, tiles: tile)
    if chunk == "rows":
        monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    spec = _spec(xs, ws, dtype, **params)
    x, w, b = _arrays(spec, seed=4)
    x[0, 1, 0, 0] = np.nan  # the first tile of the first run: the stage
    x[-1, -1, -1, -2] = np.inf  # near the last column and row
    kernel = _kernel(variant, spec, cl_device)
    direct = kernel(x, w, b, out=np.full(spec.output_shape, np.nan, dtype))
    assert _direct_x(kernel)
    if chunk == "rows":
        assert len(list(kernel.plan.chunks())) > spec.batch
    check_result(spec, "winograd", x, w, b, direct)
    monkeypatch.setenv("CLCONV_WINOGRAD_PAD", "1")
    padded = _kernel(variant, spec, cl_device)
    assert padded(x, w, b).tobytes() == direct.tobytes()
    assert not _direct_x(padded)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_input_transform_reading_x_inside_a_nan_buffer(cl_device, dtype):
    """F(4x4)'s input transform loads rows that cross the input's left or right edge as whole
    vectors and zeroes the lanes outside the row (the loads read the neighbouring rows there).
    Here x is a device array at an element offset in a buffer full of NaN on both sides, 56 wide
    like ResNet-50's layer (every run of 8 tiles touches an edge): nothing outside x may reach
    the result (a NaN read would give a NaN output, or a direct-fallback tile with other
    rounding); the result matches the reference and has the bits of x passed from the host."""
    import pyopencl.array as cl_array

    spec = _spec((2, 3, 20, 56), (4, 3, 3, 3), dtype, padding=1)
    x, w, b = _arrays(spec, seed=7)
    kernel = _kernel("f4", spec, cl_device)
    assert winograd.reads_x_directly(spec, kernel.plan.mt)
    q = cl_device.queue
    pad = 37
    big = np.full(x.size + 2 * pad, np.nan, dtype)
    big[pad:pad + x.size] = x.ravel()
    xd = cl_array.to_device(q, big)[pad:pad + x.size].reshape(x.shape)
    assert xd.offset == pad * x.itemsize
    y = kernel(xd, cl_array.to_device(q, w), cl_array.to_device(q, b)).get()
    assert np.isfinite(y).all()
    check_result(spec, "winograd", x, w, b, y)
    assert y.tobytes() == kernel(x, w, b).tobytes()


def test_reads_x_directly_only_for_f4x4_float32_float64_zero_padding(monkeypatch):
    f4 = winograd.WinogradF4.mt
    assert winograd.reads_x_directly(_spec((1, 4, 8, 8), (4, 4, 3, 3), padding=1), f4)
    assert winograd.reads_x_directly(_spec((1, 4, 8, 8), (4, 4, 3, 3), "float64", padding=1), f4)
    assert not winograd.reads_x_directly(_spec((1, 4, 8, 8), (4, 4, 3, 3), padding=1), winograd.WinogradF2.mt)
    assert not winograd.reads_x_directly(_spec((1, 4, 8, 8), (4, 4, 3, 3), "float16", padding=1), f4)
    assert not winograd.reads_x_directly(_spec((1, 4, 8, 8), (4, 4, 3, 3), padding=2, dilation=2), f4)
    assert not winograd.reads_x_directly(_spec((1, 4, 8, 8), (4, 4, 3, 3), padding=1, padding_mode="reflect"), f4)
    monkeypatch.setenv("CLCONV_WINOGRAD_PAD", "1")
    assert not winograd.reads_x_directly(_spec((1, 4, 8, 8), (4, 4, 3, 3), padding=1), f4)


# ------------------------------------------------------------------ streamed output stores
def _force_stream(monkeypatch):
    """OUT_STREAM for every float32 block with 8 or 16 channels per vector, F(2x2) too (which
    ``benchmarks/winograd_stream.py --all-sizes`` measures), on any device and output size
    (``CLCONV_WINOGRAD_STREAM=0`` still turns it off): the staged path then runs on small shapes,
    and under Oclgrind as a GPU too."""
    monkeypatch.setattr(
        winograd, "streams_output",
        lambda spec, device, tile, mt: (spec.dtype == "float32" and tile.vw in (8, 16)
                                        and os.environ.get("CLCONV_WINOGRAD_STREAM", "1") != "0"),
    )


def _streamed(kernel):
    return any(("OUT_STREAM", 1) in key[2] for key in kernel.__dict__.get("_programs", {}))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("vw", [16, 8])
@pytest.mark.parametrize(
    "xs,ws,params,nan",
    [
        # 7 tiles per row (blocks of 8 straddle rows and images), a partial last tile column,
        # 19 channels (the last vector partly valid): staged and tile-by-tile stores in one block
        ((2, 5, 14, 26), (19, 5, 3, 3), {"padding": 1}, False),
        ((1, 6, 16, 16), (32, 3, 3, 3), {"groups": 2, "padding": 1}, False),
        # non-finite tiles fall back to direct sums in the middle of staged blocks
        ((2, 4, 12, 17), (16, 4, 3, 3), {"padding": 1}, True),
    ],
    ids=["straddle", "groups", "nan"],
)
def test_streamed_and_plain_output_stores_agree(cl_device, variant, vw, xs, ws, params, nan, monkeypatch):
    """The output transform's staged, streaming stores (OUT_STREAM) write what the plain ones do:
    the same bits, every output (out= poisoned), the reference's NaN/Inf pattern."""
    _force_stream(monkeypatch)
    monkeypatch.setattr(winograd, "tiling", lambda spec, device, tiles: winograd.Tiling(vw=vw, nv=2, tm=8))
    spec = _spec(xs, ws, **params)
    x, w, b = _arrays(spec, seed=2)
    if nan:
        x[0, 1, 5, 6] = np.nan
        x[1, 3, 11, 16] = np.inf
    kernel = _kernel(variant, spec, cl_device)
    streamed = kernel(x, w, b, out=np.full(spec.output_shape, np.nan, np.float32))
    assert _streamed(kernel)
    check_result(spec, "winograd", x, w, b, streamed)
    monkeypatch.setenv("CLCONV_WINOGRAD_STREAM", "0")
    plain = _kernel(variant, spec, cl_device)(x, w, b)
    assert streamed.tobytes() == plain.tobytes()


def test_streamed_stores_into_a_misaligned_device_output(cl_device, monkeypatch):
    """A pyopencl out= one element past a buffer's start: the rows are not aligned for streaming
    stores, so the kernel stores them plainly; the result is the same."""
    import pyopencl.array as cl_array

    _force_stream(monkeypatch)
    monkeypatch.setattr(winograd, "tiling", lambda spec, device, tiles: winograd.Tiling(vw=16, nv=2, tm=8))
    spec = _spec((1, 3, 12, 16), (16, 3, 3, 3), padding=1)
    x, w, b = _arrays(spec)
    kernel = _kernel("f4", spec, cl_device)
    q = cl_device.queue
    n = int(np.prod(spec.output_shape))
    big = cl_array.to_device(q, np.full(n + 2, -7.0, np.float32))
    out = big[1:n + 1].reshape(spec.output_shape)
    y = kernel(cl_array.to_device(q, x), cl_array.to_device(q, w), cl_array.to_device(q, b), out=out)
    assert _streamed(kernel)
    got = big.get(q)
    assert got[0] == -7.0 and got[-1] == -7.0
    check_result(spec, "winograd", x, w, b, y.get(q))
    monkeypatch.setenv("CLCONV_WINOGRAD_STREAM", "0")
    assert y.get(q).tobytes() == _kernel("f4", spec, cl_device)(x, w, b).tobytes()


def test_streams_only_large_float32_f4x4_outputs_on_cpus(cl_device, monkeypatch):
    monkeypatch.delenv("CLCONV_WINOGRAD_STREAM", raising=False)
    big = _spec((2, 64, 112, 112), (64, 64, 3, 3), padding=1)  # VGG's 6.4 MB output
    small = _spec((1, 64, 56, 56), (64, 64, 3, 3), padding=1)
    tile16 = winograd.Tiling(vw=16, nv=2, tm=8)
    cpu = cl_device.kind == "cpu"
    assert winograd.streams_output(big, cl_device, tile16, 4) == cpu
    assert not winograd.streams_output(big, cl_device, tile16, 2)
    assert not winograd.streams_output(small, cl_device, tile16, 4)
    assert not winograd.streams_output(_spec((2, 64, 112, 112), (64, 64, 3, 3), "float64", padding=1),
                                       cl_device, winograd.Tiling(vw=8, nv=2, tm=8), 4)
    assert not winograd.streams_output(big, cl_device, winograd.Tiling(vw=4, nv=2, tm=4), 4)
    monkeypatch.setenv("CLCONV_WINOGRAD_STREAM", "0")
    assert not winograd.streams_output(big, cl_device, tile16, 4)


# ------------------------------------------------------------------ fused GEMM + output transform
def _record_launches(monkeypatch):
    """A list that collects the names of the kernels launched from now on."""
    names = []
    launch = winograd.runtime.launch

    def record(queue, program, name, *args):
        names.append(name)
        return launch(queue, program, name, *args)

    monkeypatch.setattr(winograd.runtime, "launch", record)
    return names


def _case(xs, ws, dtype, params, nan, monkeypatch, chunk_rows):
    """Spec and arrays of a parametrized case (``bias`` in params; NaN and Inf in x where
    ``nan``); chunks of tile rows of one image where ``chunk_rows``."""
    if chunk_rows:
        monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    params = dict(params)  # (shared by the parametrized cases)
    bias = params.pop("bias", True)
    spec = _spec(xs, ws, dtype, bias=bias, **params)
    x, w, b = _arrays(spec, seed=5)
    if nan:
        x[0, 1, 5, 6] = np.nan
        x[-1, -1, -1, -2] = np.inf
    return spec, x, w, b


_FUSED_CASES = [
    # blocks straddling rows and images, 19 channels (a partly valid vector, padding vectors past
    # it), bias, a non-finite tile, tile-row chunks of one image
    ("straddle-nan", (2, 5, 14, 26), (19, 5, 3, 3), {"padding": 1}, True, False),
    # groups (work-items along the third dimension), no bias
    ("groups", (1, 6, 16, 16), (32, 3, 3, 3), {"groups": 2, "padding": 1, "bias": False}, False, False),
    # dilation: phase images, outputs scattered DH and DW apart and cropped
    ("dilated", (1, 4, 19, 23), (8, 4, 3, 3), {"padding": 2, "dilation": (2, 3)}, False, False),
    # staged, streaming stores (forced on small shapes; float32 only)
    ("streamed", (2, 4, 12, 17), (16, 4, 3, 3), {"padding": 1}, True, True),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "dtype,xs,ws,params,nan,stream",
    [pytest.param(dtype, *case[1:], id=f"{dtype}-{case[0]}")
     for case in _FUSED_CASES for dtype in ("float32", "float16", "float64") if dtype == "float32" or not case[5]],
)
def test_fused_gemm_and_output_transform_match_the_separate_kernels(cl_device, variant, dtype, xs, ws, params,
                                                                    nan, stream, monkeypatch):
    """``wino_gemm_out`` (the GEMM transforming its own block of M into outputs: the default on
    PoCL's CPU devices) writes the same bits as ``wino_gemm`` + ``output_transform``, every output
    (out= poisoned), the reference's result and NaN/Inf pattern, in one launch per chunk fewer."""
    if stream:
        _force_stream(monkeypatch)
        monkeypatch.setattr(winograd, "tiling", lambda spec, device, tiles: winograd.Tiling(vw=16, nv=2, tm=8))
    spec, x, w, b = _case(xs, ws, dtype, params, nan, monkeypatch, chunk_rows=xs[0] == 2 and not stream)
    names = _record_launches(monkeypatch)
    out = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("CLCONV_WINOGRAD_FUSED", mode)
        kernel = _kernel(variant, spec, cl_device)
        names.clear()
        out[mode] = kernel(x, w, b, out=np.full(spec.output_shape, np.nan, dtype))
        chunks = kernel.plan.nchunks
        if mode == "1":
            assert names.count("wino_gemm_out") == chunks and "output_transform" not in names, names
        else:
            assert names.count("output_transform") == chunks and "wino_gemm_out" not in names, names
    if params.get("dilation") is None and xs[0] == 2 and not stream:
        assert chunks > xs[0]
    if stream:
        assert _streamed(kernel)
    check_result(spec, "winograd", x, w, b, out["1"])
    assert out["1"].tobytes() == out["0"].tobytes()


def test_fuses_output_by_device_and_switch(cl_device, monkeypatch):
    """Fused by default on PoCL's CPU devices only, and there only for a transformed weight of
    at most FUSED_U_BYTES (a 512-channel layer's separate GEMM and output transform, by default,
    with the fused kernel's bits); CLCONV_WINOGRAD_FUSED forces it on or off and names itself
    when set to anything else."""
    from clconv.errors import ConvValueError

    extra = cl_device.extra or {}
    pocl = cl_device.kind == "cpu" and "pocl" in str(extra.get("platform_version", "")).lower()
    assert winograd.fuses_output(cl_device) == pocl
    assert winograd.fuses_output(cl_device, winograd.FUSED_U_BYTES) == pocl
    assert not winograd.fuses_output(cl_device, winograd.FUSED_U_BYTES + 1)
    if pocl:  # 32 tiles: four blocks, not the filter-transforming GEMM; U 37.7 MB
        spec = _spec((8, 512, 8, 8), (512, 512, 3, 3), padding=1)
        x, w, b = _arrays(spec, scale=0.02)
        names = _record_launches(monkeypatch)
        kernel = _kernel("f4", spec, cl_device)
        assert not kernel.inline and kernel.plan.u_bytes() > winograd.FUSED_U_BYTES
        y = kernel(x, w, b)
        assert "wino_gemm" in names and "output_transform" in names and "wino_gemm_out" not in names, names
        monkeypatch.setenv("CLCONV_WINOGRAD_FUSED", "1")
        names.clear()
        assert _kernel("f4", spec, cl_device)(x, w, b).tobytes() == y.tobytes()
        assert "wino_gemm_out" in names, names
        check_result(spec, "winograd", x, w, b, y)
    monkeypatch.setenv("CLCONV_WINOGRAD_FUSED", "1")
    assert winograd.fuses_output(cl_device) and winograd.fuses_output(cl_device, 2**40)
    monkeypatch.setenv("CLCONV_WINOGRAD_FUSED", "0")
    assert not winograd.fuses_output(cl_device)
    monkeypatch.setenv("CLCONV_WINOGRAD_FUSED", "yes")
    with pytest.raises(ConvValueError, match="CLCONV_WINOGRAD_FUSED='yes'"):
        winograd.fuses_output(cl_device)


# ------------------------------------------------------------------ replayed calls (resident weights)
def _count_general_calls(kernel, monkeypatch):
    calls = []
    general = kernel._compute
    monkeypatch.setattr(kernel, "_compute", lambda *a: calls.append(1) or general(*a))
    return calls


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_constant_weights_plan_replays_its_launches(cl_device, variant, dtype, monkeypatch):
    """A constant-weights plan (the weight resident on the device) replays its call's launches
    (WinogradKernel._make_replay) on a zero-copy device: fresh inputs, inputs at odd element
    offsets and with NaN tiles, each result its own array with the general path's bits; a
    read-only input, another bias object and out= take the general path. At most MAX_REPLAYS
    weight and bias pairs are kept."""
    import clconv

    spec = _spec((2, 5, 13, 11), (7, 5, 3, 3), dtype, padding=1)
    if dtype == "float64" and not cl_device.fp64:
        pytest.skip(f"{cl_device.id} lacks fp64")
    _, w, b = _arrays(spec, seed=8)
    pins = {"device": cl_device.id, "algorithm": VARIANTS[variant].id, "padding": 1}
    p = clconv.plan("conv2d", _arrays(spec)[0], w, b, constant_weights=True, **pins)
    plain = clconv.plan("conv2d", _arrays(spec)[0], w, b, **pins)
    zero_copy = bool(getattr(cl_device, "zero_copy_align", 0)) and getattr(cl_device, "host_coherent", False)
    xs = [_arrays(spec, seed=s)[0] for s in range(3)]
    raw = np.empty(xs[0].size + 1, dtype)  # an input one element past an aligned start
    raw[1:] = xs[1].ravel()
    nan = xs[2].copy()
    nan[1, 2, 4, 5] = np.nan
    inputs = (*xs, raw[1:].reshape(spec.input_shape), nan)
    expected = [plain(x, w, b) for x in inputs]  # (the plans may share their kernel object)
    p(xs[0], w, b)
    assert ("_fast" in p.kernel.__dict__) == zero_copy
    calls = _count_general_calls(p.kernel, monkeypatch)
    results = []
    for x, e in zip(inputs, expected):
        y = p(x, w, b)
        assert y.tobytes() == e.tobytes()
        check_result(spec, "winograd", x, w, b, y)
        results.append(y)
    assert not any(np.shares_memory(a, c) for i, a in enumerate(results) for c in results[i + 1:])
    assert calls == ([] if zero_copy else [1] * 5)
    ro = xs[0].copy()
    ro.setflags(write=False)
    assert p(ro, w, b).tobytes() == results[0].tobytes()
    assert p(xs[0], w, b.copy()).tobytes() == results[0].tobytes()
    out = np.full(spec.output_shape, np.nan, dtype)
    assert p(xs[0], w, b, out=out) is out and out.tobytes() == results[0].tobytes()
    assert calls == [1] * (3 if zero_copy else 8)
    biases = [b + i for i in range(winograd.MAX_REPLAYS + 2)]
    for bi in biases:  # each bias object a replay of its own
        p(xs[0], w, bi)
    assert len(p.kernel.__dict__.get("_replays", {})) <= winograd.MAX_REPLAYS


def test_replayed_calls_follow_switches_and_the_filter_cache(cl_device, monkeypatch):
    """Replayed calls are kept per value of the switches their launches depend on (a new value
    takes the general path once, then has its own replay) and go back to the general path when
    their prepared weight left the cache; the results stay right throughout."""
    import clconv

    if not (getattr(cl_device, "zero_copy_align", 0) and getattr(cl_device, "host_coherent", False)):
        pytest.skip(f"{cl_device.id}: no zero-copy device, no replayed calls")
    spec = _spec((1, 6, 12, 12), (8, 6, 3, 3), padding=1)
    x, w, b = _arrays(spec, seed=9)
    p = clconv.plan("conv2d", x, w, b, constant_weights=True, device=cl_device.id,
                    algorithm=VARIANTS["f4"].id, padding=1)
    first = p(x, w, b)
    assert len(p.kernel._replays) == 1
    calls = _count_general_calls(p.kernel, monkeypatch)
    names = _record_launches(monkeypatch)
    for mode, kernel_name in (("0", "output_transform"), ("1", "wino_gemm_out")):
        monkeypatch.setenv("CLCONV_WINOGRAD_FUSED", mode)
        names.clear()
        assert p(x, w, b).tobytes() == first.tobytes()
        assert kernel_name in names  # the general path, with the switch's kernels
        names.clear()
        assert p(x, w, b).tobytes() == first.tobytes() and names == []  # replayed
    assert len(p.kernel._replays) == 3  # one per value of the switch
    before = p.kernel.filter_transforms
    p.kernel.clear_filter_cache()
    assert p(x, w, b).tobytes() == first.tobytes()
    assert p.kernel.filter_transforms == before + 1 and len(calls) == 3


def test_replayed_calls_under_threads(cl_device):
    """Threads sharing one constant-weights plan: every result is its own input's."""
    import threading

    import clconv

    spec = _spec((1, 4, 16, 16), (8, 4, 3, 3), padding=1)
    _, w, b = _arrays(spec, seed=10)
    xs = [_arrays(spec, seed=20 + i)[0] for i in range(4)]
    p = clconv.plan("conv2d", xs[0], w, b, constant_weights=True, device=cl_device.id,
                    algorithm=VARIANTS["f4"].id, padding=1)
    expected = [p(x, w, b) for x in xs]
    bad = []

    def work(i):
        for _ in range(20):
            if p(xs[i], w, b).tobytes() != expected[i].tobytes():
                bad.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []


def test_replayed_calls_with_a_numpy_weight_speculate(cl_device, monkeypatch):
    """A plain plan's NumPy weight, found unchanged: its calls are replayed and its bytes compared
    while the kernels run; changed in place, the replay's result is dropped and the general
    path (comparing first) computes the right one; a training loop that keeps changing it is
    not replayed; unchanged again, it is."""
    import clconv

    if not (getattr(cl_device, "zero_copy_align", 0) and getattr(cl_device, "host_coherent", False)):
        pytest.skip(f"{cl_device.id}: no zero-copy device, no replayed calls")
    spec = _spec((1, 6, 12, 12), (8, 6, 3, 3), padding=1)
    x, w, b = _arrays(spec, seed=11)
    p = clconv.plan("conv2d", x, w, b, device=cl_device.id, algorithm=VARIANTS["f4"].id, padding=1)
    k = p.kernel  # (plans of one spec may share it: counters relative)
    misses, transforms = k.speculation_misses, k.filter_transforms
    p(x, w, b)  # computed
    p(x, w, b)  # found by its bytes: replayed from now on
    assert any(key[:2] == (id(w), id(b)) for key in k._replays) and k.filter_transforms == transforms + 1
    calls = _count_general_calls(k, monkeypatch)
    compared = []
    real = winograd.same_bytes
    monkeypatch.setattr(winograd, "same_bytes", lambda a, c: compared.append(1) or real(a, c))
    y = p(x, w, b)
    assert calls == [] and compared == [1] and k.speculation_misses == misses
    check_result(spec, "winograd", x, w, b, y)
    for i in range(2):  # changed in place: replayed, found changed, computed; then not replayed
        w[1, 2, 0, 0] += 3.0
        check_result(spec, "winograd", x, w, b, p(x, w, b))
    assert k.speculation_misses == misses + 1 and calls == [1, 1] and k.filter_transforms == transforms + 3
    p(x, w, b)  # unchanged again: found, and replayed after
    calls.clear()
    assert p(x, w, b).tobytes() == p(x, w.copy(), b).tobytes()
    assert calls == [1]  # (the copy: another object, the general path)


# ------------------------------------------------------------------ filters transformed in the GEMM
_INLINE_CASES = [
    # blocks straddling rows and images, 19 output channels (a partly valid vector), 13 input
    # channels (a chunk of KC and a partial one), bias, a non-finite tile, tile-row chunks
    ("straddle-nan", (2, 13, 14, 26), (19, 13, 3, 3), {"padding": 1}, True),
    # groups (work-items along the third dimension), no bias
    ("groups", (1, 6, 16, 16), (32, 3, 3, 3), {"groups": 2, "padding": 1, "bias": False}, False),
    # dilation: phase images, outputs scattered and cropped
    ("dilated", (1, 4, 19, 23), (8, 4, 3, 3), {"padding": 2, "dilation": (2, 3)}, False),
    # few tiles and many channels (the default's shape: every tile in one block)
    ("late-layer", (1, 40, 5, 7), (24, 40, 3, 3), {"padding": 1}, False),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["1", "raw"])
@pytest.mark.parametrize(
    "dtype,xs,ws,params,nan",
    [pytest.param(dtype, *case[1:], id=f"{dtype}-{case[0]}")
     for case in _INLINE_CASES for dtype in ("float32", "float16", "float64")],
)
def test_inline_filter_transform_matches_the_reference(cl_device, variant, mode, dtype, xs, ws, params, nan,
                                                      monkeypatch):
    """The GEMM transforming the filters itself, a chunk of input channels at a time, from the
    packed weight (``filter_pack`` + ``wino_gemm_out_inline``) or from the caller's NumPy weight
    (``wino_gemm_out_raw``: float32 with 16-channel vectors by default, every dtype and width with
    ``CLCONV_WINOGRAD_INLINE=raw``): every output written (out= poisoned), the reference's result
    and NaN/Inf pattern, the filter-transform path's result within rounding; a repeated call
    (replayed where the device shares host memory) has the first call's bits."""
    spec, x, w, b = _case(xs, ws, dtype, params, nan, monkeypatch, chunk_rows=xs[0] == 2)
    names = _record_launches(monkeypatch)
    out = {}
    for m in (mode, "0"):
        monkeypatch.setenv("CLCONV_WINOGRAD_INLINE", m)
        kernel = _kernel(variant, spec, cl_device)
        assert kernel.inline == (m != "0")
        names.clear()
        out[m] = kernel(x, w, b, out=np.full(spec.output_shape, np.nan, dtype))
        if m == "0":
            continue
        assert kernel.raw == (m == "raw" or (dtype == "float32" and kernel.plan.tile.vw == 16))
        gemm = "wino_gemm_out_raw" if kernel.raw else "wino_gemm_out_inline"
        assert names.count(gemm) == kernel.plan.nchunks, names
        assert ("filter_pack" in names) != kernel.raw and "filter_transform" not in names, names
        assert not {"wino_gemm", "wino_gemm_out", "output_transform"} & set(names), names
        again = [kernel(x, w, b) for _ in range(3)]
        assert all(a.tobytes() == out[m].tobytes() for a in again)
        assert kernel.filter_transforms == (0 if kernel.raw else 1)
    check_result(spec, "winograd", x, w, b, out[mode])
    finite = np.isfinite(out["0"])
    np.testing.assert_array_equal(finite, np.isfinite(out[mode]))
    scale = float(np.abs(out["0"][finite]).max())
    assert float(np.abs(out[mode][finite] - out["0"][finite]).max()) <= scale * {
        "float16": 2e-2, "float32": 1e-5, "float64": 1e-13}[dtype]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cin,cout", [(32, 16), (40, 24)], ids=["whole-blocks", "partial-blocks"])
def test_inline_weights_read_in_place_or_cached(cl_device, variant, cin, cout, monkeypatch):
    """A NumPy weight that the GEMM reads in place is seen as it is on every call, replayed or
    not (an in-place change included; no copy, nothing cached); one read through the packed copy
    is compared and recomputed when it changed; a device weight's packed copy is found by
    buffer. 32 and 40 input channels x 16 and 24 output channels: whole 16 x 16 transposed
    blocks, and a partial chunk and channel block that gather (float32, 16-channel vectors on
    every device: Oclgrind checks the transposed blocks' loads too)."""
    import pyopencl.array as cl_array

    monkeypatch.setenv("CLCONV_WINOGRAD_INLINE", "1")
    monkeypatch.setattr(winograd, "inline_tiling", lambda spec, device, mt: winograd.Tiling(vw=16, nv=1, tm=4))
    spec = _spec((1, cin, 6, 6), (cout, cin, 3, 3), padding=1)
    kernel = _kernel(variant, spec, cl_device)
    x, w, b = _arrays(spec, seed=1)
    check_result(spec, "winograd", x, w, b, kernel(x, w, b))
    y1 = kernel(x, w, b)
    assert kernel(x, w.copy(), b).tobytes() == y1.tobytes()
    for _ in range(2):
        w[3, 2, 1, 0] += 1.0  # in place, after replayed calls
        check_result(spec, "winograd", x, w, b, kernel(x, w, b))
    assert kernel.raw and kernel.filter_transforms == 0
    packed = 0
    q = cl_device.queue
    wd = cl_array.to_device(q, w)
    check_result(spec, "winograd", x, w, b, kernel(x, wd, b))
    kernel(x, wd, b)
    assert kernel.filter_transforms == packed + 1


def test_inlines_filters_by_spec_device_and_switch(cl_device, monkeypatch):
    """By default only F(4x4) on PoCL's CPU devices, where U would not stay in cache and few tile
    blocks would read it (ResNet-50's 3x3 layer at 7x7, not at 56x56, not batch 16; the rule's
    cases: tests/host/test_tuned_params.py); CLCONV_WINOGRAD_INLINE forces it and names itself
    when set to anything else. KC fits the device's local memory."""
    from clconv.errors import ConvValueError

    extra = cl_device.extra or {}
    pocl = cl_device.kind == "cpu" and "pocl" in str(extra.get("platform_version", "")).lower()
    late = _spec((1, 512, 7, 7), (512, 512, 3, 3), padding=1)
    assert winograd.inlines_filters(late, cl_device, 4) == pocl
    assert not winograd.inlines_filters(late, cl_device, 2)
    assert not winograd.inlines_filters(_spec((1, 64, 56, 56), (64, 64, 3, 3), padding=1), cl_device, 4)
    assert not winograd.inlines_filters(_spec((16, 512, 7, 7), (512, 512, 3, 3), padding=1), cl_device, 4)
    if pocl:
        alg = winograd.WinogradF4()
        kernel = alg.prepare(late, cl_device)
        assert kernel.inline and kernel.params["nv"] == 1 and alg.variants(late, cl_device)[0] == kernel.params
        assert alg.workspace_bytes(late, cl_device) == kernel.plan.workspace_bytes() + kernel.plan.packed_bytes()
    tiny = _spec((1, 4, 8, 8), (4, 4, 3, 3), padding=1)
    monkeypatch.setenv("CLCONV_WINOGRAD_INLINE", "1")
    assert winograd.inlines_filters(tiny, cl_device, 2)
    assert winograd.reads_raw_weights(tiny, winograd.Tiling(vw=16, nv=1, tm=8))
    assert not winograd.reads_raw_weights(tiny, winograd.Tiling(vw=8, nv=1, tm=8))
    assert not winograd.reads_raw_weights(_spec((1, 4, 8, 8), (4, 4, 3, 3), "float64", padding=1),
                                          winograd.Tiling(vw=16, nv=1, tm=8))
    monkeypatch.setenv("CLCONV_WINOGRAD_INLINE", "raw")
    assert winograd.inlines_filters(tiny, cl_device, 4)
    assert winograd.reads_raw_weights(tiny, winograd.Tiling(vw=4, nv=2, tm=4))
    monkeypatch.setenv("CLCONV_WINOGRAD_INLINE", "0")
    assert not winograd.inlines_filters(late, cl_device, 4)
    monkeypatch.setenv("CLCONV_WINOGRAD_INLINE", "yes")
    with pytest.raises(ConvValueError, match="CLCONV_WINOGRAD_INLINE='yes': give auto, 0, 1 or raw"):
        winograd.inlines_filters(late, cl_device, 4)
    plan = winograd.make_plan(late, cl_device, 4, winograd.Tiling(vw=16, nv=1, tm=4))

    class Small:
        extra = {"local_mem_bytes": 32 * 1024}

    assert winograd.inline_chunk(plan, cl_device) in (1, 2, 4, 8)
    kc = winograd.inline_chunk(plan, Small())
    assert kc == 4 and kc * plan.a2 * plan.tile.tn * plan.item <= 16 * 1024
