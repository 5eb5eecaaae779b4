"""Runs conformance cases against a backend's (device, algorithm) targets.

Each numeric case is run through the algorithm's prepared kernel with ``out=``
filled with poison (a NaN with a payload no computation produces), and checked
against the float64 NumPy reference: every element written, NaN/Inf exactly
where the reference has them, normwise and elementwise error within the named
tolerance, inputs unchanged. Every array lies between guard regions (NaN that
no computation produces), so that a write past ``out`` or a read past an input
shows. The kernel is then called as ``clconv.conv2d`` calls it, without ``out=``
(twice, so that whatever a backend sets up after a first call runs too; a
deterministic algorithm must give the same values each time), and once more
after new values are written into the same input, weight and bias arrays (a
cache keyed by the array object must notice), with arrays that are not
C-contiguous (every other element of a buffer, guards in between), and with
read-only inputs. One case calls a kernel from several threads at once. A (device, algorithm) that declares it does not
support a case (``Algorithm.supports``) gets the case *skipped* with that
reason: listed, never counted as a pass. Bad-input cases must raise the right
exception and return nothing. Random specs come from hypothesis.
"""

from __future__ import annotations

import fnmatch
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .. import api, dispatch
from ..backend import Algorithm, Device
from ..backends.numpy.ops import reference
from ..errors import ClconvError, DeviceMemoryError, UnsupportedError
from ..plugins import get_host
from ..spec import ConvSpec
from . import cases as cases_mod
from .cases import Case, features_of
from .tolerances import ELEMENT_FACTOR, tolerance

STATUSES = ("passed", "failed", "skipped", "xfailed", "xpassed")

_POISON_BITS = {
    "float16": np.uint16(0x7E5A),
    "float32": np.uint32(0x7FC5A5A5),
    "float64": np.uint64(0x7FF8A5A5A5A5A5A5),
}
_UINT = {"float16": np.uint16, "float32": np.uint32, "float64": np.uint64}
# The guard regions around the inputs: a NaN of another payload, so that one read past an
# input and carried into the output is not taken for an unwritten element.
_GUARD_BITS = {
    "float16": np.uint16(0x7E3C),
    "float32": np.uint32(0x7FC3C3C3),
    "float64": np.uint64(0x7FF83C3C3C3C3C3C),
}
#: Elements of guard region before (at least) and after every array of a numeric case.
GUARD = 16


@dataclass(frozen=True)
class Target:
    """One (backend, device, algorithm) under test."""

    backend: str
    device: Device
    algorithm: Algorithm

    @property
    def id(self) -> str:
        return f"{self.device.id}/{self.algorithm.id}"


@dataclass
class CaseResult:
    id: str  # "<device>/<algorithm>/<case>"
    case: str
    device: str
    algorithm: str
    features: tuple[str, ...]
    status: str
    message: str = ""
    error: str = ""  # exception type and text, when one was raised
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "case": self.case, "device": self.device, "algorithm": self.algorithm,
            "features": list(self.features), "status": self.status, "message": self.message,
            "error": self.error, "duration_s": round(self.duration_s, 6),
        }


class CaseFailure(AssertionError):
    """A conformance check failed; the message says which and why."""


# ----------------------------------------------------------------- targets
def targets(backend: str, device: str | None = None, algorithm: str | None = None) -> list[Target]:
    """The (device, algorithm) pairs of ``backend`` to test, narrowed by ``device``/``algorithm``."""
    be = get_host().backend(backend)
    devices = be.devices()
    if device is not None:
        devices = [d for d in devices if d.id == device]
        if not devices:
            raise UnsupportedError(
                f"device={device!r} is not a device of backend {backend!r}; "
                f"devices: {', '.join(d.id for d in be.devices()) or 'none'}"
            )
    algs = be.algorithms()
    if algorithm is not None:
        algs = [a for a in algs if a.id == algorithm]
        if not algs:
            raise UnsupportedError(
                f"algorithm={algorithm!r} is not an algorithm of backend {backend!r}; "
                f"algorithms: {', '.join(a.id for a in be.algorithms()) or 'none'}"
            )
    return [Target(backend, d, a) for d in devices for a in algs]


# ----------------------------------------------------------------- arrays
def make_arrays(case: Case, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(case.seed if seed is None else seed)
    spec = case.spec
    x = rng.standard_normal(spec.input_shape).astype(case.dtype)
    w = rng.standard_normal(spec.weight_shape).astype(case.dtype)
    b = rng.standard_normal(spec.out_channels).astype(case.dtype) if spec.bias else None
    if case.kind == "nan" and x.size:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size)] = np.nan
        flat[rng.integers(0, flat.size)] = np.inf
        flat[rng.integers(0, flat.size)] = -np.inf
    return x, w, b


def poisoned(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    out = np.empty(shape, dtype=dtype)
    out.view(_UINT[dtype])[...] = _POISON_BITS[dtype]
    return out


def unwritten(out: np.ndarray) -> np.ndarray:
    return out.view(_UINT[out.dtype.name]) == _POISON_BITS[out.dtype.name]


class Guarded:
    """A C-contiguous array that is a view into a larger buffer, between guard regions.

    ``lead`` guard elements come before it (varied per case, so that arrays start at
    different alignments) and :data:`GUARD` after it; ``changed()`` says whether the
    guards still hold their bits.
    """

    def __init__(self, shape: tuple[int, ...], dtype: str, bits: Any, lead: int = GUARD):
        n = math.prod(shape)
        self.buffer = np.empty(lead + n + GUARD, dtype=dtype)
        self.buffer.view(_UINT[dtype])[...] = bits
        self.bits, self.lead, self.n = bits, lead, n
        self.array = self.buffer[lead:lead + n].reshape(shape)

    def changed(self) -> str:
        """'' when both guard regions are intact, else which one was written and where."""
        raw = self.buffer.view(_UINT[self.buffer.dtype.name])
        for side, region, offset, origin in (("before", raw[:self.lead], -self.lead, "from its start"),
                                             ("after", raw[self.lead + self.n:], 0, "past its end")):
            bad = np.flatnonzero(region != self.bits)
            if bad.size:
                where = ", ".join(str(int(i) + offset) for i in bad[:4])
                return f"{bad.size} element(s) {side} it (offset {where} {origin})"
        return ""


class Interleaved:
    """An array that is not C-contiguous: every other element of a buffer, guards in between."""

    def __init__(self, shape: tuple[int, ...], dtype: str, bits: Any, lead: int = 0):
        self.buffer = np.empty((*shape, 2), dtype=dtype)
        self.buffer.view(_UINT[dtype])[...] = bits
        self.bits = bits
        self.array = self.buffer[..., 1]

    def changed(self) -> str:
        raw = self.buffer.view(_UINT[self.buffer.dtype.name])[..., 0]
        bad = int((raw != self.bits).sum())
        return f"{bad} element(s) between its elements (it was every other element of a buffer)" if bad else ""


def guarded(data: np.ndarray | None, lead: int, kind: type = Guarded) -> Any:
    """``data`` copied into a :class:`Guarded` (or :class:`Interleaved`) array with NaN guards."""
    if data is None:
        return None
    g = kind(data.shape, data.dtype.name, _GUARD_BITS[data.dtype.name], lead)
    g.array[...] = data
    return g


def guarded_out(shape: tuple[int, ...], dtype: str, lead: int, kind: type = Guarded) -> Any:
    """A poisoned ``out`` between guards of the same poison."""
    return kind(shape, dtype, _POISON_BITS[dtype], lead)


def _where(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


# ----------------------------------------------------------------- checks
def expected(spec: ConvSpec, x: Any, w: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """The float64 reference of x, w, b and its elementwise magnitude bound (|w| * |x| + |b|)."""
    exact = reference(spec, x, w, b)
    bound = reference(spec, np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(w, np.float64)),
                      None if b is None else np.abs(np.asarray(b, np.float64)))
    return exact, bound


def check_result(spec: ConvSpec, family: str, x: Any, w: Any, b: Any, y: np.ndarray,
                 *, reference_: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Raise CaseFailure unless ``y`` is the convolution of x, w, b within tolerance.

    ``reference_``: :func:`expected` of the same arrays, when the caller has it already.
    """
    if not isinstance(y, np.ndarray):
        raise CaseFailure(f"returned {type(y).__name__}, not a NumPy array, for NumPy input")
    if y.shape != spec.output_shape:
        raise CaseFailure(f"output shape {y.shape}, expected {spec.output_shape}")
    if y.dtype != np.dtype(spec.dtype):
        raise CaseFailure(f"output dtype {y.dtype}, expected {spec.dtype}")
    holes = unwritten(y)
    if holes.any():
        raise CaseFailure(f"{int(holes.sum())} output element(s) left unwritten, first at {_where(holes)}")
    exact, abs_bound = reference_ if reference_ is not None else expected(spec, x, w, b)
    got = y.astype(np.float64)
    for what, a, e in (("NaN", np.isnan(got), np.isnan(exact)), ("Inf", np.isinf(got), np.isinf(exact))):
        if not np.array_equal(a, e):
            bad = a != e
            where = _where(bad)
            raise CaseFailure(
                f"{what} pattern differs from the reference at {int(bad.sum())} element(s), first at {where}: "
                f"got {float(got[where])!r}, expected {float(exact[where])!r}"
                + (" (a NaN or Inf was swallowed)" if e[where] else " (a NaN or Inf appeared)")
            )
    finite = np.isfinite(exact)
    if np.isinf(exact).any():
        inf_sign = np.sign(got[np.isinf(exact)]) != np.sign(exact[np.isinf(exact)])
        if inf_sign.any():
            raise CaseFailure("an infinite output has the wrong sign")
    name, tol = tolerance(family, spec.dtype)
    with np.errstate(invalid="ignore"):
        diff = np.where(finite, got - exact, 0.0)
    ref_norm = float(np.linalg.norm(np.where(finite, exact, 0.0)))
    err = float(np.linalg.norm(diff)) / (ref_norm or 1.0)
    limit = ELEMENT_FACTOR * tol * np.where(finite, abs_bound, np.inf) + np.finfo(spec.dtype).tiny
    over = np.abs(diff) > limit
    if err > tol or over.any():
        idx = _where(over) if over.any() else np.unravel_index(int(np.argmax(np.abs(diff))), diff.shape)
        idx = tuple(int(i) for i in idx)
        raise CaseFailure(
            f"normwise relative error {err:.3g} (tolerance {name} = {tol:g}); "
            f"{int(over.sum())} element(s) over the elementwise bound; worst at {idx}: "
            f"got {got[idx]:.9g}, expected {exact[idx]:.9g}"
        )


# ----------------------------------------------------------------- running
def _support(case_spec: ConvSpec, t: Target) -> tuple[bool, str]:
    cands = dispatch.collect_candidates(case_spec, backend=t.backend, device=t.device, algorithm=t.algorithm.id)
    c = next(c for c in cands if c.algorithm is t.algorithm or c.algorithm.id == t.algorithm.id)
    return c.support.ok, c.support.reason


def run_numeric(case: Case, t: Target) -> CaseResult:
    res = CaseResult(f"{t.id}/{case.id}", case.id, t.device.id, t.algorithm.id, case.features, "passed")
    start = time.perf_counter()
    calling = [""]  # which call of the protocol runs, for the message of an exception it raises
    try:
        spec = case.spec
        ok, reason = _support(spec, t)
        if not ok:
            res.status, res.message = "skipped", f"declared unsupported: {reason}"
            return res
        kernel = t.algorithm.prepare(spec, t.device)
        try:
            _call_protocol(case, t, kernel, calling)
        except UnsupportedError as exc:
            raise CaseFailure(f"{calling[0]}supports() accepted the case, but the call raised UnsupportedError: "
                              f"{exc}") from exc
    except CaseFailure as exc:
        res.status, res.message = "failed", str(exc)
    except Exception as exc:  # a backend error is a failure of the case, with its type
        res.status = "failed"
        res.message = (f"{calling[0]}raised {type(exc).__name__}: "
                       "a backend must compute the case or decline it in supports()")
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        res.duration_s = time.perf_counter() - start
    return res


def _call_protocol(case: Case, t: Target, kernel: Any, calling: list[str]) -> None:
    """The calls of one numeric case (see the module docstring); CaseFailure says which and why.

    ``calling[0]`` names the call in progress (an exception from the kernel leaves it set)."""
    spec, family = case.spec, t.algorithm.family
    lead = GUARD + case.seed % 8  # arrays at different alignments from case to case
    data = make_arrays(case)
    arrays = [guarded(a, lead) for a in data]
    ref = expected(spec, *data)

    def unchanged(when: str, arrays: list) -> None:
        for name, g, orig in zip(("input", "weight", "bias"), arrays, data):
            if g is None:
                continue
            if g.array.tobytes() != orig.tobytes():
                raise CaseFailure(f"{when}the call modified its {name}")
            where = g.changed()
            if where:
                raise CaseFailure(f"{when}the call wrote outside its {name}: {where}")

    def with_out(when: str, arrays: list, kind: type = Guarded) -> np.ndarray:
        g = guarded_out(spec.output_shape, spec.dtype, lead, kind)
        calling[0] = when
        y = kernel(*(None if a is None else a.array for a in arrays), out=g.array)
        if y is not g.array:
            raise CaseFailure(f"{when}the kernel did not return the `out` array it was given "
                              "(out= must be written and returned)")
        unchanged(when, arrays)
        where = g.changed()
        if where:
            raise CaseFailure(f"{when}the call wrote outside `out`: {where}")
        _checked(when, spec, family, data, y, ref)
        return y

    def without_out(when: str, arrays: list) -> Any:
        calling[0] = when
        y = kernel(*(None if a is None else a.array for a in arrays))
        unchanged(when, arrays)
        _checked(when, spec, family, data, y, ref)
        return y

    first = with_out("", arrays)
    # The path of clconv.conv2d: no out=, and a second time, for whatever a backend sets up
    # after a first call (a fast path, cached buffers).
    kept = []
    for n in (2, 3):
        y = without_out(f"call {n}, without out=: ", arrays)
        kept.append((y, y.copy()))
        if t.algorithm.deterministic and not np.array_equal(y, first, equal_nan=True):
            bad = ~((y == first) | (np.isnan(y) & np.isnan(first)))
            raise CaseFailure(
                f"call {n}, without out=: {int(bad.sum())} element(s) differ from call 1 on the same inputs, "
                f"first at {_where(bad)}, but the algorithm declares itself deterministic"
            )
    # New values in the same array objects: a cache keyed by the object must see them.
    data = make_arrays(case, seed=case.seed + 1)
    for g, new in zip(arrays, data):
        if g is not None:
            g.array[...] = new
    ref = expected(spec, *data)
    with_out("call 4, after new values were written into the same input, weight and bias arrays: ", arrays)
    without_out("call 5, after new values were written into the same input, weight and bias arrays, "
                "without out=: ", arrays)
    for y, copy in kept:
        if not np.array_equal(y, copy, equal_nan=True):
            raise CaseFailure("a result returned without out= changed when the kernel was called again "
                              "(a returned array must belong to the caller, not be reused by the kernel)")
    # Arrays that are not C-contiguous (NHWC data viewed as NCHW, a slice), out= too.
    with_out("call 6, with input, weight, bias and out that are not C-contiguous: ",
             [guarded(a, lead, Interleaved) for a in data], Interleaved)
    # Read-only arrays (a memory-mapped file, a broadcast): a kernel only reads its inputs.
    readonly = [guarded(a, lead) for a in data]
    for g in readonly:
        if g is not None:
            g.array.flags.writeable = False
    without_out("call 7, with read-only input, weight and bias, without out=: ", readonly)


def _checked(when: str, spec: ConvSpec, family: str, data: tuple, y: Any,
             ref: tuple[np.ndarray, np.ndarray]) -> None:
    try:
        check_result(spec, family, *data, y, reference_=ref)
    except CaseFailure as exc:
        hint = ""
        if "appeared)" in str(exc):
            hint = (" (the suite's arrays lie between NaN guard regions: this can be a read past the bounds"
                    " of the input, weight or bias)")
        raise CaseFailure(f"{when}{exc}{hint}") from None


def _snapshot(*arrays: Any) -> list[bytes | None]:
    return [None if a is None else np.asarray(a).tobytes() for a in arrays]


# ----------------------------------------------------------------- bad input
@dataclass(frozen=True)
class BadCase:
    """A call that must raise ``expected`` (and return nothing, and change nothing)."""

    id: str
    expected: type
    call: Callable[[Target, dict[str, Any]], Any]
    features: tuple[str, ...] = ("bad-input",)
    #: A small spec of the same kind: when the target declares it unsupported, the case is skipped.
    applies_to: tuple[str, tuple, tuple, dict] = ("conv", (2, 4, 8, 8), (6, 4, 3, 3), {"padding": 1})
    #: Only for devices that declare their memory size (``memory_bytes`` 0 means unknown: no check).
    needs_memory_size: bool = False


def _bad_arrays(dtype: str = "float32") -> dict[str, Any]:
    rng = np.random.default_rng(7)
    return {
        "x": rng.standard_normal((2, 4, 8, 8)).astype(dtype),
        "w": rng.standard_normal((6, 4, 3, 3)).astype(dtype),
        "b": rng.standard_normal(6).astype(dtype),
    }


def _pins(t: Target) -> dict[str, Any]:
    return {"backend": t.backend, "device": t.device.id, "algorithm": t.algorithm.id}


class WarmUpError(Exception):
    """The valid calls made before a bad one raised."""


def _kernel(t: Target, a: dict[str, Any]) -> Any:
    """A kernel for the bad arrays' spec, after two valid calls without out= with the same weight
    and bias: a backend may take another path once it has run (a fast path), and the checks
    must hold there too."""
    spec = ConvSpec.from_arrays("conv", 2, a["x"], a["w"], a["b"], padding=1)
    kernel = t.algorithm.prepare(spec, t.device)
    try:
        for _ in range(2):
            kernel(a["x"], a["w"], a["b"])
    except Exception as exc:
        raise WarmUpError(f"{type(exc).__name__}: {exc}") from exc
    return kernel


def _huge_call(t: Target, a: dict[str, Any]) -> Any:
    # Zero-stride views describe a 2 TiB input without allocating it.
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(2**16, 64, 512, 256), strides=(0, 0, 0, 0))
    w = np.zeros((64, 64, 3, 3), np.float32)
    return api.conv2d(x, w, padding=1, **_pins(t))


BAD_CASES: list[BadCase] = [
    BadCase("bad-kernel-input-shape", ValueError,
            lambda t, a: _kernel(t, a)(a["x"][:, :3], a["w"], a["b"])),
    BadCase("bad-kernel-input-dtype", TypeError,
            lambda t, a: _kernel(t, a)(a["x"].astype(np.float64), a["w"], a["b"])),
    BadCase("bad-kernel-missing-bias", ValueError,
            lambda t, a: _kernel(t, a)(a["x"], a["w"], None)),
    BadCase("bad-kernel-out-shape", ValueError,
            lambda t, a: _kernel(t, a)(a["x"], a["w"], a["b"], out=np.empty((2, 6, 8, 7), np.float32))),
    BadCase("bad-kernel-out-readonly", ValueError,
            lambda t, a: _kernel(t, a)(a["x"], a["w"], a["b"], out=np.broadcast_to(np.float32(0), (2, 6, 8, 8)))),
    BadCase("bad-api-stride-zero", ValueError,
            lambda t, a: api.conv2d(a["x"], a["w"], a["b"], stride=0, **_pins(t))),
    BadCase("bad-api-int-dtype", TypeError,
            lambda t, a: api.conv2d(a["x"].astype(np.int32), a["w"].astype(np.int32), **_pins(t))),
    BadCase("bad-api-channels", ValueError,
            lambda t, a: api.conv2d(a["x"][:, :3], a["w"], a["b"], **_pins(t))),
    BadCase("bad-api-reflect-too-wide", ValueError,
            lambda t, a: api.conv2d(a["x"], a["w"], padding=8, padding_mode="reflect", **_pins(t))),
    BadCase("bad-too-large-for-device", DeviceMemoryError, _huge_call,
            applies_to=("conv", (2, 64, 8, 8), (64, 64, 3, 3), {"padding": 1}), needs_memory_size=True),
]


def run_bad(case: BadCase, t: Target) -> CaseResult:
    res = CaseResult(f"{t.id}/{case.id}", case.id, t.device.id, t.algorithm.id, case.features, "passed")
    op, xs, ws, params = case.applies_to
    ok, reason = _support(ConvSpec.from_shapes(op, xs, ws, bias=True, **params), t)
    if ok and case.needs_memory_size and not t.device.memory_bytes:
        # the dispatcher cannot refuse a call too large for it, and would try to run it
        ok, reason = False, f"{t.device.id} declares no memory size (memory_bytes=0: unknown, no check)"
    if not ok:
        res.status, res.message = "skipped", f"declared unsupported: {reason}"
        return res
    start = time.perf_counter()
    arrays = _bad_arrays()
    before = _snapshot(*arrays.values())
    try:
        returned = case.call(t, arrays)
    except WarmUpError as exc:
        res.status, res.message = "failed", "the valid calls before the bad one raised"
        res.error = str(exc)
    except case.expected as exc:
        if not str(exc).strip():
            res.status, res.message = "failed", f"raised {type(exc).__name__} with an empty message"
    except Exception as exc:
        res.status = "failed"
        res.message = f"expected {case.expected.__name__}, got {type(exc).__name__}"
        res.error = f"{type(exc).__name__}: {exc}"
    else:
        res.status = "failed"
        res.message = f"expected {case.expected.__name__}, but the call returned {type(returned).__name__}"
    if _snapshot(*arrays.values()) != before:
        res.status, res.message = "failed", "the call modified its arguments"
    res.duration_s = time.perf_counter() - start
    return res


# ----------------------------------------------------------------- threads
#: The concurrent-calls case: one kernel called from several threads, on the first of these
#: layers of moderate size the target supports.
CONCURRENT = [
    Case("concurrent-calls", fn, xs, ws, True, params, "float32", seed=4242, features=("concurrency",))
    for fn, xs, ws, params in (
        ("conv2d", (2, 8, 12, 12), (8, 8, 3, 3), (("padding", 1),)),
        ("conv2d", (2, 8, 12, 12), (8, 1, 3, 3), (("groups", 8), ("padding", 1))),
        ("conv_transpose2d", (2, 8, 6, 6), (8, 4, 4, 4), (("padding", 1), ("stride", 2))),
        ("conv1d", (2, 8, 40), (8, 8, 3), (("padding", 1),)),
    )
]
THREADS, CALLS_PER_THREAD = 4, 6


def run_concurrent(t: Target) -> CaseResult:
    """One kernel called from several threads at once (a server's requests on one model): the
    same weight and bias, each thread its own input, with and without ``out=``."""
    import threading

    case = CONCURRENT[0]
    res = CaseResult(f"{t.id}/{case.id}", case.id, t.device.id, t.algorithm.id, case.features, "passed")
    start = time.perf_counter()
    for case in CONCURRENT:
        ok, reason = _support(case.spec, t)
        if ok:
            break
    else:
        res.status, res.message = "skipped", f"declared unsupported: {reason}"
        return res
    spec = case.spec
    try:
        kernel = t.algorithm.prepare(spec, t.device)
        _, w, b = make_arrays(case)
        inputs = [make_arrays(case, seed=case.seed + 1 + i)[0] for i in range(THREADS)]
        refs = [expected(spec, x, w, b) for x in inputs]
        problems: list[tuple[str, str]] = []
        barrier = threading.Barrier(THREADS)

        def work(i: int) -> None:
            barrier.wait()
            for n in range(CALLS_PER_THREAD):
                where = f"thread {i + 1} of {THREADS}, call {n + 1}: "
                try:
                    if n % 2:
                        y = kernel(inputs[i], w, b)
                    else:
                        out = poisoned(spec.output_shape, spec.dtype)
                        y = kernel(inputs[i], w, b, out=out)
                        if y is not out:
                            raise CaseFailure("the kernel did not return the `out` array it was given")
                    check_result(spec, t.algorithm.family, inputs[i], w, b, y, reference_=refs[i])
                except CaseFailure as exc:
                    problems.append((f"{where}{exc}", ""))
                    return
                except Exception as exc:
                    problems.append((f"{where}raised {type(exc).__name__}", f"{type(exc).__name__}: {exc}"))
                    return

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if problems:
            res.status = "failed"
            res.message = (f"{len(problems)} of {THREADS} threads calling one kernel at once got a wrong result "
                           f"or an error (kernels must be safe to call from several threads); first: {problems[0][0]}")
            res.error = problems[0][1]
    except Exception as exc:
        res.status = "failed"
        res.message = f"raised {type(exc).__name__}: a backend must compute the case or decline it in supports()"
        res.error = f"{type(exc).__name__}: {exc}"
    res.duration_s = time.perf_counter() - start
    return res


# ----------------------------------------------------------------- random
def run_random(t: Target, examples: int) -> CaseResult:
    """Random specs from hypothesis; a failure is shrunk to a minimal example."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from . import strategies

    res = CaseResult(f"{t.id}/random", "random", t.device.id, t.algorithm.id, ("random",), "passed")
    start = time.perf_counter()
    ran = {"n": 0, "skipped": 0}

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(strategies.cases(), st.sampled_from(("float32",)))
    def check(case: Case, _dtype: str) -> None:
        r = run_numeric(case, t)
        if r.status == "skipped":
            ran["skipped"] += 1
            return
        ran["n"] += 1
        if r.status == "failed":
            raise CaseFailure(f"{case.spec.describe()}: {r.message} {r.error}".strip())

    try:
        check()
        if ran["n"] == 0:
            res.status = "skipped"
            res.message = f"declared unsupported: all {ran['skipped']} random specs"
        else:
            res.message = f"{ran['n']} random specs passed, {ran['skipped']} declared unsupported"
    except CaseFailure as exc:
        res.status, res.message = "failed", f"minimal failing random spec: {exc}"
    except Exception as exc:
        res.status, res.message = "failed", f"random specs: {type(exc).__name__}: {exc}"
        res.error = traceback.format_exc(limit=3)
    res.duration_s = time.perf_counter() - start
    return res


# ----------------------------------------------------------------- lists
@dataclass
class Expectations:
    """Skip and xfail lists: fnmatch patterns over result ids (``device/algorithm/case``)."""

    skip: dict[str, str] = field(default_factory=dict)
    xfail: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def read(path: str | Path | None) -> dict[str, str]:
        """One pattern per line, ``# reason`` after it; blank lines and ``#`` lines are ignored."""
        if path is None:
            return {}
        out: dict[str, str] = {}
        for line in Path(path).read_text().splitlines():
            text, _, reason = line.partition("#")
            if text.strip():
                out[text.strip()] = reason.strip()
        return out

    def match(self, which: dict[str, str], result_id: str) -> str | None:
        for pat, reason in which.items():
            if fnmatch.fnmatchcase(result_id, pat) or fnmatch.fnmatchcase(result_id, f"*/{pat}"):
                return reason or pat
        return None


def apply_expectations(res: CaseResult, exp: Expectations) -> CaseResult:
    reason = exp.match(exp.xfail, res.id)
    if reason is not None:
        if res.status == "failed":
            res.status, res.message = "xfailed", f"expected failure ({reason}): {res.message}"
        elif res.status == "passed":
            res.status, res.message = "xpassed", f"passed but listed as xfail ({reason})"
    return res


# ----------------------------------------------------------------- suite
@dataclass
class PlannedCase:
    id: str
    target: Target
    run: Callable[[], CaseResult]
    skip_reason: str | None = None
    features: tuple[str, ...] = ()  # the case's rows of the pass table, also when it is skipped


def plan_suite(
    backend: str,
    device: str | None = None,
    algorithm: str | None = None,
    level: str = "quick",
    expectations: Expectations | None = None,
) -> list[PlannedCase]:
    """Every case of the level for every target, in run order (cheap: nothing runs yet)."""
    exp = expectations or Expectations()
    nums = cases_mod.numeric_cases(level)
    out: list[PlannedCase] = []
    for t in targets(backend, device, algorithm):
        problem = t.device.problem()
        items: list[tuple[str, Callable[[], CaseResult], tuple[str, ...]]] = []
        for c in nums:
            items.append((c.id, (lambda c=c, t=t: run_numeric(c, t)), c.features))
        for bc in BAD_CASES:
            items.append((bc.id, (lambda bc=bc, t=t: run_bad(bc, t)), bc.features))
        items.append((CONCURRENT[0].id, (lambda t=t: run_concurrent(t)), CONCURRENT[0].features))
        n = cases_mod.random_examples(level)
        items.append(("random", (lambda t=t, n=n: run_random(t, n)), ("random",)))
        for cid, fn, feats in items:
            rid = f"{t.id}/{cid}"
            skip = exp.match(exp.skip, rid)
            if problem:
                skip = f"device unusable: {problem}"
            out.append(PlannedCase(rid, t, fn, skip, feats))
    return out


def execute(pc: PlannedCase, exp: Expectations | None = None) -> CaseResult:
    if pc.skip_reason is not None:
        case_id = pc.id.split("/")[-1]
        return CaseResult(pc.id, case_id, pc.target.device.id, pc.target.algorithm.id, pc.features, "skipped",
                          f"skipped by list: {pc.skip_reason}" if not pc.skip_reason.startswith("device unusable")
                          else pc.skip_reason)
    return apply_expectations(pc.run(), exp or Expectations())


def features_table(results: Iterable[CaseResult]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for r in results:
        for f in r.features or ("other",):
            row = table.setdefault(f, {s: 0 for s in STATUSES})
            row[r.status] += 1
    return dict(sorted(table.items()))


def summarize(results: Iterable[CaseResult]) -> dict[str, int]:
    s = {k: 0 for k in STATUSES}
    for r in results:
        s[r.status] += 1
    return s


def is_failure(summary: dict[str, int]) -> bool:
    """Failures and unexpected passes (an xfail that passed should be removed from the list) fail a
    run, and so does a run in which no case passed (an unusable device, a backend that declines
    everything, a skip list that matches every case): it proved nothing, and must not be recorded
    or read as a pass."""
    return summary["failed"] > 0 or summary["xpassed"] > 0 or summary["passed"] == 0


__all__ = [
    "BAD_CASES", "BadCase", "CaseFailure", "CaseResult", "Expectations", "PlannedCase", "Target",
    "check_result", "execute", "features_table", "plan_suite", "run_bad", "run_numeric", "run_random",
    "summarize", "targets", "features_of", "ClconvError",
]
