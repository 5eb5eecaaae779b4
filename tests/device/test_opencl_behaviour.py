"""OpenCL backend behaviour beyond numerics: data placement, errors, capabilities, repeatability."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import clconv
from clconv import dispatch
from clconv.backends.numpy.ops import reference
from clconv.backends.opencl import runtime
from clconv.errors import BuildError, UnsupportedError

from .conftest import role_of

cl = pytest.importorskip("pyopencl")
cl_array = pytest.importorskip("pyopencl.array")


def _xw(dtype="float32", seed=0, xs=(2, 4, 9, 9), ws=(6, 4, 3, 3)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)


def _algorithms(device, spec):
    be = clconv.list_backends()["opencl"]
    return [a.id for a in be.algorithms() if a.supports(spec, device)]


def test_pyopencl_in_gives_pyopencl_out_without_host_round_trip(cl_device, monkeypatch):
    x, w = _xw()
    b = np.arange(6, dtype=np.float32)
    q = cl_device.queue
    xd, wd, bd = (cl_array.to_device(q, a) for a in (x, w, b))
    spec = clconv.plan("conv2d", x, w, b, padding=1, device=cl_device.id).spec
    exact = reference(spec, x, w, b)

    def no_get(*a, **k):
        raise AssertionError("a host round trip happened (Array.get called)")

    for alg in _algorithms(cl_device, spec):
        with monkeypatch.context() as m:
            m.setattr(cl_array.Array, "get", no_get)
            y = clconv.conv2d(xd, wd, bd, padding=1, device=cl_device.id, algorithm=alg)
        assert isinstance(y, cl_array.Array), alg
        assert y.context.int_ptr == xd.context.int_ptr and y.shape == exact.shape
        np.testing.assert_allclose(y.get(), exact, rtol=1e-4, atol=1e-4)
        # chained: the output feeds the next layer on the device
        w2 = cl_array.to_device(q, np.ones((2, 6, 1, 1), np.float32))
        z = clconv.conv2d(y, w2, device=cl_device.id)
        np.testing.assert_allclose(z.get(), exact.sum(axis=1, keepdims=True).repeat(2, 1), rtol=1e-4, atol=1e-3)


def test_pyopencl_arrays_from_a_user_context(cl_device):
    """Arrays in a context clconv did not create still run on their own queue."""
    ctx = cl.Context([cl_device.cl_device])
    q = cl.CommandQueue(ctx)
    x, w = _xw(seed=3)
    y = clconv.conv2d(cl_array.to_device(q, x), cl_array.to_device(q, w), padding=1)
    assert isinstance(y, cl_array.Array) and y.context.int_ptr == ctx.int_ptr
    spec = clconv.ConvSpec.from_arrays("conv", 2, x, w, None, padding=1)
    np.testing.assert_allclose(y.get(), reference(spec, x, w), rtol=1e-4, atol=1e-4)


def test_bench_with_device_arrays_times_the_convolution(cl_device):
    """``clconv bench --arrays device``: the timed call takes and returns pyopencl arrays on the
    device and computes the layer (a ratio against a wrong result would mean nothing)."""
    from clconv import bench
    from clconv.backends.numpy.ops import reference
    from clconv.suites import suite

    for layer in suite("small")[:2]:
        spec = layer.spec()
        x, w, b = bench.layer_arrays(spec, seed=2)
        fn, info = bench.clconv_runner(layer, spec, (x, w, b), "opencl", cl_device.id, None, where="device")
        assert info["device"] == cl_device.id
        y = fn()
        assert isinstance(y, cl_array.Array) and y.queue is cl_device.queue
        exact = reference(spec, x, w, b)
        assert np.linalg.norm(y.get() - exact) <= 1e-5 * np.linalg.norm(exact)


def test_explain_prefers_the_device_that_holds_the_data(cl_device):
    x, w = _xw()
    xd = cl_array.to_device(cl_device.queue, x)
    e = clconv.explain("conv2d", xd, w)
    assert e.chosen.device.id == cl_device.id
    numpy_rows = [r for r in e.rows() if r["backend"] == "numpy"]
    assert numpy_rows and all(r["reason_kind"] == "placement" for r in numpy_rows)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_noncontiguous_fortran_negative_stride_readonly_inputs(cl_device, dtype):
    x, w = _xw(dtype, xs=(2, 4, 11, 12))
    views = {
        "transposed-back": np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
        "fortran": np.asfortranarray(x),
        "negative-stride": np.ascontiguousarray(x[:, :, ::-1, ::-1])[:, :, ::-1, ::-1],
    }
    big = np.zeros(x.shape[:3] + (2 * x.shape[3],), dtype)
    big[..., ::2] = x
    views["strided-slice"] = big[..., ::2]
    ro = x.copy()
    ro.flags.writeable = False
    views["read-only"] = ro
    spec = clconv.ConvSpec.from_arrays("conv", 2, x, w, None, padding=1)
    for alg in _algorithms(cl_device, spec):
        base = clconv.conv2d(x, w, padding=1, device=cl_device.id, algorithm=alg)
        for name, v in views.items():
            np.testing.assert_array_equal(v, x)
            before = v.copy()
            y = clconv.conv2d(v, w, padding=1, device=cl_device.id, algorithm=alg)
            np.testing.assert_array_equal(y, base, err_msg=f"{alg} {name}")
            np.testing.assert_array_equal(v, before)


@pytest.mark.parametrize("fn,xs,ws,params", [
    ("conv2d", (0, 3, 8, 8), (4, 3, 3, 3), {"padding": 1}),
    ("conv_transpose2d", (0, 3, 4, 4), (3, 2, 3, 3), {"stride": 2}),
    ("conv1d", (0, 2, 5), (2, 1, 3), {"groups": 2}),
])
def test_empty_batch(cl_device, fn, xs, ws, params):
    x, w = np.zeros(xs, np.float32), np.zeros(ws, np.float32)
    spec = clconv.plan(fn, x, w, device=cl_device.id, **params).spec
    for alg in _algorithms(cl_device, spec):
        y = getattr(clconv, fn)(x, w, device=cl_device.id, algorithm=alg, **params)
        assert y.shape == spec.output_shape and y.dtype == np.float32
        yd = getattr(clconv, fn)(cl_array.to_device(cl_device.queue, x), w, device=cl_device.id, algorithm=alg, **params)
        assert isinstance(yd, cl_array.Array) and yd.shape == spec.output_shape


def test_nan_and_inf_propagate_to_exactly_the_outputs_they_reach(cl_device):
    x, w = _xw(xs=(1, 2, 8, 8), ws=(3, 2, 3, 3))
    x[0, 1, 4, 5] = np.nan
    x[0, 0, 0, 0] = np.inf
    spec = clconv.ConvSpec.from_arrays("conv", 2, x, w, None, padding=1)
    exact = reference(spec, x, w)
    for alg in _algorithms(cl_device, spec):
        y = clconv.conv2d(x, w, padding=1, device=cl_device.id, algorithm=alg)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(exact), err_msg=alg)
        np.testing.assert_array_equal(np.isinf(y), np.isinf(exact), err_msg=alg)
        assert np.isnan(y[0, :, 3:6, 4:7]).all() and np.isfinite(y[0, :, 6:, :3]).all()


@pytest.mark.parametrize("fn,params", [("conv2d", {"padding": 1, "groups": 2}), ("conv_transpose2d", {"stride": 2, "groups": 2})])
def test_same_bits_run_after_run(cl_device, fn, params):
    x, w = _xw(xs=(2, 4, 16, 16), ws=(4, 2, 3, 3))
    spec = clconv.plan(fn, x, w, device=cl_device.id, **params).spec
    for alg in _algorithms(cl_device, spec):
        first = getattr(clconv, fn)(x, w, device=cl_device.id, algorithm=alg, **params)
        for _ in range(3):
            again = getattr(clconv, fn)(x, w, device=cl_device.id, algorithm=alg, **params)
            assert first.tobytes() == again.tobytes(), alg


def test_build_failure_carries_log_file_and_options(cl_device):
    with pytest.raises(BuildError) as info:
        runtime.build_program(cl_device, "direct.cl", {"CLCONV_DTYPE": 7, "PADDING_MODE": 0, "TRANSPOSED": 0, "HAS_BIAS": 0})
    err = info.value
    assert err.source == "direct.cl"
    assert "-DCLCONV_DTYPE=7" in err.options
    assert "CLCONV_DTYPE must be 16, 32 or 64" in err.log
    text = str(err)
    assert "direct.cl" in text and "CL_BUILD_PROGRAM_FAILURE" in text and "build log" in text


def test_missing_kernel_file_is_a_build_error(cl_device):
    with pytest.raises(BuildError, match="nosuchkernel.cl not found"):
        runtime.build_program(cl_device, "nosuchkernel.cl", {})


def test_device_without_fp64_rejects_float64_naming_the_capability(cl_device, monkeypatch):
    dispatch.clear_plans()
    monkeypatch.setattr(cl_device, "fp64", False)
    try:
        x, w = _xw("float64")
        with pytest.raises(UnsupportedError, match="cl_khr_fp64"):
            clconv.conv2d(x, w, device=cl_device.id, algorithm="direct")
        rows = clconv.explain("conv2d", x, w, device=cl_device.id).rows()
        assert rows and not any(r["supported"] for r in rows)
        direct = next(r for r in rows if r["algorithm"] == "direct")
        assert direct["reason_kind"] == "capability" and "cl_khr_fp64" in direct["reason"]
        # the runtime refuses to even build a float64 program there
        with pytest.raises(UnsupportedError, match="lacks cl_khr_fp64"):
            runtime.build_program(cl_device, "direct.cl", {"CLCONV_DTYPE": 64}, fp64=True)
        # float32 still works
        y = clconv.conv2d(x.astype(np.float32), w.astype(np.float32), device=cl_device.id)
        assert y.dtype == np.float32
    finally:
        dispatch.clear_plans()


def test_local_memory_requirement_is_checked_before_building(cl_device):
    need = cl_device.local_mem_bytes + 1
    with pytest.raises(UnsupportedError, match="local memory"):
        runtime.check_capabilities(cl_device, local_mem=need)


def test_disk_cache_round_trip(cl_device, tmp_path, monkeypatch):
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path))
    runtime.clear_memory_cache()
    defines = {"CLCONV_DTYPE": 32, "PADDING_MODE": 2, "TRANSPOSED": 0, "HAS_BIAS": 1}
    runtime.build_program(cl_device, "direct.cl", defines)
    binaries = list((tmp_path / "kernels").rglob("*.bin"))
    assert len(binaries) == 1
    runtime.clear_memory_cache()
    prog = runtime.build_program(cl_device, "direct.cl", defines)  # from the binary
    assert prog is not None
    binaries[0].write_bytes(b"corrupt")  # a corrupt binary is rebuilt, never fatal
    runtime.clear_memory_cache()
    assert runtime.build_program(cl_device, "direct.cl", defines) is not None


def test_device_facts(cl_device):
    f = cl_device.facts()
    assert f["id"].startswith("opencl:") and f["backend"] == "opencl"
    assert f["kind"] in ("cpu", "gpu", "accelerator")
    for k in ("platform", "platform_version", "opencl_c_version", "extensions", "max_work_group_size"):
        assert k in f["extra"], k
    assert f["memory_bytes"] > 0 and f["compute_units"] >= 1


# -- host data movement: in place on host-memory devices (zero copy), staged elsewhere ----------

def _need_kernels_on_host_memory(device):
    """Skip unless ``device`` runs kernels on host arrays in place (zero copy, host-coherent)."""
    if not (device.zero_copy_align and device.host_coherent):
        pytest.skip(f"{device.id} does not run kernels on host memory")


@pytest.fixture(params=["in-place", "staged"])
def host_path(request, cl_device, monkeypatch):
    """Both ways NumPy data reaches a kernel: CLCONV_ZERO_COPY=0 forces the staging copies."""
    if request.param == "staged":
        monkeypatch.setenv("CLCONV_ZERO_COPY", "0")
    elif not cl_device.zero_copy_align:
        pytest.skip(f"{cl_device.id} does not share host memory (kind {cl_device.kind})")
    return request.param


def _misaligned(a, align=64):
    """A C-contiguous copy of ``a`` whose data does not start at a multiple of ``align``."""
    raw = np.empty(a.size + align // a.itemsize + 1, a.dtype)
    start = next(i for i in range(1, align) if raw[i:].ctypes.data % align)
    view = raw[start:start + a.size].reshape(a.shape)
    view[...] = a
    return view


@pytest.mark.parametrize("alg", ["direct", "im2col", "winograd-f2x2-3x3", "fft"])
def test_host_arrays_any_alignment_and_layout(cl_device, host_path, alg):
    x, w = _xw(seed=11, xs=(2, 4, 10, 10), ws=(8, 4, 3, 3))
    b = np.linspace(-1, 1, 8).astype(np.float32)
    exact = reference(clconv.plan("conv2d", x, w, b, padding=1, backend="numpy").spec, x, w, b)
    inputs = [
        (x, w, b),
        (_misaligned(x), _misaligned(w), _misaligned(b)),
        (np.asfortranarray(x), w[:, :, ::-1, ::-1].copy()[:, :, ::-1, ::-1], b),
    ]
    saved = [tuple(a.copy() for a in t) for t in inputs]
    for (xi, wi, bi), before in zip(inputs, saved):
        y = clconv.conv2d(xi, wi, bi, padding=1, device=cl_device.id, algorithm=alg)
        assert isinstance(y, np.ndarray) and y.flags.c_contiguous and y.dtype == np.float32
        np.testing.assert_allclose(y, exact, rtol=1e-4, atol=1e-4)
        for a, a0 in zip((xi, wi, bi), before):
            np.testing.assert_array_equal(a, a0)  # never modified


def _at_skew(a, skew, align=128):
    """A C-contiguous copy of ``a`` whose data starts ``skew`` bytes past a multiple of ``align``."""
    raw = np.empty(a.nbytes + 2 * align, np.uint8)
    start = -raw.ctypes.data % align + skew
    view = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


# One case per kernel family, each at host arrays 4, 16 and 64 bytes past a 128-byte boundary
# (NumPy puts large arrays at 16 or 64): conv, pointwise (B read straight from x, and the
# transposed-weight path), grouped, depthwise, transposed, 1D and 3D.
_SKEW_CASES = [
    ("conv2d", (2, 4, 10, 10), (8, 4, 3, 3), {"padding": 1}),
    ("conv2d", (2, 8, 8, 8), (16, 8, 1, 1), {}),
    ("conv2d", (1, 8, 7, 7), (16, 8, 1, 1), {}),
    ("conv2d", (2, 8, 9, 9), (8, 2, 3, 3), {"groups": 4, "stride": 2}),
    ("conv2d", (2, 8, 9, 9), (8, 1, 3, 3), {"groups": 8, "padding": 1}),
    ("conv_transpose2d", (2, 6, 5, 5), (6, 4, 4, 4), {"stride": 2, "padding": 1}),
    ("conv1d", (2, 3, 40), (5, 3, 7), {"stride": 3}),
    ("conv3d", (1, 3, 5, 6, 6), (4, 3, 3, 3, 3), {"padding": 1}),
]


@pytest.mark.parametrize("fn,xs,ws,params", _SKEW_CASES)
def test_host_arrays_at_any_skew_run_in_place_on_every_algorithm(cl_device, fn, xs, ws, params, monkeypatch):
    """On a zero-copy device every algorithm reads host arrays at any element offset from the
    device's base alignment in place (the buffer starts at the aligned address below them):
    no staging copy, the right result, the arrays unchanged."""
    _need_kernels_on_host_memory(cl_device)
    from clconv.backends.opencl import base

    rng = np.random.default_rng(5)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    c_out = ws[1] * params.get("groups", 1) if fn.startswith("conv_transpose") else ws[0]
    b = rng.standard_normal(c_out).astype(np.float32)
    exact = reference(clconv.plan(fn, x, w, b, backend="numpy", **params).spec, x, w, b)
    staged = []
    real = base.OpenCLKernel._host_stage
    monkeypatch.setattr(base.OpenCLKernel, "_host_stage",
                        lambda self, name, shape, align: staged.append(name) or real(self, name, shape, align))
    spec = clconv.plan(fn, x, w, b, backend="numpy", **params).spec
    algs = _algorithms(cl_device, spec)
    assert algs
    for alg in algs:
        p = clconv.plan(fn, x, w, b, device=cl_device.id, algorithm=alg, **params)
        for skew in (4, 16, 64):
            xi, wi, bi = (_at_skew(a, skew) for a in (x, w, b))
            before = [a.copy() for a in (xi, wi, bi)]
            staged.clear()
            y = p(xi, wi, bi)
            np.testing.assert_allclose(y, exact, rtol=1e-4, atol=1e-4, err_msg=f"{alg} at skew {skew}")
            for a, a0 in zip((xi, wi, bi), before):
                np.testing.assert_array_equal(a, a0)
            assert staged == [], (alg, skew, staged)


def test_out_is_written_in_place_or_through_a_copy(cl_device, host_path):
    x, w = _xw(seed=12)
    p = clconv.plan("conv2d", x, w, padding=1, device=cl_device.id, algorithm="direct")
    exact = reference(p.spec, x, w, None)
    aligned = np.full(p.spec.output_shape, np.nan, np.float32)
    misaligned = _misaligned(aligned)
    for out in (aligned, misaligned):
        got = p(x, w, out=out)
        assert got is out
        np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-5)
    strided = np.zeros(p.spec.output_shape + (2,), np.float32)[..., 0]
    assert p(x, w, out=strided) is strided
    np.testing.assert_allclose(strided, exact, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alg,ws", [("winograd-f2x2-3x3", (6, 4, 3, 3)), ("im2col", (6, 4, 1, 1)), ("fft", (6, 4, 3, 3))])
def test_same_numpy_weight_launches_before_its_bytes_are_compared(cl_device, alg, ws):
    """A kernel with a cached prepared weight, called again with the NumPy weight object whose
    bytes it found unchanged last time, launches at once and compares the bytes while the
    kernel runs; a weight changed in place is found changed, and the call launches again with
    the right prepared weight; after that (a training loop) it compares first."""
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 4, 7, 7)).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    pad = ws[-1] // 2
    p = clconv.plan("conv2d", x, w, padding=pad, device=cl_device.id, algorithm=alg)
    k = p.kernel
    if hasattr(k, "_make_replay"):  # Winograd's replayed calls speculate too: test_winograd.py
        k._make_replay = lambda *a: None
    if getattr(k, "raw", False):  # a 1x1 GEMM reading the NumPy weight in place (test_im2col.py)
        k.raw = k.ONE_LAUNCH = False  # this test is about the cached copy
        k.__dict__.pop("_fast", None)
    order: list[str] = []
    launch, filters = k._launch, k._filters
    k._launch = lambda *a: (order.append("launch"), launch(*a))[1]
    k._filters = lambda *a: (order.append("compare"), filters(*a))[1]

    y1 = p(x, w)  # computed
    y2 = p(x, w)  # found by its bytes
    assert order == ["compare", "launch"] * 2
    order.clear()
    y3 = p(x, w)  # the same object, unchanged last time: launched first
    assert order == ["launch", "compare"]
    assert y1.tobytes() == y2.tobytes() == y3.tobytes()
    assert (k.filter_transforms, k.filter_cache_hits, k.speculation_misses) == (1, 2, 0)
    np.testing.assert_allclose(y3, reference(p.spec, x, w, None), rtol=1e-4, atol=1e-4)

    for i in range(2):  # changed in place: once launched on speculation and again, then not
        order.clear()
        w[1, 2, 0, 0] += 3.0
        y = p(x, w)
        assert order == (["launch", "compare", "launch"] if i == 0 else ["compare", "launch"])
        np.testing.assert_allclose(y, reference(p.spec, x, w, None), rtol=1e-4, atol=1e-4)
    assert (k.filter_transforms, k.speculation_misses) == (3, 1)
    order.clear()
    p(x, w.copy())  # equal bytes in another object: compared first
    assert order == ["compare", "launch"]
    p(x, w), p(x, w)  # found unchanged: the next call would launch first ...
    k.clear_filter_cache()  # ... but its entry is gone: compared (and computed) first
    order.clear()
    np.testing.assert_allclose(p(x, w), reference(p.spec, x, w, None), rtol=1e-4, atol=1e-4)
    assert order == ["compare", "launch"] and k.speculation_misses == 1


@pytest.mark.parametrize("alg,ws", [("winograd-f2x2-3x3", (6, 4, 3, 3)), ("im2col", (6, 4, 1, 1)), ("fft", (6, 4, 3, 3))])
def test_out_with_a_cached_weight_is_checked_against_host_arrays_only(cl_device, host_path, alg, ws, monkeypatch):
    """Kernels that cache a prepared weight pass its device copy on: the overlap check of
    ``out=`` must not hand that pyopencl array to NumPy (which read it element by element:
    seconds per call)."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 4, 7, 7)).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    pad = ws[-1] // 2
    p = clconv.plan("conv2d", x, w, padding=pad, device=cl_device.id, algorithm=alg)
    exact = reference(p.spec, x, w, None)
    real = np.may_share_memory

    def host_only(a, b, *args):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), (type(a), type(b))
        return real(a, b, *args)

    monkeypatch.setattr(np, "may_share_memory", host_only)
    from clconv.backends.opencl.base import aligned_empty

    out = aligned_empty(p.spec.output_shape, np.float32, 4096)  # aligned: written in place
    out[...] = np.nan
    for _ in range(2):  # the second call finds the prepared weight cached
        assert p(x, w, out=out) is out
        np.testing.assert_allclose(out, exact, rtol=1e-4, atol=1e-4)


def test_out_overlapping_the_input_reads_the_input_first(cl_device, host_path):
    """A 1x1 conv whose out= is its own input: the result must be of the original input."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 4, 1, 1)).astype(np.float32)
    exact = reference(clconv.plan("conv2d", x, w, backend="numpy").spec, x, w, None)
    from clconv.backends.opencl.base import aligned_empty

    for alg in ("direct", "im2col"):
        buf = aligned_empty(x.shape, x.dtype, 4096)  # aligned: the kernels would read it in place
        buf[...] = x
        got = clconv.conv2d(buf, w, device=cl_device.id, algorithm=alg)  # plain call first
        np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5)
        plan = clconv.plan("conv2d", buf, w, device=cl_device.id, algorithm=alg)
        assert plan(buf, w, out=buf) is buf
        np.testing.assert_allclose(buf, exact, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn,xs,ws,params", [
    ("conv2d", (2, 4, 8, 8), (4, 4, 3, 3), {"padding": 1}),
    ("conv2d", (2, 4, 8, 8), (4, 1, 3, 3), {"padding": 1, "groups": 4}),
    ("conv2d", (2, 4, 8, 8), (4, 4, 1, 1), {}),
    ("conv_transpose2d", (2, 4, 8, 8), (4, 4, 3, 3), {"padding": 1}),
])
def test_device_out_overlapping_a_device_argument_reads_it_first(cl_device, fn, xs, ws, params):
    """A pyopencl out= that is the pyopencl input, or overlaps the input or the weight in one
    buffer: the result is of the original arguments, written into out on the device (kernels
    that read the input while writing out used to return garbage)."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    spec = clconv.plan(fn, x, w, device=cl_device.id, **params).spec
    exact = reference(spec, x, w, None)
    q = cl_device.queue
    n, nw = x.size, w.size

    def layouts():
        xd = cl_array.to_device(q, x)
        yield "out is the input", xd, w, xd
        big = cl_array.to_device(q, np.concatenate([x.ravel(), np.zeros(7, np.float32)]))
        yield "out starts inside the input", big[:n].reshape(xs), w, big[7:].reshape(xs)
        big = cl_array.to_device(q, np.concatenate([w.ravel(), x.ravel(), np.zeros(n, np.float32)]))
        yield ("out overlaps the weight", big[nw:nw + n].reshape(xs), big[:nw].reshape(ws),
               big[nw - 3:nw - 3 + n].reshape(xs))

    for alg in _algorithms(cl_device, spec):
        kernel = clconv.plan(fn, x, w, device=cl_device.id, algorithm=alg, **params).kernel
        for name, xin, win, out in layouts():
            got = kernel(xin, win, None, out=out)
            assert got is out, (alg, name)
            np.testing.assert_allclose(out.get(), exact, rtol=1e-4, atol=1e-4, err_msg=f"{alg}: {name}")


def test_queued_work_is_finished_before_the_process_exits(cl_device):
    """pyopencl results come back with their kernels still queued. A process that exited with
    them in flight died with SIGSEGV after its last line on PoCL 3.1 (its thread compiling the
    kernel at exit, LLVM unloaded under it). clconv waits at exit for every queue it used:
    here a user's queue is finished after the script's last line."""
    code = (
        "import numpy as np, pyopencl as cl, pyopencl.array as ca, clconv\n"
        f"dev = next(d for d in clconv.list_devices() if d.id == {cl_device.id!r})\n"
        "q = cl.CommandQueue(dev.context)\n"
        "finish = cl.CommandQueue.finish\n"
        "def spy(self):\n"
        "    if self.int_ptr == q.int_ptr:\n"
        "        print('finished', flush=True)\n"
        "    return finish(self)\n"
        "cl.CommandQueue.finish = spy\n"
        "x = ca.to_device(q, np.ones((1, 2, 6, 6), np.float32))\n"
        "y = clconv.conv2d(x, np.ones((3, 2, 3, 3), np.float32), device=dev.id, algorithm='direct')\n"
        "print('last-line', flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["last-line", "finished"], out.stdout


def test_in_place_path_returns_aligned_results_that_chain_without_copies(cl_device):
    if not cl_device.zero_copy_align:
        pytest.skip(f"{cl_device.id} does not share host memory")
    x, w = _xw(seed=14, xs=(1, 4, 8, 8), ws=(4, 4, 3, 3))
    y = clconv.conv2d(x, w, padding=1, device=cl_device.id, algorithm="direct")
    assert y.ctypes.data % cl_device.zero_copy_align == 0
    w = w[:2].copy()  # another spec, so a fresh kernel
    kernel = clconv.plan("conv2d", y, w, padding=1, device=cl_device.id, algorithm="direct").kernel
    z = kernel(y, w, None)
    assert "input" not in kernel.__dict__.get("_host_staging", {})  # aligned: read in place
    np.testing.assert_allclose(z, reference(kernel.spec, y, w, None), rtol=1e-4, atol=1e-4)


def test_staged_path_reuses_its_device_buffers(cl_device, monkeypatch):
    monkeypatch.setenv("CLCONV_ZERO_COPY", "0")
    x, w = _xw(seed=15)
    kernel = clconv.plan("conv2d", x, w, padding=1, device=cl_device.id, algorithm="direct").kernel
    kernel(x, w, None)
    first = {k: v.base_data.int_ptr for k, v in kernel.__dict__["_staging"].items()}
    kernel(x + 1, w, None)
    assert {k: v.base_data.int_ptr for k, v in kernel.__dict__["_staging"].items()} == first


def test_calls_returning_pyopencl_upload_numpy_arrays_from_copies_per_queue(cl_device, monkeypatch):
    """A call that returns a pyopencl result (a pyopencl input, or a pyopencl out) returns before
    its commands run, and a non-blocking upload may read the host memory until it completes
    (OpenCL's rule): NumPy arrays are then uploaded from copies, so that the caller may change
    them at once (a call with a NumPy result waits, and uploads them as they are); and the
    staging buffers are per queue, so that a call on another queue of the context cannot
    overwrite the weight an earlier call's kernels still read."""
    x, w = _xw(seed=16)
    b = np.linspace(-1, 1, 6).astype(np.float32)
    q = cl_device.queue
    q2 = cl.CommandQueue(q.context)
    p = clconv.plan("conv2d", x, w, b, padding=1, device=cl_device.id, algorithm="direct")
    exact = reference(p.spec, x, w, b)
    sources = []
    real = cl.enqueue_copy
    monkeypatch.setattr(cl, "enqueue_copy",
                        lambda queue, dest, src, **k: sources.append(src) or real(queue, dest, src, **k))
    y1 = p(cl_array.to_device(q, x), w, b)
    y2 = p(cl_array.to_device(q2, x), w, b)
    w0, b0 = w.copy(), b.copy()
    w[...] = 0  # at once, before the queues run
    b[...] = 0
    hosts = [s for s in sources if isinstance(s, np.ndarray)]
    assert len(hosts) >= 4 and not any(np.may_share_memory(h, a) for h in hosts for a in (w, b))
    np.testing.assert_allclose(y1.get(), exact, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y2.get(), exact, rtol=1e-4, atol=1e-4)
    staged = p.kernel.__dict__["_staging"]
    for name in ("weight", "bias"):
        assert staged[(q.int_ptr, name)].base_data.int_ptr != staged[(q2.int_ptr, name)].base_data.int_ptr
    sources.clear()
    x0 = x.copy()
    yd = cl_array.empty(q, p.spec.output_shape, np.float32)
    assert p(x, w0, b0, out=yd) is yd  # a NumPy input into a pyopencl out: returned early too
    x[...] = 0
    hosts = [s for s in sources if isinstance(s, np.ndarray)]
    assert hosts and not any(np.may_share_memory(h, a) for h in hosts for a in (x, w0, b0))
    np.testing.assert_allclose(yd.get(), exact, rtol=1e-4, atol=1e-4)
    sources.clear()
    monkeypatch.setenv("CLCONV_ZERO_COPY", "0")  # staged uploads on every device
    y = p(x0, w0, b0)  # a NumPy result: the call waits for its uploads, so they read w0 itself
    np.testing.assert_allclose(y, exact, rtol=1e-4, atol=1e-4)
    assert any(s is w0 for s in sources)
    sources.clear()
    y = np.empty(p.spec.output_shape, np.float32)
    assert p(cl_array.to_device(q, x0), w0, b0, out=y) is y  # a pyopencl input into a NumPy out: likewise
    np.testing.assert_allclose(y, exact, rtol=1e-4, atol=1e-4)
    assert any(s is w0 for s in sources)


def test_host_coherence_probe_and_the_map_fallback(cl_device, monkeypatch):
    """Where the probe says kernel writes reach host memory, a finish replaces the map; a
    device that fails the probe (forced here) still returns correct results through the map."""
    if not cl_device.zero_copy_align:
        pytest.skip(f"{cl_device.id} does not share host memory")
    assert isinstance(cl_device.host_coherent, bool)
    x, w = _xw(seed=16)
    exact = reference(clconv.plan("conv2d", x, w, padding=1, backend="numpy").spec, x, w, None)
    monkeypatch.setattr(type(cl_device), "host_coherent", property(lambda self: False))
    mapped = []
    real_map = cl.enqueue_map_buffer
    monkeypatch.setattr(cl, "enqueue_map_buffer", lambda *a, **k: mapped.append(1) or real_map(*a, **k))
    y = clconv.conv2d(x, w, padding=1, device=cl_device.id, algorithm="direct")
    assert mapped and np.allclose(y, exact, rtol=1e-4, atol=1e-4)


def _on_pocl(device):
    """A device of a PoCL platform (its version string names PoCL, as runtime.is_pocl_basic reads it)."""
    return "pocl" in device.extra.get("platform_version", "").lower()


def test_pocl_worker_threads_are_pinned_one_per_cpu(cl_device):
    """In a fresh process, clconv's first enumeration makes PoCL pin its worker threads
    (runtime.default_pocl_affinity): threads allowed on exactly one CPU appear, one per CPU."""
    if not _on_pocl(cl_device) or cl_device.kind != "cpu":
        pytest.skip("PoCL's CPU device only")
    count = os.cpu_count() or 1
    if count < 2 or os.sched_getaffinity(0) != set(range(count)):
        pytest.skip("the process may not run on every CPU: clconv leaves PoCL unpinned")
    code = (
        "import os\n"
        "from clconv.backends.opencl import runtime\n"
        "devs, _ = runtime.enumerate_devices()\n"
        f"assert {cl_device.id!r} in [d.id for d in devs]\n"
        "pinned = set()\n"
        "for t in os.listdir('/proc/self/task'):\n"
        "    cpus = os.sched_getaffinity(int(t))\n"
        "    if len(cpus) == 1: pinned |= cpus\n"
        "print(os.environ.get('POCL_AFFINITY'), sorted(pinned))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "POCL_AFFINITY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    flag, pinned = out.stdout.split(" ", 1)
    assert flag == "1"
    assert pinned.strip() == str(list(range(count))), out.stdout


def test_pocl_basic_device_sits_after_the_platforms_other_devices(cl_device):
    """In a fresh process where PoCL hides no other driver, clconv adds PoCL's basic device
    (runtime.default_pocl_devices) and lists it last on its platform, so that the
    multi-threaded device keeps its id; the cost model gives it a launch cost near zero."""
    if not _on_pocl(cl_device):
        pytest.skip("PoCL only")
    env = {k: v for k, v in os.environ.items() if k != "POCL_DEVICES"}
    probe = {}
    if not runtime.default_pocl_devices(probe):
        pytest.skip("this PoCL has other drivers: clconv leaves POCL_DEVICES alone")
    code = (
        "import json\n"
        "from clconv.backends.opencl import runtime\n"
        "from clconv import costmodel\n"
        "devs, _ = runtime.enumerate_devices()\n"
        "print(json.dumps([[d.id, d.name, d.extra['runs_on_caller_thread'],"
        " costmodel.estimate(d).launch_us] for d in devs]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    rows = json.loads(out.stdout)
    platform = cl_device.id.rsplit(":", 1)[0] + ":"
    mine = [r for r in rows if r[0].startswith(platform)]
    flags = [r[2] for r in mine]
    assert flags[-1] and not any(flags[:-1]), mine          # basic last, exactly one
    assert mine[-1][1].startswith("basic") and mine[-1][3] < 10 < mine[0][3]


@pytest.mark.parametrize("skew", [0, 4, 2])
def test_kept_weight_buffers_see_in_place_changes(cl_device, host_path, skew):
    """A plan keeps the buffer of the weight and bias it was last called with (zero-copy
    devices): changing those arrays in place, or passing others, changes the result; a
    weight at an odd byte skew (staged copy, not kept) is copied again on every call."""
    x, w = _xw(seed=21)
    b = np.linspace(-1, 1, 6).astype(np.float32)
    p = clconv.plan("conv2d", x, w, b, padding=1, device=cl_device.id, algorithm="direct")
    raw = np.zeros(w.nbytes + 256, np.uint8)
    start = -raw.ctypes.data % 128 + skew
    wk = raw[start:start + w.nbytes].view(np.float32).reshape(w.shape)
    wk[...] = w
    bk = b.copy()
    for step in range(3):
        np.testing.assert_allclose(p(x, wk, bk), reference(p.spec, x, wk, bk), rtol=1e-4, atol=1e-4,
                                   err_msg=f"step {step}")
        wk *= -0.5
        bk += 1
    other = (w * 3).astype(np.float32)
    np.testing.assert_allclose(p(x, other, b), reference(p.spec, x, other, b), rtol=1e-4, atol=1e-4)


_ONE_LAUNCH_CASES = [
    ("direct", "conv2d", (1, 4, 9, 9), (6, 4, 3, 3), {"padding": 1}),
    ("direct-blocked", "conv2d", (2, 8, 8, 8), (16, 8, 3, 3), {"padding": 1}),
    ("direct-blocked", "conv1d", (1, 8, 16), (8, 8, 3), {"padding": 1}),
    ("depthwise", "conv2d", (1, 8, 7, 7), (8, 1, 3, 3), {"padding": 1, "groups": 8}),
]


def _replays_on_first_device(cl_device, alg="im2col"):
    """im2col's replayed calls are host-side bookkeeping around the same kernels: tested on the
    first device of a compiler and driver, not again on its basic sibling or twin (see conftest)."""
    if alg == "im2col" and role_of(cl_device.id) != "full":
        pytest.skip("replayed calls are tested on the first device of this compiler and driver")


# im2col's calls (several launches, a workspace) replayed (OpenCLKernel._make_launch_replay)
_REPLAY_CASES = [
    ("im2col", "conv2d", (2, 8, 11, 10), (12, 4, 3, 3), {"stride": 2, "groups": 2, "padding": (1, 0)}),
    ("im2col", "conv_transpose2d", (1, 6, 5, 5), (6, 6, 4, 4), {"stride": 2, "padding": 1}),
    ("im2col", "conv1d", (2, 3, 40), (8, 3, 10), {"stride": 5}),
    ("im2col", "conv3d", (1, 4, 5, 6, 6), (8, 4, 3, 3, 3), {"padding": 1}),
]


@pytest.mark.parametrize("alg,fn,xs,ws,params", _ONE_LAUNCH_CASES + _REPLAY_CASES)
def test_fast_path_of_repeated_host_calls(cl_device, alg, fn, xs, ws, params, monkeypatch):
    """After a first in-place call, a one-launch kernel (OpenCLKernel._make_fast) or a kernel
    whose launches are replayed (_make_launch_replay: im2col) runs repeated host calls with the
    same weight and bias through its fast path: fresh inputs and inputs at an element skew give
    the reference result without the general path; any other input (read-only, strided,
    another dtype or shape, another weight, ``out=``) takes the general path, with its checks
    and errors."""
    _need_kernels_on_host_memory(cl_device)
    _replays_on_first_device(cl_device, alg)
    rng = np.random.default_rng(31)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    p = clconv.plan(fn, x, w, b, device=cl_device.id, algorithm=alg, **params)
    kernel = p.kernel
    general = []
    real = type(kernel)._compute
    monkeypatch.setattr(type(kernel), "_compute", lambda self, *a: general.append(1) or real(self, *a))

    def check(xi, wi=w, bi=b, **kw):
        np.testing.assert_allclose(p(xi, wi, bi, **kw), reference(p.spec, xi, wi, bi), rtol=1e-4, atol=1e-4)

    check(x)
    assert "_fast" in kernel.__dict__ and general == [1]
    for i in range(3):  # new arrays each call, as a network passes them
        check(rng.standard_normal(xs).astype(np.float32))
    check(_misaligned(x + 1, 128))  # 4 bytes past some boundary: the aligned-address-below buffer
    assert general == [1], "fresh C-contiguous inputs must take the fast path"
    ro = x.copy()
    ro.flags.writeable = False
    strided = np.repeat(x, 2, axis=-1)[..., ::2]
    check(ro)
    check(strided)
    check(x, w.copy())
    check(x, out=np.full(p.spec.output_shape, np.nan, np.float32))
    assert len(general) == 5
    monkeypatch.setenv("CLCONV_ZERO_COPY", "0")  # read on every call: the general path stages
    check(x)
    assert len(general) == 6 and any(name == "input" for _, name in kernel.__dict__.get("_staging", {}))
    monkeypatch.delenv("CLCONV_ZERO_COPY")
    check(x)
    assert len(general) == 6
    with pytest.raises(TypeError, match="input"):
        p(x.astype(np.float64), w, b)
    with pytest.raises(ValueError, match="input has shape"):
        p(x[..., :-1].copy(), w, b)
    assert not np.isnan(x).any()


def _im2col_plan(cl_device, xs=(2, 6, 12, 12), ws=(10, 6, 3, 3), seed=35, **params):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    params = params or {"padding": 1}
    return clconv.plan("conv2d", x, w, b, device=cl_device.id, algorithm="im2col", **params), x, w, b


def _count_general(kernel, monkeypatch):
    general = []
    real = type(kernel)._compute
    monkeypatch.setattr(type(kernel), "_compute", lambda self, *a: general.append(1) or real(self, *a))
    return general


def test_replayed_calls_run_every_chunk_and_read_the_weight_in_place(cl_device, monkeypatch):
    """A call of many chunks (each an im2col and a GEMM launch) is replayed whole, with the same
    launches as the general path; the weight and bias are read where they are, so changes made
    to them in place show in the next replayed call."""
    from clconv.backends.opencl import runtime
    from clconv.backends.opencl.algorithms import im2col

    _need_kernels_on_host_memory(cl_device)
    _replays_on_first_device(cl_device)
    monkeypatch.setattr(im2col, "CHUNK_BYTES", 1)  # MIN_CHUNK_TILES column tiles per chunk: many launches
    p, x, w, b = _im2col_plan(cl_device, xs=(2, 6, 30, 30))
    general = _count_general(p.kernel, monkeypatch)
    with runtime.recording() as first:
        y0 = p(x, w, b)
    assert len(first.launches) > 4 and "_fast" in p.kernel.__dict__
    np.testing.assert_allclose(y0, reference(p.spec, x, w, b), rtol=1e-4, atol=1e-4)
    enqueued = []
    real = runtime.cl.enqueue_nd_range_kernel
    monkeypatch.setattr(runtime.cl, "enqueue_nd_range_kernel", lambda q, k, *a: enqueued.append(k.function_name)
                        or real(q, k, *a))
    p.kernel.__dict__.pop("_fast")
    p(x, w, b)  # a general call (counted) that records its launches again, with the patched enqueue
    names = list(enqueued)
    for step in range(3):
        enqueued.clear()
        w *= -0.5
        b += 1
        xi = x * (step + 2)
        np.testing.assert_allclose(p(xi, w, b), reference(p.spec, xi, w, b), rtol=1e-4, atol=1e-4,
                                   err_msg=f"step {step}")
        assert enqueued == names
    assert general == [1, 1]


def test_replayed_calls_follow_switches_and_the_workspace(cl_device, monkeypatch):
    """A switch the recorded call read (CLCONV_IM2COL_PANELS, CLCONV_GEMM_PREFETCH) that changes
    sends the next call the general way, which records anew; so does a workspace replaced by a
    larger spec's call on the same algorithm and queue. The results stay the reference's."""
    _need_kernels_on_host_memory(cl_device)
    _replays_on_first_device(cl_device)
    p, x, w, b = _im2col_plan(cl_device)
    general = _count_general(p.kernel, monkeypatch)
    want = reference(p.spec, x, w, b)

    def check():
        np.testing.assert_allclose(p(x, w, b), want, rtol=1e-4, atol=1e-4)

    check()
    check()
    assert general == [1]
    monkeypatch.setenv("CLCONV_IM2COL_PANELS", "0")
    check()
    check()
    assert general == [1, 1]
    monkeypatch.delenv("CLCONV_IM2COL_PANELS")
    check()
    assert general == [1, 1, 1]
    big, bx, bw, bb = _im2col_plan(cl_device, xs=(4, 16, 30, 30), ws=(32, 16, 3, 3))
    assert big.kernel.algorithm is p.kernel.algorithm  # one workspace pool
    np.testing.assert_allclose(big(bx, bw, bb), reference(big.spec, bx, bw, bb), rtol=1e-4, atol=1e-4)
    assert general == [1] * 4  # (big's first call: the count is per class)
    check()  # the workspace grew: the general path, and a new recording
    check()
    assert general == [1] * 5


def test_replayed_calls_under_threads(cl_device):
    """Threads sharing one im2col plan (one workspace) on its replayed path each get their own
    result: a call's launches are enqueued while it holds the workspace."""
    import concurrent.futures

    _need_kernels_on_host_memory(cl_device)
    _replays_on_first_device(cl_device)
    p, x, w, b = _im2col_plan(cl_device)
    p(x, w, b)
    assert "_fast" in p.kernel.__dict__
    inputs = [x * (i + 1) for i in range(12)]
    exact = [reference(p.spec, xi, w, b) for xi in inputs]

    def work(i):
        return [p(inputs[i], w, b) for _ in range(6)]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(12)))
    for i, runs in enumerate(results):
        for y in runs:
            np.testing.assert_allclose(y, exact[i], rtol=1e-4, atol=1e-3)


def test_calls_passing_x_otherwise_are_not_replayed(cl_device):
    """The replay sets x and y as (buffer, offset) argument pairs: a recorded launch that passes
    x's buffer without its offset next gives no replay (the general path keeps every call)."""
    from clconv.backends.opencl import runtime
    from clconv.backends.opencl.base import HostView

    _need_kernels_on_host_memory(cl_device)
    _replays_on_first_device(cl_device)
    p, x, w, b = _im2col_plan(cl_device)
    kernel = p.kernel
    p(x, w, b)
    assert "_fast" in kernel.__dict__
    y = np.empty(p.spec.output_shape, np.float32)
    ctx = cl_device.queue.context
    mf = runtime.cl.mem_flags
    xv = HostView(cl_device.queue, runtime.cl.Buffer(ctx, mf.READ_ONLY | mf.USE_HOST_PTR, hostbuf=x), x)
    yv = HostView(cl_device.queue, runtime.cl.Buffer(ctx, mf.READ_WRITE | mf.USE_HOST_PTR, hostbuf=y), y)
    rec = runtime.Recording()
    prog = next(iter(kernel.__dict__["_programs"].values()))
    rec.launches.append((prog, "im2col", (8,), (8,), (xv.base_data, np.int32(0), xv.base_data)))
    assert kernel._make_launch_replay(cl_device.queue, cl_device.zero_copy_align, w, b, xv, yv, rec) is None
    rec.launches[0] = (prog, "im2col", (8,), (8,), (xv.base_data, np.int32(3)))  # not x's offset
    assert kernel._make_launch_replay(cl_device.queue, cl_device.zero_copy_align, w, b, xv, yv, rec) is None


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_fast_path_in_every_dtype(cl_device, dtype):
    """The fast path serves float16 storage and float64 as the general path does."""
    _need_kernels_on_host_memory(cl_device)
    if dtype == "float64" and not cl_device.fp64:
        pytest.skip("no cl_khr_fp64")
    x, w = _xw(dtype, seed=34, xs=(1, 8, 8, 8), ws=(8, 8, 3, 3))
    tol = 2e-2 if dtype == "float16" else 1e-10
    replayed = ("im2col",) if role_of(cl_device.id) == "full" else ()  # (_replays_on_first_device)
    for alg in ("direct", "direct-blocked", *replayed):
        p = clconv.plan("conv2d", x, w, padding=1, device=cl_device.id, algorithm=alg)
        for i in range(3):
            xi = (x * (i + 1)).astype(dtype)
            y = p(xi, w)
            assert y.dtype == np.dtype(dtype)
            np.testing.assert_allclose(y, reference(p.spec, xi, w, None), rtol=tol, atol=tol, err_msg=f"{alg} {i}")
        assert "_fast" in p.kernel.__dict__, alg


def test_fast_path_under_threads(cl_device):
    """Threads sharing one plan on the fast path each get their own result."""
    import concurrent.futures

    _need_kernels_on_host_memory(cl_device)
    x, w = _xw(seed=32, xs=(1, 8, 8, 8), ws=(8, 8, 3, 3))
    p = clconv.plan("conv2d", x, w, padding=1, device=cl_device.id, algorithm="direct-blocked")
    p(x, w)
    inputs = [x * (i + 1) for i in range(16)]
    exact = [reference(p.spec, xi, w, None) for xi in inputs]

    def work(i):
        return [p(inputs[i], w) for _ in range(10)]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(16)))
    for i, runs in enumerate(results):
        for y in runs:
            np.testing.assert_allclose(y, exact[i], rtol=1e-4, atol=1e-3)


def test_fast_path_argument_setter_without_pyopencl_internals(cl_device, monkeypatch):
    """Where pyopencl lacks the calls the packed argument setter uses, its set_args is used:
    the same results either way."""
    from clconv.backends.opencl import base

    _need_kernels_on_host_memory(cl_device)

    calls = []

    class Plain:  # a kernel object with set_args only
        def __init__(self, knl):
            self.set_args = lambda *a: calls.append(1) or knl.set_args(*a)

    real = base._arg_setter
    monkeypatch.setattr(base, "_arg_setter", lambda knl, *a: real(Plain(knl), *a))
    x, w = _xw(seed=33, xs=(1, 8, 7, 7), ws=(8, 1, 3, 3))
    p = clconv.plan("conv2d", x, w, padding=1, groups=8, device=cl_device.id, algorithm="depthwise")
    for i in range(3):
        np.testing.assert_allclose(p(x + i, w), reference(p.spec, x + i, w, None), rtol=1e-4, atol=1e-4)
    assert "_fast" in p.kernel.__dict__ and len(calls) == 2  # the two calls after the first


@pytest.mark.parametrize("stride", [2**31, (1, 2**40)])
def test_parameters_past_32_bit_indexing_are_declined(cl_device, stride):
    """Kernels index with 32-bit ints: a stride (or padding) of 2**31 is declined with a
    reason by every OpenCL algorithm ('size' for the general direct kernel), so an unpinned call goes to another backend without
    a failed build or a fallback warning, and gives the right result."""
    import warnings

    x, w = _xw("float32", xs=(1, 2, 5, 6), ws=(3, 2, 3, 3))
    params = {"stride": stride, "padding": 1}
    spec = clconv.ConvSpec.from_arrays("conv", 2, x, w, None, **params)
    be = clconv.list_backends()["opencl"]
    for alg in be.algorithms():
        support = alg.supports(spec, cl_device)
        assert not support.ok, (alg.id, support)
        assert alg.id != "direct" or support.kind == "size", support
    with warnings.catch_warnings():
        warnings.simplefilter("error", clconv.FallbackWarning)
        y = clconv.conv2d(x, w, **params)
    np.testing.assert_allclose(y, reference(spec, x, w, None), rtol=1e-5, atol=1e-5)


def test_env_reads_the_environment_on_every_call(monkeypatch):
    """runtime.env (the call path's switches) sees os.environ changes at once, as os.environ.get."""
    name = "CLCONV_TEST_ENV_SWITCH"
    monkeypatch.delenv(name, raising=False)
    assert runtime.env(name, "dflt") == "dflt" == os.environ.get(name, "dflt")
    monkeypatch.setenv(name, "0")
    assert runtime.env(name, "1") == "0"
    monkeypatch.setenv(name, "é1")
    assert runtime.env(name, "1") == "é1" == os.environ[name]
    monkeypatch.delenv(name)
    assert runtime.env(name, "1") == "1"


@pytest.mark.parametrize("alg", ["direct-blocked", "im2col", "winograd-f4x4-3x3", "fft"])
def test_fast_path_of_repeated_device_calls(cl_device, alg, monkeypatch):
    """After a first call with pyopencl arrays and no ``out``, later ones in the same context
    take OpenCLKernel._device_call: the reference result in a new array each time (earlier
    results keep theirs), on the input's queue, without the general path; anything else (a
    NumPy weight, ``out=``, a missing bias, another dtype or shape, another context) takes the
    general path with its checks and errors, and no call changes its arguments."""
    rng = np.random.default_rng(41)
    x, w = _xw(seed=41)
    b = rng.standard_normal(6).astype(np.float32)
    spec = clconv.plan("conv2d", x, w, b, padding=1, device=cl_device.id).spec
    if alg not in _algorithms(cl_device, spec):
        pytest.skip(f"{alg} does not run this spec on {cl_device.id}")
    q = cl_device.queue
    xd, wd, bd = (cl_array.to_device(q, a) for a in (x, w, b))
    p = clconv.plan("conv2d", xd, wd, bd, padding=1, device=cl_device.id, algorithm=alg)
    kernel = p.kernel
    kernel.__dict__.pop("_device_fast", None)  # plans are shared: another test may have run it
    general = []
    real = type(kernel)._compute
    monkeypatch.setattr(type(kernel), "_compute", lambda self, *a: general.append(1) or real(self, *a))

    def check(y, xi=x, wi=w, bi=b):
        assert isinstance(y, cl_array.Array)
        np.testing.assert_allclose(y.get(), reference(spec, xi, wi, bi), rtol=1e-4, atol=1e-4)

    first = p(xd, wd, bd)
    check(first)
    assert "_device_fast" in kernel.__dict__ and general == [1]
    results = []
    for i in range(3):  # a new input each call, as a network passes them
        xi = rng.standard_normal(x.shape).astype(np.float32)
        y = p(cl_array.to_device(q, xi), wd, bd)
        check(y, xi)
        results.append((y, xi))
    assert general == [1], "repeated device calls must take the fast path"
    assert len({y.base_data.int_ptr for y, _ in results} | {first.base_data.int_ptr}) == 4
    for y, xi in results:  # not overwritten by the calls after them
        check(y, xi)
    check(first)
    other_q = cl.CommandQueue(q.context)  # another queue of the context: the result is on it
    y = p(cl_array.to_device(other_q, x), wd, bd)
    assert y.queue is other_q and general == [1]
    check(y)
    check(p(xd, w, bd))  # a NumPy weight: uploaded by the general path
    out = cl_array.to_device(q, np.full(spec.output_shape, np.nan, np.float32))
    assert p(xd, wd, bd, out=out) is out
    check(out)
    assert len(general) == 3
    with pytest.raises(ValueError, match="bias is None"):
        p(xd, wd, None)
    with pytest.raises(TypeError, match="input has dtype"):
        p(cl_array.to_device(q, x.astype(np.float64)), wd, bd)
    with pytest.raises(ValueError, match="input has shape"):
        p(cl_array.to_device(q, x[..., :-1].copy()), wd, bd)
    ctx = cl.Context([cl_device.cl_device])  # a context clconv did not make: the general path
    uq = cl.CommandQueue(ctx)
    n = len(general)
    check(p(*(cl_array.to_device(uq, a) for a in (x, w, b))))
    assert len(general) == n + 1
    with pytest.raises(UnsupportedError, match="weight is a pyopencl array in another context"):
        p(cl_array.to_device(uq, x), wd, bd)
    for dev, host in ((xd, x), (wd, w), (bd, b)):
        np.testing.assert_array_equal(dev.get(), host)
