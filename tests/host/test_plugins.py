"""The plugin host: hooks, entry points, narrowing, duplicates and failures."""

from __future__ import annotations

import inspect
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import clconv
from clconv import hookspecs, plugins
from clconv.backend import Algorithm, Backend, Device, Kernel, Support
from clconv.backends.numpy import ops
from clconv.errors import PluginError, UnsupportedError


class _NegatingKernel(Kernel):
    """A deliberately different result, so a test can tell this backend ran."""

    def compute(self, input, weight, bias, out):
        return -ops.reference(self.spec, input, weight, bias).astype(self.spec.dtype)


class _OnlyConv2d(Algorithm):
    id = "only2d"
    family = "reference"

    def supports(self, spec, device):
        if spec.ndim != 2:
            return Support.no("2D only")
        return Support.yes()

    def prepare(self, spec, device):
        return _NegatingKernel(spec, device, self)

    def cost(self, spec, device):
        """No launches and full efficiency: the cheapest candidate on any small call, so
        that an unpinned call shows whether the dispatcher sees this backend at all."""
        from clconv.costmodel import Cost

        return Cost(spec.flops, 0, 0, 1.0)


def make_backend(name: str) -> Backend:
    class Fake(Backend):
        version = "9.9"

        def devices(self):
            return [Device(id=f"{self.name}:0", backend=self.name, name="fake device", kind="gpu")]

        def algorithms(self):
            return [_OnlyConv2d()]

    Fake.name = name
    return Fake()


def make_plugin(*backend_names: str) -> types.SimpleNamespace:
    @clconv.hookimpl
    def clconv_register_backends(register):
        for n in backend_names:
            register(make_backend(n))

    return types.SimpleNamespace(clconv_register_backends=clconv_register_backends)


def test_builtin_backends_are_plugins(fresh_host):
    host = fresh_host()
    assert "numpy" in host.backends()
    assert host.origin("numpy") == "numpy"
    assert host.infos["numpy"].origin == "builtin"
    assert plugins.builtin_name(plugins.DEFAULT_PLUGINS[0]) == "numpy"


def test_plugin_defined_in_a_test_is_found_through_the_hook(fresh_host):
    host = fresh_host()
    host.register_plugin(make_plugin("fakegpu"), name="fakeplugin")
    assert "fakegpu" in clconv.list_backends()
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3)).astype(np.float32)
    # predicted cheapest (no launches): the dispatcher routes to the fake backend unpinned
    expl = clconv.explain("conv2d", x, w)
    assert expl.chosen.backend == "fakegpu"
    out = clconv.conv2d(x, w)
    np.testing.assert_allclose(out, -ops.reference(expl.spec, x, w), rtol=1e-5)
    # its algorithm rejects 1D with its own reason, and the dispatcher reports it
    rows = clconv.explain("conv1d", x[:, :, 0], w[:, :, 0]).rows()
    fake = [r for r in rows if r["backend"] == "fakegpu"]
    assert fake and fake[0]["supported"] is False and fake[0]["reason"] == "2D only"
    with pytest.raises(UnsupportedError, match="2D only"):
        clconv.conv1d(x[:, :, 0], w[:, :, 0], backend="fakegpu")
    host.unregister_plugin("fakeplugin")
    assert "fakegpu" not in clconv.list_backends()


def test_duplicate_backend_name_is_rejected_naming_both_plugins(fresh_host):
    host = fresh_host()
    with pytest.raises(PluginError, match=r"plugin 'dup'.*'numpy'.*plugin 'numpy' already registered"):
        host.register_plugin(make_plugin("numpy"), name="dup")
    assert host.origin("numpy") == "numpy"
    assert "dup" not in host.infos


def test_duplicate_plugin_name_is_rejected(fresh_host):
    host = fresh_host()
    with pytest.raises(PluginError, match="plugin name 'numpy' is already taken"):
        host.register_plugin(make_plugin("other"), name="numpy")


@pytest.mark.parametrize("bad", ["", "Has Space", 3])
def test_invalid_backend_name_is_rejected(fresh_host, bad):
    host = fresh_host()
    b = make_backend("x")
    type(b).name = bad

    @clconv.hookimpl
    def clconv_register_backends(register):
        register(b)

    with pytest.raises(PluginError, match="backend name"):
        host.register_plugin(types.SimpleNamespace(clconv_register_backends=clconv_register_backends), "bad")


def test_registering_a_non_backend_is_rejected(fresh_host):
    @clconv.hookimpl
    def clconv_register_backends(register):
        register(object())

    with pytest.raises(PluginError, match="not a clconv.backend.Backend"):
        fresh_host().register_plugin(
            types.SimpleNamespace(clconv_register_backends=clconv_register_backends), "notbackend"
        )


@pytest.fixture
def installed_plugins(tmp_path, monkeypatch):
    """Fake installed distributions with entry points in the ``clconv`` group."""

    def install(dist: str, entry_name: str, module: str, source: str) -> None:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[clconv]\n{entry_name} = {module}\n")

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    for m in [m for m in sys.modules if m.startswith("clconvtest_")]:
        del sys.modules[m]


GOOD_PLUGIN = """
    import clconv
    from clconv.backend import Backend, Device

    class EpBackend(Backend):
        name = "epbackend"
        version = "1.2.3"
        def devices(self):
            return [Device(id="ep:0", backend="epbackend", name="entry point device", kind="npu")]
        def algorithms(self):
            return []

    @clconv.hookimpl
    def clconv_register_backends(register):
        register(EpBackend())
"""


def test_entry_point_plugin_is_discovered(fresh_host, installed_plugins):
    installed_plugins("clconv-eptest", "eptest", "clconvtest_good", GOOD_PLUGIN)
    host = fresh_host()
    assert "epbackend" in host.backends()
    assert host.origin("epbackend") == "eptest"
    assert host.infos["eptest"].origin == "entry point in clconv-eptest"
    assert host.infos["eptest"].version == "1.2.3"
    assert [d.id for d in host.backends()["epbackend"].devices()] == ["ep:0"]


def test_failing_import_is_reported_and_skipped(fresh_host, installed_plugins):
    installed_plugins("clconv-broken", "broken", "clconvtest_broken", "raise RuntimeError('boom at import')\n")
    installed_plugins("clconv-eptest", "eptest", "clconvtest_good", GOOD_PLUGIN)
    with pytest.warns(plugins.PluginWarning, match="broken.*boom at import"):
        host = fresh_host()
    assert [f.plugin for f in host.failures] == ["broken"]
    assert "RuntimeError: boom at import" in host.failures[0].error
    # the others still load
    assert {"numpy", "epbackend"} <= set(host.backends())


def test_failing_builtin_import_is_reported_and_skipped(fresh_host, monkeypatch):
    """A built-in whose import fails (pyopencl without an OpenCL library) is skipped by name;
    naming it in CLCONV_LOAD_PLUGINS is still a known name, reported as the same failure."""
    monkeypatch.setattr(plugins, "DEFAULT_PLUGINS", ("clconv.backends.numpy", "clconv.backends.nosuchbackend"))
    with pytest.warns(plugins.PluginWarning, match="'nosuchbackend' skipped: import of clconv.backends.nosuchbackend failed"):
        host = fresh_host()
    assert [f.plugin for f in host.failures] == ["nosuchbackend"]
    assert "ModuleNotFoundError" in host.failures[0].error
    # the other built-in loads (installed vendor plugins come from entry points, not DEFAULT_PLUGINS)
    assert [n for n in host.backends() if host.infos[host.origin(n)].origin == "builtin"] == ["numpy"]
    plugins.reset_host()
    monkeypatch.setenv("CLCONV_LOAD_PLUGINS", "nosuchbackend")
    with pytest.warns(plugins.PluginWarning, match="nosuchbackend"):
        host = plugins.get_host()
    assert host.backends() == {}


def test_register_hook_that_raises_is_reported_and_skipped(fresh_host, installed_plugins):
    installed_plugins(
        "clconv-raiser", "raiser", "clconvtest_raiser",
        """
        import clconv
        @clconv.hookimpl
        def clconv_register_backends(register):
            raise ValueError("no devices today")
        """,
    )
    with pytest.warns(plugins.PluginWarning, match="raiser.*no devices today"):
        host = fresh_host()
    assert "numpy" in host.backends()


def test_entry_point_reusing_a_builtin_name_is_rejected(fresh_host, installed_plugins):
    installed_plugins("clconv-impostor", "numpy", "clconvtest_impostor", GOOD_PLUGIN)
    with pytest.warns(plugins.PluginWarning, match="'numpy' from distribution 'clconv-impostor' is already taken by the plugin from builtin"):
        host = fresh_host()
    assert host.origin("numpy") == "numpy"
    assert "epbackend" not in host.backends()
    assert [f.plugin for f in host.failures] == ["numpy"]


def test_entry_point_registering_a_taken_backend_name_is_reported(fresh_host, installed_plugins):
    """Through the hook (not register_plugin): the second plugin's backend is refused, the
    warning names both plugins, and the first keeps the name."""
    installed_plugins("clconv-clash", "clash", "clconvtest_clash", GOOD_PLUGIN.replace('name = "epbackend"', 'name = "numpy"'))
    with pytest.warns(plugins.PluginWarning, match=r"'clash'.*plugin 'clash' registered backend 'numpy', but plugin 'numpy' already"):
        host = fresh_host()
    assert host.origin("numpy") == "numpy"
    assert type(host.backends()["numpy"]).__name__ == "NumpyBackend"
    assert [f.plugin for f in host.failures] == ["clash"]


def test_load_plugins_env_narrows(fresh_host, installed_plugins, monkeypatch):
    installed_plugins("clconv-eptest", "eptest", "clconvtest_good", GOOD_PLUGIN)
    monkeypatch.setenv("CLCONV_LOAD_PLUGINS", "eptest")
    host = fresh_host()
    assert list(host.backends()) == ["epbackend"]
    plugins.reset_host()
    monkeypatch.setenv("CLCONV_LOAD_PLUGINS", "numpy")
    assert list(plugins.get_host().backends()) == ["numpy"]


def test_load_plugins_env_with_unknown_name_fails_naming_the_variable(fresh_host, monkeypatch):
    monkeypatch.setenv("CLCONV_LOAD_PLUGINS", "numpy,nosuchplugin")
    with pytest.raises(PluginError, match=r"CLCONV_LOAD_PLUGINS=.*'nosuchplugin'.*installed: "):
        fresh_host()


def _hookspec_names() -> list[str]:
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("clconv_")]


def test_every_hook_is_documented():
    names = _hookspec_names()
    assert names == ["clconv_register_backends", "clconv_register_commands"]
    for n in names:
        doc = inspect.getdoc(getattr(hookspecs, n)) or ""
        assert len(doc) > 80 and ":param" in doc, f"hook {n} needs a docstring that documents its parameters"


def test_every_hook_has_a_test():
    here = Path(__file__).parent
    text = "\n".join(p.read_text() for p in here.glob("test_*.py") if p.name != Path(__file__).name)
    text += Path(__file__).read_text().split("def _hookspec_names")[0]
    for n in _hookspec_names():
        assert f"def {n}(" in text, f"hook {n} is not exercised by any host test"


def test_a_backend_whose_devices_raise_is_reported_and_the_rest_works(fresh_host):
    """A broken driver or runtime behind one backend's ``devices()`` must not break every
    unpinned call, ``clconv devices`` or ``clconv backends``: that backend has no devices, the
    failure is reported once by plugin name, and the others keep working."""
    import json
    import warnings

    from click.testing import CliRunner

    from clconv.cli import cli

    class Broken(Backend):
        name = "brokendevs"

        def devices(self):
            raise RuntimeError("driver exploded")

        def algorithms(self):
            return [_OnlyConv2d()]

    @clconv.hookimpl
    def clconv_register_backends(register):
        register(Broken())

    host = fresh_host()
    host.register_plugin(types.SimpleNamespace(clconv_register_backends=clconv_register_backends), "devboom")
    x = np.ones((1, 2, 5, 5))
    w = np.ones((3, 2, 3, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = clconv.conv2d(x, w, padding=1)
        assert [d.id for d in clconv.list_devices() if d.backend == "brokendevs"] == []
        clconv.conv2d(x, w)
    np.testing.assert_allclose(y, ops.reference(clconv.ConvSpec.from_arrays("conv", 2, x, w, padding=1), x, w, None))
    reports = [str(c.message) for c in caught if issubclass(c.category, plugins.PluginWarning)]
    assert len(reports) == 1 and "devboom" in reports[0] and "driver exploded" in reports[0], reports
    with pytest.raises(UnsupportedError, match="brokendevs"):
        clconv.conv2d(x, w, device="brokendevs:0")
    r = CliRunner().invoke(cli, ["backends", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output[r.output.index("{"):])
    row = next(b for b in data["backends"] if b["name"] == "brokendevs")
    assert row["devices"] == []
    assert any(f["plugin"] == "devboom" and "driver exploded" in f["error"] for f in data["failed_plugins"])
    r = CliRunner().invoke(cli, ["devices", "--json"])
    assert r.exit_code == 0 and "numpy:cpu" in r.output
