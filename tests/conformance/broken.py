"""Deliberately broken backends: each has one defect the conformance suite must catch.

Importable as a plugin module (``clconvtest_broken``-style entry points reuse it).
"""

from __future__ import annotations

import numpy as np

import clconv
from clconv.backend import Algorithm, Backend, Device, Kernel, Support
from clconv.backends.numpy.ops import reference


class _Kernel(Kernel):
    def __init__(self, spec, device, algorithm, defect):
        super().__init__(spec, device, algorithm)
        self.defect = defect

    def compute(self, x, w, b, out):
        spec = self.spec
        d = self.defect
        if d == "wrong-error-type" and spec.dtype == "float16":
            raise RuntimeError("float16 not implemented")
        if d == "padding-side":
            import dataclasses

            spec = dataclasses.replace(spec, pad_before=spec.pad_after, pad_after=spec.pad_before)
        y = reference(spec, x, w, b).astype(spec.dtype)
        if d == "nan-swallowed":
            y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
        if d == "mutates-input":
            x.reshape(-1)[0] += 1
        if out is None:
            return y
        if d == "unwritten":
            flat_out, flat_y = out.reshape(-1), y.reshape(-1)
            flat_out[1:] = flat_y[1:]
        else:
            out[...] = y
        return out


class _NoCheckKernel(_Kernel):
    """Overrides the base __call__, skipping the array checks, and then fails its own way."""

    def __call__(self, input, weight, bias=None, out=None):
        if input.shape != self.spec.input_shape:
            raise IndexError("shape mismatch")
        return self.compute(input, weight, bias, out)


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
        cls = _NoCheckKernel if self.defect == "no-input-checks" else _Kernel
        return cls(spec, device, self, self.defect)


DEFECTS = ("padding-side", "unwritten", "nan-swallowed", "mutates-input", "wrong-error-type", "no-input-checks", "none")


def make_backend(defect: str, only_2d: bool = False) -> Backend:
    name = f"broken-{defect}" + ("-2d" if only_2d else "")

    class B(Backend):
        version = "0.0.1"

        def devices(self):
            return [Device(id=f"{name}:0", backend=name, name="broken test device", kind="cpu", fp64=True, fp16=True,
                           memory_bytes=2**34)]

        def algorithms(self):
            return [_Alg(defect, only_2d)]

    B.name = name
    return B()


@clconv.hookimpl
def clconv_register_backends(register):
    register(make_backend("padding-side"))
