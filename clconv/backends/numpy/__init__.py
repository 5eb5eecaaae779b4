"""The NumPy backend: the float64 reference (the oracle) and a fast im2col path on BLAS.

Registered as the built-in plugin ``numpy``. Its one device, ``numpy:cpu``, is
the host. It accepts NumPy arrays; a pyopencl input is never sent here by the
dispatcher unless it is pinned, and then it is rejected with a reason.
"""

from __future__ import annotations

import math
import os
import platform
from typing import Any

import numpy as np

from ...backend import Algorithm, Backend, Device, Kernel, Support
from ...costmodel import Cost, DeviceProfile, gemm_efficiency, io_bytes, spatial
from ...hookspecs import hookimpl
from ...spec import ConvSpec, is_device_array
from ..._version import __version__
from . import ops


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


class HostKernel(Kernel):
    """Runs a host function on NumPy arrays and returns a fresh array of the input's dtype."""

    def __init__(self, spec: ConvSpec, device: Device, algorithm: Algorithm, fn: Any):
        super().__init__(spec, device, algorithm)
        self._fn = fn

    def compute(self, input: Any, weight: Any, bias: Any, out: Any) -> np.ndarray:
        for name, arr in (("input", input), ("weight", weight), ("bias", bias)):
            if arr is not None and is_device_array(arr):
                from ...errors import UnsupportedError

                raise UnsupportedError(
                    f"{name} is a pyopencl array; the numpy backend takes NumPy arrays "
                    "(call .get() first, or let the dispatcher pick an OpenCL device)"
                )
        if out is not None:
            if not isinstance(out, np.ndarray):
                from ...errors import UnsupportedError

                raise UnsupportedError("out is a pyopencl array; the numpy backend writes NumPy arrays")
        # NaN/Inf that propagate and float16 overflow to Inf are the results the API promises,
        # not events to warn about (BLAS also trips the invalid flag on Inf in unused lanes)
        with np.errstate(invalid="ignore", over="ignore"):
            result = self._fn(self.spec, input, weight, bias)
            if out is not None:
                out[...] = result
                return out
            return np.ascontiguousarray(result, dtype=self.spec.dtype)


class Reference(Algorithm):
    """Exact: every product and sum in float64, rounded once to the output dtype."""

    id = "reference"
    family = "reference"
    priority = 0
    description = "float64 tap-by-tap contraction (the oracle)"

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        return Support.yes()

    def workspace_bytes(self, spec: ConvSpec, device: Device) -> int:
        padded = spec.batch * spec.in_channels
        for s, a, b in zip(spec.in_size, spec.pad_before, spec.pad_after):
            padded *= s + a + b
        # float64 copies of input (padded), weight and output (or the uncropped transposed buffer)
        return 8 * (padded + spec.nbytes("weight") // spec.itemsize + 2 * spec.nbytes("output") // spec.itemsize)

    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        return HostKernel(spec, device, self, ops.reference)

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        # float64 einsum, one per kernel tap: no BLAS, a few percent of peak
        return Cost(spec.flops, 4 * io_bytes(spec), math.prod(spec.kernel) + 2, 0.01)


class Im2col(Algorithm):
    """im2col + BLAS matmul in the input's precision (float16 computed in float32), chunked over the batch."""

    id = "im2col"
    family = "gemm"
    priority = 10
    description = "im2col (col2im for transposed) + batched BLAS matmul"

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        return Support.yes()

    def workspace_bytes(self, spec: ConvSpec, device: Device) -> int:
        return ops.im2col_workspace_bytes(spec)

    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        return HostKernel(spec, device, self, ops.im2col)

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        k = math.prod(spec.kernel)
        cols = 2.0 * spec.batch * spec.in_channels * k * spatial(spec) * 4
        if spec.transposed:
            m, kk = spec.out_per_group * k, spec.in_per_group
            launches = 3 + k  # one matmul, a strided add per tap
        else:
            m, kk = spec.out_per_group, spec.in_per_group * k
            launches = 3
        eff = gemm_efficiency(m, spec.batch * spatial(spec), kk, 0.6) / max(1.0, spec.groups ** 0.5 / 2)
        return Cost(spec.flops, io_bytes(spec) + cols, launches, eff)


class NumpyBackend(Backend):
    name = "numpy"
    version = __version__
    description = "NumPy on the host: float64 reference and im2col/BLAS"

    def __init__(self) -> None:
        self._devices = [
            Device(
                id="numpy:cpu",
                backend=self.name,
                name=_cpu_name(),
                kind="cpu",
                vendor=platform.machine(),
                driver=f"numpy {np.__version__}",
                memory_bytes=_total_memory(),
                compute_units=os.cpu_count() or 1,
                fp64=True,
                fp16=True,
                extra={"fp16_compute": "float32"},
            )
        ]
        self._algorithms: list[Algorithm] = [Im2col(), Reference()]

    def devices(self) -> list[Device]:
        return list(self._devices)

    def algorithms(self) -> list[Algorithm]:
        return list(self._algorithms)

    def calibrate(self, device: Device) -> DeviceProfile:
        """Measure BLAS matmul FLOP/s, copy bandwidth and per-call overhead on the host."""
        import time

        def timed(fn, reps=5):  # type: ignore[no-untyped-def]
            fn()
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            return sorted(ts)[len(ts) // 2]

        a = np.ones((1024, 1024), np.float32)
        peak = 2 * 1024**3 / timed(lambda: a @ a) / 1e9
        x = np.ones(8 * 2**20, np.float32)
        y = np.empty_like(x)
        bw = 2 * x.nbytes / timed(lambda: np.copyto(y, x)) / 1e9
        s = np.ones((4, 4), np.float32)
        launch = timed(lambda: s @ s, reps=50) * 1e6
        return DeviceProfile(peak, bw, launch, "calibrated")


@hookimpl
def clconv_register_backends(register):  # type: ignore[no-untyped-def]
    register(NumpyBackend())
