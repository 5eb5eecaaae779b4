"""The command line, through click's CliRunner."""

from __future__ import annotations

import json
import types

import click
from click.testing import CliRunner

import clconv
from clconv.cli import cli


def run(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_help_lists_the_commands():
    r = run("--help")
    assert r.exit_code == 0
    for name in ("devices", "backends"):
        assert name in r.output


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and clconv.__version__ in r.output


def test_devices_json_has_every_fact(fresh_host):
    r = run("devices", "--json")
    assert r.exit_code == 0
    rows = json.loads(r.output)
    ids = [d["id"] for d in rows]
    assert "numpy:cpu" in ids
    for d in rows:
        for key in ("id", "name", "kind", "vendor", "driver", "memory_bytes", "compute_units", "fp64", "fp16"):
            assert key in d, key
        assert d["kind"] in ("cpu", "gpu", "npu", "accelerator")
        assert isinstance(d["memory_bytes"], int) and isinstance(d["compute_units"], int)
        assert isinstance(d["fp64"], bool) and isinstance(d["fp16"], bool)
    numpy_dev = rows[ids.index("numpy:cpu")]
    assert numpy_dev["memory_bytes"] > 0 and numpy_dev["compute_units"] >= 1
    assert numpy_dev["backend"] == "numpy" and numpy_dev["kind"] == "cpu" and numpy_dev["fp64"] is True


def test_devices_table(fresh_host):
    r = run("devices")
    assert r.exit_code == 0
    assert "numpy:cpu" in r.output and "fp64" in r.output


def test_backends_json_and_table(fresh_host):
    r = run("backends", "--json")
    assert r.exit_code == 0
    data = json.loads(r.output)
    numpy_row = next(b for b in data["backends"] if b["name"] == "numpy")
    assert numpy_row["plugin"] == "numpy" and numpy_row["origin"] == "builtin"
    assert numpy_row["version"] == clconv.__version__
    assert numpy_row["devices"] == ["numpy:cpu"]
    assert {a["id"] for a in numpy_row["algorithms"]} == {"reference", "im2col"}
    assert data["failed_plugins"] == []
    r = run("backends")
    assert r.exit_code == 0 and "reference" in r.output


def test_backends_reports_a_failed_plugin(fresh_host):
    from clconv.plugins import PluginFailure

    host = fresh_host()
    host.failures.append(PluginFailure("brokenplugin", "import of x failed: ImportError: nope"))
    r = CliRunner().invoke(cli, ["backends", "--json"])
    assert json.loads(r.output.split("\n}\n")[0] + "\n}")["failed_plugins"][0]["plugin"] == "brokenplugin"
    r = CliRunner().invoke(cli, ["backends"])
    assert "brokenplugin" in r.output and "ImportError: nope" in r.output


def test_plugin_can_add_a_command(fresh_host):
    @clconv.hookimpl
    def clconv_register_commands(cli):
        @cli.command("hello-plugin")
        def hello():
            click.echo("hello from a plugin")

    host = fresh_host()
    host.register_plugin(types.SimpleNamespace(clconv_register_commands=clconv_register_commands), "cmdplugin")
    host.pm.hook.clconv_register_commands(cli=cli)
    try:
        r = run("hello-plugin")
        assert r.exit_code == 0 and "hello from a plugin" in r.output
    finally:
        cli.commands.pop("hello-plugin", None)


def test_a_clconv_error_is_a_click_error_not_a_traceback(fresh_host, monkeypatch):
    """A bad CLCONV_LOAD_PLUGINS (the plugin host raises PluginError on load) in any command."""
    monkeypatch.setenv("CLCONV_LOAD_PLUGINS", "numpy,nosuchplugin")
    for args in (["devices"], ["devices", "--json"], ["backends"], ["backends", "--json"],
                 ["explain", "conv2d", "--input", "1,3,8,8", "--weight", "4,3,3,3"]):
        r = run(*args)
        assert r.exit_code == 1, (args, r.output)
        assert "Error: CLCONV_LOAD_PLUGINS='numpy,nosuchplugin' names 'nosuchplugin'" in r.output, args
        assert "Traceback" not in r.output
