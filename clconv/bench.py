"""Benchmarks: clconv side by side with PyTorch and ONNX Runtime, in one run.

Every runner times the same layer on the same NumPy arrays: one warm-up call
(builds, first-touch allocations), then repeats until ``min_repeats`` and
``min_time_s`` are both reached; the median is reported. Ratios are
(clconv time / other time), so < 1 means clconv is faster.

With ``arrays="device"`` the arrays are uploaded once to the device clconv chose and
each call returns a pyopencl array (timed to the queue's finish): a GPU's time without
the host transfers. PyTorch then runs on its CUDA device where it has one (timed to
``torch.cuda.synchronize()``), else on the CPU; ONNX Runtime stays on the CPU.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from .spec import ConvSpec
from .suites import Layer

COMPARE = ("torch", "onnxruntime")
ARRAYS = ("host", "device")


def time_call(fn: Callable[[], Any], min_repeats: int = 5, min_time_s: float = 0.2, max_time_s: float = 10.0
              ) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
        if (len(times) >= min_repeats and elapsed >= min_time_s) or elapsed >= max_time_s:
            break
    return statistics.median(times)


def layer_arrays(spec: ConvSpec, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape, dtype=np.float32).astype(spec.dtype)
    w = (rng.standard_normal(spec.weight_shape, dtype=np.float32) * 0.1).astype(spec.dtype)
    b = rng.standard_normal(spec.out_channels, dtype=np.float32).astype(spec.dtype) if spec.bias else None
    return x, w, b


def _fn_params(layer: Layer, spec: ConvSpec) -> dict[str, Any]:
    p: dict[str, Any] = {
        "stride": spec.stride, "padding": spec.padding, "dilation": spec.dilation, "groups": spec.groups,
    }
    if spec.transposed:
        p["output_padding"] = spec.output_padding
    else:
        p["padding_mode"] = spec.padding_mode
    return p


# ------------------------------------------------------------------ runners
def clconv_runner(layer: Layer, spec: ConvSpec, arrays: tuple, backend: str | None, device: str | None,
                  algorithm: str | None, constant_weights: bool = False, where: str = "host"
                  ) -> tuple[Callable[[], Any], dict[str, Any]]:
    """``where="device"``: x, weight and bias uploaded once to the chosen device (pyopencl
    arrays); each call's time runs to the queue's finish."""
    from . import api

    x, w, b = arrays
    params = _fn_params(layer, spec)
    plan = api.plan(layer.fn, x, w, b, backend=backend, device=device, algorithm=algorithm or "auto",
                    constant_weights=constant_weights, **params)
    if where == "device":
        queue = getattr(plan.device, "queue", None)
        if queue is None:
            raise ValueError(f"arrays='device' needs an OpenCL device; {plan.device.id} ({plan.backend}) has no "
                             "OpenCL queue")
        import pyopencl.array as cl_array

        x, w, b = (None if a is None else cl_array.to_device(queue, np.ascontiguousarray(a)) for a in arrays)
        plan = api.plan(layer.fn, x, w, b, backend=backend, device=plan.device.id,
                        algorithm=algorithm or "auto", constant_weights=constant_weights, **params)

        def run() -> Any:
            y = plan(x, w, b)
            queue.finish()
            return y
    else:
        def run() -> Any:
            return plan(x, w, b)
    info = {"backend": plan.backend, "device": plan.device.id, "algorithm": plan.algorithm.id}
    return run, info


def torch_device(where: str) -> str:
    """The device PyTorch runs on for ``where``: its CUDA device for device arrays where it has one."""
    if where == "device":
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


def torch_runner(layer: Layer, spec: ConvSpec, arrays: tuple, device: str = "cpu") -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    x, w, b = (None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays)
    pads = [p for pair in reversed(spec.padding) for p in pair]
    sym = all(a == b_ for a, b_ in spec.padding)
    fn = getattr(F, layer.fn)
    if spec.transposed:
        if not sym:
            raise ValueError("torch conv_transpose takes symmetric padding only")
        kw = dict(stride=spec.stride, padding=spec.pad_before, output_padding=spec.output_padding,
                  groups=spec.groups, dilation=spec.dilation)

        def conv() -> Any:
            with torch.no_grad():
                return fn(x, w, b, **kw)
    else:
        mode = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}[spec.padding_mode]

        def conv() -> Any:
            with torch.no_grad():
                xi = x if (sym and spec.padding_mode == "zeros") else F.pad(x, pads, mode=mode)
                pad = spec.pad_before if (sym and spec.padding_mode == "zeros") else 0
                return fn(xi, w, b, stride=spec.stride, padding=pad, dilation=spec.dilation, groups=spec.groups)
    if device == "cpu":
        return conv

    def run() -> Any:
        y = conv()
        torch.cuda.synchronize()
        return y
    return run


def onnx_model(spec: ConvSpec, constants: tuple[np.ndarray, np.ndarray | None] | None = None) -> bytes:
    """A single-node Conv / ConvTranspose ONNX model for ``spec`` (zeros padding only): weight
    and bias are inputs, or with ``constants=(w, b)`` initializers (constants of the graph,
    which ONNX Runtime may pre-pack once)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if spec.padding_mode != "zeros":
        raise ValueError("ONNX Conv pads with zeros only")
    et = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE}[spec.dtype]
    inputs = [helper.make_tensor_value_info("x", et, list(spec.input_shape)),
              helper.make_tensor_value_info("w", et, list(spec.weight_shape))]
    names = ["x", "w"]
    if spec.bias:
        inputs.append(helper.make_tensor_value_info("b", et, [spec.out_channels]))
        names.append("b")
    attrs: dict[str, Any] = dict(kernel_shape=list(spec.kernel), strides=list(spec.stride),
                                 dilations=list(spec.dilation), group=spec.groups,
                                 pads=list(spec.pad_before) + list(spec.pad_after))
    if spec.transposed:
        attrs["output_padding"] = list(spec.output_padding)
        node = helper.make_node("ConvTranspose", names, ["y"], **attrs)
    else:
        node = helper.make_node("Conv", names, ["y"], **attrs)
    inits = []
    if constants is not None:
        inputs = inputs[:1]
        inits = [numpy_helper.from_array(np.ascontiguousarray(a, spec.dtype), name)
                 for a, name in zip(constants, names[1:])]
    graph = helper.make_graph([node], "clconv", inputs, [helper.make_tensor_value_info("y", et, list(spec.output_shape))],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnxruntime_runner(layer: Layer, spec: ConvSpec, arrays: tuple, constant_weights: bool = False) -> Callable[[], Any]:
    """ONNX Runtime's CPU provider; with ``constant_weights``, weight and bias are initializers."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    x, w, b = arrays
    model = onnx_model(spec, (w, b) if constant_weights else None)
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    feed = {"x": x}
    if not constant_weights:
        feed["w"] = w
        if b is not None:
            feed["b"] = b
    return lambda: sess.run(None, feed)


# ------------------------------------------------------------------ results
@dataclass
class LayerResult:
    layer: str
    group: str
    description: str
    gflop: float
    clconv_s: float | None = None
    backend: str = ""
    device: str = ""
    algorithm: str = ""
    gflops: float | None = None
    peak_pct: float | None = None
    others_s: dict[str, float | None] = field(default_factory=dict)
    #: where each runtime of ``others_s`` ran ("cpu", "cuda")
    others_device: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def ratio(self, other: str) -> float | None:
        o = self.others_s.get(other)
        if o is None or self.clconv_s is None or o <= 0:
            return None
        return self.clconv_s / o

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratios"] = {k: self.ratio(k) for k in self.others_s}
        return d


def geomean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def run_layer(layer: Layer, *, dtype: str = "float32", backend: str | None = None, device: str | None = None,
              algorithm: str | None = None, compare: tuple[str, ...] = (), min_repeats: int = 5,
              min_time_s: float = 0.2, peak_gflops: Callable[[str], float | None] | None = None,
              constant_weights: bool = False, arrays: str = "host") -> LayerResult:
    """Time one layer through clconv and each runtime of ``compare``. ``constant_weights``: the
    inference setting, weights that never change: a ``constant_weights=True`` plan, ONNX
    Runtime with the weight and bias as initializers (PyTorch has no such setting).
    ``arrays``: "host" (NumPy in, NumPy out) or "device" (see the module's docstring)."""
    if arrays not in ARRAYS:
        raise ValueError(f"arrays={arrays!r}: accepted {', '.join(ARRAYS)}")
    spec = layer.spec(dtype)
    res = LayerResult(layer.name, layer.group, spec.describe(), spec.flops / 1e9)
    xwb = layer_arrays(spec)
    try:
        fn, info = clconv_runner(layer, spec, xwb, backend, device, algorithm, constant_weights, arrays)
        res.clconv_s = time_call(fn, min_repeats, min_time_s)
        res.backend, res.device, res.algorithm = info["backend"], info["device"], info["algorithm"]
        res.gflops = spec.flops / res.clconv_s / 1e9
        if peak_gflops is not None:
            peak = peak_gflops(res.device)
            if peak:
                res.peak_pct = 100.0 * res.gflops / peak
    except Exception as exc:
        res.errors["clconv"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    for other in compare:
        try:
            if other == "onnxruntime":
                res.others_device[other] = "cpu"
                fn = onnxruntime_runner(layer, spec, xwb, constant_weights)
            else:
                res.others_device[other] = torch_device(arrays)
                fn = torch_runner(layer, spec, xwb, res.others_device[other])
            res.others_s[other] = time_call(fn, min_repeats, min_time_s)
        except Exception as exc:
            res.others_s[other] = None
            res.errors[other] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return res


def available(name: str) -> bool:
    try:
        if name == "torch":
            import torch  # noqa: F401
        elif name == "onnxruntime":
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        else:
            return False
        return True
    except ImportError:
        return False
