"""Every OpenCL algorithm on every OpenCL device, against the float64 NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

import clconv
from clconv.backends.numpy.ops import reference
from clconv.backends.opencl import OpenCLBackend

from .cases import CASES, DTYPES, TOLERANCE

ALGORITHMS = [a.id for a in OpenCLBackend().algorithms()]
FUNCS = {n: getattr(clconv, n) for n in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")}


def make_arrays(case, dtype, seed=0):
    _, fn, xs, ws, bias, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = None
    if bias:
        c_out = ws[0] if not fn.startswith("conv_transpose") else ws[1] * case[5].get("groups", 1)
        b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b


def normwise_error(y, exact):
    denom = np.linalg.norm(exact.ravel())
    return float(np.linalg.norm((y.astype(np.float64) - exact).ravel()) / (denom if denom else 1.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_algorithm_matches_reference(cl_device, algorithm, case, dtype):
    name, fn, xs, ws, bias, params = case
    x, w, b = make_arrays(case, dtype)
    expl = clconv.explain(fn, x, w, b, device=cl_device.id, algorithm=algorithm, **params)
    cand = expl.candidates[0]
    if not cand.support.ok:
        # direct must support every spec on a capable device; others say why not
        assert algorithm != "direct" or cand.support.kind == "capability", cand.support.reason
        pytest.skip(f"{algorithm} does not support {name}: {cand.support.reason}")
    x0, w0 = x.copy(), w.copy()
    y = FUNCS[fn](x, w, b, device=cl_device.id, algorithm=algorithm, **params)
    exact = reference(expl.spec, x, w, b)
    assert y.shape == exact.shape and y.dtype == np.dtype(dtype)
    err = normwise_error(y, exact)
    assert err <= TOLERANCE[dtype], f"{algorithm} {name} {dtype}: normwise relative error {err:.3e}"
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
