"""Dispatch controls, in one place: each has an environment variable and a Python setting.

=====================  =========================  ===========================================
setting                environment variable       meaning
=====================  =========================  ===========================================
policy                 CLCONV_POLICY              ``auto`` (a tuning-database hit wins, else
                                                  the cost model, with close calls measured:
                                                  ``close_call``), ``heuristic`` (cost model
                                                  only), ``measure`` (time the candidates on
                                                  first sight of a spec and remember the best)
strict                 CLCONV_STRICT              ``1``: a candidate that fails at run time
                                                  raises instead of falling back to the next
backend/device/        CLCONV_BACKEND,            force a choice for calls that do not pin one
algorithm              CLCONV_DEVICE,
                       CLCONV_ALGORITHM
disable                CLCONV_DISABLE             comma-separated ``backend``, ``algorithm`` or
                                                  ``backend/algorithm`` names never to use
workspace_limit        CLCONV_WORKSPACE_LIMIT     bytes (suffixes K, M, G allowed); candidates
                                                  needing more workspace are rejected
deterministic          CLCONV_DETERMINISTIC       ``1``: only algorithms that give the same bits
                                                  run after run
tune_budget            CLCONV_TUNE_BUDGET         seconds the ``measure`` policy may spend per spec
close_call             CLCONV_CLOSE_CALL          ``auto``: when the best prediction is at least
                                                  1 ms and others on its device are predicted
                                                  within this fraction of it (default 0.15),
                                                  time those few once (default parameters) and
                                                  remember them; ``0`` turns it off
=====================  =========================  ===========================================

Every value is validated; a bad one raises a ConvValueError naming the variable.
``clconv.configure(...)`` changes settings for the process and returns the old
ones; ``with clconv.settings(...):`` changes them for a block.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass, fields, replace
from typing import Any, Iterator

from .errors import ConvValueError

POLICIES = ("auto", "heuristic", "measure")


@dataclass(frozen=True)
class Settings:
    policy: str = "auto"
    strict: bool = False
    backend: str | None = None
    device: str | None = None
    algorithm: str | None = None
    disable: tuple[str, ...] = ()
    workspace_limit: int | None = None
    deterministic: bool = False
    tune_budget: float = 2.0
    close_call: float = 0.15

    def key(self) -> tuple[Any, ...]:
        """What a memoized plan depends on (worked out once per Settings: every API call asks)."""
        k = self.__dict__.get("_key")
        if k is None:
            k = tuple(getattr(self, f.name) for f in fields(self) if f.name not in ("strict", "tune_budget"))
            self.__dict__["_key"] = k  # a frozen dataclass: past __setattr__, outside eq and hash
        return k

    def disabled(self, backend: str, algorithm: str) -> bool:
        return any(d in (backend, algorithm, f"{backend}/{algorithm}") for d in self.disable)


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)


def parse_bytes(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConvValueError(f"{name}={value!r} is not accepted: give a number of bytes >= 0")
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ConvValueError(f"{name}={value!r} is not accepted: give bytes, e.g. 268435456 or 256M")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value) in ("0", "1"):
        return str(value) == "1"
    raise ConvValueError(f"{name}={value!r} is not accepted: give 0 or 1")


def _validate(s: Settings, source: dict[str, str]) -> Settings:
    def name(field: str) -> str:
        return source.get(field, field)

    if s.policy not in POLICIES:
        raise ConvValueError(f"{name('policy')}={s.policy!r} is not accepted: give one of {', '.join(POLICIES)}")
    if not isinstance(s.tune_budget, (int, float)) or s.tune_budget <= 0:
        raise ConvValueError(f"{name('tune_budget')}={s.tune_budget!r} is not accepted: give seconds > 0")
    if (not isinstance(s.close_call, (int, float)) or isinstance(s.close_call, bool)
            or not 0 <= s.close_call <= 10):
        raise ConvValueError(
            f"{name('close_call')}={s.close_call!r} is not accepted: give a fraction from 0 to 10 (0 turns it off)"
        )
    for f in ("backend", "device", "algorithm"):
        v = getattr(s, f)
        if v is not None and (not isinstance(v, str) or not v):
            raise ConvValueError(f"{name(f)}={v!r} is not accepted: give a non-empty name")
    return s


def from_environment(env: dict[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    source: dict[str, str] = {}
    kw: dict[str, Any] = {}

    def get(field: str, var: str) -> str | None:
        v = env.get(var)
        if v is not None and v != "":
            source[field] = var
            return v
        return None

    if (v := get("policy", "CLCONV_POLICY")) is not None:
        kw["policy"] = v
    if (v := get("strict", "CLCONV_STRICT")) is not None:
        kw["strict"] = _flag("CLCONV_STRICT", v)
    for f, var in (("backend", "CLCONV_BACKEND"), ("device", "CLCONV_DEVICE"), ("algorithm", "CLCONV_ALGORITHM")):
        if (v := get(f, var)) is not None:
            kw[f] = v
    if (v := get("disable", "CLCONV_DISABLE")) is not None:
        kw["disable"] = tuple(p.strip() for p in v.split(",") if p.strip())
    if (v := get("workspace_limit", "CLCONV_WORKSPACE_LIMIT")) is not None:
        kw["workspace_limit"] = parse_bytes("CLCONV_WORKSPACE_LIMIT", v)
    if (v := get("deterministic", "CLCONV_DETERMINISTIC")) is not None:
        kw["deterministic"] = _flag("CLCONV_DETERMINISTIC", v)
    if (v := get("tune_budget", "CLCONV_TUNE_BUDGET")) is not None:
        try:
            kw["tune_budget"] = float(v)
        except ValueError:
            raise ConvValueError(f"CLCONV_TUNE_BUDGET={v!r} is not accepted: give seconds > 0") from None
    if (v := get("close_call", "CLCONV_CLOSE_CALL")) is not None:
        try:
            kw["close_call"] = float(v)
        except ValueError:
            raise ConvValueError(
                f"CLCONV_CLOSE_CALL={v!r} is not accepted: give a fraction from 0 to 10 (0 turns it off)"
            ) from None
    return _validate(Settings(**kw), source)


_lock = threading.Lock()
_current: Settings | None = None


def current() -> Settings:
    """The settings in force (read from the environment on first use)."""
    global _current
    s = _current
    if s is not None:  # replaced whole, never mutated: no lock once set
        return s
    with _lock:
        if _current is None:
            _current = from_environment()
        return _current


def configure(**changes: Any) -> Settings:
    """Change settings for this process; returns the previous settings.

    Keys: policy, strict, backend, device, algorithm, disable (iterable of names),
    workspace_limit (bytes or "256M"), deterministic, tune_budget (seconds), close_call
    (a fraction; 0: off).
    """
    global _current
    old = current()
    valid = {f.name for f in fields(Settings)}
    for k in changes:
        if k not in valid:
            raise ConvValueError(f"{k}= is not a clconv setting: settings are {', '.join(sorted(valid))}")
    if "disable" in changes:
        d = changes["disable"]
        changes["disable"] = (d,) if isinstance(d, str) else tuple(d or ())
    if "workspace_limit" in changes:
        changes["workspace_limit"] = parse_bytes("workspace_limit", changes["workspace_limit"])
    for f in ("strict", "deterministic"):
        if f in changes:
            changes[f] = _flag(f, changes[f])
    new = _validate(replace(old, **changes), {})
    with _lock:
        _current = new
    return old


def reset() -> None:
    """Forget Python-level changes; the environment is read again on next use."""
    global _current
    with _lock:
        _current = None


@contextlib.contextmanager
def settings(**changes: Any) -> Iterator[Settings]:
    """``with clconv.settings(policy="measure"):`` changes settings for the block."""
    old = configure(**changes)
    try:
        yield current()
    finally:
        global _current
        with _lock:
            _current = old
