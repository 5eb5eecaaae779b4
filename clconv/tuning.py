"""The persistent tuning database: measured times per candidate, per spec, per device.

One JSON file in the user cache folder (``CLCONV_CACHE_DIR`` overrides the
platformdirs default). An entry's key covers everything that could change the
measurement: the backend and its version, the device fingerprint (platform,
device, vendor, driver, OpenCL version), the kernel source hash, the clconv
version, the spec key and the algorithm id. A different driver or a new
release simply misses, never reuses stale numbers.

Safe with concurrent processes: writers take a file lock (filelock), re-read
the file, merge, and atomically replace it. A corrupt or foreign file is
reported once (a TuningWarning) and rebuilt on the next write, never fatal.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import statistics
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from filelock import FileLock, Timeout

from ._version import __version__
from .backend import Device
from .costmodel import DeviceProfile
from .spec import ConvSpec

if TYPE_CHECKING:  # pragma: no cover
    from .dispatch import Candidate

FORMAT = "clconv-tuning/1"


class TuningWarning(UserWarning):
    """The tuning database could not be read and is being rebuilt."""


def cache_dir() -> Path:
    env = os.environ.get("CLCONV_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("clconv"))


def candidate_key(spec: ConvSpec, backend: str, backend_version: str, device: Device, source_hash: str,
                  algorithm: str) -> str:
    return "|".join((f"{backend}@{backend_version}", device.fingerprint(), f"src:{source_hash}",
                     f"clconv:{__version__}", spec.key, algorithm))


class TuningDB:
    def __init__(self, path: Path):
        self.path = path
        self.lock = FileLock(str(path) + ".lock", timeout=60)
        self._mem: dict[str, Any] | None = None
        self._mtime: float | None = None
        self._warned = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------ file
    def _empty(self) -> dict[str, Any]:
        return {"format": FORMAT, "entries": {}, "profiles": {}}

    def _read_disk(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return self._empty()
        except OSError as exc:
            self._warn(f"cannot be read ({exc})")
            return self._empty()
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            if not isinstance(data.get("entries"), dict) or not isinstance(data.get("profiles", {}), dict):
                raise ValueError("malformed entries")
            data.setdefault("profiles", {})
            return data
        except ValueError as exc:
            self._warn(f"is corrupt or foreign ({exc})")
            return self._empty()

    def _warn(self, what: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"clconv tuning database {self.path} {what}; it will be rebuilt", TuningWarning, stacklevel=4)

    def data(self) -> dict[str, Any]:
        """The database contents, re-read when another process changed the file."""
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime_ns
            except OSError:
                mtime = None
            if self._mem is None or mtime != self._mtime:
                self._mem = self._read_disk()
                self._mtime = mtime
            return self._mem

    def _update(self, fn: Any) -> None:
        """Read-modify-write under the file lock, replacing the file atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.lock:
                data = self._read_disk()
                fn(data)
                tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
                os.replace(tmp, self.path)
        except Timeout:
            warnings.warn(f"clconv tuning database {self.path} is locked; result not saved", TuningWarning)
            return
        with self._lock:
            self._mem = None

    # ------------------------------------------------------------ entries
    def lookup(self, key: str) -> dict[str, Any] | None:
        return self.data()["entries"].get(key)

    def record(self, entries: dict[str, dict[str, Any]]) -> None:
        def merge(data: dict[str, Any]) -> None:
            data["entries"].update(entries)

        self._update(merge)

    def entries(self) -> dict[str, dict[str, Any]]:
        return dict(self.data()["entries"])

    def clear(self) -> int:
        n = len(self.data()["entries"])

        def wipe(data: dict[str, Any]) -> None:
            data["entries"].clear()
            data["profiles"].clear()

        self._update(wipe)
        return n

    def export(self, path: str | Path) -> int:
        data = self.data()
        Path(path).write_text(json.dumps(data, indent=1, sort_keys=True))
        return len(data["entries"])

    def import_(self, path: str | Path) -> int:
        try:
            other = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            from .errors import ConvValueError

            raise ConvValueError(f"file={str(path)!r} is not a readable clconv tuning export: {exc}") from None
        if not isinstance(other, dict) or other.get("format") != FORMAT:
            from .errors import ConvValueError

            raise ConvValueError(f"file={str(path)!r} is not a {FORMAT} export")

        def merge(data: dict[str, Any]) -> None:
            data["entries"].update(other.get("entries", {}))
            data["profiles"].update(other.get("profiles", {}))

        self._update(merge)
        return len(other.get("entries", {}))

    # ------------------------------------------------------------ profiles
    def profile(self, device: Device) -> DeviceProfile | None:
        p = self.data()["profiles"].get(device.fingerprint())
        if not p:
            return None
        try:
            return DeviceProfile(float(p["peak_gflops"]), float(p["bandwidth_gbs"]), float(p["launch_us"]), "calibrated")
        except (KeyError, TypeError, ValueError):
            return None

    def set_profile(self, device: Device, profile: DeviceProfile) -> None:
        def put(data: dict[str, Any]) -> None:
            data["profiles"][device.fingerprint()] = {**profile.as_dict(), "source": "calibrated", "device": device.id}

        self._update(put)


_dbs: dict[Path, TuningDB] = {}
_dbs_lock = threading.Lock()


def database() -> TuningDB:
    """The tuning database of the current cache folder."""
    path = cache_dir() / "tuning.json"
    with _dbs_lock:
        db = _dbs.get(path)
        if db is None:
            db = _dbs[path] = TuningDB(path)
        return db


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------ measuring
def _arrays(spec: ConvSpec, placement: Any) -> tuple[Any, Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal(spec.input_shape, dtype=np.float32).astype(spec.dtype)
    w = rng.standard_normal(spec.weight_shape, dtype=np.float32).astype(spec.dtype)
    b = rng.standard_normal(spec.out_channels, dtype=np.float32).astype(spec.dtype) if spec.bias else None
    if placement is not None:
        import pyopencl.array as cl_array

        q = placement.queue
        x = cl_array.to_device(q, x)
    return x, w, b


def time_kernel(kernel: Any, arrays: tuple[Any, Any, Any], budget_s: float, repeats: int = 5) -> float:
    """Median seconds of a call after one warm-up, within roughly ``budget_s``."""
    x, w, b = arrays
    t0 = time.perf_counter()
    _sync(kernel(x, w, b))  # warm-up: builds, first-touch allocations
    first = time.perf_counter() - t0
    times = []
    deadline = time.perf_counter() + max(budget_s - first, 0.0)
    for _ in range(repeats):
        t = time.perf_counter()
        _sync(kernel(x, w, b))
        times.append(time.perf_counter() - t)
        if time.perf_counter() > deadline and len(times) >= 1:
            break
    return statistics.median(times)


def _sync(result: Any) -> None:
    q = getattr(result, "queue", None)
    if q is not None:
        q.finish()


def measure(spec: ConvSpec, candidates: Iterable["Candidate"], budget_s: float, placement: Any = None,
            rounds: int = 7) -> dict[str, tuple[float, str]]:
    """Time candidates within ``budget_s``; returns name -> (seconds, note).

    Each candidate is prepared and warmed up once; then the timed calls are
    interleaved (one call of each candidate per round, up to ``rounds``), so that a
    change in machine load between candidates cannot decide the ranking; the median
    of each candidate's rounds is its time. Candidates predicted to be over 20x
    slower than the best prediction, or that fail, get ``inf`` with a note.
    """
    out: dict[str, tuple[float, str]] = {}
    arrays = _arrays(spec, placement)
    x, w, b = arrays
    ordered = sorted(candidates, key=lambda c: c.predicted_s if c.predicted_s is not None else math.inf)
    best_pred = min((c.predicted_s for c in ordered if c.predicted_s is not None), default=math.inf)
    start = time.perf_counter()
    live = []
    for c in ordered:
        if time.perf_counter() - start > budget_s:
            out[c.name] = (math.inf, "not measured: tuning budget spent")
            continue
        if c.predicted_s is not None and best_pred < math.inf and c.predicted_s > 20 * best_pred:
            out[c.name] = (math.inf, "not measured: predicted over 20x slower than the best prediction")
            continue
        try:
            kernel = c.algorithm.prepare(spec, c.device)
            _sync(kernel(x, w, b))  # warm-up: builds, first-touch allocations
            live.append((c, kernel, []))
        except Exception as exc:  # a candidate that fails to run is remembered as unusable
            out[c.name] = (math.inf, f"failed: {type(exc).__name__}: {exc}"[:300])
    for r in range(rounds):
        for c, kernel, times in live:
            try:
                t = time.perf_counter()
                _sync(kernel(x, w, b))
                times.append(time.perf_counter() - t)
            except Exception as exc:
                out[c.name] = (math.inf, f"failed: {type(exc).__name__}: {exc}"[:300])
        if r >= 2 and time.perf_counter() - start > budget_s:
            break
    for c, _, times in live:
        if c.name not in out and times:
            out[c.name] = (statistics.median(times), f"measured ({len(times)} interleaved rounds)")
    return out
