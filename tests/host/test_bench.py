"""``clconv bench``: the runners it compares compute the convolution of the float64 reference
(a ratio against a wrong result means nothing), with weights as inputs or as constants; the
command runs a suite, prints the table and writes its JSON; a bad ``--compare`` is refused."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from clconv import api, bench
from clconv.backends.numpy.ops import reference
from clconv.cli import cli
from clconv.dispatch import ConstantWeightsPlan
from clconv.spec import ConvSpec
from clconv.suites import suite

SPECS = {
    "conv-grouped-strided-asym": ConvSpec.from_shapes(
        "conv", (2, 4, 9, 8), (6, 2, 3, 3), bias=True, stride=2, padding=((1, 0), (2, 1)), groups=2),
    "conv1d-dilated-nobias": ConvSpec.from_shapes("conv", (1, 3, 17), (5, 3, 4), dilation=2, padding=3),
    "transposed-grouped": ConvSpec.from_shapes(
        "conv_transpose", (1, 6, 5, 4), (6, 2, 4, 4), bias=True, stride=2, padding=1, groups=3, output_padding=1),
}


def _close(spec, x, w, b, y):
    exact = reference(spec, x, w, b)
    assert y.shape == exact.shape
    assert np.linalg.norm(y - exact) <= 1e-5 * np.linalg.norm(exact)


@pytest.mark.parametrize("constant", [False, True], ids=["weights-as-inputs", "initializers"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_onnxruntime_runner_computes_the_reference(name, constant):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    spec = SPECS[name]
    x, w, b = bench.layer_arrays(spec, seed=3)
    y = bench.onnxruntime_runner(None, spec, (x, w, b), constant)()[0]
    _close(spec, x, w, b, y)


@pytest.mark.parametrize("constant", [False, True], ids=["plain", "constant-weights"])
def test_clconv_runner_computes_the_reference(fresh_host, constant, monkeypatch):
    plans = []
    real = api.plan
    monkeypatch.setattr(api, "plan", lambda *a, **k: plans.append(real(*a, **k)) or plans[-1])
    layer = suite("small")[0]
    spec = layer.spec()
    x, w, b = bench.layer_arrays(spec)
    fn, info = bench.clconv_runner(layer, spec, (x, w, b), "numpy", None, None, constant)
    assert info["backend"] == "numpy" and info["algorithm"]
    assert isinstance(plans[0], ConstantWeightsPlan) == constant
    _close(spec, x, w, b, fn())


@pytest.mark.parametrize("name", sorted(SPECS))
def test_torch_runner_computes_the_reference(name):
    torch = pytest.importorskip("torch")
    spec = SPECS[name]
    x, w, b = bench.layer_arrays(spec, seed=5)
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        layer = SimpleNamespace(fn=("conv_transpose" if spec.transposed else "conv") + f"{len(spec.kernel)}d")
        y = bench.torch_runner(layer, spec, (x, w, b), device)()
        _close(spec, x, w, b, y.cpu().numpy())


def test_device_arrays_need_an_opencl_device(fresh_host):
    """``--arrays device`` with the NumPy backend: the row names the reason, the run goes on."""
    layer = suite("small")[0]
    res = bench.run_layer(layer, backend="numpy", min_repeats=1, min_time_s=0, arrays="device")
    assert res.clconv_s is None and "needs an OpenCL device" in res.errors["clconv"]
    with pytest.raises(ValueError, match="arrays='gpu'"):
        bench.run_layer(layer, backend="numpy", arrays="gpu")
    r = CliRunner().invoke(cli, ["bench", "--suite", "small", "--arrays", "gpu"])
    assert r.exit_code != 0 and "--arrays" in r.output


def test_bench_runs_a_suite_and_writes_json(fresh_host, tmp_path):
    compare = []
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401

        compare = ["--compare", "onnxruntime"]
    except ImportError:
        pass
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(cli, ["bench", "--suite", "small", "--backend", "numpy", "--repeats", "1",
                                 "--min-time", "0", "--constant-weights", "--json", str(out), *compare])
    assert r.exit_code == 0, r.output
    assert "constant weights" in r.output and "small.3x3-16@8" in r.output
    data = json.loads(out.read_text())
    assert data["constant_weights"] is True and data["dtype"] == "float32" and data["arrays"] == "host"
    names = [layer.name for layer in suite("small")]
    assert [row["layer"] for row in data["results"]] == names
    for row in data["results"]:
        assert row["backend"] == "numpy" and row["clconv_s"] > 0 and row["gflops"] > 0 and not row["errors"]
        if compare:
            assert row["others_s"]["onnxruntime"] > 0 and row["others_device"]["onnxruntime"] == "cpu"
            assert row["ratios"]["onnxruntime"] == pytest.approx(row["clconv_s"] / row["others_s"]["onnxruntime"])
    if compare:
        assert data["geomean"]["onnxruntime"] > 0


def test_bench_refuses_an_unknown_runtime(fresh_host):
    r = CliRunner().invoke(cli, ["bench", "--suite", "small", "--compare", "tensorflow"])
    assert r.exit_code != 0
    assert "--compare" in r.output and "'tensorflow'" in r.output and "onnxruntime" in r.output

