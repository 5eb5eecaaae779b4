"""The OpenVINO backend: devices from ``openvino.Core``, one algorithm (``graph``).

Devices are ``Core().available_devices`` with the facts their properties give
(FULL_DEVICE_NAME, DEVICE_TYPE, DEVICE_ARCHITECTURE, OPTIMIZATION_CAPABILITIES,
memory and execution units where the plugin reports them). What a device can
compute follows from OPTIMIZATION_CAPABILITIES:

- ``FP32``: float32 models run in float32. clconv asks for it explicitly
  (``INFERENCE_PRECISION_HINT=f32``): the CPU plugin's default on CPUs with bf16
  units is bfloat16, about 3 significant digits, far outside float32 tolerances.
- ``FP16``, or ``FP32`` (the model's float16 inputs are then computed in float32
  and rounded once to float16): float16.
- ``FP64``: float64. No OpenVINO device reports it today; the CPU plugin converts
  float64 models to float32, which would pass for float64 only by luck, so
  float64 is declined with that reason.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import openvino as ov

from clconv.backend import Algorithm, Backend, Device, Kernel, Support, first_failure, format_bytes
from clconv.costmodel import Cost, DeviceProfile, gemm_efficiency, io_bytes, spatial
from clconv.errors import UnsupportedError
from clconv.plugins import PluginWarning
from clconv.spec import ConvSpec, is_device_array

from . import _host
from ._version import __version__
from .graph import bias_shape, build_model, ov_weight_shape

_KINDS = {"CPU": "cpu", "GPU": "gpu", "NPU": "npu"}

#: Compiled models kept per algorithm (each holds the plugin's compiled kernels).
CACHE_SIZE = 128


def _prop(core: ov.Core, device: str, name: str, supported: set[str]) -> Any:
    if name not in supported:
        return None
    try:
        return core.get_property(device, name)
    except Exception:  # a property some plugin lists but cannot convert (COMPATIBILITY_CHECK)
        return None


class OpenVINODevice(Device):
    """A clconv Device for one OpenVINO device name (``extra['ov_device']``: CPU, GPU.0, NPU...)."""

    core: ov.Core | None = None
    _problem: str | None = None

    @property
    def ov_device(self) -> str:
        return str(self.extra["ov_device"])

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(self.extra.get("optimization_capabilities", ()))

    @property
    def fp32(self) -> bool:
        return "FP32" in self.capabilities

    def compile_config(self) -> dict[str, str]:
        """Plugin settings: one request at a time, float32 inference wherever the device has it."""
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if self.fp32:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        return config

    def problem(self) -> str:
        """Compile and run a tiny convolution once; the error, if that fails."""
        if self._problem is None:
            try:
                spec = ConvSpec.from_shapes("conv", (1, 1, 3), (1, 1, 2))
                compiled = self.core.compile_model(build_model(spec), self.ov_device, self.compile_config())
                compiled([np.ones((1, 1, 3), np.float32), np.ones((1, 1, 2), np.float32)])
                self._problem = ""
            except Exception as exc:
                self._problem = f"OpenVINO cannot run a convolution on {self.ov_device}: {type(exc).__name__}: {exc}"
        return self._problem


def list_devices(core: ov.Core, backend: str) -> list[Device]:
    out: list[Device] = []
    version = ov.get_version().split("-")[0]
    for name in core.available_devices:
        try:
            supported = set(core.get_property(name, "SUPPORTED_PROPERTIES"))
        except Exception:
            supported = set()
        get = lambda p: _prop(core, name, p, supported)  # noqa: B023
        kind = _KINDS.get(name.split(".")[0], "accelerator")
        full = str(get("FULL_DEVICE_NAME") or name)
        caps = [str(c) for c in (get("OPTIMIZATION_CAPABILITIES") or ())]
        extra: dict[str, Any] = {
            "ov_device": name,
            "device_type": str(get("DEVICE_TYPE") or "").replace("Type.", "").lower(),
            "architecture": str(get("DEVICE_ARCHITECTURE") or ""),
            "optimization_capabilities": caps,
            "openvino_version": ov.get_version(),
        }
        driver = f"OpenVINO {version}"
        for prop in ("NPU_DRIVER_VERSION", "GPU_DRIVER_VERSION"):
            v = get(prop)
            if v:
                driver += f", driver {v}"
        if kind == "cpu":
            memory, units, vendor = _host.host_memory(), os.cpu_count() or 1, _host.cpu_vendor()
            extra.update(_host.cpu_extra())
            extra["fp16_compute"] = "float32"
        else:
            memory = int(get("GPU_DEVICE_TOTAL_MEM_SIZE") or get("NPU_DEVICE_TOTAL_MEM_SIZE") or 0)
            units = int(get("GPU_EXECUTION_UNITS_COUNT") or 0)
            vendor = "Intel" if "intel" in full.lower() or kind == "npu" else ""
        dev = OpenVINODevice(
            id=f"{backend}:{name}", backend=backend, name=full, kind=kind, vendor=vendor, driver=driver,
            memory_bytes=memory, compute_units=units,
            fp64="FP64" in caps, fp16="FP16" in caps or "FP32" in caps, extra=extra,
        )
        dev.core = core
        out.append(dev)
    return out


# ----------------------------------------------------------------- algorithm
class GraphKernel(Kernel):
    """A compiled single-op model and its infer request; one call is one inference."""

    def __init__(self, spec: ConvSpec, device: Device, algorithm: Algorithm, compiled: Any):
        super().__init__(spec, device, algorithm)
        self.compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()  # an infer request runs one inference at a time
        self._weight_shape = ov_weight_shape(spec)
        self._bias_shape = bias_shape(spec)

    def compute(self, input: Any, weight: Any, bias: Any, out: Any) -> np.ndarray:
        s = self.spec
        for name, arr in (("input", input), ("weight", weight), ("bias", bias), ("out", out)):
            if arr is not None and is_device_array(arr):
                raise UnsupportedError(f"{name} is a pyopencl array; the openvino backend takes NumPy arrays")
        if s.batch == 0:  # nothing to compute, and OpenVINO rejects empty tensors
            return out if out is not None else np.empty(s.output_shape, s.dtype)
        # contiguous arrays are passed without a copy (share_inputs); OpenVINO only reads them
        feed = [np.ascontiguousarray(input), np.ascontiguousarray(weight).reshape(self._weight_shape)]
        if bias is not None:
            feed.append(np.ascontiguousarray(bias).reshape(self._bias_shape))
        with self._lock:
            y = self._request.infer(feed, share_inputs=True, share_outputs=True)[0]
            # y views the request's output tensor, which the next inference overwrites
            if out is not None:
                np.copyto(out, y)
                return out
            return np.array(y, dtype=s.dtype, copy=True)


class GraphAlgorithm(Algorithm):
    """A single-op OpenVINO model per spec, compiled once per (spec, device) and cached."""

    id = "graph"
    family = "vendor"
    # OpenVINO promises no bit reproducibility across runs (kernel choice may depend on threads).
    deterministic = False
    description = "single-op OpenVINO model (Convolution / GroupConvolution / *BackpropData), compiled per spec"

    def __init__(self) -> None:
        self._compiled: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        if not isinstance(device, OpenVINODevice):
            return Support.no(f"{device.id} is not an OpenVINO device", "unsupported")
        problem = device.problem()
        need = self.memory_bytes(spec, device)
        host = _host.host_memory()
        caps = ", ".join(device.capabilities) or "none"
        return first_failure(
            (bool(problem), problem, "capability"),
            (spec.dtype == "float64" and not device.fp64,
             f"{device.ov_device} has no FP64 (capabilities: {caps}); OpenVINO would compute float64 in float32",
             "capability"),
            (spec.dtype == "float32" and not device.fp32,
             f"{device.ov_device} has no FP32 (capabilities: {caps}); float32 would be computed in lower precision",
             "capability"),
            (spec.dtype == "float16" and not device.fp16,
             f"{device.ov_device} has neither FP16 nor FP32 (capabilities: {caps})", "capability"),
            (bool(host) and need > host,
             (f"needs {format_bytes(need)} of host memory (NumPy arrays and the runtime's copies) "
              f"but the host has {format_bytes(host)}"), "memory"),
        )

    def workspace_bytes(self, spec: ConvSpec, device: Device) -> int:
        # the runtime's own output tensor (copied into the caller's array) and, for padding
        # modes other than zeros, the padded input the Pad / Concat ops produce
        ws = spec.nbytes("output")
        if spec.padding_mode != "zeros":
            padded = spec.batch * spec.in_channels * spec.itemsize
            for n, a, b in zip(spec.in_size, spec.pad_before, spec.pad_after):
                padded *= n + a + b
            ws += padded
        return ws

    def compiled_model(self, spec: ConvSpec, device: OpenVINODevice) -> Any:
        """The compiled model of ``spec`` on ``device`` (compiled on first use, then cached)."""
        key = (spec.key, device.id)
        with self._lock:
            if key in self._compiled:
                self._compiled.move_to_end(key)
                return self._compiled[key]
        compiled = device.core.compile_model(build_model(spec), device.ov_device, device.compile_config())
        with self._lock:
            self._compiled[key] = compiled
            while len(self._compiled) > CACHE_SIZE:
                self._compiled.popitem(last=False)
        return compiled

    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        support = self.supports(spec, device)
        if not support:
            raise UnsupportedError(f"openvino/{self.id} cannot run {spec.describe()} on {device.id}: {support.reason}")
        assert isinstance(device, OpenVINODevice)
        compiled = None if spec.batch == 0 or spec.crops_past_result else self.compiled_model(spec, device)
        return GraphKernel(spec, device, self, compiled) if compiled is not None else _EmptyKernel(spec, device, self)

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        # The CPU plugin reorders activations between NCHW and its blocked layouts on the
        # way in and out (a read and a write of each): batch-8 1x1 layers, memory-bound,
        # measured 2-2.5x slower than a plain NCHW GEMM for that reason.
        act = spec.nbytes("input") + spec.nbytes("output")
        extra = 2 * act if device.kind == "cpu" else 0
        return Cost(spec.flops, io_bytes(spec) + extra, 1, efficiency(spec, device))


class _EmptyKernel(Kernel):
    """No input element reaches the output: N = 0, or a transposed crop past the data
    (``ConvSpec.crops_past_result``). The output is the bias (or zeros); nothing is compiled or run."""

    def compute(self, input: Any, weight: Any, bias: Any, out: Any) -> np.ndarray:
        y = out if out is not None else np.empty(self.spec.output_shape, self.spec.dtype)
        y[...] = 0 if bias is None else np.asarray(bias).reshape(bias_shape(self.spec))
        return y


def efficiency(spec: ConvSpec, device: Device) -> float:
    """Fraction of the device's estimated float32 peak one call reaches.

    Measured with the CPU plugin on a 2-core Zen 5 VM, against clconv's estimate of
    its peak (nominal clock x 16 float32 lanes x 2 FMA pipes x 2 FLOP, 332 GFLOP/s;
    boost clocks put the true peak higher): oneDNN reaches about 0.6 of it on wide
    single images (the weight is a runtime input, so every call reorders it first),
    about 0.9 with a batch or in 3D, and 0.08 on depthwise layers. Thin shapes scale
    down as a GEMM of the same shape would (``gemm_efficiency``). GPU and NPU
    plugins were not measured here; they are assumed to reach half as much.
    """
    if spec.is_depthwise:
        # refit 2026-11-25 (regret run, calibrated peak ~430 GFLOP/s): MobileNetV2's depthwise
        # layers at batch 8 ran at 4-6 GFLOP/s, 0.007-0.013 of it (0.08 was far too high)
        return 0.01
    k = math.prod(spec.kernel)
    if spec.transposed:
        m, n, kk = spec.out_per_group * k, spec.batch * math.prod(spec.in_size), spec.in_per_group
    else:
        m, n, kk = spec.out_per_group, spec.batch * spatial(spec), spec.in_per_group * k
    eff = gemm_efficiency(m, n, kk, 0.9 if spec.batch > 1 or spec.ndim == 3 else 0.6)
    if spec.transposed:
        # ConvolutionBackpropData measured 46-78 GFLOP/s on DCGAN's 4x4/2 layers (0.11-0.18 of
        # peak) and 12 GFLOP/s with 3 output channels: a fifth of the GEMM curve, less when thin
        eff *= 0.2 * min(1.0, spec.out_per_group / 16)
    if device.kind != "cpu":
        eff *= 0.5
    return max(eff, 0.005)


# ----------------------------------------------------------------- backend
class OpenVINOBackend(Backend):
    name = "openvino"
    version = __version__
    description = f"OpenVINO {ov.get_version().split('-')[0]}: single-op models on every OpenVINO device"

    def __init__(self) -> None:
        self._core: ov.Core | None = None
        self._devices: list[Device] | None = None
        self._algorithms: list[Algorithm] = [GraphAlgorithm()]
        self._lock = threading.Lock()
        self.problems: list[str] = []  # why OpenVINO listed no devices, when it could not

    def devices(self) -> list[Device]:
        with self._lock:
            if self._devices is None:
                try:
                    self._core = ov.Core()
                    self._devices = list_devices(self._core, self.name)
                except Exception as exc:  # a broken OpenVINO must not break clconv's other backends
                    self.problems = [f"OpenVINO cannot list its devices: {type(exc).__name__}: {exc}"]
                    warnings.warn(f"clconv-openvino: {self.problems[0]}; the openvino backend has no devices",
                                  PluginWarning, stacklevel=2)
                    self._devices = []
            return list(self._devices)

    def algorithms(self) -> list[Algorithm]:
        return list(self._algorithms)

    def calibrate(self, device: Device) -> DeviceProfile:
        """Peak from a 1024^3 float32 MatMul, bandwidth from a large Multiply, overhead from a tiny conv."""
        assert isinstance(device, OpenVINODevice)
        import openvino.opset13 as ops

        def request(params, y):  # type: ignore[no-untyped-def]
            model = ov.Model([y], params)
            return device.core.compile_model(model, device.ov_device, device.compile_config()).create_infer_request()

        def timed(fn, reps: int = 10, best: bool = True) -> float:  # type: ignore[no-untyped-def]
            # peak and bandwidth: the best of the repeats (a shared host's neighbours only slow
            # runs down); overhead: the median
            fn()
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            return min(ts) if best else sorted(ts)[len(ts) // 2]

        a, b = ops.parameter([1024, 1024], np.float32), ops.parameter([1024, 1024], np.float32)
        mm = request([a, b], ops.matmul(a, b, False, False))
        m = np.ones((1024, 1024), np.float32)
        peak = 2 * 1024**3 / timed(lambda: mm.infer([m, m], share_inputs=True, share_outputs=True)) / 1e9
        c = ops.parameter([8 * 2**20], np.float32)
        scale = request([c], ops.multiply(c, np.float32(1.5)))
        v = np.ones(8 * 2**20, np.float32)
        bw = 2 * v.nbytes / timed(lambda: scale.infer([v], share_inputs=True, share_outputs=True)) / 1e9
        k = GraphAlgorithm().prepare(ConvSpec.from_shapes("conv", (1, 1, 3), (1, 1, 2)), device)
        x3, w2 = np.ones((1, 1, 3), np.float32), np.ones((1, 1, 2), np.float32)
        launch = timed(lambda: k(x3, w2), reps=50, best=False)
        return DeviceProfile(peak, bw, launch * 1e6, "calibrated")
