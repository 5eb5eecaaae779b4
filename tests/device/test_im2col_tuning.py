"""Tuned kernel parameters on a real device: every GEMM tile im2col and Winograd offer computes
the right result, and a tuned run's stored tile is what a fresh plan runs with."""

from __future__ import annotations

import numpy as np
import pytest

import clconv
from clconv import config, dispatch, plugins, tuning
from clconv.backends.numpy.ops import reference
from clconv.backends.opencl.algorithms import im2col, winograd
from clconv.spec import ConvSpec

from .cases import TOLERANCE

SPECS = {
    "conv3x3": ConvSpec.from_shapes("conv", (2, 5, 9, 11), (7, 5, 3, 3), bias=True, padding=1),
    "pointwise": ConvSpec.from_shapes("conv", (2, 32, 8, 8), (48, 32, 1, 1), bias=True),
    "grouped-f64": ConvSpec.from_shapes("conv", (2, 6, 9, 11), (10, 3, 3, 3), bias=True, padding=1, groups=2,
                                        dtype="float64"),
    "f16": ConvSpec.from_shapes("conv", (1, 6, 9, 11), (40, 6, 3, 3), padding=1, dtype="float16"),
    "transposed": ConvSpec.from_shapes("conv_transpose", (2, 6, 5, 7), (6, 5, 3, 3), bias=True, stride=2,
                                       padding=1),
}


def _arrays(spec, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape).astype(spec.dtype)
    w = rng.standard_normal(spec.weight_shape).astype(spec.dtype)
    b = rng.standard_normal(spec.out_channels).astype(spec.dtype) if spec.bias else None
    return x, w, b


def _error(spec, y, x, w, b):
    exact = reference(spec, x, w, b)
    return np.linalg.norm((np.asarray(y).astype(np.float64) - exact).ravel()) / np.linalg.norm(exact.ravel())


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("alg", [im2col.Im2col(), winograd.WinogradF2(), winograd.WinogradF4()],
                         ids=lambda a: a.id)
def test_every_variant_matches_the_reference(cl_device, alg, name):
    spec = SPECS[name]
    support = alg.supports(spec, cl_device)
    if not support:
        pytest.skip(support.reason)
    x, w, b = _arrays(spec)
    variants = alg.variants(spec, cl_device)
    assert len(variants) > 1
    for v in variants:
        kernel = alg.prepare_with(spec, cl_device, v)
        assert kernel.params == v
        err = _error(spec, kernel(x, w, b), x, w, b)
        assert err <= TOLERANCE[spec.dtype], f"{alg.describe_params(v)}: normwise relative error {err:.3e}"


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path / "cache"))
    config.reset()
    dispatch.clear_plans()
    yield
    config.reset()
    dispatch.clear_plans()
    plugins.reset_host()


def test_tuned_im2col_tile_is_stored_and_used_by_a_fresh_plan(cl_device, own_cache):
    spec = ConvSpec.from_shapes("conv", (2, 16, 12, 12), (24, 16, 3, 3), bias=True, padding=1)
    x, w, b = _arrays(spec, seed=1)
    pins = {"device": cl_device.id, "algorithm": "im2col"}
    with clconv.settings(tune_budget=1.0):
        e = clconv.explain("conv2d", x, w, b, padding=1, policy="measure", **pins)
    c = e.chosen
    offered = im2col.Im2col().variants(spec, cl_device)
    assert c.params_source == "tuned" and c.params in offered
    assert f"fastest of {len(offered)} parameter variants" in c.measure_note
    (entry,) = tuning.database().entries().values()
    assert entry["params"] == c.params and len(entry["variants"]) == len(offered)

    # a later process: fresh host and plans; the database hit gives the tuned tile
    dispatch.clear_plans()
    plugins.reset_host()
    p = clconv.plan("conv2d", x, w, b, padding=1, **pins)
    assert p.kernel.params == entry["params"] and p.candidate.params_source == "tuned"
    assert _error(spec, p(x, w, b), x, w, b) <= TOLERANCE["float32"]

    # a stored non-default tile (not the default) is the one a fresh plan builds
    other = offered[-1]
    key = dispatch._db_key(spec, p.candidate)
    tuning.database().record({key: {**entry, "params": other}})
    dispatch.clear_plans()
    plugins.reset_host()
    p = clconv.plan("conv2d", x, w, b, padding=1, **pins)
    assert p.kernel.params == other and p.kernel.tile == im2col.Tiling.from_params(other)
    assert _error(spec, p(x, w, b), x, w, b) <= TOLERANCE["float32"]
    row = clconv.explain("conv2d", x, w, b, padding=1, **pins).chosen.row()
    assert row["params"] == other and row["params_source"] == "tuned"

    # no entry: the default tile
    tuning.database().clear()
    dispatch.clear_plans()
    p = clconv.plan("conv2d", x, w, b, padding=1, **pins)
    assert p.candidate.params_source == "default" and p.kernel.params == offered[0]


def test_devices_that_copy_host_arrays_are_timed_on_resident_arrays(cl_device, own_cache, monkeypatch):
    """Where host arrays are copied to the device (GPUs; CLCONV_ZERO_COPY=0 makes a CPU device
    do it too), measuring times the kernels on arrays uploaded once and adds the host copies,
    measured once, to every candidate of that device: the copies no longer add their noise to
    each variant's time, and the times still compare with other devices' host calls."""
    monkeypatch.setenv("CLCONV_ZERO_COPY", "0")
    spec = ConvSpec.from_shapes("conv", (1, 8, 10, 10), (8, 8, 3, 3), bias=True, padding=1)
    cands = [c for c in dispatch.explain(spec, device=cl_device.id, backend="opencl").order
             if c.algorithm.id in ("direct-blocked", "im2col")]
    assert {c.algorithm.id for c in cands} == {"direct-blocked", "im2col"}
    seen = []
    from clconv.backends.opencl.base import OpenCLKernel

    real = OpenCLKernel.__call__
    monkeypatch.setattr(OpenCLKernel, "__call__", lambda self, x, *a, **k: seen.append(type(x).__name__) or real(self, x, *a, **k))
    results = tuning.measure(spec, cands, budget_s=5.0, variants=False)
    assert seen and set(seen) == {"Array"}, "kernels must be timed on device arrays"
    for c in cands:
        m = results[c.name]
        assert np.isfinite(m.time_s) and "kernels on resident arrays, plus" in m.note, m.note
        copies = float(m.note.split("plus ")[1].split(" ms")[0])
        assert 0 < copies * 1e-3 < m.time_s
    monkeypatch.delenv("CLCONV_ZERO_COPY")  # a CPU device reading host arrays in place: as before
    if cl_device.kind == "cpu":
        seen.clear()
        results = tuning.measure(spec, cands, budget_s=5.0, variants=False)
        assert set(seen) == {"ndarray"} and all("resident" not in results[c.name].note for c in cands)
