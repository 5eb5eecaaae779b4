"""The conformance suite's quick level passes on every OpenCL device (CI runs it here)."""

from __future__ import annotations

from clconv.conformance import run_suite


def test_opencl_quick_conformance(cl_device):
    report = run_suite("opencl", device=cl_device.id, level="quick", record=False)
    failures = [f"{r.id}: {r.message} {r.error}" for r in report.results if r.status in ("failed", "xpassed")]
    assert not failures, "\n".join(failures[:30])
    s = report.summary
    assert s["passed"] > 100, s
