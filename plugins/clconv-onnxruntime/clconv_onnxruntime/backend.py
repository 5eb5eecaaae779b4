"""The ONNX Runtime backend: one device per available execution provider, one algorithm (``graph``).

Devices: ``onnxruntime.get_available_providers()`` (QNN, VitisAI, OpenVINO, CoreML,
DirectML, CUDA, ..., CPU), without the Azure provider (a remote endpoint, not a
device). Facts come from ``onnxruntime.get_ep_devices()`` where the build has it
(vendor, hardware type) and from the host for the CPU provider.

What a provider can run is asked of the provider itself, never assumed: a tiny
session with the same node kinds, dtype, rank, grouping and padding mode as the
spec (``model.tiny_spec``) is created and run once, and its error, if any, is the
reason ``supports`` gives (cached per provider and signature). Providers other
than CPU run with ``session.disable_cpu_ep_fallback=1``, so that a node the
provider cannot take fails there instead of silently running on the CPU under
the provider's name. On the CPU provider of ONNX Runtime 1.32 this declines
float64 (there is no double Conv or ConvTranspose kernel) and accepts float32
and float16 (float16 nodes run through a float32 kernel between casts, so one
rounding to half, within the float16 tolerance).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import onnxruntime as ort

from clconv.backend import Algorithm, Backend, Device, Kernel, Support, first_failure, format_bytes
from clconv.costmodel import Cost, DeviceProfile, gemm_efficiency, io_bytes, spatial
from clconv.errors import UnsupportedError
from clconv.spec import ConvSpec, is_device_array

from . import _host
from ._version import __version__
from .model import build_model, sample_arrays, tiny_spec

#: Providers that are not devices.
SKIP_PROVIDERS = ("AzureExecutionProvider",)
_KINDS = {
    "CPU": "cpu", "Dnnl": "cpu", "Xnnpack": "cpu",
    "CUDA": "gpu", "TensorRT": "gpu", "ROCM": "gpu", "MIGraphX": "gpu", "Dml": "gpu", "WebGpu": "gpu",
    "QNN": "npu", "VitisAI": "npu", "Rknpu": "npu", "CANN": "npu", "VSINPU": "npu",
}
_HW_KINDS = {"CPU": "cpu", "GPU": "gpu", "NPU": "npu"}

#: Sessions kept per algorithm (each has its own intra-op thread pool).
CACHE_SIZE = 64


def short_name(provider: str) -> str:
    """``CUDAExecutionProvider`` -> ``CUDA`` (the device id's suffix)."""
    return provider.removesuffix("ExecutionProvider")


def session_options(provider: str) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # failures reach us as exceptions, not log lines
    # Every spec has its own session, and each session its own thread pool: with spinning on,
    # the pool of the layer just run keeps spinning while the next layer's pool works (a chain
    # of three ResNet layers ran 30% slower that way).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if provider != "CPUExecutionProvider":
        # a node this provider cannot take must fail here, not run on the CPU under its name
        opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return opts


def new_session(spec: ConvSpec, provider: str) -> ort.InferenceSession:
    return ort.InferenceSession(build_model(spec), session_options(provider), providers=[provider])


_probes: dict[tuple[str, str], str] = {}
_probes_lock = threading.Lock()


def probe(provider: str, spec: ConvSpec) -> str:
    """'' when ``provider`` runs specs like ``spec`` (see ``tiny_spec``); else ONNX Runtime's error."""
    tiny = tiny_spec(spec)
    key = (provider, tiny.key)
    with _probes_lock:
        if key in _probes:
            return _probes[key]
    try:
        new_session(tiny, provider).run(None, sample_arrays(tiny))
        error = ""
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        error = f"{type(exc).__name__}: {text}"
    with _probes_lock:
        _probes[key] = error
    return error


class OrtDevice(Device):
    """A clconv Device for one execution provider (``extra['provider']``)."""

    @property
    def provider(self) -> str:
        return str(self.extra["provider"])

    def problem(self) -> str:
        error = probe(self.provider, ConvSpec.from_shapes("conv", (1, 1, 3, 3), (1, 1, 2, 2)))
        return f"{self.provider} cannot run a float32 Conv: {error}" if error else ""


def _ep_hardware() -> dict[str, list[Any]]:
    """Hardware devices per provider, from onnxruntime.get_ep_devices() (ONNX Runtime >= 1.22)."""
    out: dict[str, list[Any]] = {}
    try:
        for d in ort.get_ep_devices():
            out.setdefault(d.ep_name, []).append(d)
    except Exception:
        pass
    return out


def list_devices(backend: str) -> list[Device]:
    hardware = _ep_hardware()
    out: list[Device] = []
    for provider in ort.get_available_providers():
        if provider in SKIP_PROVIDERS:
            continue
        short = short_name(provider)
        extra: dict[str, Any] = {"provider": provider, "onnxruntime_version": ort.__version__}
        hw = hardware.get(provider, [])
        kind = _KINDS.get(short, "accelerator")
        vendor, name = "", short
        if hw:
            dev = hw[0].device
            hw_type = str(dev.type).rsplit(".", 1)[-1]
            kind = _HW_KINDS.get(hw_type, kind)
            vendor = str(dev.vendor)
            extra.update(ep_vendor=str(hw[0].ep_vendor), hardware_type=hw_type,
                         vendor_id=int(dev.vendor_id), device_id=int(dev.device_id))
            name = str(dict(dev.metadata).get("Description", "")) or f"{vendor} {hw_type} ({short})".strip()
        if provider == "CPUExecutionProvider":
            name = _host.cpuinfo().get("model name", name)
            vendor = vendor or _host.cpu_vendor()
            memory, units = _host.host_memory(), os.cpu_count() or 1
            extra.update(_host.cpu_extra())
        else:
            memory, units = 0, 0  # not reported by ONNX Runtime
        dtypes_ok = {dt: not probe(provider, ConvSpec.from_shapes("conv", (1, 1, 3), (1, 1, 2), dtype=dt))
                     for dt in ("float64", "float16")}
        out.append(OrtDevice(
            id=f"{backend}:{short}", backend=backend, name=name, kind=kind, vendor=vendor,
            driver=f"onnxruntime {ort.__version__} {provider}", memory_bytes=memory, compute_units=units,
            fp64=dtypes_ok["float64"], fp16=dtypes_ok["float16"], extra=extra,
        ))
    return out


# ----------------------------------------------------------------- algorithm
class SessionKernel(Kernel):
    """An InferenceSession of the spec's model; one call is one ``run``."""

    def __init__(self, spec: ConvSpec, device: Device, algorithm: Algorithm, session: ort.InferenceSession):
        super().__init__(spec, device, algorithm)
        self.session = session

    def compute(self, input: Any, weight: Any, bias: Any, out: Any) -> np.ndarray:
        for name, arr in (("input", input), ("weight", weight), ("bias", bias), ("out", out)):
            if arr is not None and is_device_array(arr):
                raise UnsupportedError(f"{name} is a pyopencl array; the onnxruntime backend takes NumPy arrays")
        feed = {"x": np.ascontiguousarray(input), "w": np.ascontiguousarray(weight)}
        if bias is not None:
            feed["b"] = np.ascontiguousarray(bias)
        y = self.session.run(["y"], feed)[0]  # a fresh array; run() is thread-safe
        if out is not None:
            np.copyto(out, y)
            return out
        return y


class _EmptyKernel(Kernel):
    """No input element reaches the output: N = 0, or a transposed crop past the data
    (``ConvSpec.crops_past_result``). The output is the bias (or zeros); no session is
    created or run."""

    def compute(self, input: Any, weight: Any, bias: Any, out: Any) -> np.ndarray:
        y = out if out is not None else np.empty(self.spec.output_shape, self.spec.dtype)
        y[...] = 0 if bias is None else np.asarray(bias).reshape((-1,) + (1,) * self.spec.ndim)
        return y


class GraphAlgorithm(Algorithm):
    """A single-node Conv / ConvTranspose ONNX model per spec, one InferenceSession per (spec, device)."""

    id = "graph"
    family = "vendor"
    # Execution providers promise no bit reproducibility (CUDA picks algorithms at run time).
    deterministic = False
    description = "single-node ONNX Conv / ConvTranspose (+ Pad), an InferenceSession per spec"

    def __init__(self) -> None:
        self._sessions: OrderedDict[tuple[str, str], ort.InferenceSession] = OrderedDict()
        self._lock = threading.Lock()

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        if not isinstance(device, OrtDevice):
            return Support.no(f"{device.id} is not an ONNX Runtime device", "unsupported")
        problem = device.problem()
        if problem:
            return Support.no(problem, "capability")
        refused = probe(device.provider, spec)
        need = self.memory_bytes(spec, device)
        host = _host.host_memory()
        return first_failure(
            (spec.dtype == "float64" and not device.fp64,
             f"{device.provider} has no float64 convolution kernel ({refused})", "capability"),
            (spec.dtype == "float16" and not device.fp16,
             f"{device.provider} has no float16 convolution kernel ({refused})", "capability"),
            (bool(refused), f"{device.provider} refuses this kind of node: {refused}", "unsupported"),
            (bool(host) and need > host,
             (f"needs {format_bytes(need)} of host memory (NumPy arrays and the runtime's copies) "
              f"but the host has {format_bytes(host)}"), "memory"),
        )

    def workspace_bytes(self, spec: ConvSpec, device: Device) -> int:
        # the session's own output array (copied into the caller's), and for padding
        # modes other than zeros the Pad node's padded input
        ws = spec.nbytes("output")
        if spec.padding_mode != "zeros":
            padded = spec.batch * spec.in_channels * spec.itemsize
            for n, a, b in zip(spec.in_size, spec.pad_before, spec.pad_after):
                padded *= n + a + b
            ws += padded
        return ws

    def session(self, spec: ConvSpec, device: OrtDevice) -> ort.InferenceSession:
        """The InferenceSession of ``spec`` on ``device`` (created on first use, then cached)."""
        key = (spec.key, device.id)
        with self._lock:
            if key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key]
        sess = new_session(spec, device.provider)
        with self._lock:
            self._sessions[key] = sess
            while len(self._sessions) > CACHE_SIZE:
                self._sessions.popitem(last=False)
        return sess

    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        support = self.supports(spec, device)
        if not support:
            raise UnsupportedError(f"onnxruntime/{self.id} cannot run {spec.describe()} on {device.id}: {support.reason}")
        assert isinstance(device, OrtDevice)
        if spec.batch == 0 or spec.crops_past_result:
            return _EmptyKernel(spec, device, self)
        return SessionKernel(spec, device, self, self.session(spec, device))

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        return Cost(spec.flops, io_bytes(spec), 1, efficiency(spec, device))


def efficiency(spec: ConvSpec, device: Device) -> float:
    """Fraction of the device's estimated float32 peak one call reaches.

    Measured with the CPU provider on a 2-core Zen 5 VM, against clconv's estimate of
    its peak (nominal clock x 16 float32 lanes x 2 FMA pipes x 2 FLOP, 332 GFLOP/s;
    boost clocks put the true peak higher): MLAS reaches 0.8-1.1 of it on wide 2D
    layers (ResNet 3x3 and 1x1, the 7x7 stem, DCGAN's transposed layers), about 0.6
    of that with a batch (it runs the images one after another), about 0.3 of it in
    3D. Depthwise layers (MobileNetV2's, batch 8) ran at 4-9 GFLOP/s with stride 1 and
    ~2.5 GFLOP/s with stride 2: 0.015 and 0.006 of the calibrated peak (~440). Thin
    shapes scale down as a GEMM of the same shape would (``gemm_efficiency``). Other
    providers are assumed no better.
    """
    if spec.is_depthwise:
        return 0.015 if max(spec.stride) == 1 else 0.006
    k = math.prod(spec.kernel)
    if spec.transposed:
        m, n, kk = spec.out_per_group * k, spec.batch * math.prod(spec.in_size), spec.in_per_group
    else:
        m, n, kk = spec.out_per_group, spec.batch * spatial(spec), spec.in_per_group * k
    eff = gemm_efficiency(m, n, kk, 0.9)
    if spec.batch > 1:
        eff *= 0.6
    if spec.ndim == 3:
        eff *= 0.3
    return max(eff, 0.005)


# ----------------------------------------------------------------- backend
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    version = __version__
    description = f"ONNX Runtime {ort.__version__}: single-node models on every execution provider"

    def __init__(self) -> None:
        self._devices: list[Device] | None = None
        self._algorithms: list[Algorithm] = [GraphAlgorithm()]
        self._lock = threading.Lock()

    def devices(self) -> list[Device]:
        with self._lock:
            if self._devices is None:
                self._devices = list_devices(self.name)
            return list(self._devices)

    def algorithms(self) -> list[Algorithm]:
        return list(self._algorithms)

    def calibrate(self, device: Device) -> DeviceProfile:
        """Peak from a 1024^3 float32 MatMul, bandwidth from a large Mul, overhead from a tiny Conv."""
        assert isinstance(device, OrtDevice)
        from onnx import TensorProto, helper

        def session(nodes, inputs):  # type: ignore[no-untyped-def]
            f = TensorProto.FLOAT
            graph = helper.make_graph(nodes, "calibrate", [helper.make_tensor_value_info(n, f, s) for n, s in inputs],
                                      [helper.make_tensor_value_info("y", f, None)])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            model.ir_version = 8
            return ort.InferenceSession(model.SerializeToString(), session_options(device.provider),
                                        providers=[device.provider])

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

        m = np.ones((1024, 1024), np.float32)
        mm = session([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", [1024, 1024]), ("b", [1024, 1024])])
        peak = 2 * 1024**3 / timed(lambda: mm.run(None, {"a": m, "b": m})) / 1e9
        v = np.ones(8 * 2**20, np.float32)
        add = session([helper.make_node("Add", ["a", "a"], ["y"])], [("a", [8 * 2**20])])
        bw = 2 * v.nbytes / timed(lambda: add.run(None, {"a": v})) / 1e9
        tiny = ConvSpec.from_shapes("conv", (1, 1, 3), (1, 1, 2))
        k = GraphAlgorithm().prepare(tiny, device)
        x3, w2 = np.ones((1, 1, 3), np.float32), np.ones((1, 1, 2), np.float32)
        launch = timed(lambda: k(x3, w2), reps=50, best=False)
        return DeviceProfile(peak, bw, launch * 1e6, "calibrated")
