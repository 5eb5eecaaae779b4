"""The OpenCL im2col algorithm beyond the shared grid: chunking, edge tiles, the pointwise
path that reads the input directly, workspace reuse, and bitwise determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

import clconv
from clconv.backends.numpy.ops import reference
from clconv.backends.opencl.algorithms import im2col
from clconv.spec import ConvSpec

from .cases import TOLERANCE


def _spec(op, xs, ws, dtype="float32", bias=True, **params):
    return ConvSpec.from_shapes(op, xs, ws, bias=bias, dtype=dtype, **params)


def _arrays(spec, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape).astype(spec.dtype)
    w = rng.standard_normal(spec.weight_shape).astype(spec.dtype)
    b = rng.standard_normal(spec.out_channels).astype(spec.dtype) if spec.bias else None
    return x, w, b


def _check(spec, device, seed=0):
    """Run the im2col kernel for spec on device; assert it matches the float64 reference."""
    if spec.dtype == "float64" and not device.fp64:
        pytest.skip(f"{device.id} lacks fp64")
    alg = im2col.Im2col()
    support = alg.supports(spec, device)
    assert support, support.reason
    x, w, b = _arrays(spec, seed)
    y = alg.prepare(spec, device)(x, w, b)
    exact = reference(spec, x, w, b)
    assert y.shape == exact.shape and y.dtype == np.dtype(spec.dtype)
    err = np.linalg.norm((y.astype(np.float64) - exact).ravel()) / np.linalg.norm(exact.ravel())
    assert err <= TOLERANCE[spec.dtype], f"{spec.describe()}: normwise relative error {err:.3e}"
    return y


DTYPES = ("float32", "float64", "float16")


# ------------------------------------------------------------------ chunking
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_chunks_split_images_and_batch(cl_device, dtype, monkeypatch):
    """A tiny budget: chunks of one tile width, boundaries inside images and across images."""
    monkeypatch.setattr(im2col, "WORKSPACE_BUDGET", 4096)
    spec = _spec("conv", (3, 3, 9, 8), (5, 3, 3, 3), dtype, padding=1, stride=(1, 2))
    plan = im2col.chunk_plan(spec, cl_device)
    chunks = list(plan.chunks())
    out_pos = math.prod(spec.out_size)
    assert len(chunks) > spec.batch  # more chunks than images: some split an image
    assert sum(p for _, p in chunks) == spec.batch * out_pos
    _check(spec, cl_device)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_chunks_of_several_images(cl_device, dtype, monkeypatch):
    """A budget of about two images' columns: a batch larger than one chunk."""
    spec = _spec(
        "conv",
        (7, 4, 6, 6),
        (6, 2, 3, 3),
        dtype,
        groups=2,
        padding=((1, 0), (0, 2)),
        padding_mode="zeros",
    )
    item = im2col.compute_itemsize(spec)
    rows = spec.in_channels * math.prod(spec.kernel)
    monkeypatch.setattr(
        im2col, "WORKSPACE_BUDGET", rows * 96 * item + im2col._weight_copy_elems(spec) * item
    )
    plan = im2col.chunk_plan(spec, cl_device)
    assert plan.cols == 96 and len(list(plan.chunks())) > 1
    assert im2col.Im2col().workspace_bytes(spec, cl_device) <= im2col.WORKSPACE_BUDGET
    _check(spec, cl_device)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv_chunks_with_padding_modes(cl_device, mode, monkeypatch):
    monkeypatch.setattr(im2col, "WORKSPACE_BUDGET", 2048)
    spec = _spec(
        "conv",
        (2, 2, 7, 9),
        (3, 2, 3, 2),
        padding=((2, 1), (1, 1)),
        padding_mode=mode,
        dilation=(2, 1),
    )
    assert len(list(im2col.chunk_plan(spec, cl_device).chunks())) > 2
    _check(spec, cl_device)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_chunks_over_images(cl_device, dtype, monkeypatch):
    spec = _spec(
        "conv_transpose",
        (5, 4, 5, 4),
        (4, 3, 3, 3),
        dtype,
        stride=2,
        padding=1,
        output_padding=1,
        groups=2,
    )
    one = im2col.TransposedChunks(
        images=1,
        channels=spec.out_per_group,
        batch=spec.batch,
        cog=spec.out_per_group,
        c_in=spec.in_channels,
        groups=spec.groups,
        taps=math.prod(spec.kernel),
        in_positions=math.prod(spec.in_size),
        tn=im2col.tiling(spec, cl_device).tn,
        w_elems=im2col._weight_copy_elems(spec),
    )
    item = im2col.compute_itemsize(spec)
    monkeypatch.setattr(im2col, "WORKSPACE_BUDGET", 2 * one.elems() * item)
    plan = im2col.chunk_plan(spec, cl_device)
    assert 1 <= plan.images < spec.batch and plan.channels == spec.out_per_group
    _check(spec, cl_device)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_chunks_over_channels(cl_device, dtype, monkeypatch):
    """One image's columns exceed the budget: passes over a few output channels at a time."""
    monkeypatch.setattr(im2col, "WORKSPACE_BUDGET", 1024)
    spec = _spec(
        "conv_transpose",
        (2, 3, 6, 5),
        (3, 7, 3, 3),
        dtype,
        stride=(2, 1),
        padding=(1, 0),
        dilation=(1, 2),
    )
    plan = im2col.chunk_plan(spec, cl_device)
    assert plan.images == 1 and plan.channels < spec.out_per_group
    assert len(list(plan.channel_chunks())) > 1
    _check(spec, cl_device)


def test_workspace_bounded_for_large_specs(cl_device):
    alg = im2col.Im2col()
    budget = im2col.budget_bytes(cl_device)
    for spec in (
        _spec("conv", (32, 256, 56, 56), (256, 256, 3, 3), padding=1),
        _spec("conv", (1, 64, 512, 512), (64, 64, 3, 3), padding=1),
        _spec("conv", (4, 32, 64, 64, 64), (32, 32, 3, 3, 3), padding=1),
        _spec("conv_transpose", (16, 256, 64, 64), (256, 128, 4, 4), stride=2, padding=1),
    ):
        assert 0 < alg.workspace_bytes(spec, cl_device) <= budget, spec.describe()


def test_conv_chunks_stay_cache_sized(cl_device, monkeypatch):
    """Column chunks stay near CHUNK_BYTES (at least MIN_CHUNK_TILES tiles wide), and a
    spec split that way still matches the reference."""
    spec = _spec("conv", (2, 64, 8, 28, 28), (64, 64, 3, 3, 3), padding=1)
    plan = im2col.conv_chunks(spec, cl_device)
    tile = im2col.tiling(spec, cl_device)
    assert plan.rows * plan.cols * 4 <= max(im2col.CHUNK_BYTES, plan.rows * im2col.MIN_CHUNK_TILES * tile.tn * 4)
    assert len(list(plan.chunks())) > 1
    monkeypatch.setattr(im2col, "CHUNK_BYTES", 1)  # the floor: MIN_CHUNK_TILES tiles per chunk
    small = _spec("conv", (2, 3, 9, 13), (5, 3, 3, 3), padding=1)
    t = im2col.tiling(small, cl_device)
    assert im2col.conv_chunks(small, cl_device).cols == min(
        im2col.MIN_CHUNK_TILES * t.tn, im2col.round_up(2 * 9 * 13, t.tn))
    _check(small, cl_device)


# ------------------------------------------------------------------ edge tiles
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "op,xs,ws,params",
    [
        # M = 13 (not a multiple of TM), N = 2 * 35 (not a multiple of TN), K = 3 * 5
        ("conv", (2, 3, 5, 11), (13, 3, 1, 5), {"padding": (0, 1)}),
        # M = 19 per group, K = 5 * 4 per group, N = 3 * 33
        ("conv", (3, 10, 3, 11), (38, 5, 2, 2), {"groups": 2, "padding": ((1, 0), (0, 1))}),
        # one column, one row
        ("conv", (1, 2, 3), (1, 2, 3), {}),
        # 3D with N = 2 * 3 * 4 * 5 = 120
        (
            "conv",
            (2, 3, 4, 5, 6),
            (9, 3, 2, 2, 2),
            {"padding": ((1, 0), (0, 1), (1, 1)), "stride": (1, 1, 2)},
        ),
        # transposed: M = cog * K = 5 * 6 rows, K = 3, N = 2 * 17
        ("conv_transpose", (2, 3, 17), (3, 5, 6), {"stride": 3, "padding": 2, "output_padding": 1}),
        (
            "conv_transpose",
            (2, 6, 3, 5),
            (6, 7, 2, 3),
            {"groups": 3, "stride": (2, 3), "dilation": (2, 1)},
        ),
    ],
)
def test_edge_tiles(cl_device, dtype, op, xs, ws, params):
    _check(_spec(op, xs, ws, dtype, **params), cl_device)


# ------------------------------------------------------------------ pointwise: B read from x
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,groups,bias", [(1, 1, False), (3, 2, True)])
def test_pointwise_reads_input_directly(cl_device, dtype, batch, groups, bias):
    spec = _spec("conv", (batch, 6, 8, 8), (10, 6 // groups, 1, 1), dtype, bias=bias, groups=groups)
    direct = im2col.reads_input_directly(spec, cl_device)
    assert direct == (dtype != "float16" and 64 % im2col.tiling(spec, cl_device).tn == 0)
    if direct:
        assert im2col.Im2col().workspace_bytes(spec, cl_device) == 0
    _check(spec, cl_device)


def test_pointwise_misaligned_input_view(cl_device):
    """A device input at an element offset off the vector width is still read in place as the
    GEMM's B (unaligned vector loads): right result, no column workspace."""
    import pyopencl.array as cla

    spec = _spec("conv", (2, 4, 8, 8), (5, 4, 1, 1), bias=True)
    x, w, b = _arrays(spec)
    queue = cl_device.queue
    big = cla.to_device(queue, np.concatenate([np.zeros(1, np.float32), x.ravel()]))
    xd = big[1:].reshape(x.shape)
    assert xd.offset == 4
    alg = im2col.Im2col()
    kernel = alg.prepare(spec, cl_device)
    y = kernel(xd, cla.to_device(queue, w), cla.to_device(queue, b)).get()
    exact = reference(spec, x, w, b)
    assert np.linalg.norm(y - exact) / np.linalg.norm(exact) <= TOLERANCE["float32"]
    assert im2col.reads_input_directly(spec, cl_device) == (alg.pool.buffers() == [])


# ------------------------------------------------------------------ pointwise: Y^T = X^T W^T
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "batch,cin,hw,cout,groups,bias",
    [(1, 64, 7, 48, 1, True), (2, 12, 5, 40, 2, False), (3, 8, (3, 5), 70, 1, True), (2, 16, 6, 16, 4, True),
     (1, 300, 7, 40, 1, True), (2, 260, (3, 11), 34, 2, False), (2, 6, 2, 20, 1, True), (1, 140, 13, 24, 1, False)],
)
def test_pointwise_transposed_weight_path(cl_device, dtype, batch, cin, hw, cout, groups, bias):
    """Image sizes that are not a multiple of the tile width (49, 25, 15, 36, 33, 4, 169
    positions): the GEMM runs with positions as rows and channels as vectors (PointwiseKernel);
    edge tiles on both axes (a last position tile shifted back to end at the image's end, an
    image smaller than a tile), groups, several images, reductions over several k blocks of
    the CPU form (300, 130, 140 input channels per group: POINTWISE_KC is 128) and work-items
    whose last tiles lie past the image; float16 keeps the column path."""
    h, w_ = (hw, hw) if isinstance(hw, int) else hw
    spec = _spec("conv", (batch, cin, h, w_), (cout, cin // groups, 1, 1), dtype, bias=bias, groups=groups)
    nt = im2col.transposes_weight(spec, cl_device)
    assert nt == (dtype != "float16" and (h * w_) % im2col.tiling(spec, cl_device).tn != 0)
    kernel = im2col.Im2col().prepare(spec, cl_device)
    assert isinstance(kernel, im2col.PointwiseKernel) == nt
    if nt:
        assert im2col.Im2col().workspace_bytes(spec, cl_device) == 0
    _check(spec, cl_device)


def test_pointwise_transposed_weight_cache(cl_device, monkeypatch):
    """The transposed weight is computed once per weight: equal bytes hit, a changed NumPy
    weight is recomputed, a device weight is found by its buffer (NumPy weights read in place
    off: see the next test)."""
    import pyopencl.array as cla

    monkeypatch.setenv("CLCONV_POINTWISE_RAW", "0")
    spec = _spec("conv", (2, 24, 7, 7), (40, 24, 1, 1), bias=True)
    kernel = im2col.Im2col().prepare(spec, cl_device)
    assert isinstance(kernel, im2col.PointwiseKernel)
    x, w, b = _arrays(spec, seed=1)
    y1 = kernel(x, w, b)
    assert kernel(x, w.copy(), b).tobytes() == y1.tobytes()
    assert (kernel.filter_transforms, kernel.filter_cache_hits) == (1, 1)
    w[3, 2, 0, 0] += 1.0  # an in-place change of a NumPy weight is detected
    y2 = kernel(x, w, b)
    assert kernel.filter_transforms == 2
    exact = reference(spec, x, w, b)
    assert np.linalg.norm(y2 - exact) / np.linalg.norm(exact) <= TOLERANCE["float32"]
    q = cl_device.queue
    xd, wd, bd = (cla.to_device(q, a) for a in (x, w, b))
    yd = kernel(xd, wd, bd)
    kernel(xd, wd, bd)
    assert kernel.filter_transforms == 3 and kernel.filter_cache_hits == 2
    np.testing.assert_array_equal(yd.get(q), y2)


@pytest.mark.parametrize("mode", ["auto", "1"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "batch,cin,hw,cout,groups,bias",
    [(1, 64, 7, 48, 1, True), (2, 12, 5, 40, 2, False), (1, 300, 7, 40, 1, True), (1, 140, 13, 24, 1, False),
     (2, 6, 2, 20, 1, True)],
)
def test_pointwise_reads_a_numpy_weight_in_place(cl_device, mode, dtype, batch, cin, hw, cout, groups, bias,
                                                   monkeypatch):
    """PointwiseKernel with a NumPy weight on a CPU device reads it as it is
    (``gemm_pointwise_raw``: float32 with 16-channel vectors by default, any with
    CLCONV_POINTWISE_RAW=1; images of fewer than TM positions keep the cached copy): the cached
    path's bits, replayed calls included; nothing transformed or cached; an in-place change
    seen at once; a device weight still cached. Shapes: whole and partial 16 x 16 blocks
    (64 and 300 = 128 + 128 + 44 input channels, 48 and 40 output channels), groups, 169
    positions, an image smaller than a tile."""
    import pyopencl.array as cla

    h, w_ = (hw, hw) if isinstance(hw, int) else hw
    spec = _spec("conv", (batch, cin, h, w_), (cout, cin // groups, 1, 1), dtype, bias=bias, groups=groups)
    if dtype == "float64" and not cl_device.fp64:
        pytest.skip(f"{cl_device.id} lacks fp64")
    x, w, b = _arrays(spec, seed=4)
    monkeypatch.setenv("CLCONV_POINTWISE_RAW", "0")
    cached = im2col.Im2col().prepare(spec, cl_device)
    if not isinstance(cached, im2col.PointwiseKernel):
        pytest.skip("positions a multiple of the tile width here: the GEMM reads x directly")
    expected = cached(x, w, b)
    monkeypatch.setenv("CLCONV_POINTWISE_RAW", mode)
    kernel = im2col.Im2col().prepare(spec, cl_device)
    tile = kernel.tile
    local = int((cl_device.extra or {}).get("local_mem_bytes", 0) or 0)
    raw = (cl_device.kind == "cpu" and h * w_ >= tile.tm and kernel.local == (1, 1, 1)
           and (mode == "1" or (dtype == "float32" and tile.vw == 16))
           and (not local or im2col.POINTWISE_KC * tile.tn * np.dtype(dtype).itemsize <= local // 2))
    assert kernel.raw == raw
    for _ in range(3):  # the general path, then the one-launch fast path where there is one
        assert kernel(x, w, b).tobytes() == expected.tobytes()
    assert kernel.filter_transforms == (0 if raw else 1)
    w[1, 2 % (cin // groups), 0, 0] += 1.0  # in place
    y = kernel(x, w, b)
    exact = reference(spec, x, w, b)
    assert np.linalg.norm(y - exact) / np.linalg.norm(exact) <= TOLERANCE[dtype]
    assert y.tobytes() == cached(x, w, b).tobytes()
    q = cl_device.queue
    wd = cla.to_device(q, w)
    assert kernel(x, wd, b).tobytes() == y.tobytes()
    assert kernel.filter_transforms == (1 if raw else 3)


def test_pointwise_raw_switch_names_itself(cl_device, monkeypatch):
    from clconv.errors import ConvValueError

    spec = _spec("conv", (1, 64, 7, 7), (48, 64, 1, 1))
    monkeypatch.setenv("CLCONV_POINTWISE_RAW", "yes")
    with pytest.raises(ConvValueError, match="CLCONV_POINTWISE_RAW='yes'"):
        im2col.reads_raw_pointwise(spec, im2col.tiling(spec, cl_device))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "op,xs,ws,params",
    [
        ("conv", (2, 4, 8, 8), (6, 4, 1, 1), {}),
        ("conv", (2, 4, 7, 7), (6, 4, 1, 1), {}),  # pointwise, transposed weight
        ("conv", (2, 3, 7, 9), (5, 3, 3, 3), {"padding": 1}),
        ("conv_transpose", (2, 3, 5, 4), (3, 4, 3, 3), {"stride": 2}),
    ],
)
def test_output_view_at_odd_offset(cl_device, dtype, op, xs, ws, params):
    """``out`` a device view 3 elements into a buffer: vector stores must not assume alignment,
    and nothing outside the view changes."""
    import pyopencl.array as cla

    spec = _spec(op, xs, ws, dtype, **params)
    if dtype == "float64" and not cl_device.fp64:
        pytest.skip(f"{cl_device.id} lacks fp64")
    x, w, b = _arrays(spec)
    queue = cl_device.queue
    n = math.prod(spec.output_shape)
    big = cla.to_device(queue, np.full(n + 5, 7, dtype))
    out = big[3 : 3 + n].reshape(spec.output_shape)
    kernel = im2col.Im2col().prepare(spec, cl_device)
    kernel.compute(*(cla.to_device(queue, a) for a in (x, w, b)), out)
    got = big.get()
    exact = reference(spec, x, w, b).ravel()
    err = np.linalg.norm(got[3 : 3 + n].astype(np.float64) - exact) / np.linalg.norm(exact)
    assert err <= TOLERANCE[dtype]
    assert (got[:3] == 7).all() and (got[3 + n :] == 7).all()


# ------------------------------------------------------------------ determinism, reuse
@pytest.mark.parametrize(
    "op,xs,ws,params",
    [
        ("conv", (3, 5, 9, 10), (7, 5, 3, 3), {"padding": 1, "stride": (2, 1)}),
        ("conv_transpose", (2, 4, 5, 6), (4, 3, 4, 4), {"stride": 2, "padding": 1}),
    ],
)
def test_same_bits_twice(cl_device, op, xs, ws, params, monkeypatch):
    monkeypatch.setattr(im2col, "WORKSPACE_BUDGET", 4096)  # several chunks, one workspace
    spec = _spec(op, xs, ws, **params)
    x, w, b = _arrays(spec)
    kernel = im2col.Im2col().prepare(spec, cl_device)
    first = kernel(x, w, b)
    second = kernel(x, w, b)
    third = im2col.Im2col().prepare(spec, cl_device)(x, w, b)
    assert first.tobytes() == second.tobytes() == third.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "xs,ws,params",
    [
        ((3, 6, 9, 10), (8, 3, 3, 3), {"padding": 1, "stride": (2, 1), "groups": 2}),
        ((2, 4, 5, 7, 6), (6, 4, 2, 3, 3), {"padding": (1, 0, 2), "padding_mode": "reflect"}),
        ((2, 3, 70), (5, 3, 4), {"padding": ((2, 1),), "dilation": 3}),
    ],
)
def test_panel_and_row_layouts_agree(cl_device, dtype, xs, ws, params, monkeypatch):
    """The conv workspace in K x TN panels (the default on CPUs) and in rows
    (CLCONV_IM2COL_PANELS=0) hold the same columns: the same bits out, over chunks that split images and panels, and
    both match the reference."""
    monkeypatch.setattr(im2col, "WORKSPACE_BUDGET", 4096)  # several chunks, partial panels
    spec = _spec("conv", xs, ws, dtype, **params)
    assert len(list(im2col.chunk_plan(spec, cl_device).chunks())) > 1
    assert im2col._panel_layout(spec, cl_device, False) == (cl_device.kind == "cpu")
    panels = _check(spec, cl_device)
    monkeypatch.setenv("CLCONV_IM2COL_PANELS", "0")
    assert not im2col._panel_layout(spec, cl_device, False)
    rows = _check(spec, cl_device)
    assert panels.tobytes() == rows.tobytes()


def test_workspace_made_once_per_queue(cl_device):
    """Calls of one kernel, and kernels of other specs on the same queue, reuse one buffer."""
    alg = im2col.Im2col()
    big = _spec("conv", (2, 3, 9, 9), (4, 3, 3, 3), padding=1)
    small = _spec("conv_transpose", (1, 2, 4, 4), (2, 3, 3, 3), stride=2)
    assert alg.workspace_bytes(small, cl_device) <= alg.workspace_bytes(big, cl_device)
    kernel = alg.prepare(big, cl_device)
    x, w, b = _arrays(big)
    y0 = kernel(x, w, b)
    (buf,) = alg.pool.buffers()
    assert buf.size >= alg.workspace_bytes(big, cl_device)
    np.testing.assert_array_equal(kernel(x, w, b), y0)
    _ = alg.prepare(small, cl_device)(*_arrays(small))
    assert alg.pool.buffers() == [buf]


def test_public_api_prefers_im2col_over_direct(cl_device):
    # a layer big enough for the GEMM to pay off (on tiny ones one direct launch wins), and
    # strided, so that Winograd and FFT do not apply. The cost model's efficiencies were
    # measured on CPUs; on a GPU (NVIDIA H200) it weighs direct-blocked's one launch higher,
    # and which is faster there is for `clconv tune` to measure.
    if cl_device.kind != "cpu":
        pytest.skip(f"the heuristic's im2col/direct balance is calibrated for CPUs, not {cl_device.kind}s")
    x = np.ones((1, 64, 28, 28), np.float32)
    w = np.ones((128, 64, 3, 3), np.float32)
    expl = clconv.explain("conv2d", x, w, None, device=cl_device.id, backend="opencl", padding=1, stride=2,
                          policy="heuristic")
    assert expl.chosen is not None and expl.chosen.algorithm.id == "im2col"


# ------------------------------------------------------------------ every tile shape
TILINGS = [
    im2col.Tiling(vw=16, nv=2, tm=8, local=(1, 8)),  # AVX-512 CPUs
    im2col.Tiling(vw=8, nv=2, tm=6, local=(1, 8)),  # AVX2 CPUs
    im2col.Tiling(vw=4, nv=2, tm=8, local=(16, 4)),  # GPUs (4 x 8 on other devices: tm only differs)
    im2col.Tiling(vw=4, nv=1, tm=3, local=(2, 2)),
]


@pytest.mark.parametrize(
    "tile", TILINGS, ids=lambda t: f"{t.tm}x{t.vw}x{t.nv}-l{t.local[0]}x{t.local[1]}"
)
@pytest.mark.parametrize(
    "op,xs,ws,params",
    [
        (
            "conv",
            (2, 6, 7, 9),
            (10, 3, 3, 2),
            {"groups": 2, "padding": ((1, 2), (0, 1)), "padding_mode": "reflect"},
        ),
        ("conv", (2, 4, 8, 8), (9, 4, 1, 1), {}),  # pointwise, 64 columns per image
        ("conv", (2, 6, 7, 5), (10, 3, 1, 1), {"groups": 2}),  # pointwise, transposed weight
        ("conv_transpose", (2, 4, 5, 3), (4, 5, 3, 3), {"stride": 2, "padding": 1, "groups": 2}),
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_tiling(cl_device, tile, op, xs, ws, params, dtype, monkeypatch):
    """Whatever tile a device gets, edge tiles and chunks come out right."""
    monkeypatch.setattr(im2col, "tiling", lambda spec, device: tile)
    monkeypatch.setattr(im2col, "WORKSPACE_BUDGET", 8192)
    _check(_spec(op, xs, ws, dtype, **params), cl_device)
