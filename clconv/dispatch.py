"""The dispatcher: from a ConvSpec to a Plan on the fastest correct (backend, device, algorithm).

1. Candidates: every (backend, device, algorithm) the plugins registered. Each
   algorithm says whether it supports the spec on the device
   (``Algorithm.supports``; its reason is reported, never repeated here); the
   dispatcher adds only what is its own to judge: device memory, data placement
   (a pyopencl input stays on its device) and the user's controls (disabled
   algorithms, the workspace limit, deterministic-only; see ``config.py``).
2. Choice, by policy (``CLCONV_POLICY`` / ``clconv.configure(policy=...)``):
   - ``auto`` (default): when the tuning database has a time for every
     supported candidate, the fastest measured wins; otherwise the cost model,
     except for a close call (:func:`close_calls`: the best prediction is at least
     :data:`CLOSE_CALL_MIN_S` and others on its device are predicted within
     ``close_call``, 15%, of it): those few are timed once with their default
     parameters, the times remembered in the tuning database, the fastest first;
   - ``heuristic``: the cost model alone (``costmodel.py``);
   - ``measure``: time the candidates now (first sight of a spec), remember
     the times in the tuning database, take the fastest.
3. Fallback: when the chosen candidate fails at run time (a build failure, out
   of resources, a device error), the plan warns (``FallbackWarning``) and moves
   to the next candidate in order; ``strict`` raises instead.

``clconv.explain`` returns the whole table: every candidate, why it was
rejected, its predicted and measured time, its workspace, which one won and why.
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from . import config, costmodel, tuning
from .backend import Algorithm, Backend, Device, Kernel, Support, check_memory, format_bytes
from .errors import ConvTypeError, ConvValueError, DeviceMemoryError, UnsupportedError
from .plugins import get_host
from .spec import ConvSpec, is_device_array


class FallbackWarning(UserWarning):
    """The chosen candidate failed at run time; clconv used the next one."""


def describe_params(algorithm: Algorithm, params: dict[str, Any]) -> str:
    """``algorithm.describe_params``, or plain key=value pairs when it raises."""
    try:
        return algorithm.describe_params(params)
    except Exception:
        return " ".join(f"{k}={v}" for k, v in params.items())


@dataclass
class Candidate:
    """One (backend, device, algorithm) the dispatcher considered for a spec."""

    backend: str
    device: Device
    algorithm: Algorithm
    support: Support
    workspace_bytes: int | None = None
    predicted_s: float | None = None
    measured_s: float | None = None
    measure_note: str = ""
    chosen: bool = False
    #: Kernel parameters a tunable algorithm will be prepared with (``Algorithm.variants``),
    #: and where they came from: "tuned" (the tuning database), "default"; "" when not tunable.
    params: dict[str, Any] = field(default_factory=dict)
    params_source: str = ""

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.device.id}/{self.algorithm.id}"

    @property
    def params_text(self) -> str:
        """The parameters in the algorithm's words, with their source ('' when not tunable)."""
        if not self.params_source:
            return ""
        return f"{describe_params(self.algorithm, self.params)} ({self.params_source})"

    def prepare(self, spec: ConvSpec) -> Kernel:
        """The kernel of this candidate: tuned parameters when the database has them."""
        return self.algorithm.prepare_with(spec, self.device, self.params if self.params_source == "tuned" else None)

    def row(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "device": self.device.id,
            "algorithm": self.algorithm.id,
            "family": self.algorithm.family,
            "supported": self.support.ok,
            "reason": self.support.reason,
            "reason_kind": "" if self.support.ok else self.support.kind,
            "predicted_s": self.predicted_s,
            "measured_s": None if self.measured_s is None or math.isinf(self.measured_s) else self.measured_s,
            "measure_note": self.measure_note,
            "workspace_bytes": self.workspace_bytes,
            "params": dict(self.params) if self.params_source else None,
            "params_source": self.params_source,
            "params_text": self.params_text,
            "chosen": self.chosen,
        }


@dataclass
class Explanation:
    """The candidate table of one dispatch decision."""

    spec: ConvSpec
    candidates: list[Candidate]
    policy: str = "auto"
    decided_by: str = ""  # "tuning database", "cost model", "measured now", "no candidate"
    order: list[Candidate] = field(default_factory=list)  # supported candidates, best first

    @property
    def chosen(self) -> Candidate | None:
        return next((c for c in self.candidates if c.chosen), None)

    def rows(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.candidates]

    def as_dict(self) -> dict[str, Any]:
        chosen = self.chosen
        return {
            "spec": self.spec.key,
            "description": self.spec.describe(),
            "policy": self.policy,
            "decided_by": self.decided_by,
            "chosen": chosen.row() if chosen else None,
            "candidates": self.rows(),
        }

    def __str__(self) -> str:
        lines = [self.spec.describe(), f"policy: {self.policy}; decided by: {self.decided_by}"]
        for c in self.candidates:
            mark = "*" if c.chosen else " "
            if c.support.ok:
                status = f"predicted {_fmt_s(c.predicted_s)}"
                if c.measured_s is not None:
                    status += f", measured {_fmt_s(c.measured_s)}"
            else:
                status = f"rejected: {c.support.reason}"
            ws = "" if c.workspace_bytes is None else f", workspace {format_bytes(c.workspace_bytes)}"
            params = f", params {c.params_text}" if c.support.ok and c.params_source else ""
            lines.append(f" {mark} {c.name}: {status}{ws}{params}")
        return "\n".join(lines)


def _fmt_s(t: float | None) -> str:
    if t is None:
        return "-"
    if math.isinf(t):
        return "not measured"
    return f"{t * 1e3:.3f} ms"


class Plan:
    """A spec bound to its chosen candidate and prepared kernel. Call it to run.

    Keeps the ranked candidates, so that a run-time failure of the chosen one
    falls back to the next (see the module docstring).
    """

    def __init__(self, spec: ConvSpec, explanation: Explanation, kernel: Kernel, position: int = 0):
        self.spec = spec
        self.explanation = explanation
        self.kernel = kernel
        self._position = position
        self._lock = threading.Lock()
        self.failures: list[tuple[str, str]] = []  # (candidate, error) of fallbacks taken

    @property
    def candidate(self) -> Candidate:
        return self.explanation.order[self._position]

    @property
    def backend(self) -> str:
        return self.candidate.backend

    @property
    def device(self) -> Device:
        return self.kernel.device

    @property
    def algorithm(self) -> Algorithm:
        return self.kernel.algorithm

    def __call__(self, input: Any, weight: Any, bias: Any = None, *, out: Any = None) -> Any:
        """Run on arrays matching the plan's spec; with ``out=``, write into it and return it."""
        return self._run(input, weight, bias, out, None)

    def _run(self, input: Any, weight: Any, bias: Any, out: Any, resident: _Resident | None) -> Any:
        while True:
            kernel = self.kernel
            try:
                if resident is not None and not is_device_array(input):
                    return kernel(input, *resident.get(kernel, weight, bias), out=out)
                return kernel(input, weight, bias, out=out)
            except (ConvValueError, ConvTypeError):
                raise  # the caller's arrays are wrong: no other candidate would do better
            except Exception as exc:
                if not self._fall_back(kernel, exc):
                    raise

    def _fall_back(self, failed: Kernel, exc: Exception) -> bool:
        """Move to the next candidate that prepares; False when strict or none is left."""
        if config.current().strict:
            return False
        with self._lock:
            if self.kernel is not failed:  # another thread already moved on
                return True
            order = self.explanation.order
            bad = order[self._position]
            self.failures.append((bad.name, f"{type(exc).__name__}: {exc}"))
            for pos in range(self._position + 1, len(order)):
                nxt = order[pos]
                try:
                    kernel = nxt.prepare(self.spec)
                except Exception as prep_exc:
                    self.failures.append((nxt.name, f"{type(prep_exc).__name__}: {prep_exc}"))
                    continue
                warnings.warn(
                    f"clconv: {bad.name} failed for {self.spec.describe()} "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                    f"falling back to {nxt.name}",
                    FallbackWarning,
                    stacklevel=4,
                )
                bad.chosen, nxt.chosen = False, True
                self._position, self.kernel = pos, kernel
                return True
            return False

    def __repr__(self) -> str:
        return f"<Plan {self.spec.describe()} on {self.candidate.name}>"


class _Resident:
    """The resident forms (``Kernel.resident_weights``) of the last weight and bias objects a
    plan was called with, for the kernel that made them. Holds the objects themselves, so
    their identity cannot pass to other arrays while remembered."""

    def __init__(self) -> None:
        self._last: tuple[Any, ...] | None = None

    def get(self, kernel: Kernel, weight: Any, bias: Any) -> tuple[Any, Any]:
        last = self._last
        if last is None or last[0] is not kernel or last[1] is not weight or last[2] is not bias:
            last = (kernel, weight, bias, *kernel.resident_weights(weight, bias))
            self._last = last
        return last[3], last[4]


class ConstantWeightsPlan:
    """A :class:`Plan` whose caller promises that the weight and bias arrays it passes are not
    changed in place between calls (``clconv.plan(..., constant_weights=True)``), as a
    network's weights are during inference.

    The first call with a weight and bias object (and the first after a fallback) hands them
    to the kernel's ``resident_weights``: the OpenCL algorithms that keep a prepared form of
    the weight (Winograd, FFT, the transposed 1x1 weight) upload a NumPy weight to the device
    once, where otherwise they compare its bytes with their copy on every call. Later calls
    with the same objects use that. **A weight changed in place is then not seen**: pass a new
    array (or make a new plan). Device inputs and other kernels run exactly as with the plain
    plan. Everything else (``spec``, ``kernel``, ``explanation``, ``failures``...) is the
    underlying plan's, which ``plan`` holds (plans are shared between callers; this wrapper
    is not).
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        self._resident = _Resident()

    def __call__(self, input: Any, weight: Any, bias: Any = None, *, out: Any = None) -> Any:
        """Run on arrays matching the plan's spec; with ``out=``, write into it and return it."""
        return self.plan._run(input, weight, bias, out, self._resident)

    def __getattr__(self, name: str) -> Any:
        if name == "plan":  # not set yet (unpickling, copying)
            raise AttributeError(name)
        return getattr(self.plan, name)

    def __repr__(self) -> str:
        return f"<ConstantWeightsPlan {self.plan.spec.describe()} on {self.plan.candidate.name}>"


# --------------------------------------------------------------------- candidates
def _placement_owner_check(device: Device, placement: Any) -> Support:
    if placement is None:
        return Support.yes()
    if device.owns(placement):
        return Support.yes()
    return Support.no(
        "the input is a pyopencl array on another device or context; "
        "this device cannot read it without a host round trip",
        "placement",
    )


def _select(
    backends: dict[str, Backend],
    backend: str | None,
    device: str | Device | None,
    algorithm: str | None,
) -> tuple[list[tuple[str, Backend]], str | None, str | None]:
    if backend is not None and not isinstance(backend, str):
        raise ConvTypeError(f"backend={backend!r} has type {type(backend).__name__}: give a backend name (str) or None")
    if algorithm is not None and not isinstance(algorithm, str):
        raise ConvTypeError(
            f"algorithm={algorithm!r} has type {type(algorithm).__name__}: give an algorithm id (str) or 'auto'"
        )
    if device is not None and not isinstance(device, (str, Device)):
        raise ConvTypeError(f"device={device!r} has type {type(device).__name__}: give a device id (str), a Device or None")
    if algorithm == "auto":
        algorithm = None
    device_id = device.id if isinstance(device, Device) else device
    if backend is not None and backend not in backends:
        raise UnsupportedError(
            f"backend={backend!r} is not registered; registered: {', '.join(backends) or 'none'}"
        )
    chosen = [(n, b) for n, b in backends.items() if backend is None or n == backend]
    if device_id is not None:
        ids = [d.id for n, _ in chosen for d in get_host().devices_of(n)]
        if device_id not in ids:
            raise UnsupportedError(
                f"device={device_id!r} is not a device of "
                f"{'backend ' + repr(backend) if backend else 'any registered backend'}; "
                f"devices: {', '.join(ids) or 'none'}"
            )
    if algorithm is not None:
        ids = sorted({a.id for _, b in chosen for a in b.algorithms()})
        if algorithm not in ids:
            raise UnsupportedError(
                f"algorithm={algorithm!r} is not an algorithm of "
                f"{'backend ' + repr(backend) if backend else 'any registered backend'}; "
                f"algorithms: {', '.join(ids) or 'none'}"
            )
    return chosen, device_id, algorithm


def collect_candidates(
    spec: ConvSpec,
    *,
    backend: str | None = None,
    device: str | Device | None = None,
    algorithm: str | None = None,
    placement: Any = None,
    settings: config.Settings | None = None,
) -> list[Candidate]:
    """Every candidate for ``spec`` (within the pins), each with its Support."""
    s = settings if settings is not None else config.Settings()
    backends = get_host().backends()
    selected, device_id, algorithm_id = _select(backends, backend, device, algorithm)
    out: list[Candidate] = []
    for bname, be in selected:
        for dev in get_host().devices_of(bname):
            if device_id is not None and dev.id != device_id:
                continue
            for alg in be.algorithms():
                if algorithm_id is not None and alg.id != algorithm_id:
                    continue
                out.append(_evaluate(spec, bname, dev, alg, placement, s))
    return out


def _evaluate(spec: ConvSpec, bname: str, dev: Device, alg: Algorithm, placement: Any,
              s: config.Settings) -> Candidate:
    ws = None
    try:
        support = _controls(bname, alg, s)
        if support.ok:
            support = alg.supports(spec, dev)
        if support.ok:
            ws = alg.workspace_bytes(spec, dev)
            if s.workspace_limit is not None and ws > s.workspace_limit:
                support = Support.no(
                    f"workspace {format_bytes(ws)} exceeds the workspace limit {format_bytes(s.workspace_limit)}",
                    "workspace",
                )
        if support.ok:
            support = check_memory(spec, dev, alg.memory_bytes(spec, dev))
        if support.ok:
            support = _placement_owner_check(dev, placement)
    except Exception as exc:  # supports() must never raise; report it if it does
        support = Support.no(f"supports() raised {type(exc).__name__}: {exc}", "error")
    return Candidate(bname, dev, alg, support, workspace_bytes=ws)


def _controls(bname: str, alg: Algorithm, s: config.Settings) -> Support:
    if s.disabled(bname, alg.id):
        return Support.no("disabled (CLCONV_DISABLE / configure(disable=...))", "disabled")
    if s.deterministic and not alg.deterministic:
        return Support.no("not deterministic, and deterministic algorithms were asked for", "disabled")
    return Support.yes()


# --------------------------------------------------------------------- choice
def _predict(spec: ConvSpec, c: Candidate) -> float:
    try:
        return costmodel.predict(spec, c.device, c.algorithm)
    except Exception:  # a plugin without a usable cost model ranks last, never breaks dispatch
        return math.inf


def _db_key(spec: ConvSpec, c: Candidate) -> str:
    be = get_host().backends().get(c.backend)
    version = getattr(be, "version", "")
    source = be.source_hash() if be is not None and hasattr(be, "source_hash") else ""
    return tuning.candidate_key(spec, c.backend, version, c.device, source, c.algorithm.id)


def _normal(params: Any) -> str:
    """Parameters compared as canonical JSON (the database turns tuples into lists)."""
    return json.dumps(params, sort_keys=True, default=str)


def _set_params(spec: ConvSpec, c: Candidate, entry: dict[str, Any] | None) -> None:
    """A tunable candidate's parameters: the database entry's when it has some that the
    algorithm still offers, else the algorithm's default (its first variant)."""
    variants = tuning.candidate_variants(spec, c)
    if variants == [{}]:
        c.params, c.params_source = {}, ""
        return
    stored = entry.get("params") if entry else None
    if isinstance(stored, dict) and _normal(stored) in {_normal(v) for v in variants}:
        c.params, c.params_source = dict(stored), "tuned"
    else:
        c.params, c.params_source = dict(variants[0]), "default"


#: ``auto`` measures close calls only where the best prediction is at least this long: there a
#: wrong pick costs milliseconds on every call, against a one-time measurement of a few
#: candidates (their kernel builds are needed by the first call anyway). The cost model is
#: fitted on one CPU (Zen 5); on an AVX-512 Xeon it ranked direct-blocked first for the audio
#: layer 512 k3s2 (12.7 ms predicted against im2col's 14.0) where it ran 17.6 ms against 10.5,
#: and Winograd F(2x2) first at ResNet-50's 3x3 at 7x7 (1.50 against 1.56) where it ran 1.2-1.8x
#: slower than im2col with NumPy weights.
CLOSE_CALL_MIN_S = 1e-3

#: At most this many close candidates are measured.
CLOSE_CALL_MAX = 3

#: Seconds a close call may spend measuring (``tune_budget`` if larger): the first build of each
#: candidate is charged to it, and a cold PoCL build alone takes seconds.
CLOSE_CALL_BUDGET_S = 10.0

#: The tuning-database scope of close-call measurements (default parameters only): the
#: ``measure`` policy (``clconv tune``) measures those candidates again, with their variants.
CLOSE_CALL_SCOPE = "close call"


def close_calls(ok: list[Candidate], margin: float) -> list[Candidate]:
    """The candidates ``auto`` measures before choosing: the best predicted one and those on the
    same backend and device predicted within ``margin`` of it (at most :data:`CLOSE_CALL_MAX`),
    when the best prediction is at least :data:`CLOSE_CALL_MIN_S`; else none. Other devices are
    left to the cost model: a twin (the same CPU through a second OpenCL platform) ties with
    every candidate, which would make every spec a close call."""
    ranked = sorted((c for c in ok if c.predicted_s is not None and c.predicted_s < math.inf),
                    key=lambda c: c.predicted_s)
    if margin <= 0 or not ranked or ranked[0].predicted_s < CLOSE_CALL_MIN_S:
        return []
    top = ranked[0]
    close = [c for c in ranked if c.backend == top.backend and c.device.id == top.device.id
             and c.predicted_s <= top.predicted_s * (1 + margin)][:CLOSE_CALL_MAX]
    return close if len(close) > 1 else []


def _record(spec: ConvSpec, ok: list[Candidate], results: dict[str, Any], keys: dict[str, str],
            scope: str | None = None) -> None:
    """Measurements into the candidates and the tuning database (``scope``: close calls)."""
    when = tuning.now()
    new = {}
    for c in ok:
        if c.name not in results:
            continue
        m = results[c.name]
        c.measured_s, c.measure_note = m.time_s, m.note
        if scope and m.note.startswith("not measured"):
            continue  # a budget that ran out is no verdict: the next process tries again
        entry = {"time_s": m.time_s, "note": m.note, "when": when, "device": c.device.id, "spec": spec.describe()}
        if scope:
            entry["scope"] = scope
        if m.params is not None and not scope:  # a close call runs the defaults: not "tuned"
            c.params, c.params_source = m.params, "tuned"
            entry.update(params=m.params, params_text=describe_params(c.algorithm, m.params), variants=m.variants)
        new[keys[c.name]] = entry
    tuning.database().record(new)


def _timed(c: Candidate) -> tuple[float, float]:
    """A close call's order: measured time (unmeasured last), then prediction."""
    return (c.measured_s if c.measured_s is not None else math.inf, c.predicted_s or math.inf)


def decide(spec: ConvSpec, cands: list[Candidate], policy: str, s: config.Settings,
           placement: Any = None, remeasure: bool = False) -> tuple[list[Candidate], str]:
    """Order the supported candidates best first, by ``policy``; returns (order, decided_by)."""
    ok = [c for c in cands if c.support.ok]
    for c in ok:
        c.predicted_s = _predict(spec, c)
    if not ok:
        return [], "no candidate"
    db = tuning.database()
    keys = {c.name: _db_key(spec, c) for c in ok}
    for c in ok:
        entry = None if remeasure else db.lookup(keys[c.name])
        if entry is not None and policy == "measure" and entry.get("scope") == CLOSE_CALL_SCOPE:
            entry = None  # timed with default parameters only: measure it again, with its variants
        if entry is not None:
            c.measured_s = float(entry.get("time_s", math.inf))
            c.measure_note = entry.get("note", "")
        _set_params(spec, c, entry)
    decided_by = "cost model"
    have_all = all(c.measured_s is not None for c in ok)
    if policy == "measure" and not have_all:
        results = tuning.measure(spec, [c for c in ok if c.measured_s is None], s.tune_budget, placement)
        _record(spec, ok, results, keys)
        have_all, decided_by = True, "measured now"
    elif policy == "auto" and not have_all and (close := close_calls(ok, s.close_call)):
        missing = [c for c in close if c.measured_s is None]
        if missing:
            _record(spec, ok, tuning.measure(spec, missing, max(s.tune_budget, CLOSE_CALL_BUDGET_S), placement,
                                                       variants=False), keys,
                    CLOSE_CALL_SCOPE)
        decided_by = "measured now (close call)" if missing else "tuning database (close call)"
        rest = sorted((c for c in ok if c not in close), key=lambda c: c.predicted_s or math.inf)
        return sorted(close, key=_timed) + rest, decided_by
    elif policy in ("auto", "measure") and have_all and len(ok) > 0:
        decided_by = "tuning database"
    if policy != "heuristic" and have_all and any(c.measured_s is not None and c.measured_s < math.inf for c in ok):
        key = lambda c: (c.measured_s if c.measured_s is not None else math.inf, c.predicted_s or math.inf)  # noqa: E731
    else:
        decided_by = "cost model"
        key = lambda c: (c.predicted_s if c.predicted_s is not None else math.inf)  # noqa: E731
    order = sorted(ok, key=key)
    return order, decided_by


def explain(
    spec: ConvSpec,
    *,
    backend: str | None = None,
    device: str | Device | None = None,
    algorithm: str | None = None,
    placement: Any = None,
    policy: str | None = None,
    remeasure: bool = False,
) -> Explanation:
    """The candidate table for ``spec``, with the chosen candidate marked.

    ``remeasure`` (with policy ``measure``) ignores times already in the tuning database.
    """
    s = config.current()
    backend = backend if backend is not None else s.backend
    device = device if device is not None else s.device
    algorithm = algorithm if algorithm not in (None, "auto") else s.algorithm
    policy = policy or s.policy
    if policy not in config.POLICIES:
        raise ConvValueError(f"policy={policy!r} is not accepted: give one of {', '.join(config.POLICIES)}")
    cands = collect_candidates(spec, backend=backend, device=device, algorithm=algorithm, placement=placement,
                               settings=s)
    order, decided_by = decide(spec, cands, policy, s, placement, remeasure)
    if order:
        order[0].chosen = True
    return Explanation(spec, cands, policy, decided_by, order)


def _no_candidate_error(spec: ConvSpec, expl: Explanation, pinned: bool) -> Exception:
    reasons = [f"  {c.name}: {c.support.reason}" for c in expl.candidates]
    body = "\n".join(reasons) if reasons else "  (no candidates: no backend with devices is registered)"
    # Too large (device memory, or sizes a backend cannot index) for every candidate that
    # could otherwise run it: a MemoryError. A candidate that cannot do this kind of call at
    # any size (another op, a missing capability) says nothing about whether it fits.
    kinds = {c.support.kind for c in expl.candidates}
    if "memory" in kinds and kinds <= {"memory", "size", "unsupported", "capability"}:
        return DeviceMemoryError(f"{spec.describe()} does not fit on any device:\n{body}")
    what = "the pinned backend/device/algorithm cannot" if pinned else "no registered backend can"
    return UnsupportedError(f"{what} run {spec.describe()}:\n{body}")


_plans: dict[tuple[Any, ...], Plan] = {}
_plans_lock = threading.Lock()


def clear_plans() -> None:
    with _plans_lock:
        _plans.clear()


def _placement_key(placement: Any) -> Any:
    if placement is None:
        return None
    ctx = getattr(placement, "context", None)
    return ("device-array", getattr(ctx, "int_ptr", id(ctx)))


def plan(
    spec: ConvSpec,
    *,
    backend: str | None = None,
    device: str | Device | None = None,
    algorithm: str | None = None,
    placement: Any = None,
) -> Plan:
    """The Plan for ``spec`` (memoized per spec, pins, settings and data placement)."""
    if placement is not None and not is_device_array(placement):
        placement = None
    dev_key = device.id if isinstance(device, Device) else device
    s = config.current()
    key = (spec, backend, dev_key, algorithm, _placement_key(placement), s.key())
    with _plans_lock:
        cached = _plans.get(key)
    if cached is not None:
        return cached
    expl = explain(spec, backend=backend, device=device, algorithm=algorithm, placement=placement)
    if not expl.order:
        pinned = any(v not in (None, "auto") for v in (backend, device, algorithm, s.backend, s.device, s.algorithm))
        raise _no_candidate_error(spec, expl, pinned)
    kernel = None
    position = 0
    errors = []
    for position, cand in enumerate(expl.order):
        try:
            kernel = cand.prepare(spec)
            break
        except Exception as exc:
            if s.strict:
                raise
            errors.append((cand.name, f"{type(exc).__name__}: {exc}"))
    if kernel is None:
        raise UnsupportedError(
            f"every candidate failed to prepare {spec.describe()}:\n" + "\n".join(f"  {n}: {e}" for n, e in errors)
        )
    if position:
        for c in expl.order:
            c.chosen = False
        expl.order[position].chosen = True
        warnings.warn(
            f"clconv: {errors[0][0]} failed to prepare ({errors[0][1]}); using {expl.order[position].name}",
            FallbackWarning, stacklevel=3,
        )
    p = Plan(spec, expl, kernel, position)
    p.failures.extend(errors)
    with _plans_lock:
        _plans[key] = p
    return p
