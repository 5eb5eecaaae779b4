"""Installing a plugin is all it takes: its backend appears, clconv is unchanged without it,
and a plugin that cannot even be imported is reported and skipped."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from .conftest import backends_json, env_with, is_installed, run_clconv

_CONV = (
    "import numpy as np, clconv; "
    "x = np.arange(2 * 3 * 6 * 6, dtype=np.float32).reshape(2, 3, 6, 6) / 50; "
    "w = np.linspace(-1, 1, 4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3); "
    "print(repr(float(clconv.conv2d(x, w, padding=1, backend='numpy').astype('float64').sum())))"
)


def test_installing_the_example_plugin_adds_its_backend_and_changes_nothing_else(target_installs, tmp_path):
    if is_installed("clconv-example"):
        pytest.skip("clconv-example is installed in this environment, so there is no 'before' to compare "
                    "with; CI installs it only into a temporary folder")
    site = target_installs("clconv-example")
    cache = str(tmp_path / "cache")
    before = backends_json(env_with(CLCONV_CACHE_DIR=cache))
    after = backends_json(env_with(site, CLCONV_CACHE_DIR=cache))

    added = [b for b in after["backends"] if b["name"] == "example"]
    assert len(added) == 1, after
    ex = added[0]
    assert ex["plugin"] == "example" and ex["origin"] == "entry point in clconv-example"
    assert ex["version"] == "0.1.0"
    assert ex["devices"] == ["example:cpu"]
    assert [a["id"] for a in ex["algorithms"]] == ["tap-by-tap"]
    assert after["failed_plugins"] == [] and before["failed_plugins"] == []
    # everything else exactly as before, in the same order
    assert [b for b in after["backends"] if b["name"] != "example"] == before["backends"]
    assert "example" not in [b["name"] for b in before["backends"]]

    # its device is listed with its facts
    proc = run_clconv(["devices", "--json"], env_with(site, CLCONV_CACHE_DIR=cache))
    assert proc.returncode == 0, proc.stderr
    devices = {d["id"]: d for d in json.loads(proc.stdout)}
    assert devices["example:cpu"]["kind"] == "cpu" and devices["example:cpu"]["memory_bytes"] > 0

    # the same convolution gives the same bits with and without the plugin
    runs = [subprocess.run([sys.executable, "-c", _CONV], capture_output=True, text=True, timeout=120,
                           env=env) for env in (env_with(CLCONV_CACHE_DIR=cache), env_with(site, CLCONV_CACHE_DIR=cache))]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert runs[0].stdout == runs[1].stdout


def test_example_plugin_passes_the_conformance_suite(target_installs, tmp_path):
    if is_installed("clconv-example"):
        from clconv.conformance import run_suite

        report = run_suite("example", level="quick", record=False)
        summary = report.summary
    else:
        site = target_installs("clconv-example")
        out = tmp_path / "report.json"
        proc = run_clconv(["conformance", "--backend", "example", "--report", str(out)],
                          env_with(site, CLCONV_CACHE_DIR=str(tmp_path / "cache")))
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        summary = json.loads(out.read_text())["summary"]
    assert summary["failed"] == 0 and summary["xpassed"] == 0
    assert summary["passed"] > 50
    assert summary["skipped"] > 0  # transposed convolution: declared unsupported, never counted as passed


def _fake_dist(root, dist: str, entry: str, module: str, source: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[clconv]\n{entry} = {module}\n")


def test_a_plugin_that_raises_on_import_is_reported_and_skipped(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _fake_dist(site, "clconv-boom", "boom", "clconv_boom_plugin", "raise RuntimeError('boom at import')\n")
    env = env_with(site, CLCONV_CACHE_DIR=str(tmp_path / "cache"))

    proc = run_clconv(["backends", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [f["plugin"] for f in data["failed_plugins"]] == ["boom"]
    assert "RuntimeError: boom at import" in data["failed_plugins"][0]["error"]
    assert "clconv plugin 'boom' skipped" in proc.stderr  # the PluginWarning
    names = [b["name"] for b in data["backends"]]
    assert "numpy" in names and "boom" not in names

    # the table names it too, and clconv still computes
    table = run_clconv(["backends"], env)
    assert table.returncode == 0 and "plugin 'boom' failed to load and was skipped" in table.stderr
    conv = subprocess.run([sys.executable, "-W", "ignore", "-c", _CONV], capture_output=True, text=True,
                          env=env, timeout=120)
    assert conv.returncode == 0, conv.stderr
    assert float(conv.stdout) != 0.0
