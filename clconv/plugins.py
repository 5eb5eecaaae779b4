"""The plugin host: loads built-in and third-party plugins and collects their backends.

Built-in backends are ordinary plugins, listed in :data:`DEFAULT_PLUGINS` and
loaded through the same path as third-party plugins, which come from the
``clconv`` entry-point group. ``CLCONV_LOAD_PLUGINS=a,b`` loads only the
plugins named (built-ins are named by the last part of their module:
``numpy``, ``opencl``). A plugin that fails to import or register is reported
by name (a warning, and ``clconv backends``) and skipped, never fatal.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .backend import Backend, Device
from .errors import PluginError

#: Modules of the built-in plugins, loaded like any other plugin.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "clconv.backends.numpy",
    "clconv.backends.opencl",
)

ENTRY_POINT_GROUP = "clconv"
ENV_LOAD = "CLCONV_LOAD_PLUGINS"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")


class PluginWarning(UserWarning):
    """A plugin failed to load or registered something invalid; it was skipped."""


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    error: str


@dataclass(frozen=True)
class PluginInfo:
    name: str
    origin: str  # "builtin", "entry point <dist>", or "registered in code"
    version: str


def builtin_name(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def _allowed_plugins() -> set[str] | None:
    raw = os.environ.get(ENV_LOAD)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


class PluginHost:
    """A pluggy PluginManager plus the backends its plugins registered."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager("clconv")
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.infos: dict[str, PluginInfo] = {}
        self._backends: dict[str, Backend] = {}
        self._origin: dict[str, str] = {}
        self._device_failures: set[str] = set()
        self._lock = threading.RLock()
        self._load(load_entry_points)

    # ---------------------------------------------------------------- loading
    def _fail(self, plugin: str, error: str) -> None:
        self.failures.append(PluginFailure(plugin, error))
        warnings.warn(f"clconv plugin {plugin!r} skipped: {error}", PluginWarning, stacklevel=3)

    def _load(self, load_entry_points: bool) -> None:
        allowed = _allowed_plugins()
        known: set[str] = set()
        for module in DEFAULT_PLUGINS:
            name = builtin_name(module)
            known.add(name)
            if allowed is not None and name not in allowed:
                continue
            try:
                mod = importlib.import_module(module)
            except Exception as exc:  # a broken plugin must never stop clconv
                self._fail(name, f"import of {module} failed: {type(exc).__name__}: {exc}")
                continue
            self._add(mod, name, "builtin", getattr(mod, "__version__", ""))
        if load_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                known.add(ep.name)
                if allowed is not None and ep.name not in allowed:
                    continue
                dist = ep.dist.name if ep.dist is not None else "?"
                version = ep.dist.version if ep.dist is not None else ""
                if ep.name in self.infos:
                    self._fail(
                        ep.name,
                        f"plugin name {ep.name!r} from distribution {dist!r} is already taken by "
                        f"the plugin from {self.infos[ep.name].origin}",
                    )
                    continue
                try:
                    obj = ep.load()
                except Exception as exc:
                    self._fail(ep.name, f"import of {ep.value} failed: {type(exc).__name__}: {exc}")
                    continue
                self._add(obj, ep.name, f"entry point in {dist}", version)
        if allowed is not None:
            unknown = sorted(allowed - known)
            if unknown:
                raise PluginError(
                    f"{ENV_LOAD}={os.environ[ENV_LOAD]!r} names {', '.join(map(repr, unknown))}, "
                    f"which is not an installed plugin; installed: {', '.join(sorted(known)) or 'none'}"
                )

    def _add(self, obj: Any, name: str, origin: str, version: str) -> None:
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:
            self._fail(name, f"could not register: {type(exc).__name__}: {exc}")
            return
        self.infos[name] = PluginInfo(name, origin, version)
        self._collect(name)

    def _collect(self, plugin_name: str) -> None:
        plugin = self.pm.get_plugin(plugin_name)
        impls = [
            i for i in self.pm.hook.clconv_register_backends.get_hookimpls() if i.plugin is plugin
        ]

        def register(backend: object) -> None:
            self._register_backend(backend, plugin_name)

        for impl in impls:
            try:
                impl.function(register=register)
            except Exception as exc:
                self._fail(plugin_name, f"clconv_register_backends raised {type(exc).__name__}: {exc}")

    def _register_backend(self, backend: object, plugin_name: str) -> None:
        if not isinstance(backend, Backend):
            raise PluginError(
                f"plugin {plugin_name!r} registered {backend!r}, which is not a clconv.backend.Backend instance"
            )
        name = getattr(backend, "name", "")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(
                f"plugin {plugin_name!r} registered a backend with name {name!r}: a backend name "
                "must be a non-empty lower-case identifier (letters, digits, '_', '-', '.')"
            )
        with self._lock:
            if name in self._backends:
                raise PluginError(
                    f"plugin {plugin_name!r} registered backend {name!r}, but plugin "
                    f"{self._origin[name]!r} already registered a backend of that name"
                )
            self._backends[name] = backend
            self._origin[name] = plugin_name

    # ------------------------------------------------------------------ public
    def register_plugin(self, obj: Any, name: str) -> None:
        """Register a plugin object from code (tests, notebooks). Errors raise."""
        if name in self.infos or self.pm.get_plugin(name) is not None:
            raise PluginError(
                f"plugin name {name!r} is already taken by the plugin from {self.infos[name].origin}"
            )
        before = len(self.failures)
        self.pm.register(obj, name=name)
        self.infos[name] = PluginInfo(name, "registered in code", getattr(obj, "__version__", ""))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginWarning)
            self._collect(name)
        if len(self.failures) > before:
            failure = self.failures.pop()
            self.unregister_plugin(name)
            raise PluginError(failure.error)

    def unregister_plugin(self, name: str) -> None:
        with self._lock:
            for b in [b for b, p in self._origin.items() if p == name]:
                del self._backends[b]
                del self._origin[b]
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            self.infos.pop(name, None)

    def backends(self) -> dict[str, Backend]:
        """Registered backends by name, in registration order."""
        with self._lock:
            return dict(self._backends)

    def backend(self, name: str) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            from .errors import UnsupportedError

            raise UnsupportedError(
                f"backend={name!r} is not registered; registered: {', '.join(self._backends) or 'none'}"
            ) from None

    def devices_of(self, backend_name: str) -> list[Device]:
        """The devices of a registered backend. A backend whose ``devices()`` raises (a broken
        driver or runtime) has none: it is reported once, by plugin name (a warning and
        :attr:`failures`), and every other backend keeps working."""
        backend = self.backend(backend_name)
        try:
            return list(backend.devices())
        except Exception as exc:
            with self._lock:
                first = backend_name not in self._device_failures
                self._device_failures.add(backend_name)
            if first:
                self._fail(
                    self._origin[backend_name],
                    f"backend {backend_name!r}: devices() raised {type(exc).__name__}: {exc}",
                )
            return []

    def all_devices(self) -> list[Device]:
        """Every device of every registered backend (see :meth:`devices_of`)."""
        return [d for name in self.backends() for d in self.devices_of(name)]

    def origin(self, backend_name: str) -> str:
        """The plugin that registered a backend."""
        return self._origin[backend_name]


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _host
    with _host_lock:
        if _host is None:
            _host = PluginHost()
        return _host


def reset_host() -> None:
    """Forget the loaded plugins (the next get_host() loads them again). For tests."""
    global _host
    with _host_lock:
        _host = None
    from . import dispatch

    dispatch.clear_plans()
