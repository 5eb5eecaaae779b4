"""Deliberately broken backends: each has one defect the conformance suite must catch.

Importable as a plugin module (``clconvtest_broken``-style entry points reuse it).
"""

from __future__ import annotations

import ctypes
import dataclasses
import time

import numpy as np

import clconv
from clconv.backend import Algorithm, Backend, Device, Kernel, Support
from clconv.backends.numpy.ops import reference


def _beside(arr, offset, count=1):
    """``count`` elements of the memory ``offset`` elements from the start of ``arr`` (a bug's view)."""
    raw = (ctypes.c_char * (count * arr.itemsize)).from_address(arr.ctypes.data + offset * arr.itemsize)
    return np.frombuffer(raw, arr.dtype)


class _Kernel(Kernel):
    def __init__(self, spec, device, algorithm, defect):
        super().__init__(spec, device, algorithm)
        self.defect = defect
        self.calls = 0
        self.kept = {}

    def compute(self, x, w, b, out):
        spec = self.spec
        d = self.defect
        self.calls += 1
        if d == "wrong-error-type" and spec.dtype == "float16":
            raise RuntimeError("float16 not implemented \x1b[31m(the build log, in colour)\x1b[0m")
        if d == "device-lost":
            raise RuntimeError("device lost")
        if d == "padding-side":
            spec = dataclasses.replace(spec, pad_before=spec.pad_after, pad_after=spec.pad_before)
        if d == "reads-as-contiguous":  # hands the arrays' memory to C code as if it were C-contiguous
            x, w = (_beside(a, 0, a.size).reshape(a.shape) for a in (x, w))
        if d == "needs-writable-input":  # a binding that takes a writable buffer of every array
            ctypes.c_char.from_buffer(np.ascontiguousarray(x))
        if d == "stale-weights":  # a weight cache keyed by the array object, blind to new values
            w = self.kept.setdefault("weight", w.copy())
        y = reference(spec, x, w, b)
        if d == "reads-before-input" and any(spec.pad_before) and x.base is not None:
            # a border check off by one, its read masked by a zero weight: harmless on finite memory
            y.reshape(-1)[0] += 0.0 * float(_beside(x, -1)[0])
        y = y.astype(spec.dtype)
        if d == "nan-swallowed":
            y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        if d == "nondeterministic" and self.calls % 2 == 0:  # another summation order: 1 ulp off
            flat = y.reshape(-1)[::3]
            flat[...] = np.where(np.isfinite(flat), np.nextafter(flat, np.inf), flat)
        if d == "mutates-input":
            x.reshape(-1)[0] += 1
        if d == "mutates-weight":
            w.reshape(-1)[-1] *= 2
        if d == "not-thread-safe":  # one staging array for every call, and a wait for the "device"
            staged = self.kept.setdefault("staging", np.empty_like(y))
            staged[...] = y
            time.sleep(0.002)
            y = staged.copy()
        if out is None:
            if d == "result-dtype":
                return y.astype(np.float64)
            if d == "reused-result":  # hands out the kernel's own staging array
                staged = self.kept.setdefault("result", np.empty_like(y))
                staged[...] = y
                return staged
            return y
        if d == "ignores-out":
            return y
        if d == "unwritten":
            flat_out, flat_y = out.reshape(-1), y.reshape(-1)
            flat_out[1:] = flat_y[1:]
        else:
            out[...] = y
        if d == "writes-as-contiguous":
            out[...] = 0  # (the suite's poison would show the elements the raw write below misses)
            _beside(out, 0, out.size)[...] = y.reshape(-1)
        if d == "writes-past-out" and out.base is not None:  # only where the suite put a guard region
            _beside(out, out.size)[0] = 0
        return out


class _NoCheckKernel(_Kernel):
    """Overrides the base __call__, skipping the array checks, and then fails its own way."""

    def __call__(self, input, weight, bias=None, out=None):
        if input.shape != self.spec.input_shape:
            raise IndexError("shape mismatch")
        return self.compute(input, weight, bias, out)


class _FastPathKernel(_Kernel):
    """Checks its arrays on the first two calls only, then takes a fast path that checks nothing."""

    def __call__(self, input, weight, bias=None, out=None):
        if self.calls >= 2:
            return self.compute(input, weight, bias, out)
        return super().__call__(input, weight, bias, out)


class _Alg(Algorithm):
    id = "broken"
    family = "direct"

    def __init__(self, defect, only_2d=False):
        self.defect = defect
        self.only_2d = only_2d

    def supports(self, spec, device):
        if self.only_2d and spec.ndim != 2:
            return Support.no("this backend does 2D only")
        return Support.yes()

    def prepare(self, spec, device):
        cls = {"no-input-checks": _NoCheckKernel, "fast-path-no-checks": _FastPathKernel}.get(self.defect, _Kernel)
        return cls(spec, device, self, self.defect)


DEFECTS = (
    "padding-side", "unwritten", "nan-swallowed", "mutates-input", "wrong-error-type", "no-input-checks", "none",
    "mutates-weight", "ignores-out", "result-dtype", "reused-result", "stale-weights", "nondeterministic",
    "writes-past-out", "reads-before-input", "reads-as-contiguous",
    "writes-as-contiguous", "needs-writable-input", "fast-path-no-checks",
    "device-lost", "not-thread-safe",
)


def make_backend(defect: str, only_2d: bool = False, memory_bytes: int = 2**34) -> Backend:
    name = f"broken-{defect}" + ("-2d" if only_2d else "") + ("" if memory_bytes else "-nomem")

    class B(Backend):
        version = "0.0.1"

        def devices(self):
            return [Device(id=f"{name}:0", backend=name, name="broken test device", kind="cpu", fp64=True, fp16=True,
                           memory_bytes=memory_bytes)]

        def algorithms(self):
            return [_Alg(defect, only_2d)]

    B.name = name
    return B()


@clconv.hookimpl
def clconv_register_backends(register):
    register(make_backend("padding-side"))
