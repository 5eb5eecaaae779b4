"""``pytest -p clconv.conformance --clconv-backend NAME``: the suite as pytest items.

Adds one test item per (device, algorithm, case) to the session, so a plugin's
own test suite runs the conformance suite with pytest's progress, ``-k``
selection, JUnit output and exit status; ends with the per-feature pass table.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..errors import ClconvError
from .runner import CaseResult, Expectations, PlannedCase, execute, features_table, plan_suite

_RESULTS_KEY = pytest.StashKey[list]()
_PROPERTY = "clconv_conformance"


def pytest_addoption(parser: Any) -> None:
    g = parser.getgroup("clconv", "clconv conformance suite")
    g.addoption("--clconv-backend", default=None, help="run the conformance suite against this backend")
    g.addoption("--clconv-device", default=None, help="only this device id")
    g.addoption("--clconv-algorithm", default=None, help="only this algorithm id")
    g.addoption("--clconv-level", default="quick", choices=("quick", "full"), help="case level (default quick)")
    g.addoption("--clconv-skip", default=None, help="file of case-id patterns to skip ('# reason' after each)")
    g.addoption("--clconv-xfail", default=None, help="file of case-id patterns expected to fail")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "clconv_conformance: a clconv conformance case")
    config.stash[_RESULTS_KEY] = []
    config.pluginmanager.register(_Results(config.stash[_RESULTS_KEY]), "clconv-conformance-results")


class _Results:
    """Collects each case's status and features from the test reports (the process that
    reports, also under pytest-xdist, where the cases run in worker processes)."""

    def __init__(self, results: list) -> None:
        self.results = results

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call":
            self.results.extend(CaseResult("", "", "", "", tuple(v["features"]), v["status"])
                                for name, v in report.user_properties if name == _PROPERTY)


class ConformanceFailure(Exception):
    pass


class ConformanceItem(pytest.Item):
    def __init__(self, *, planned: PlannedCase, expectations: Expectations, **kw: Any) -> None:
        super().__init__(**kw)
        self.planned = planned
        self.expectations = expectations
        self.add_marker("clconv_conformance")

    def runtest(self) -> None:
        res: CaseResult = execute(self.planned, self.expectations)
        # On the test report, so that it reaches the pass table from pytest-xdist's workers too.
        self.user_properties.append((_PROPERTY, {"status": res.status, "features": list(res.features)}))
        if res.status == "skipped":
            pytest.skip(res.message)
        if res.status == "xfailed":
            pytest.xfail(res.message)
        if res.status in ("failed", "xpassed"):
            raise ConformanceFailure(f"{res.id}: {res.message}" + (f"\n{res.error}" if res.error else ""))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "clconv-conformance", None, self.name


def pytest_collection_modifyitems(session: Any, config: Any, items: list) -> None:
    backend = config.getoption("--clconv-backend", default=None)
    if not backend:
        return
    # A misspelt backend, device or algorithm, or a missing list file, is a usage error
    # (one line), not an INTERNALERROR traceback.
    try:
        exp = Expectations(
            skip=Expectations.read(config.getoption("--clconv-skip")),
            xfail=Expectations.read(config.getoption("--clconv-xfail")),
        )
        planned = plan_suite(
            backend,
            config.getoption("--clconv-device"),
            config.getoption("--clconv-algorithm"),
            config.getoption("--clconv-level"),
            exp,
        )
    except (ClconvError, OSError) as exc:
        raise pytest.UsageError(f"clconv conformance: {exc}") from None
    new = [
        ConformanceItem.from_parent(session, name=f"conformance[{backend}/{pc.id}]", planned=pc, expectations=exp)
        for pc in planned
    ]
    keyword = config.getoption("keyword", default="")
    if keyword:
        from _pytest.mark import deselect_by_keyword

        deselect_by_keyword(new, config)
    items.extend(new)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    results = config.stash.get(_RESULTS_KEY, [])
    if not results:
        return
    tr = terminalreporter
    tr.section("clconv conformance: per-feature results")
    tr.write_line(f"{'feature':<28}{'passed':>8}{'failed':>8}{'skipped':>9}{'xfailed':>9}")
    for f, c in features_table(results).items():
        tr.write_line(f"{f:<28}{c['passed']:>8}{c['failed'] + c['xpassed']:>8}{c['skipped']:>9}{c['xfailed']:>9}")
