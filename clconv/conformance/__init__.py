"""The conformance suite: what every clconv backend must pass.

Run it against any registered backend, the way array-api-tests and the ONNX
backend test runner are used:

- ``clconv conformance --backend NAME [--device ID] [--algorithm ID] [--level quick|full]
  [--skip FILE] [--xfail FILE] [--junit-xml FILE] [--report FILE.json]``
- ``pytest -p clconv.conformance --clconv-backend NAME [--clconv-device ID]
  [--clconv-algorithm ID] [--clconv-level quick|full] [--clconv-skip FILE] [--clconv-xfail FILE]``
  inside a plugin's own test suite;
- :func:`run_suite` from Python.

Numeric cases cover the whole contract (``cases.py``) and are compared with the
float64 NumPy reference under named tolerances (``tolerances.py``); every output
element must be written (the output is poisoned first); bad input must raise
the right error; random specs come from hypothesis. Cases a target declares it
does not support are skipped and listed, never counted as passes.
"""

from __future__ import annotations

import time
from typing import Callable

from .cases import CASE_LIST_VERSION, LEVELS, Case, numeric_cases
from .report import Report, last_run, record_last_run, render_table
from .runner import CaseResult, Expectations, execute, plan_suite, targets
from .tolerances import TOLERANCES, tolerance


def run_suite(
    backend: str,
    *,
    device: str | None = None,
    algorithm: str | None = None,
    level: str = "quick",
    skip: dict[str, str] | None = None,
    xfail: dict[str, str] | None = None,
    on_result: Callable[[CaseResult, int, int], None] | None = None,
    record: bool = True,
) -> Report:
    """Run the suite and return its :class:`Report`.

    ``skip``/``xfail`` map fnmatch patterns over ``device/algorithm/case`` ids to
    reasons. ``on_result(result, done, total)`` is called after each case.
    """
    if level not in LEVELS:
        from ..errors import bad_value

        raise bad_value("level", level, f"accepted {', '.join(LEVELS)}")
    exp = Expectations(skip=dict(skip or {}), xfail=dict(xfail or {}))
    planned = plan_suite(backend, device, algorithm, level, exp)
    devices = []
    for t in targets(backend, device, algorithm):
        if t.device not in devices:
            devices.append(t.device)
    report = Report(backend, level, devices, filters={"device": device, "algorithm": algorithm,
                                                       "skip": sorted(exp.skip), "xfail": sorted(exp.xfail)})
    start = time.perf_counter()
    for i, pc in enumerate(planned):
        res = execute(pc, exp)
        report.results.append(res)
        if on_result is not None:
            on_result(res, i + 1, len(planned))
    report.duration_s = time.perf_counter() - start
    if record:
        record_last_run(report)
    return report


__all__ = [
    "CASE_LIST_VERSION", "LEVELS", "TOLERANCES", "Case", "CaseResult", "Expectations", "Report",
    "last_run", "numeric_cases", "run_suite", "tolerance", "render_table",
]

# `pytest -p clconv.conformance` loads this module as a pytest plugin.
try:
    import pytest as _pytest  # noqa: F401
except ImportError:  # pytest is only needed for the pytest entry point
    pass
else:
    from .pytest_plugin import (  # noqa: F401
        pytest_addoption,
        pytest_collection_modifyitems,
        pytest_configure,
        pytest_terminal_summary,
    )
