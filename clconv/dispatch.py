"""The dispatcher: from a ConvSpec to a Plan on one (backend, device, algorithm).

It collects every candidate the registered backends offer, asks each
algorithm whether it supports the spec on the device (``Algorithm.supports``,
whose reasons it reports and never repeats), rejects the ones that cannot run
it, and ranks the rest. The whole table is what ``clconv.explain`` returns.

Ranking (this first dispatcher): data placement first (a pyopencl input stays
on its device), then device kind (gpu > npu > accelerator > cpu), then the
algorithm's ``priority``, then registration order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

from .backend import Algorithm, Backend, Device, Kernel, Support, check_memory, format_bytes
from .errors import ConvTypeError, DeviceMemoryError, UnsupportedError
from .plugins import get_host
from .spec import ConvSpec, is_device_array

_KIND_RANK = {"gpu": 3, "npu": 2, "accelerator": 1, "cpu": 0}


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
    chosen: bool = False

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.device.id}/{self.algorithm.id}"

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
            "measured_s": self.measured_s,
            "workspace_bytes": self.workspace_bytes,
            "chosen": self.chosen,
        }


@dataclass
class Explanation:
    """The candidate table of one dispatch decision."""

    spec: ConvSpec
    candidates: list[Candidate]
    policy: str = "rank"

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
            "chosen": chosen.row() if chosen else None,
            "candidates": self.rows(),
        }

    def __str__(self) -> str:
        lines = [self.spec.describe(), f"policy: {self.policy}"]
        for c in self.candidates:
            mark = "*" if c.chosen else " "
            status = "ok" if c.support.ok else f"rejected: {c.support.reason}"
            ws = "" if c.workspace_bytes is None else f" workspace {format_bytes(c.workspace_bytes)}"
            lines.append(f" {mark} {c.name}: {status}{ws}")
        return "\n".join(lines)


class Plan:
    """A spec bound to its chosen candidate and prepared kernel. Call it to run."""

    def __init__(self, spec: ConvSpec, explanation: Explanation, kernel: Kernel):
        self.spec = spec
        self.explanation = explanation
        self.kernel = kernel

    @property
    def candidate(self) -> Candidate:
        chosen = self.explanation.chosen
        assert chosen is not None
        return chosen

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
        return self.kernel(input, weight, bias, out=out)

    def __repr__(self) -> str:
        c = self.candidate
        return f"<Plan {self.spec.describe()} on {c.name}>"


# --------------------------------------------------------------------- choice
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
        raise ConvTypeError(f"algorithm={algorithm!r} has type {type(algorithm).__name__}: give an algorithm id (str) or 'auto'")
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
        ids = [d.id for _, b in chosen for d in b.devices()]
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
) -> list[Candidate]:
    """Every candidate for ``spec`` (within the pins), each with its Support."""
    backends = get_host().backends()
    selected, device_id, algorithm_id = _select(backends, backend, device, algorithm)
    out: list[Candidate] = []
    for bname, be in selected:
        for dev in be.devices():
            if device_id is not None and dev.id != device_id:
                continue
            for alg in be.algorithms():
                if algorithm_id is not None and alg.id != algorithm_id:
                    continue
                out.append(_evaluate(spec, bname, dev, alg, placement))
    return out


def _evaluate(spec: ConvSpec, bname: str, dev: Device, alg: Algorithm, placement: Any) -> Candidate:
    try:
        support = alg.supports(spec, dev)
        ws = alg.workspace_bytes(spec, dev) if support.ok else None
        if support.ok:
            support = check_memory(spec, dev, alg.memory_bytes(spec, dev))
        if support.ok:
            support = _placement_owner_check(dev, placement)
    except Exception as exc:  # supports() must never raise; report it if it does
        support = Support.no(f"supports() raised {type(exc).__name__}: {exc}", "error")
        ws = None
    return Candidate(bname, dev, alg, support, workspace_bytes=ws)


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Supported candidates, best first (see the module docstring)."""
    ok = [c for c in candidates if c.support.ok]
    order = {id(c): i for i, c in enumerate(ok)}
    return sorted(
        ok,
        key=lambda c: (
            -_KIND_RANK.get(c.device.kind, 0),
            -getattr(c.algorithm, "priority", 0),
            order[id(c)],
        ),
    )


def explain(
    spec: ConvSpec,
    *,
    backend: str | None = None,
    device: str | Device | None = None,
    algorithm: str | None = None,
    placement: Any = None,
) -> Explanation:
    """The candidate table for ``spec``, with the chosen candidate marked."""
    cands = collect_candidates(spec, backend=backend, device=device, algorithm=algorithm, placement=placement)
    best = rank(cands)
    if best:
        best[0].chosen = True
    return Explanation(spec, cands)


def _no_candidate_error(spec: ConvSpec, expl: Explanation, pinned: bool) -> Exception:
    reasons = [f"  {c.name}: {c.support.reason}" for c in expl.candidates]
    body = "\n".join(reasons) if reasons else "  (no candidates: no backend with devices is registered)"
    # Too large everywhere (device memory, or sizes a backend cannot index): a MemoryError.
    if expl.candidates and all(c.support.kind in ("memory", "size") for c in expl.candidates) and any(
        c.support.kind == "memory" for c in expl.candidates
    ):
        return DeviceMemoryError(f"{spec.describe()} does not fit on any device:\n{body}")
    what = "the pinned backend/device/algorithm" if pinned else "no registered backend"
    return UnsupportedError(f"{what} cannot run {spec.describe()}:\n{body}")


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
    """The Plan for ``spec`` (memoized per spec, pins and data placement)."""
    if placement is not None and not is_device_array(placement):
        placement = None
    dev_key = device.id if isinstance(device, Device) else device
    key = (spec, backend, dev_key, algorithm, _placement_key(placement))
    with _plans_lock:
        cached = _plans.get(key)
    if cached is not None:
        return cached
    expl = explain(spec, backend=backend, device=device, algorithm=algorithm, placement=placement)
    chosen = expl.chosen
    if chosen is None:
        pinned = any(v not in (None, "auto") for v in (backend, device, algorithm))
        raise _no_candidate_error(spec, expl, pinned)
    kernel = chosen.algorithm.prepare(spec, chosen.device)
    p = Plan(spec, expl, kernel)
    with _plans_lock:
        _plans[key] = p
    return p
