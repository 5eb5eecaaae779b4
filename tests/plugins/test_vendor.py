"""The vendor plugins (OpenVINO, ONNX Runtime): conformance, and what each says it supports.

Each test skips cleanly when the vendor runtime is not installed (fails under
``CLCONV_REQUIRE_PLUGINS=1``, which CI sets). The conformance run uses the
installed plugin (``pip install -e plugins/clconv-openvino``...) in-process, or installs it
into a temporary folder and runs ``clconv conformance`` in a subprocess.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from clconv import dispatch
from clconv.backends.numpy.ops import reference
from clconv.conformance import run_suite
from clconv.spec import ConvSpec

from .conftest import backends_json, env_with, is_installed, need_vendor, plugin_module, run_clconv

VENDORS = {
    # backend: (distribution, plugin module, vendor modules it needs)
    "openvino": ("clconv-openvino", "clconv_openvino", ("openvino",)),
    "onnxruntime": ("clconv-onnxruntime", "clconv_onnxruntime", ("onnxruntime", "onnx")),
}


@pytest.fixture(params=sorted(VENDORS))
def vendor(request):
    """(backend name, plugin module, its backend instance) for each vendor whose runtime is here."""
    name = request.param
    dist, module, needs = VENDORS[name]
    mod = plugin_module(module, dist, needs)
    backend = {"openvino": "OpenVINOBackend", "onnxruntime": "OnnxRuntimeBackend"}[name]
    return name, mod, getattr(mod, backend)()


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_quick_conformance_passes(name, target_installs, tmp_path):
    dist, _, needs = VENDORS[name]
    need_vendor(dist, needs)
    if is_installed(dist):
        report = run_suite(name, level="quick", record=False)
        summary = report.summary
        failures = [f"{r.id}: {r.message} {r.error}" for r in report.results if r.status in ("failed", "xpassed")]
    else:
        site = target_installs(dist)
        out = tmp_path / "report.json"
        proc = run_clconv(["conformance", "--backend", name, "--report", str(out)],
                          env_with(site, CLCONV_CACHE_DIR=str(tmp_path / "cache")), timeout=300)
        assert out.exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
        data = json.loads(out.read_text())
        summary = data["summary"]
        failures = [f"{r['id']}: {r['message']} {r['error']}" for r in data["results"]
                    if r["status"] in ("failed", "xpassed")]
        assert proc.returncode == (1 if failures else 0)
    assert not failures, "\n".join(failures)
    assert summary["passed"] >= 60, summary


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_an_installed_vendor_plugin_is_listed_with_its_devices(name, target_installs, tmp_path):
    # `clconv backends --json` in a fresh process: the entry point alone brings the backend
    # and its devices; without the plugin, the other backends are listed exactly as with it
    dist, _, needs = VENDORS[name]
    need_vendor(dist, needs)
    cache = str(tmp_path / "cache")
    paths = () if is_installed(dist) else (target_installs(dist),)
    data = backends_json(env_with(*paths, CLCONV_CACHE_DIR=cache))
    assert data["failed_plugins"] == []
    [entry] = [b for b in data["backends"] if b["name"] == name]
    assert entry["plugin"] == name and entry["origin"] == f"entry point in {dist}"
    assert f"{name}:CPU" in entry["devices"] and all(d.startswith(name + ":") for d in entry["devices"])
    assert [a["id"] for a in entry["algorithms"]] == ["graph"]

    proc = run_clconv(["devices", "--json"], env_with(*paths, CLCONV_CACHE_DIR=cache))
    assert proc.returncode == 0, proc.stderr
    cpu = {d["id"]: d for d in json.loads(proc.stdout)}[f"{name}:CPU"]
    assert cpu["kind"] == "cpu" and cpu["usable"] and cpu["memory_bytes"] > 0 and cpu["extra"]

    others = [b for b in data["backends"] if b["name"] != name]
    if paths:  # installed only into the temporary folder: leave it off the path
        without = backends_json(env_with(CLCONV_CACHE_DIR=cache))
    else:  # installed here: load every plugin but this one
        load = ",".join(b["plugin"] for b in others)
        without = backends_json(env_with(CLCONV_CACHE_DIR=cache, CLCONV_LOAD_PLUGINS=load))
    assert without["backends"] == others and without["failed_plugins"] == []


# ---------------------------------------------------------------- devices
def test_devices_carry_their_facts(vendor):
    name, _, backend = vendor
    devices = backend.devices()
    assert devices, f"{name} lists no device"
    cpu = [d for d in devices if d.kind == "cpu"]
    assert cpu, "every build of both runtimes has a CPU device"
    d = cpu[0]
    assert d.id == f"{name}:CPU" and d.backend == name
    assert d.name and d.vendor and d.driver and d.memory_bytes > 0 and d.compute_units >= 1
    assert d.fp16 and not d.fp64  # both compute float16 in float32 on CPUs; neither computes float64
    assert d.problem() == ""
    for dev in devices:
        assert dev.kind in ("cpu", "gpu", "npu", "accelerator")
        assert dev.id.startswith(name + ":")


def test_onnxruntime_skips_the_azure_provider():
    mod = plugin_module("clconv_onnxruntime", "clconv-onnxruntime", ("onnxruntime", "onnx"))
    ids = [d.id for d in mod.OnnxRuntimeBackend().devices()]
    assert "onnxruntime:Azure" not in ids and "onnxruntime:CPU" in ids


# ---------------------------------------------------------------- supports
def _cpu(backend):  # type: ignore[no-untyped-def]
    return next(d for d in backend.devices() if d.kind == "cpu")


def test_float64_is_declined_with_the_reason(vendor):
    name, _, backend = vendor
    dev, alg = _cpu(backend), backend.algorithms()[0]
    spec = ConvSpec.from_shapes("conv", (1, 2, 5, 5), (3, 2, 3, 3), dtype="float64")
    s = alg.supports(spec, dev)
    assert not s.ok and s.kind == "capability"
    assert ("FP64" in s.reason) if name == "openvino" else ("float64" in s.reason)
    from clconv.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="float64|FP64"):
        alg.prepare(spec, dev)


def _arrays(spec: ConvSpec, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape).astype(spec.dtype)
    w = rng.standard_normal(spec.weight_shape).astype(spec.dtype)
    b = rng.standard_normal(spec.out_channels).astype(spec.dtype) if spec.bias else None
    return x, w, b


def _check(alg, dev, spec: ConvSpec, tol: float = 1e-4) -> None:  # type: ignore[no-untyped-def]
    assert alg.supports(spec, dev).ok, alg.supports(spec, dev).reason
    x, w, b = _arrays(spec)
    for a in (x, w, b):
        if a is not None:
            a.flags.writeable = False  # read-only inputs work, and are never written
    out = np.full(spec.output_shape, np.nan, spec.dtype)
    y = alg.prepare(spec, dev)(x, w, b, out=out)
    assert y is out
    ref = reference(spec, x, w, b)
    assert np.linalg.norm(out - ref) <= tol * np.linalg.norm(ref), spec.describe()


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_every_padding_mode(vendor, mode, ndim):
    _, _, backend = vendor
    size = (6, 5, 4)[:ndim]
    spec = ConvSpec.from_shapes("conv", (2, 4, *size), (6, 2, *(3,) * ndim), bias=True, groups=2,
                                padding=tuple((2, 1) for _ in range(ndim)), padding_mode=mode, stride=2)
    _check(backend.algorithms()[0], _cpu(backend), spec)


@pytest.mark.parametrize("padding", [0, 1, ((1, 0), (0, 2)), ((0, 3), (2, 0))])
@pytest.mark.parametrize("bias", [False, True])
def test_transposed_output_padding_and_asymmetric_crop(vendor, padding, bias):
    # output_padding 2 >= stride 1 (allowed since dilation 3 > stride): ONNX Runtime's
    # ConvTranspose refuses it, so the plugin rewrites it (ConvSpec.output_padding_within_stride)
    _, _, backend = vendor
    alg, dev = backend.algorithms()[0], _cpu(backend)
    for stride, dilation, op in ((1, 3, 2), (2, 1, 1), ((1, 2), (3, 1), (2, 1))):
        spec = ConvSpec.from_shapes("conv_transpose", (2, 4, 5, 6), (4, 3, 3, 2), bias=bias, groups=2,
                                    stride=stride, dilation=dilation, output_padding=op, padding=padding)
        _check(alg, dev, spec)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(
    "input_shape, weight_shape, groups, stride, dilation, output_padding, padding",
    [
        # OpenVINO's CPU plugin drops pads_begin of a ConvolutionBackpropData with a 1x1 kernel,
        # stride 1 and output_padding: the result came out shifted by the crop
        ((2, 1, 2), (1, 1, 1), 1, 1, 2, 1, ((1, 0),)),
        ((2, 3, 3, 5), (3, 4, 1, 1), 1, 1, (3, 2), (2, 1), ((2, 0), (1, 0))),
        # the crop starts past the end of the full result (pads_before >= its size): every
        # output is the bias; ONNX Runtime's rewrite made a ConvTranspose of size <= 0
        ((2, 1, 2), (1, 1, 1), 1, 1, 3, 2, ((2, 0),)),
        ((3, 2, 3, 1, 5), (2, 3, 1, 2, 3), 2, 1, (3, 2, 2), (1, 0, 0), ((3, 0), (2, 0), (1, 1))),
        ((1, 2, 2, 4), (2, 2, 2, 2), 1, (1, 2), (3, 1), (2, 1), ((5, 0), (0, 0))),
    ],
)
def test_transposed_crops_past_the_data(vendor, input_shape, weight_shape, groups, stride, dilation,
                                        output_padding, padding, bias):
    # output_padding >= stride (dilation > stride): the output's tail lies past the full
    # result, where only the bias lands; found by a random grid of specs
    _, _, backend = vendor
    spec = ConvSpec.from_shapes("conv_transpose", input_shape, weight_shape, bias=bias, groups=groups,
                                stride=stride, dilation=dilation, output_padding=output_padding, padding=padding)
    _check(backend.algorithms()[0], _cpu(backend), spec)


def test_float16_is_computed_with_float_accumulation(vendor):
    _, _, backend = vendor
    spec = ConvSpec.from_shapes("conv", (1, 64, 8, 8), (16, 64, 3, 3), padding=1, bias=True, dtype="float16")
    _check(backend.algorithms()[0], _cpu(backend), spec, tol=5e-3)


def test_empty_batch_never_calls_the_runtime(vendor):
    _, _, backend = vendor
    alg, dev = backend.algorithms()[0], _cpu(backend)
    spec = ConvSpec.from_shapes("conv", (0, 3, 5, 5), (4, 3, 3, 3), padding=1, bias=True)
    assert alg.supports(spec, dev).ok
    k = alg.prepare(spec, dev)
    assert not hasattr(k, "session") and not hasattr(k, "compiled")
    x, w, b = _arrays(spec)
    y = k(x, w, b)
    assert y.shape == spec.output_shape and y.dtype == np.float32
    out = np.empty(spec.output_shape, np.float32)
    assert k(x, w, b, out=out) is out


def test_models_are_built_once_per_spec_and_device(vendor):
    name, _, backend = vendor
    alg, dev = backend.algorithms()[0], _cpu(backend)
    spec = ConvSpec.from_shapes("conv", (1, 3, 8, 8), (4, 3, 3, 3), padding=1)
    k1, k2 = alg.prepare(spec, dev), alg.prepare(spec, dev)
    attr = "compiled" if name == "openvino" else "session"
    assert getattr(k1, attr) is getattr(k2, attr)
    other = alg.prepare(ConvSpec.from_shapes("conv", (1, 3, 8, 8), (4, 3, 3, 3), padding=2), dev)
    assert getattr(other, attr) is not getattr(k1, attr)


def test_pyopencl_arrays_are_declined_with_a_reason(vendor):
    _, _, backend = vendor
    alg, dev = backend.algorithms()[0], _cpu(backend)
    spec = ConvSpec.from_shapes("conv", (1, 3, 8, 8), (4, 3, 3, 3), padding=1)
    assert "pyopencl" not in alg.supports(spec, dev).reason
    # the dispatcher keeps device arrays away: the device owns none
    assert not dev.owns(object())


# ---------------------------------------------------------------- cost model
def test_cost_is_realistic_and_shape_dependent(vendor):
    _, _, backend = vendor
    alg, dev = backend.algorithms()[0], _cpu(backend)
    wide = ConvSpec.from_shapes("conv", (1, 64, 56, 56), (64, 64, 3, 3), padding=1)
    thin = ConvSpec.from_shapes("conv", (1, 2, 56, 56), (2, 2, 3, 3), padding=1)
    dw = ConvSpec.from_shapes("conv", (1, 32, 112, 112), (32, 1, 3, 3), padding=1, groups=32)
    e = {s: alg.cost(s, dev).efficiency for s in (wide, thin, dw)}
    assert 0.3 <= e[wide] <= 1.0
    assert e[thin] < e[wide] / 4 and e[dw] < e[wide] / 4
    assert all(0 < v <= 1 for v in e.values())
    assert alg.cost(wide, dev).flops == wide.flops


def test_the_dispatcher_ranks_the_vendor_backend_on_a_big_layer(vendor, host_with):
    # With estimated device profiles (the isolated cache has no calibration), a ResNet layer
    # goes to the vendor runtime ahead of NumPy's im2col: it runs several times faster there.
    name, mod, _ = vendor
    host_with(mod, name)
    spec = ConvSpec.from_shapes("conv", (1, 64, 56, 56), (64, 64, 3, 3), padding=1)
    e = dispatch.explain(spec, policy="heuristic")
    rows = {(c.backend, c.algorithm.id): c for c in e.candidates}
    ours = rows[(name, "graph")]
    assert ours.support.ok and ours.predicted_s is not None and math.isfinite(ours.predicted_s)
    assert ours.predicted_s < rows[("numpy", "im2col")].predicted_s
    assert e.order.index(ours) < e.order.index(rows[("numpy", "im2col")])


def test_calibration_measures_the_device(vendor):
    # `clconv tune` stores this profile; the cost model then uses it instead of the estimate
    _, _, backend = vendor
    p = backend.calibrate(_cpu(backend))
    assert p.source == "calibrated"
    assert p.peak_gflops > 1 and p.bandwidth_gbs > 0.1 and 0 < p.launch_us < 100_000


def test_a_run_time_failure_of_the_vendor_runtime_falls_back(vendor, host_with, monkeypatch):
    # The vendor backend wins this layer (the other GPU-less choices are NumPy's); when its
    # runtime then fails at run time (a lost device, a driver error), the plan warns and
    # moves to the next candidate, and the result is still right.
    import clconv

    name, mod, _ = vendor
    host_with(mod, name)
    other = next(n for n in VENDORS if n != name)
    clconv.configure(policy="heuristic", disable=("opencl", other))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 256, 14, 14)).astype(np.float32)
    w = rng.standard_normal((512, 256, 1, 1)).astype(np.float32)
    p = clconv.plan("conv2d", x, w)
    assert p.backend == name
    np.testing.assert_allclose(p(x, w), reference(p.spec, x, w), rtol=1e-4, atol=1e-3)

    def lost(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("simulated: device lost")

    if name == "openvino":
        import openvino

        monkeypatch.setattr(openvino.InferRequest, "infer", lost)
    else:
        import onnxruntime

        monkeypatch.setattr(onnxruntime.InferenceSession, "run", lost)
    with pytest.warns(clconv.FallbackWarning, match=rf"{name}/{name}:CPU/graph failed .*device lost.*falling back"):
        y = p(x, w)
    np.testing.assert_allclose(y, reference(p.spec, x, w), rtol=1e-4, atol=1e-3)
    assert p.backend != name and p.failures[0][0] == f"{name}/{name}:CPU/graph"


def test_openvino_that_cannot_list_devices_leaves_clconv_working(host_with, monkeypatch):
    # An installed OpenVINO whose Core cannot start (a broken plugins.xml, a missing device
    # library) made every unpinned clconv call raise, NumPy and OpenCL included.
    import clconv
    from clconv.plugins import PluginWarning

    mod = plugin_module("clconv_openvino", "clconv-openvino", ("openvino",))

    def broken_core():  # type: ignore[no-untyped-def]
        raise RuntimeError("simulated: cannot load plugins.xml")

    monkeypatch.setattr(mod.backend.ov, "Core", broken_core)
    host = host_with(mod, "openvino")
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    with pytest.warns(PluginWarning, match="OpenVINO cannot list its devices: RuntimeError: simulated"):
        y = clconv.conv2d(x, w, padding=1)
    np.testing.assert_allclose(y, reference(ConvSpec.from_arrays("conv", 2, x, w, padding=1), x, w), rtol=1e-6)
    backend = host.backends()["openvino"]
    assert backend.devices() == [] and "simulated" in backend.problems[0]
