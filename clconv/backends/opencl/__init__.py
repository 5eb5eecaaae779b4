"""The OpenCL backend: every convolution on every OpenCL device of every platform.

Registered as the built-in plugin ``opencl``. Devices are ``opencl:<p>:<d>``;
see ``runtime.py`` for contexts, queues and program caches, and
``algorithms/`` for one module per algorithm.
"""

from __future__ import annotations

import threading

from ...backend import Algorithm, Backend
from ...costmodel import DeviceProfile
from ...hookspecs import hookimpl
from ..._version import __version__
from . import runtime
from .algorithms.depthwise import Depthwise
from .algorithms.direct import Direct
from .algorithms.direct_blocked import DirectBlocked
from .algorithms.fft import FFT
from .algorithms.im2col import Im2col
from .algorithms.winograd import WinogradF2, WinogradF4
from .runtime import OpenCLDevice


class OpenCLBackend(Backend):
    name = "opencl"
    version = __version__
    description = "OpenCL on every platform and device (pyopencl)"

    def __init__(self) -> None:
        self._devices: list[OpenCLDevice] | None = None
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._algorithms: list[Algorithm] = [Direct(), DirectBlocked(), Depthwise(), Im2col(), WinogradF2(), WinogradF4(), FFT()]

    def devices(self) -> list[OpenCLDevice]:  # type: ignore[override]
        with self._lock:
            if self._devices is None:
                self._devices, self.problems = runtime.enumerate_devices()
            return list(self._devices)

    def algorithms(self) -> list[Algorithm]:
        return list(self._algorithms)

    def source_hash(self) -> str:
        return runtime.sources_hash()

    def calibrate(self, device: OpenCLDevice) -> DeviceProfile:
        """Measure peak float32 FLOP/s, copy bandwidth and launch overhead with micro-kernels."""
        import time

        import numpy as np
        import pyopencl.array as cl_array

        iters = 4096
        prog = runtime.build_program(device, "calibrate.cl", {"ITERS": iters})
        q = device.queue
        wg = min(64, device.max_work_group_size)
        n = device.compute_units * 256 * wg // 64
        out = cl_array.empty(q, n, np.float32)

        def timed(fn, reps=5):  # type: ignore[no-untyped-def]
            fn()
            q.finish()
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                q.finish()
                ts.append(time.perf_counter() - t)
            return sorted(ts)[len(ts) // 2]

        t = timed(lambda: runtime.launch(q, prog, "peak_fma", (n,), (wg,), out.data, np.float32(0.999)))
        peak = n * iters * 8 * 16 * 2 / t / 1e9
        m = 16 * 2**20 // 16  # float4 elements in 16 MiB
        x = cl_array.zeros(q, m * 4, np.float32)
        y = cl_array.empty(q, m * 4, np.float32)
        t = timed(lambda: runtime.launch(q, prog, "copy", (m,), (wg,), x.data, y.data))
        bw = 2 * m * 16 / t / 1e9
        t = timed(lambda: runtime.launch(q, prog, "empty", (wg,), (wg,), out.data), reps=20)
        return DeviceProfile(peak, bw, t * 1e6, "calibrated")


@hookimpl
def clconv_register_backends(register):  # type: ignore[no-untyped-def]
    register(OpenCLBackend())
