"""Plugin tests: install plugins the way users do, and run clconv in subprocesses that see them.

The plugins live in ``plugins/<distribution>/``. A test that needs one installed uses
:func:`installed`: the distribution's own environment entry when it is already installed
(``pip install -e plugins/...``), else a ``pip install --no-deps --target`` into a
temporary folder that subprocesses get on ``PYTHONPATH`` (once per session).

Tests of a vendor plugin skip when its runtime (openvino, onnxruntime) is not installed.
``CLCONV_REQUIRE_PLUGINS=1`` (CI sets it) makes that a failure instead, and also requires
the vendor plugins themselves to be installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clconv import config, dispatch, plugins

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
ENV_REQUIRE = "CLCONV_REQUIRE_PLUGINS"


def skip_or_fail(message: str) -> None:
    """Skip, or fail under CLCONV_REQUIRE_PLUGINS=1."""
    if os.environ.get(ENV_REQUIRE) == "1":
        pytest.fail(f"{message} (and {ENV_REQUIRE}=1)")
    pytest.skip(message)


def need_vendor(dist: str, modules: tuple[str, ...]) -> None:
    """Skip (or fail, see ENV_REQUIRE) unless the runtime modules of plugin ``dist`` import."""
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError:
            skip_or_fail(f"{m} is not installed: the {dist} plugin cannot run here")
    if os.environ.get(ENV_REQUIRE) == "1" and not is_installed(dist):
        pytest.fail(f"{ENV_REQUIRE}=1 but {dist} is not installed (pip install -e plugins/{dist})")


def is_installed(dist: str) -> bool:
    """True when the distribution is installed in this environment."""
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _can_build_offline() -> bool:
    """setuptools >= 77 here, so pip can build without fetching a build backend."""
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 77


def pip_install_target(dist: str, target: Path) -> None:
    """``pip install --no-deps --target target plugins/<dist>`` (from a copy: no build files in the tree)."""
    src = target.parent / f"{dist}-src"
    shutil.copytree(PLUGINS / dist, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
           "--target", str(target), str(src)]
    if _can_build_offline():
        cmd.insert(4, "--no-build-isolation")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"


def env_with(*paths: Path, **extra: str) -> dict[str, str]:
    """os.environ with ``paths`` in front of PYTHONPATH and ``extra`` set."""
    env = dict(os.environ)
    old = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in paths] + ([old] if old else []))
    for var in ("CLCONV_LOAD_PLUGINS", "CLCONV_BACKEND", "CLCONV_DEVICE", "CLCONV_ALGORITHM", "CLCONV_DISABLE"):
        env.pop(var, None)
    env.update(extra)
    return env


def run_clconv(args: list[str], env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    """``clconv ARGS`` in a subprocess of this interpreter."""
    return subprocess.run([sys.executable, "-m", "clconv.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=str(ROOT))


def backends_json(env: dict[str, str]) -> dict:
    proc = run_clconv(["backends", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def target_installs(tmp_path_factory):
    """dist -> a folder with that plugin pip-installed into it (installed on first request)."""
    made: dict[str, Path] = {}

    def get(dist: str) -> Path:
        if dist not in made:
            target = tmp_path_factory.mktemp(dist) / "site"
            pip_install_target(dist, target)
            made[dist] = target
        return made[dist]

    return get


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test: its own cache folder (tuning database, conformance records), default settings."""
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("CLCONV_POLICY", "CLCONV_STRICT", "CLCONV_BACKEND", "CLCONV_DEVICE", "CLCONV_ALGORITHM",
                "CLCONV_DISABLE", "CLCONV_WORKSPACE_LIMIT", "CLCONV_DETERMINISTIC", "CLCONV_LOAD_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    config.reset()
    dispatch.clear_plans()
    yield
    config.reset()
    dispatch.clear_plans()


def plugin_module(module: str, dist: str, vendor_modules: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """Import a plugin's module: installed, or straight from plugins/<dist> (skip without its runtime)."""
    need_vendor(dist, vendor_modules)
    if not is_installed(dist):
        path = str(PLUGINS / dist)
        if path not in sys.path:
            sys.path.insert(0, path)
    return pytest.importorskip(module)


@pytest.fixture
def host_with():
    """The plugin host with ``module`` registered as plugin ``name`` (in code when not installed)."""
    added: list[str] = []

    def get(module, name: str):  # type: ignore[no-untyped-def]
        plugins.reset_host()
        host = plugins.get_host()
        if name not in host.infos:
            host.register_plugin(module, name=name)
            added.append(name)
        return host

    yield get
    plugins.reset_host()
