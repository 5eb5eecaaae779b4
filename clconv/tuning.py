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

import dataclasses
import datetime as _dt
import json
import math
import os
import random
import statistics
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
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
            return DeviceProfile(float(p["peak_gflops"]), float(p["bandwidth_gbs"]), float(p["launch_us"]), "calibrated",
                                 float(p.get("call_us", 0.0)))
        except (KeyError, TypeError, ValueError):
            return None

    def set_profile(self, device: Device, profile: DeviceProfile) -> None:
        def put(data: dict[str, Any]) -> None:
            data["profiles"][device.fingerprint()] = {**profile.as_dict(), "source": "calibrated", "device": device.id}

        self._update(put)


#: The tiny convolution whose calls measure a backend's fixed per-call cost.
CALL_PROBE = ConvSpec.from_shapes("conv", (1, 4, 8), (4, 4, 1), bias=True, dtype="float32", ndim=1)


def calibrate(backend: Any, device: Device, calls: int = 31) -> DeviceProfile:
    """``backend.calibrate(device)`` (peak FLOP/s, bandwidth, launch overhead), plus the fixed
    host cost of one call (``call_us``): the median time of calls of :data:`CALL_PROBE` through
    each of the backend's kernels that can run it, less what its launches account for; the
    smallest over the algorithms. Small layers are decided by this cost, which a bare launch
    (a driver call) does not show: validation, wrappers, allocation, a framework's dispatch."""
    prof = backend.calibrate(device)
    spec = CALL_PROBE
    rng = np.random.default_rng(0)
    x = rng.standard_normal(spec.input_shape).astype(np.float32)
    w = rng.standard_normal(spec.weight_shape).astype(np.float32)
    b = rng.standard_normal(spec.out_channels).astype(np.float32)
    best = math.inf
    for alg in backend.algorithms():
        try:
            if not alg.supports(spec, device):
                continue
            kernel = alg.prepare(spec, device)
            for _ in range(3):
                _sync(kernel(x, w, b))
            ts = []
            for _ in range(calls):
                t = time.perf_counter()
                _sync(kernel(x, w, b))
                ts.append(time.perf_counter() - t)
            launches = alg.cost(spec, device).launches
        except Exception:  # an algorithm that cannot run the probe says nothing about the rest
            continue
        best = min(best, statistics.median(ts) * 1e6 - launches * prof.launch_us)
    if best == math.inf:
        return prof
    return dataclasses.replace(prof, call_us=max(0.0, best))


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


def _resident(device: Any, arrays: tuple[Any, Any, Any], spec: ConvSpec) -> tuple[tuple[Any, Any, Any], float] | None:
    """For an OpenCL device that copies host arrays (a GPU): the arrays uploaded to it once, and
    the measured seconds of a host call's copies (upload of input, weight and bias, download of
    the output; median of 7). None for other devices.

    Measuring a GPU's candidates with host arrays times the PCIe copies with every call: on an
    NVIDIA H200 they were most of each call (0.66-0.71 ms for every direct-blocked variant of a
    layer whose kernels take 0.05-0.2 ms), so variants were ranked by noise. The copies are the
    same for every candidate on one device: kernels are timed on resident arrays and the copies
    are added once, so that the time still compares with other devices' host calls."""
    if getattr(device, "zero_copy_align", 1) != 0 or getattr(device, "queue", None) is None:
        return None
    import numpy as np
    import pyopencl.array as cl_array

    q = device.queue
    x, w, b = arrays
    resident = tuple(cl_array.to_device(q, a) if a is not None else None for a in (x, w, b))
    y = cl_array.empty(q, spec.output_shape, np.dtype(spec.dtype))
    times = []
    for _ in range(7):
        t = time.perf_counter()
        for a in (x, w, b):
            if a is not None:
                cl_array.to_device(q, a)
        y.get()
        times.append(time.perf_counter() - t)
    return resident, statistics.median(times)  # type: ignore[return-value]


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


#: The parameter variants of a candidate are measured when its default variant's first timed
#: call is within this factor of the fastest candidate's (a clear loser is not tuned).
VARIANT_MARGIN = 2.0

#: A parameter variant replaces the default only when its median is at least this fraction
#: faster: within that, interleaved medians of the same kernel with different blocks swap
#: places from run to run, and the default is the choice the tests and the cost model know.
VARIANT_MIN_GAIN = 0.05


@dataclass
class Measurement:
    """One candidate's measured time; for a tunable algorithm, its fastest parameter variant
    (``params``) and every variant's time (``variants``: dicts with params, time_s, note)."""

    time_s: float
    note: str
    params: dict[str, Any] | None = None
    variants: list[dict[str, Any]] = field(default_factory=list)


def candidate_variants(spec: ConvSpec, candidate: "Candidate") -> list[dict[str, Any]]:
    """The candidate's parameter variants, default first (``[{}]``: nothing to tune)."""
    try:
        found = [dict(v) for v in candidate.algorithm.variants(spec, candidate.device)]
    except Exception:  # a plugin's broken variants() never breaks measuring
        return [{}]
    return found or [{}]


#: measure(): sub-millisecond specs get rounds up to this many...
MAX_ROUNDS = 201
#: ...until their timed calls add up to this many seconds (or the budget is spent).
TIMED_TARGET_S = 0.3


def measure(spec: ConvSpec, candidates: Iterable["Candidate"], budget_s: float, placement: Any = None,
            rounds: int = 7, variants: bool = True) -> dict[str, Measurement]:
    """Time candidates, and the parameter variants of tunable ones, within ``budget_s``.

    Each candidate is prepared with its default parameters and warmed up once (builds,
    first-touch allocations); one trial call of each follows. Then every other variant of a
    tunable algorithm (``Algorithm.variants``) whose trial came within :data:`VARIANT_MARGIN`
    of the fastest is prepared and warmed up too: those builds (a kernel compile each, seconds
    when not cached; algorithms offer a handful) are not charged to the budget. Then the timed
    calls are interleaved (one timed call of every candidate and variant per round, right after
    an untimed one, in a new random order each round: a call right after another runtime's
    runs slower while that runtime's worker threads still spin, 20-40% for PoCL after OpenBLAS
    or OpenVINO, and after other kernels PoCL may reload a work-group function; ``rounds`` rounds,
    at least three when the budget runs out first, and more, up to :data:`MAX_ROUNDS`, until the
    timed calls add up to :data:`TIMED_TARGET_S` for sub-millisecond specs), so that a change in machine load between them cannot decide
    the ranking; the median of each one's rounds is its time, and a candidate's time is that of
    its fastest variant (the default unless another is :data:`VARIANT_MIN_GAIN` faster). Candidates predicted to be over 20x slower than the best prediction, or
    that fail, get ``inf`` with a note; a variant that fails only loses. ``variants=False``
    times each candidate with its default parameters only (the ``auto`` policy's close calls).
    """
    out: dict[str, Measurement] = {}
    host_arrays = _arrays(spec, placement)
    # device id -> (arrays its kernels are timed on, seconds of host copies added to their times)
    on_device: dict[str, tuple[tuple[Any, Any, Any], float]] = {}

    def arrays_for(device: Any) -> tuple[tuple[Any, Any, Any], float]:
        found = on_device.get(device.id)
        if found is None:
            resident = _resident(device, host_arrays, spec) if placement is None else None
            found = on_device[device.id] = resident if resident is not None else (host_arrays, 0.0)
        return found
    ordered = sorted(candidates, key=lambda c: c.predicted_s if c.predicted_s is not None else math.inf)
    best_pred = min((c.predicted_s for c in ordered if c.predicted_s is not None), default=math.inf)
    start = time.perf_counter()
    uncharged = 0.0  # seconds spent building and warming up extra variants

    def spent() -> float:
        return time.perf_counter() - start - uncharged

    def call(kernel: Any) -> float:
        # Two calls back to back, the second timed: the first absorbs the switch from the
        # previous candidate. Timed alone, a tiny layer on PoCL's basic device measured
        # 70-80 us instead of its steady 15-20 in most processes (the switch cost is not
        # fully explained: a profile shows PoCL's work-group-function loader, dlopen and
        # dlclose, at work; runs of different layers one after another do not show it).
        (x, w, b), copies = arrays_for(kernel.device)
        _sync(kernel(x, w, b))
        t = time.perf_counter()
        _sync(kernel(x, w, b))
        return time.perf_counter() - t + copies

    def warm(kernel: Any) -> None:
        (x, w, b), _ = arrays_for(kernel.device)
        _sync(kernel(x, w, b))  # warm-up: builds, first-touch allocations

    def failed(exc: Exception) -> str:
        return f"failed: {type(exc).__name__}: {exc}"[:300]

    # units: [candidate, params (None: not tunable), kernel, times, failure note, trial seconds]
    units: list[list[Any]] = []
    tried: dict[str, list[dict[str, Any]]] = {}
    for c in ordered:
        if spent() > budget_s:
            out[c.name] = Measurement(math.inf, "not measured: tuning budget spent")
            continue
        if c.predicted_s is not None and best_pred < math.inf and c.predicted_s > 20 * best_pred:
            out[c.name] = Measurement(math.inf, "not measured: predicted over 20x slower than the best prediction")
            continue
        vs = tried[c.name] = candidate_variants(spec, c)
        params = vs[0] if vs != [{}] else None
        try:
            kernel = c.algorithm.prepare_with(spec, c.device, params)
            warm(kernel)
            trial = call(kernel)  # decides whether its variants are worth building; not kept
            units.append([c, params, kernel, [], "", trial])
        except Exception as exc:  # a candidate that fails to run is remembered as unusable
            out[c.name] = Measurement(math.inf, failed(exc))
    first = min((u[5] for u in units), default=math.inf)
    for c, params, _, _, _, trial in list(units):
        if params is None or not variants or trial > VARIANT_MARGIN * first:
            continue
        for v in tried[c.name][1:]:
            t0 = time.perf_counter()
            try:
                kernel = c.algorithm.prepare_with(spec, c.device, v)
                warm(kernel)
                units.append([c, v, kernel, [], "", 0.0])
            except Exception as exc:
                units.append([c, v, None, [], failed(exc), 0.0])
            uncharged += time.perf_counter() - t0
    # At least `rounds` rounds (3 when the budget runs out first); sub-millisecond specs go on
    # (up to MAX_ROUNDS) until the timed calls add up to TIMED_TARGET_S, so that their medians
    # are not decided by a handful of calls on a busy machine.
    timed_start = time.perf_counter()
    order = list(units)
    shuffle = random.Random(0).shuffle
    for r in range(max(rounds, MAX_ROUNDS)):
        shuffle(order)
        for u in order:
            if u[2] is None or u[4]:
                continue
            try:
                u[3].append(call(u[2]))
            except Exception as exc:
                u[4] = failed(exc)
        done = r + 1
        timed = time.perf_counter() - timed_start  # builds and warm-ups before do not count
        if done >= 3 and timed > budget_s:
            break
        if done >= rounds and timed >= min(TIMED_TARGET_S, budget_s):
            break
    for c in ordered:
        mine = [u for u in units if u[0] is c]
        if c.name in out or not mine:
            continue
        default = mine[0]
        if default[4] or not default[3]:
            out[c.name] = Measurement(math.inf, default[4] or "failed: no timed call")
            continue
        med = [(statistics.median(u[3]) if u[3] and not u[4] else math.inf) for u in mine]
        best = min(range(len(mine)), key=lambda i: med[i])
        if med[best] > (1.0 - VARIANT_MIN_GAIN) * med[0]:
            best = 0  # not clearly faster than the default
        copies = on_device.get(c.device.id, (None, 0.0))[1]
        how = [f"{len(default[3])} interleaved rounds"]
        if default[1] is not None and len(mine) > 1:
            how.append(f"fastest of {len(mine)} parameter variants")
        if copies:
            how.append(f"kernels on resident arrays, plus {copies * 1e3:.3f} ms of host copies")
        note = f"measured ({'; '.join(how)})"
        if default[1] is None:
            out[c.name] = Measurement(med[0], note)
            continue
        out[c.name] = Measurement(
            med[best], note, dict(mine[best][1]),
            [{"params": u[1], "time_s": m, "note": u[4] or f"{len(u[3])} rounds"} for u, m in zip(mine, med)],
        )
    return out
