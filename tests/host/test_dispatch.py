"""The dispatcher: heuristic choices, tuning database, fallback, controls and concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
import warnings
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

import clconv
from clconv import config, dispatch, tuning
from clconv.backend import Algorithm, Backend, Device, Kernel, Support
from clconv.backends.numpy import NumpyBackend
from clconv.backends.numpy.ops import reference
from clconv.backends.opencl import OpenCLBackend
from clconv.backends.opencl.runtime import OpenCLDevice
from clconv.cli import cli
from clconv.errors import BackendError, BuildError, ConvValueError
from clconv.spec import ConvSpec
from clconv.suites import suite


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch, fresh_host):
    """Each test: its own cache folder (tuning database), default settings, fresh plans."""
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("CLCONV_POLICY", "CLCONV_STRICT", "CLCONV_BACKEND", "CLCONV_DEVICE", "CLCONV_ALGORITHM",
                "CLCONV_DISABLE", "CLCONV_WORKSPACE_LIMIT", "CLCONV_DETERMINISTIC", "CLCONV_TUNE_BUDGET",
                "CLCONV_CLOSE_CALL"):
        monkeypatch.delenv(var, raising=False)
    config.reset()
    dispatch.clear_plans()
    yield
    config.reset()
    dispatch.clear_plans()


# ---------------------------------------------------------------- heuristic table
def fake_cl(name: str, kind: str, cus: int, mhz: int, lanes: int, mem_gib: int, fp64: bool = True) -> OpenCLDevice:
    return OpenCLDevice(
        id=f"opencl:fake:{name}", backend="opencl", name=name, kind=kind, vendor="fake", driver="1",
        memory_bytes=mem_gib * 2**30, compute_units=cus, fp64=fp64, fp16=False,
        extra={"max_clock_mhz": mhz, "native_vector_width_float": lanes, "max_work_group_size": 1024,
               "local_mem_bytes": 65536, "max_alloc_bytes": mem_gib * 2**28},
        _probe="",  # a fake device never probes
    )


HOST = Device(id="numpy:cpu", backend="numpy", name="host", kind="cpu", memory_bytes=16 * 2**30,
              compute_units=2, fp64=True, fp16=True, extra={"max_clock_mhz": 2600})

PROFILES = {
    "discrete-gpu": fake_cl("gpu", "gpu", 40, 1500, 1, 16),
    "gpu-no-fp64": fake_cl("gpu32", "gpu", 40, 1500, 1, 16, fp64=False),
    "two-core-cpu": fake_cl("cpu2", "cpu", 2, 2600, 16, 4),
}

LAYERS = {layer.name: layer for layer in suite("all")}

# (profile, layer or spec, dtype, expected "backend/algorithm")
TABLE = [
    # one 16 MiB Winograd chunk (four launches) where 4 MiB ones made two: F(4x4) by 14%
    ("discrete-gpu", "resnet50.3x3-56", "float32", "opencl/winograd-f4x4-3x3"),
    ("discrete-gpu", "resnet50.1x1-56-reduce", "float32", "opencl/im2col"),
    ("discrete-gpu", "mobilenetv2.dw3x3-112", "float32", "opencl/depthwise"),
    ("discrete-gpu", "deeplab.3x3-d6-33", "float32", "opencl/im2col"),
    ("discrete-gpu", "dcgan.t4x4s2-8", "float32", "opencl/im2col"),
    ("gpu-no-fp64", "resnet50.3x3-56", "float64", "numpy/im2col"),
    ("two-core-cpu", "mobilenetv2.dw3x3-112", "float32", "opencl/depthwise"),
    ("two-core-cpu", "small.3x3-16@8", "float32", "numpy/im2col"),
    ("two-core-cpu", "small.1d-8@16", "float32", "numpy/im2col"),
    ("two-core-cpu", "resnet50.stem-7x7s2", "float32", "opencl/direct-blocked"),
    ("two-core-cpu", "resnext.3x3-g32-56", "float32", "opencl/direct-blocked"),
    ("two-core-cpu", "audio.1d-1to512-k10s5", "float32", "opencl/direct-blocked"),
    ("two-core-cpu", "resnet50.1x1-56-reduce", "float32", "opencl/im2col"),
    ("two-core-cpu", "fcn.t4x4s2-21", "float32", "opencl/direct-blocked"),
    ("two-core-cpu", "fcn.t16x16s8-21", "float32", "opencl/direct-blocked"),
    ("two-core-cpu", "dcgan.t4x4s2-8", "float32", "opencl/im2col"),
    ("two-core-cpu", "dcgan.t4x4s2-4", "float32", "opencl/im2col"),
    ("two-core-cpu", "dcgan.t4x4s2-16", "float32", "opencl/direct-blocked"),
    ("two-core-cpu", "dcgan.t4x4s2-32-thin", "float32", "opencl/direct-blocked"),
    # dilated Winograd: phase traffic adds to the GEMM's time (measured: d=2 F(4x4) 1.5x faster
    # than im2col, d=12 im2col 1.3x faster than either Winograd)
    ("two-core-cpu", "deeplab.3x3-d2-33", "float32", "opencl/winograd-f4x4-3x3"),
    ("two-core-cpu", "deeplab.3x3-d12-33", "float32", "opencl/im2col"),
]


def candidates(spec: ConvSpec, device: OpenCLDevice) -> list[dispatch.Candidate]:
    s = config.Settings()
    out = [dispatch._evaluate(spec, "opencl", device, a, None, s) for a in OpenCLBackend().algorithms()]
    out += [dispatch._evaluate(spec, "numpy", HOST, a, None, s) for a in NumpyBackend().algorithms()]
    return out


@pytest.mark.parametrize("profile,layer,dtype,expected", TABLE, ids=[f"{p}-{l}-{d}" for p, l, d, _ in TABLE])
def test_heuristic_choice_is_pinned(profile, layer, dtype, expected):
    spec = LAYERS[layer].spec(dtype)
    order, decided_by = dispatch.decide(spec, candidates(spec, PROFILES[profile]), "heuristic", config.Settings())
    assert decided_by == "cost model"
    got = f"{order[0].backend}/{order[0].algorithm.id}"
    table = ", ".join(f"{c.backend}/{c.algorithm.id}={c.predicted_s * 1e3:.3f}ms" for c in order)
    assert got == expected, f"{profile} {layer}: chose {got}; ranking {table}"


def test_every_supported_candidate_gets_a_prediction():
    spec = LAYERS["resnet50.3x3-56"].spec()
    cands = candidates(spec, PROFILES["discrete-gpu"])
    dispatch.decide(spec, cands, "heuristic", config.Settings())
    for c in cands:
        assert (c.predicted_s is not None and c.predicted_s > 0) == c.support.ok


# ---------------------------------------------------------------- fake backends for run-time behaviour
class _RefKernel(Kernel):
    def compute(self, x, w, b, out):
        y = reference(self.spec, x, w, b).astype(self.spec.dtype)
        if out is None:
            return y
        out[...] = y
        return out


class _FailingKernel(Kernel):
    def compute(self, x, w, b, out):
        raise BackendError("clEnqueueNDRangeKernel failed with CL_OUT_OF_RESOURCES")


class _Alg(Algorithm):
    family = "reference"

    def __init__(self, id_, behaviour="ok", speed=1.0, deterministic=True, workspace=0):
        self.id = id_
        self.behaviour = behaviour
        self.speed = speed
        self.deterministic = deterministic
        self.workspace = workspace

    def supports(self, spec, device):
        return Support.yes()

    def workspace_bytes(self, spec, device):
        return self.workspace

    def cost(self, spec, device):
        from clconv.costmodel import Cost

        return Cost(spec.flops * self.speed, 0, 1, 0.5)

    def prepare(self, spec, device):
        if self.behaviour == "build-fails":
            raise BuildError("building fake.cl failed", log="error: nope", source="fake.cl")
        return (_FailingKernel if self.behaviour == "run-fails" else _RefKernel)(spec, device, self)


def install(host, *algs, name="fakebe"):
    class B(Backend):
        version = "1"

        def devices(self):
            return [Device(id=f"{name}:0", backend=name, name="fake", kind="gpu", memory_bytes=2**34)]

        def algorithms(self):
            return list(algs)

    B.name = name

    @clconv.hookimpl
    def clconv_register_backends(register):
        register(B())

    host.register_plugin(types.SimpleNamespace(clconv_register_backends=clconv_register_backends), f"p-{name}")


def xw():
    rng = np.random.default_rng(0)
    return rng.standard_normal((1, 2, 6, 6)).astype(np.float32), rng.standard_normal((3, 2, 3, 3)).astype(np.float32)


def test_fallback_on_run_time_failure_warns_and_uses_the_next(fresh_host):
    install(fresh_host(), _Alg("fast-but-broken", "run-fails", speed=0.1), _Alg("slow-ok", speed=1.0))
    x, w = xw()
    p = clconv.plan("conv2d", x, w, backend="fakebe")
    assert p.algorithm.id == "fast-but-broken"
    with pytest.warns(clconv.FallbackWarning, match=r"fakebe/fakebe:0/fast-but-broken failed .*CL_OUT_OF_RESOURCES.*falling back to fakebe/fakebe:0/slow-ok"):
        y = p(x, w)
    np.testing.assert_allclose(y, reference(p.spec, x, w), rtol=1e-5)
    assert p.algorithm.id == "slow-ok" and p.failures[0][0] == "fakebe/fakebe:0/fast-but-broken"
    assert p.explanation.chosen.algorithm.id == "slow-ok"


def test_fallback_on_build_failure_at_prepare(fresh_host):
    install(fresh_host(), _Alg("fast-no-build", "build-fails", speed=0.1), _Alg("slow-ok"))
    x, w = xw()
    with pytest.warns(clconv.FallbackWarning, match="fast-no-build failed to prepare"):
        y = clconv.conv2d(x, w, backend="fakebe")
    np.testing.assert_allclose(y, reference(ConvSpec.from_arrays("conv", 2, x, w), x, w), rtol=1e-5)


def test_strict_mode_raises_instead(fresh_host, monkeypatch):
    install(fresh_host(), _Alg("fast-but-broken", "run-fails", speed=0.1), _Alg("slow-ok"))
    monkeypatch.setenv("CLCONV_STRICT", "1")
    config.reset()
    x, w = xw()
    with warnings.catch_warnings():
        warnings.simplefilter("error", clconv.FallbackWarning)
        with pytest.raises(BackendError, match="CL_OUT_OF_RESOURCES"):
            clconv.conv2d(x, w, backend="fakebe")


def test_user_errors_never_fall_back(fresh_host):
    install(fresh_host(), _Alg("a"), _Alg("b", speed=2))
    x, w = xw()
    p = clconv.plan("conv2d", x, w, backend="fakebe")
    with pytest.raises(ConvValueError, match="input has shape"):
        p(x[:, :1], w)
    assert p.algorithm.id == "a" and not p.failures


def test_controls_disable_deterministic_workspace_and_force(fresh_host, monkeypatch):
    install(fresh_host(), _Alg("fast", speed=0.1, deterministic=False, workspace=10 * 2**20), _Alg("slow"))
    x, w = xw()
    assert clconv.explain("conv2d", x, w, backend="fakebe").chosen.algorithm.id == "fast"
    with clconv.settings(deterministic=True):
        rows = {r["algorithm"]: r for r in clconv.explain("conv2d", x, w, backend="fakebe").rows()}
        assert rows["fast"]["reason"].startswith("not deterministic") and rows["slow"]["chosen"]
    with clconv.settings(workspace_limit="1M"):
        rows = {r["algorithm"]: r for r in clconv.explain("conv2d", x, w, backend="fakebe").rows()}
        assert "exceeds the workspace limit 1.0 MiB" in rows["fast"]["reason"] and rows["slow"]["chosen"]
    monkeypatch.setenv("CLCONV_DISABLE", "fakebe/fast")
    config.reset()
    rows = {r["algorithm"]: r for r in clconv.explain("conv2d", x, w, backend="fakebe").rows()}
    assert rows["fast"]["reason_kind"] == "disabled" and rows["slow"]["chosen"]
    monkeypatch.delenv("CLCONV_DISABLE")
    monkeypatch.setenv("CLCONV_BACKEND", "fakebe")
    monkeypatch.setenv("CLCONV_ALGORITHM", "slow")
    config.reset()
    e = clconv.explain("conv2d", x, w)
    assert {c.backend for c in e.candidates} == {"fakebe"} and e.chosen.algorithm.id == "slow"


@pytest.mark.parametrize("var,value,match", [
    ("CLCONV_POLICY", "fastest", "CLCONV_POLICY='fastest'"),
    ("CLCONV_STRICT", "yes", "CLCONV_STRICT='yes'"),
    ("CLCONV_WORKSPACE_LIMIT", "lots", "CLCONV_WORKSPACE_LIMIT='lots'"),
    ("CLCONV_DETERMINISTIC", "2", "CLCONV_DETERMINISTIC='2'"),
    ("CLCONV_TUNE_BUDGET", "-1", "CLCONV_TUNE_BUDGET"),
    ("CLCONV_CLOSE_CALL", "-0.1", "CLCONV_CLOSE_CALL=-0.1"),
    ("CLCONV_CLOSE_CALL", "nan", "CLCONV_CLOSE_CALL=nan"),
    ("CLCONV_CLOSE_CALL", "some", "CLCONV_CLOSE_CALL='some'"),
])
def test_bad_environment_values_name_the_variable(monkeypatch, var, value, match):
    monkeypatch.setenv(var, value)
    config.reset()
    with pytest.raises(ConvValueError, match=match):
        config.current()


def test_configure_validates_and_restores():
    with pytest.raises(ConvValueError, match="not a clconv setting"):
        clconv.configure(speed="max")
    with pytest.raises(ConvValueError, match="policy='fast'"):
        clconv.configure(policy="fast")
    old = clconv.configure(policy="heuristic")
    assert config.current().policy == "heuristic" and old.policy == "auto"
    with clconv.settings(policy="measure"):
        assert config.current().policy == "measure"
    assert config.current().policy == "heuristic"


# ---------------------------------------------------------------- tuning database
def test_measure_policy_records_and_auto_reuses(fresh_host):
    install(fresh_host(), _Alg("a", speed=0.1), _Alg("b", speed=1.0))
    x, w = xw()
    e = clconv.explain("conv2d", x, w, backend="fakebe", policy="measure")
    assert e.decided_by == "measured now"
    assert all(c.measured_s is not None and c.measured_s > 0 for c in e.candidates)
    entries = tuning.database().entries()
    assert len(entries) == 2
    key = next(iter(entries))
    assert "fakebe@1" in key and "conv2d|n1|c2>3" in key and f"clconv:{clconv.__version__}" in key
    e2 = clconv.explain("conv2d", x, w, backend="fakebe")  # auto policy: a database hit
    assert e2.decided_by == "tuning database"
    assert {c.algorithm.id: c.measured_s for c in e2.candidates} == {c.algorithm.id: c.measured_s for c in e.candidates}
    e3 = clconv.explain("conv2d", x, w, backend="fakebe", policy="heuristic")
    assert e3.decided_by == "cost model" and e3.chosen.algorithm.id == "a"


def test_database_hit_overrides_the_cost_model(fresh_host):
    install(fresh_host(), _Alg("predicted-fast", speed=0.1), _Alg("predicted-slow", speed=1.0))
    x, w = xw()
    spec = ConvSpec.from_arrays("conv", 2, x, w)
    cands = dispatch.collect_candidates(spec, backend="fakebe", settings=config.Settings())
    db = tuning.database()
    db.record({dispatch._db_key(spec, c): {"time_s": 0.002 if c.algorithm.id == "predicted-fast" else 0.001}
               for c in cands})
    e = clconv.explain("conv2d", x, w, backend="fakebe")
    assert e.decided_by == "tuning database" and e.chosen.algorithm.id == "predicted-slow"


class _SleepKernel(_RefKernel):
    def compute(self, x, w, b, out):
        self.algorithm.calls += 1
        time.sleep(self.algorithm.delay)
        return super().compute(x, w, b, out)


class _BigAlg(_Alg):
    """Predicted far above CLOSE_CALL_MIN_S (``speed`` scales the prediction); each call sleeps
    ``delay`` seconds."""

    def __init__(self, id_, speed, delay):
        super().__init__(id_, speed=speed)
        self.delay = delay
        self.calls = 0
        self.built = []

    def cost(self, spec, device):
        from clconv.costmodel import Cost

        return Cost(1e12 * self.speed, 0, 1, 0.5)

    def variants(self, spec, device):  # tunable: a close call runs the first, clconv tune all
        return [{"unroll": 1}, {"unroll": 2}]

    def prepare(self, spec, device, params=None):
        self.built.append(dict(params or {}))
        return _SleepKernel(spec, device, self)


def test_auto_measures_a_close_call_once_and_remembers_it(fresh_host):
    # "a" is predicted 5% faster than "b" but runs slower; "c" is predicted 50% slower (not close)
    a, b, c = _BigAlg("a", 1.0, 0.004), _BigAlg("b", 1.05, 0.001), _BigAlg("c", 1.5, 0.002)
    install(fresh_host(), a, b, c)
    x, w = xw()
    e = clconv.explain("conv2d", x, w, backend="fakebe")
    assert e.decided_by == "measured now (close call)"
    assert [c_.algorithm.id for c_ in e.order] == ["b", "a", "c"]
    assert {c_.algorithm.id for c_ in e.candidates if c_.measured_s is not None} == {"a", "b"}
    assert c.calls == 0 and a.calls > 0 and b.calls > 0
    assert {str(p_) for p_ in a.built + b.built} == {"{'unroll': 1}"}  # default parameters only
    assert e.chosen.params == {"unroll": 1} and e.chosen.params_source == "default"
    entries = tuning.database().entries()
    assert len(entries) == 2 and all(v["scope"] == dispatch.CLOSE_CALL_SCOPE for v in entries.values())
    assert not any("params" in v for v in entries.values())
    calls = (a.calls, b.calls)
    e2 = clconv.explain("conv2d", x, w, backend="fakebe")  # remembered: nothing runs again
    assert e2.decided_by == "tuning database (close call)" and e2.chosen.algorithm.id == "b"
    assert (a.calls, b.calls) == calls
    y = clconv.conv2d(x, w, backend="fakebe")
    np.testing.assert_allclose(y, reference(ConvSpec.from_arrays("conv", 2, x, w), x, w, None), rtol=1e-5, atol=1e-5)
    # the measure policy (clconv tune) does not take close-call times as its own: it times all three
    e3 = clconv.explain("conv2d", x, w, backend="fakebe", policy="measure")
    assert e3.decided_by == "measured now" and c.calls > 0
    assert {"unroll": 2} in a.built + b.built  # now with their variants
    assert all("scope" not in v for v in tuning.database().entries().values())


@pytest.mark.parametrize("case", ["off", "heuristic", "far-apart", "fast-spec"])
def test_no_close_call_measurement(fresh_host, monkeypatch, case):
    speeds = {"far-apart": (1.0, 1.2)}.get(case, (1.0, 1.05))
    a, b = _BigAlg("a", speeds[0], 0.004), _BigAlg("b", speeds[1], 0.001)
    if case == "fast-spec":  # predicted below CLOSE_CALL_MIN_S: a wrong pick costs less than measuring
        a, b = _Alg("a", speed=1.0), _Alg("b", speed=1.05)
    if case == "off":
        monkeypatch.setenv("CLCONV_CLOSE_CALL", "0")
        config.reset()
    install(fresh_host(), a, b)
    x, w = xw()
    e = clconv.explain("conv2d", x, w, backend="fakebe", policy="heuristic" if case == "heuristic" else None)
    assert e.decided_by == "cost model" and e.chosen.algorithm.id == "a"
    assert tuning.database().entries() == {}


def test_close_calls_stay_on_the_best_device():
    # the same CPU through two OpenCL platforms ties on every candidate: not a close call
    spec = LAYERS["audio.1d-512-k3s2"].spec()
    cpu = PROFILES["two-core-cpu"]
    twin = fake_cl("twin", "cpu", 2, 2600, 16, 4)
    cands = candidates(spec, cpu) + [dispatch._evaluate(spec, "opencl", twin, a_, None, config.Settings())
                                     for a_ in OpenCLBackend().algorithms()]
    dispatch.decide(spec, cands, "heuristic", config.Settings())
    ok = [c_ for c_ in cands if c_.support.ok]
    close = dispatch.close_calls(ok, 0.15)
    assert {c_.algorithm.id for c_ in close} == {"direct-blocked", "im2col"}
    assert {c_.device.id for c_ in close} == {cpu.id}
    assert dispatch.close_calls(ok, 0.0) == []


def test_corrupt_database_is_reported_once_and_rebuilt():
    db = tuning.database()
    db.path.parent.mkdir(parents=True, exist_ok=True)
    db.path.write_text("{ this is not json")
    with pytest.warns(tuning.TuningWarning, match="corrupt or foreign"):
        assert db.lookup("anything") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", tuning.TuningWarning)
        assert db.lookup("anything") is None  # reported once
    db.record({"k": {"time_s": 1.0}})
    assert json.loads(db.path.read_text())["entries"] == {"k": {"time_s": 1.0}}


def test_foreign_database_file_is_rebuilt():
    db = tuning.database()
    db.path.parent.mkdir(parents=True, exist_ok=True)
    db.path.write_text(json.dumps({"format": "something-else/9", "entries": {"x": 1}}))
    with pytest.warns(tuning.TuningWarning):
        assert db.entries() == {}
    db.record({"k": {"time_s": 2.0}})
    assert db.entries() == {"k": {"time_s": 2.0}}


CHILD = """
import sys, clconv
from clconv import tuning
db = tuning.database()
i = int(sys.argv[1])
for j in range(25):
    db.record({f"proc{i}-entry{j}": {"time_s": i + j / 100}})
"""


def test_concurrent_processes_lose_nothing(tmp_path):
    env = dict(os.environ, CLCONV_CACHE_DIR=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(i)], env=env) for i in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    data = json.loads((tmp_path / "cache" / "tuning.json").read_text())
    assert len(data["entries"]) == 100


def test_several_processes_tuning_at_once(tmp_path):
    env = dict(os.environ, CLCONV_CACHE_DIR=str(tmp_path / "cache"), CLCONV_LOAD_PLUGINS="numpy")
    specs = [f"conv2d input=1,4,{8 + i},{8 + i} weight=4,4,3,3 padding=1" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-m", "clconv.cli", "tune", "--no-calibrate", "--budget", "0.5",
                               "--spec", s], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for s in specs]
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    data = json.loads((tmp_path / "cache" / "tuning.json").read_text())
    assert len(data["entries"]) == 6  # 3 specs x 2 numpy algorithms


def test_export_import_and_clear(tmp_path):
    db = tuning.database()
    db.record({"a": {"time_s": 1.0}, "b": {"time_s": 2.0}})
    assert db.export(tmp_path / "x.json") == 2
    assert db.clear() == 2 and db.entries() == {}
    assert db.import_(tmp_path / "x.json") == 2 and set(db.entries()) == {"a", "b"}
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(ConvValueError, match="not a clconv-tuning/1 export"):
        db.import_(tmp_path / "bad.json")


# ---------------------------------------------------------------- CLI
def test_cli_explain_table_and_json():
    r = CliRunner().invoke(cli, ["explain", "conv2d", "--input", "1,8,10,10", "--weight", "4,8,3,3", "--padding", "1"])
    assert r.exit_code == 0, r.output
    assert "numpy:cpu" in r.output and "predicted ms" in r.output and "*" in r.output
    r = CliRunner().invoke(cli, ["explain", "conv2d", "--input", "1,8,10,10", "--weight", "4,8,3,3",
                                 "--padding", "0:1,1:0", "--stride", "2", "--json"])
    data = json.loads(r.output)
    assert data["spec"].startswith("conv2d|n1|c8>4") and data["chosen"]["supported"]
    assert {"backend", "device", "algorithm", "supported", "reason", "predicted_s", "measured_s",
            "workspace_bytes", "chosen"} <= set(data["candidates"][0])


def test_cli_explain_bad_spec_is_a_clear_error():
    r = CliRunner().invoke(cli, ["explain", "conv2d", "--input", "1,8,10,10", "--weight", "4,3,3,3"])
    assert r.exit_code != 0 and "weight.shape[1] * groups must equal C_in" in r.output


def test_cli_tune_then_cache_list_export_import_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("CLCONV_LOAD_PLUGINS", "numpy")
    from clconv import plugins

    plugins.reset_host()
    r = CliRunner().invoke(cli, ["tune", "--spec", "conv2d input=1,4,8,8 weight=4,4,3,3 padding=1", "--budget", "0.5"])
    assert r.exit_code == 0, r.output
    assert "calibrated numpy:cpu" in r.output and "-> numpy/numpy:cpu/" in r.output
    r = CliRunner().invoke(cli, ["cache", "list", "--json"])
    data = json.loads(r.output)
    assert len(data["entries"]) == 2 and data["profiles"]
    e = clconv.explain("conv2d", (1, 4, 8, 8), (4, 4, 3, 3), padding=1)
    assert e.decided_by == "tuning database"
    assert CliRunner().invoke(cli, ["cache", "export", str(tmp_path / "t.json")]).exit_code == 0
    assert "removed 2 entries" in CliRunner().invoke(cli, ["cache", "clear"]).output
    assert "imported 2 entries" in CliRunner().invoke(cli, ["cache", "import", str(tmp_path / "t.json")]).output


# ---------------------------------------------------------------- constant weights
class _ResidentKernel(_RefKernel):
    """Records resident_weights calls; its resident weight is a marked copy (so a test can see
    which form each call received)."""

    made: ClassVar[list] = []
    seen: ClassVar[list] = []

    def resident_weights(self, weight, bias):
        self.made.append((self.algorithm.id, id(weight)))
        resident = weight.copy()
        resident.flags.writeable = False
        return resident, bias

    def compute(self, x, w, b, out):
        self.seen.append(w.flags.writeable)
        return super().compute(x, w, b, out)


class _ResidentAlg(_Alg):
    def prepare(self, spec, device):
        return (_FailingKernel if self.behaviour == "run-fails" else _ResidentKernel)(spec, device, self)


class _FailingResidentKernel(_ResidentKernel):
    def compute(self, x, w, b, out):
        raise BackendError("clEnqueueNDRangeKernel failed with CL_OUT_OF_RESOURCES")


def test_constant_weights_plan_makes_resident_weights_once_per_object(fresh_host):
    install(fresh_host(), _ResidentAlg("res"))
    _ResidentKernel.made, _ResidentKernel.seen = [], []
    x, w = xw()
    plain = clconv.plan("conv2d", x, w, backend="fakebe")
    p = clconv.plan("conv2d", x, w, backend="fakebe", constant_weights=True)
    assert isinstance(p, clconv.api.ConstantWeightsPlan) and p.plan is plain  # the shared plan, wrapped
    assert (p.spec, p.kernel, p.algorithm.id, p.failures) == (plain.spec, plain.kernel, "res", [])
    assert "ConstantWeightsPlan" in repr(p)
    for _ in range(3):
        np.testing.assert_allclose(p(x, w), reference(p.spec, x, w), rtol=1e-5)
    assert _ResidentKernel.made == [("res", id(w))] and _ResidentKernel.seen == [False] * 3
    w2 = w * 2  # another object: made resident in its turn
    np.testing.assert_allclose(p(x, w2), reference(p.spec, x, w2), rtol=1e-5)
    assert _ResidentKernel.made == [("res", id(w)), ("res", id(w2))]
    plain(x, w)  # the plain plan passes the caller's arrays
    assert len(_ResidentKernel.made) == 2 and _ResidentKernel.seen[-1] is True


def test_constant_weights_plan_makes_them_again_after_a_fallback(fresh_host):
    class Broken(_ResidentAlg):
        def prepare(self, spec, device):
            return _FailingResidentKernel(spec, device, self)

    install(fresh_host(), Broken("broken", speed=0.1), _ResidentAlg("ok"))
    _ResidentKernel.made, _ResidentKernel.seen = [], []
    x, w = xw()
    p = clconv.plan("conv2d", x, w, backend="fakebe", constant_weights=True)
    with pytest.warns(clconv.FallbackWarning):
        y = p(x, w)
    np.testing.assert_allclose(y, reference(p.spec, x, w), rtol=1e-5)
    assert [a for a, _ in _ResidentKernel.made] == ["broken", "ok"] and p.algorithm.id == "ok"


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_constant_weights_must_be_a_bool(value):
    x, w = xw()
    with pytest.raises(clconv.ConvTypeError, match=r"constant_weights=.*give True or False"):
        clconv.plan("conv2d", x, w, constant_weights=value)
