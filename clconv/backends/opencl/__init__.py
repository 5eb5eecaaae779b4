"""The OpenCL backend: every convolution on every OpenCL device of every platform.

Registered as the built-in plugin ``opencl``. Devices are ``opencl:<p>:<d>``;
see ``runtime.py`` for contexts, queues and program caches, and
``algorithms/`` for one module per algorithm.
"""

from __future__ import annotations

import threading

from ...backend import Algorithm, Backend
from ...hookspecs import hookimpl
from ..._version import __version__
from . import runtime
from .algorithms.depthwise import Depthwise
from .algorithms.direct import Direct
from .runtime import OpenCLDevice


class OpenCLBackend(Backend):
    name = "opencl"
    version = __version__
    description = "OpenCL on every platform and device (pyopencl)"

    def __init__(self) -> None:
        self._devices: list[OpenCLDevice] | None = None
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._algorithms: list[Algorithm] = [Direct(), Depthwise()]

    def devices(self) -> list[OpenCLDevice]:  # type: ignore[override]
        with self._lock:
            if self._devices is None:
                self._devices, self.problems = runtime.enumerate_devices()
            return list(self._devices)

    def algorithms(self) -> list[Algorithm]:
        return list(self._algorithms)


@hookimpl
def clconv_register_backends(register):  # type: ignore[no-untyped-def]
    register(OpenCLBackend())
