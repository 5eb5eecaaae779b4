"""The conformance suite itself: it passes correct backends and fails broken ones, saying why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import clconv
from clconv.cli import cli
from clconv.conformance import cases, run_suite
from clconv.conformance.report import last_run

from . import broken

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def host(fresh_host, tmp_path, monkeypatch):
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path / "cache"))
    return fresh_host()


def register(host, defect, only_2d=False, **kw):
    b = broken.make_backend(defect, only_2d, **kw)

    @clconv.hookimpl
    def clconv_register_backends(register):
        register(b)

    host.register_plugin(types.SimpleNamespace(clconv_register_backends=clconv_register_backends), f"plugin-{b.name}")
    return b.name


def failed(report):
    return {r.case: r for r in report.results if r.status == "failed"}


def test_numpy_backend_passes_quick(host):
    report = run_suite("numpy", record=False)
    assert report.passed, [(r.id, r.message) for r in report.results if r.status == "failed"]
    s = report.summary
    assert s["passed"] >= 150 and s["failed"] == 0
    ids = {r.case for r in report.results}
    assert "random" in ids and "bad-too-large-for-device" in ids and "c2d-basic-nan-float32" in ids


def test_correct_fake_backend_passes(host):
    name = register(host, "none")
    assert run_suite(name, record=False).passed


def test_a_run_in_which_nothing_passed_is_not_a_pass(host, tmp_path):
    """Every case skipped (here by a skip list matching everything) proves nothing: the report,
    the CLI's exit status and the record that ``clconv backends`` shows say it did not pass."""
    from click.testing import CliRunner

    from clconv.cli import cli

    report = run_suite("numpy", algorithm="reference", skip={"*": "all"}, record=False)
    assert report.summary["passed"] == 0 and report.summary["failed"] == 0 and report.summary["skipped"] > 0
    assert not report.passed
    (tmp_path / "skip.txt").write_text("*  # everything\n")
    r = CliRunner().invoke(cli, ["conformance", "--backend", "numpy", "--algorithm", "reference",
                                 "--skip", str(tmp_path / "skip.txt")])
    assert r.exit_code == 1 and "no case passed" in r.output, r.output


def test_wrong_padding_side_fails_on_asymmetric_cases(host):
    report = run_suite(register(host, "padding-side"), record=False)
    f = failed(report)
    assert not report.passed
    assert "c2d-asym-float32" in f and "t2d-asym-crop-float32" in f
    assert "normwise relative error" in f["c2d-asym-float32"].message
    # symmetric cases are unaffected by that defect
    assert "c2d-basic-float32" not in f


def test_unwritten_element_is_caught(host):
    f = failed(run_suite(register(host, "unwritten"), record=False))
    msg = f["c2d-basic-float32"].message
    assert "1 output element(s) left unwritten, first at (0, 0, 0, 0)" in msg


def test_swallowed_nan_is_caught(host):
    f = failed(run_suite(register(host, "nan-swallowed"), record=False))
    assert set(f) >= {"c1d-basic-nan-float32", "c2d-basic-nan-float32"}
    assert "NaN was swallowed" in f["c2d-basic-nan-float32"].message or "Inf was swallowed" in f["c2d-basic-nan-float32"].message
    assert "c2d-basic-float32" not in f


def test_mutated_input_is_caught(host):
    f = failed(run_suite(register(host, "mutates-input"), record=False))
    assert f["c2d-basic-float32"].message == "the call modified its input"


def test_wrong_error_type_is_caught(host):
    report = run_suite(register(host, "wrong-error-type"), record=False)
    f = failed(report)
    r = f["c2d-basic-float16"]
    assert "raised RuntimeError" in r.message and "decline it in supports()" in r.message
    assert "float16 not implemented" in r.error
    assert "c2d-basic-float32" not in f


@pytest.mark.parametrize("defect,message", [
    ("mutates-weight", "the call modified its weight"),
    ("ignores-out", "the kernel did not return the `out` array it was given"),
    # the call path of clconv.conv2d (no out=) is checked too
    ("result-dtype", "call 2, without out=: output dtype float64, expected float32"),
    ("reused-result", "a result returned without out= changed when the kernel was called again"),
    ("nondeterministic", "call 2, without out=: "),
    # a cache keyed by the weight object must notice new values written into it
    ("stale-weights", "call 4, after new values were written into the same input, weight and bias arrays: "
                      "normwise relative error"),
    # guard regions around every array
    ("writes-past-out", "the call wrote outside `out`: 1 element(s) after it (offset 0 past its end)"),
    ("reads-before-input", "NaN pattern differs from the reference"),
    # arrays that are not C-contiguous
    ("reads-as-contiguous", "call 6, with input, weight, bias and out that are not C-contiguous: NaN pattern"),
    ("writes-as-contiguous", "call 6, with input, weight, bias and out that are not C-contiguous: "
                             "the call wrote outside `out`: 288 element(s) between its elements"),
    ("needs-writable-input", "call 7, with read-only input, weight and bias, without out=: raised TypeError: "
                             "a backend must compute the case or decline it in supports()"),
])
def test_call_protocol_defects_are_caught(host, defect, message):
    f = failed(run_suite(register(host, defect), record=False, skip={"*/random": "", "*/bad-*": ""}))
    r = f["c2d-basic-float32"]
    assert message in r.message, r.message
    if defect == "nondeterministic":
        assert "differ from call 1 on the same inputs" in r.message and "declares itself deterministic" in r.message
    if defect == "reads-before-input":
        assert "read past the bounds of the input" in r.message


def test_kernel_that_is_not_thread_safe_is_caught(host):
    skip = {"*/c[123]d-*": "", "*/t[123]d-*": "", "*/random": ""}
    f = failed(run_suite(register(host, "not-thread-safe"), record=False, skip=skip))
    r = f["concurrent-calls"]
    assert "threads calling one kernel at once got a wrong result" in r.message
    assert "normwise relative error" in r.message and "thread " in r.message


def test_nondeterministic_algorithm_may_differ_run_to_run(host, monkeypatch):
    monkeypatch.setattr(broken._Alg, "deterministic", False)
    assert run_suite(register(host, "nondeterministic"), record=False).passed


def test_kernel_that_skips_input_checks_fails_bad_input_cases(host):
    f = failed(run_suite(register(host, "no-input-checks"), record=False))
    assert f["bad-kernel-input-shape"].message == "expected ValueError, got IndexError"
    assert "expected TypeError" in f["bad-kernel-input-dtype"].message


def test_bad_input_is_checked_after_the_kernel_has_run(host):
    """A backend's later calls may take another path (a fast path); bad input must still raise."""
    f = failed(run_suite(register(host, "fast-path-no-checks"), record=False, skip={"*/random": ""}))
    assert "c2d-basic-float32" not in f
    assert f["bad-kernel-input-dtype"].message == "expected TypeError, but the call returned ndarray"
    assert f["bad-kernel-missing-bias"].message.startswith("expected ValueError")
    # a kernel that cannot run at all: its bad-input cases say so, not "raised the right error"
    f = failed(run_suite(register(host, "device-lost"), record=False, skip={"*/random": ""}))
    r = f["bad-kernel-input-shape"]
    assert r.message == "the valid calls before the bad one raised" and r.error == "RuntimeError: device lost"


def test_declared_unsupported_cases_are_skipped_and_listed_not_passed(host):
    report = run_suite(register(host, "none", only_2d=True), record=False)
    assert report.passed
    skipped = [r for r in report.results if r.status == "skipped"]
    assert skipped and all("declared unsupported: this backend does 2D only" in r.message for r in skipped)
    assert {r.case for r in skipped} >= {"c1d-basic-float32", "c3d-basic-float32", "t3d-basic-float32"}
    passed_cases = {r.case for r in report.results if r.status == "passed"}
    assert not any(c.startswith(("c1d", "c3d", "t1d", "t3d")) for c in passed_cases)
    feats = report.as_dict()["features"]
    assert feats["3d"]["skipped"] > 0 and feats["3d"]["passed"] == 0


def test_too_large_case_skipped_for_a_device_of_unknown_memory(host):
    """memory_bytes=0 means unknown (no check): the dispatcher cannot refuse the 2 TiB call."""
    report = run_suite(register(host, "none", memory_bytes=0), record=False,
                       skip={"*/c[123]d-*": "", "*/t[123]d-*": ""})
    r = next(r for r in report.results if r.case == "bad-too-large-for-device")
    assert r.status == "skipped" and "declares no memory size (memory_bytes=0" in r.message
    assert report.passed


def test_skip_and_xfail_lists(host, tmp_path):
    name = register(host, "padding-side")
    report = run_suite(name, record=False, xfail={"*asym*": "known padding bug", "*t1d-basic-float32": "not broken"},
                       skip={"*/c2d-*": "too slow"})
    statuses = {r.case: r.status for r in report.results}
    assert statuses["c2d-basic-float32"] == "skipped"
    assert statuses["t2d-asym-crop-float32"] == "xfailed"
    assert statuses["t1d-basic-float32"] == "xpassed"  # listed but passing: the list is stale
    assert not report.passed
    # cases skipped by the list keep their rows of the pass table
    feats = report.as_dict()["features"]
    assert "other" not in feats
    assert feats["2d"]["skipped"] == sum(1 for r in report.results if r.case.startswith("c2d-"))


def test_case_list_covers_the_contract():
    feats = set()
    for c in cases.numeric_cases("quick"):
        feats.update(c.features)
    for f in ("1d", "2d", "3d", "conv", "transposed", "stride", "padding-symmetric", "padding-asymmetric",
              "dilation", "groups", "depthwise", "padding-mode-reflect", "padding-mode-replicate",
              "padding-mode-circular", "output-padding", "bias", "batch", "odd-sizes", "1x1-kernel",
              "kernel-as-large-as-input", "float16", "float32", "float64", "nan-inf-propagation", "empty-batch"):
        assert f in feats, f
    same_strided = [c for c in cases.numeric_cases("quick") if c.params.get("padding") == "same" and c.spec.stride != (1,) * c.spec.ndim]
    valid = [c for c in cases.numeric_cases("quick") if c.params.get("padding") == "valid"]
    assert same_strided and valid
    assert len(cases.numeric_cases("full")) > len(cases.numeric_cases("quick"))


def test_report_json_junit_and_last_run(host, tmp_path):
    r = CliRunner().invoke(cli, ["conformance", "--backend", "numpy", "--report", str(tmp_path / "r.json"),
                                 "--junit-xml", str(tmp_path / "r.xml")])
    assert r.exit_code == 0, r.output
    assert "PASSED" in r.output and "padding-asymmetric" in r.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["format"] == "clconv-conformance-report/1" and data["case_list_version"] == cases.CASE_LIST_VERSION
    assert data["backend"]["name"] == "numpy" and data["environment"]["clconv_version"] == clconv.__version__
    assert data["devices"][0]["id"] == "numpy:cpu" and "driver" in data["devices"][0]
    assert all({"id", "status", "message", "features"} <= set(x) for x in data["results"])
    xml = (tmp_path / "r.xml").read_text()
    assert "<testsuite" in xml and 'failures="0"' in xml
    rec = last_run("numpy", clconv.list_backends()["numpy"].devices()[0])
    assert rec and rec["passed"] and rec["level"] == "quick"
    out = CliRunner().invoke(cli, ["backends", "--json"]).output
    assert json.loads(out)["backends"][0]["conformance"]["numpy:cpu"]["passed"] is True


def test_cli_prints_plain_progress_lines_when_not_a_terminal(host, monkeypatch):
    from clconv.cli import conformance as cli_conformance

    monkeypatch.setattr(cli_conformance, "PLAIN_PROGRESS_S", 0.0)
    r = CliRunner().invoke(cli, ["conformance", "--backend", "numpy", "--algorithm", "reference"])
    assert r.exit_code == 0, r.output
    total = len([x for x in r.stderr.splitlines() if x.startswith("conformance numpy: ")])
    assert "conformance numpy: 1/83 cases, 0 failed" in r.stderr and total == 83
    assert "conformance numpy: 83/83 cases, 0 failed" in r.stderr and "numpy:cpu/reference/random" in r.stderr


def test_backends_shows_what_the_last_run_covered(host, tmp_path):
    from clconv.cli.backends import _conformance_cell

    (tmp_path / "skip.txt").write_text("*/c3d-*  # slow\n")
    r = CliRunner().invoke(cli, ["conformance", "--backend", "numpy", "--algorithm", "reference",
                                 "--skip", str(tmp_path / "skip.txt")])
    assert r.exit_code == 0, r.output
    cell = _conformance_cell(last_run("numpy", clconv.list_backends()["numpy"].devices()[0]))
    assert cell.startswith("passed: 77 passed, 6 skipped (quick, algorithm reference only, 1 skip pattern(s), ")
    assert _conformance_cell(None) == "never run"


def test_backends_table_keeps_each_devices_run_beside_it():
    from clconv.cli.backends import table_rows

    rec = {"passed": False, "level": "quick", "when": "2026-01-02T03:04:05", "summary": {"passed": 3, "failed": 1}}
    data = {"backends": [{"name": "b", "version": "1", "plugin": "p", "origin": "o", "devices": ["b:0", "b:1"],
                          "conformance": {"b:0": None, "b:1": rec}, "algorithms": [{"id": "a1"}, {"id": "a2"}]}]}
    assert table_rows(data) == [
        ("b", "1", "p", "o", "b:0", "never run", "a1, a2"),
        ("", "", "", "", "b:1", "FAILED: 3 passed, 1 failed (quick, 2026-01-02)", ""),
    ]


def test_cli_fails_with_failing_cases_listed(host):
    name = register(host, "unwritten")
    r = CliRunner().invoke(cli, ["conformance", "--backend", name])
    assert r.exit_code == 1
    assert f"FAILED {name}:0/broken/c2d-basic-float32: 1 output element(s) left unwritten" in r.output
    rec = last_run(name, clconv.list_backends()[name].devices()[0])
    assert rec and rec["passed"] is False


def test_junit_xml_is_valid_whatever_the_backend_raised(host, tmp_path):
    import xml.etree.ElementTree as ET

    name = register(host, "wrong-error-type")  # its error text holds terminal colour codes
    r = CliRunner().invoke(cli, ["conformance", "--backend", name, "--junit-xml", str(tmp_path / "r.xml")])
    assert r.exit_code == 1
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    failures = [tc.find("failure") for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert int(suite.get("failures")) == len(failures) > 0
    assert "float16 not implemented \\x1b[31m" in failures[0].text


def test_cli_unknown_backend_is_a_clear_error(host):
    r = CliRunner().invoke(cli, ["conformance", "--backend", "nosuch"])
    assert r.exit_code != 0 and "backend='nosuch' is not registered" in r.output


def test_pytest_plugin_unknown_backend_is_a_usage_error(tmp_path):
    cmd = [sys.executable, "-m", "pytest", "-p", "clconv.conformance", "--clconv-backend", "nosuch", "-q",
           "-p", "no:cacheprovider", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ, CLCONV_CACHE_DIR=str(tmp_path / "cache")),
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-3000:]  # pytest's usage error
    assert "ERROR: clconv conformance: backend='nosuch' is not registered" in out and "INTERNALERROR" not in out


def _plugin_env(tmp_path):
    """A fake installed distribution whose entry point registers the padding-side broken backend."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "clconvtest_brokenplugin.py").write_text(
        "import sys\nsys.path.insert(0, %r)\nfrom tests.conformance.broken import clconv_register_backends\n" % str(ROOT)
    )
    info = site / "clconvtest_brokenplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clconvtest-brokenplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[clconv]\nbrokenpadding = clconvtest_brokenplugin\n")
    env = dict(os.environ, PYTHONPATH=str(site) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               CLCONV_CACHE_DIR=str(tmp_path / "cache"))
    return env


@pytest.mark.parametrize("backend,ok,extra", [
    ("numpy", True, []),
    ("broken-padding-side", False, []),
    # pytest-xdist: the cases run in workers, the pass table is printed by the controller
    ("broken-padding-side", False, ["-n", "2"]),
])
def test_pytest_plugin_runs_the_suite(tmp_path, backend, ok, extra):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "test_own.py").write_text("def test_plugin_own_test():\n    assert True\n")
    cmd = [sys.executable, "-m", "pytest", "-p", "clconv.conformance", "--clconv-backend", backend, "-q",
           "-p", "no:cacheprovider", *extra, str(project)]
    proc = subprocess.run(cmd, cwd=project, env=_plugin_env(tmp_path), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert "clconv conformance: per-feature results" in out, out[-3000:]
    assert "padding-asymmetric" in out
    if ok:
        assert proc.returncode == 0, out[-3000:]
    else:
        assert proc.returncode == 1
        assert "broken-padding-side:0/broken/c2d-asym-float32: normwise relative error" in out
        row = next(line.split() for line in out.splitlines() if line.startswith("padding-asymmetric "))
        assert int(row[2]) > 0  # the failures are counted in the table
