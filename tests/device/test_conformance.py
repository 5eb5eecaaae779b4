"""The conformance suite's quick level passes on every OpenCL device (CI runs it here).

One test per algorithm, so that a parallel run (pytest-xdist) spreads the kernel builds; the
last test checks that together they cover the whole suite (what ``clconv conformance
--backend opencl`` runs).
"""

from __future__ import annotations

import pytest

from clconv.backends.opencl import OpenCLBackend
from clconv.conformance import Expectations, plan_suite, run_suite

from .conftest import SIBLING_CONFORMANCE_SKIP, role_of

ALGORITHMS = [a.id for a in OpenCLBackend().algorithms()]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_opencl_quick_conformance(cl_device, algorithm):
    skip = SIBLING_CONFORMANCE_SKIP if role_of(cl_device.id) == "sibling" else {}
    report = run_suite("opencl", device=cl_device.id, algorithm=algorithm, level="quick", skip=skip, record=False)
    failures = [f"{r.id}: {r.message} {r.error}" for r in report.results if r.status in ("failed", "xpassed")]
    assert not failures, "\n".join(failures[:30])
    s = report.summary
    assert s["passed"] >= 5, s  # depthwise claims the fewest cases (9 at the quick level)


def test_the_per_algorithm_runs_cover_the_backend(cl_device):
    """The suite for the whole backend plans exactly the per-algorithm cases, no more."""
    whole = plan_suite("opencl", cl_device.id, None, "quick", Expectations(skip={}, xfail={}))
    parts = [c for a in ALGORITHMS for c in plan_suite("opencl", cl_device.id, a, "quick", Expectations(skip={}, xfail={}))]
    assert len(whole) == len(parts) > 100

