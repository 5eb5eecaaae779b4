"""Tunable kernel parameters (``Algorithm.variants``): measuring every variant, the database
entry that keeps the fastest, later plans prepared with it, and the variants im2col and
Winograd offer on device profiles (fake devices: no OpenCL needed)."""

from __future__ import annotations

import re
import json
import time
import types

import numpy as np
import pytest
from click.testing import CliRunner

import clconv
from clconv import config, dispatch, plugins, tuning
from clconv.backend import Algorithm, Backend, Device, Kernel, Support
from clconv.backends.numpy.ops import reference
from clconv.backends.opencl.algorithms import im2col, winograd
from clconv.backends.opencl.runtime import OpenCLDevice
from clconv.cli import cli
from clconv.errors import BuildError, ConvValueError
from clconv.spec import ConvSpec
from clconv.suites import suite


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch, fresh_host):
    """Each test: its own cache folder (tuning database), default settings, fresh plans."""
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("CLCONV_POLICY", "CLCONV_STRICT", "CLCONV_BACKEND", "CLCONV_DEVICE", "CLCONV_ALGORITHM",
                "CLCONV_DISABLE", "CLCONV_WORKSPACE_LIMIT", "CLCONV_DETERMINISTIC", "CLCONV_TUNE_BUDGET"):
        monkeypatch.delenv(var, raising=False)
    config.reset()
    dispatch.clear_plans()
    yield
    config.reset()
    dispatch.clear_plans()


# ---------------------------------------------------------------- fake tunable algorithms
class _SleepKernel(Kernel):
    """The reference result, after sleeping ``delay`` seconds (a kernel of known speed)."""

    def __init__(self, spec, device, algorithm, delay, params=None):
        super().__init__(spec, device, algorithm)
        self.delay = delay
        if params is not None:
            self.params = params

    def compute(self, x, w, b, out):
        time.sleep(self.delay)
        y = reference(self.spec, x, w, b).astype(self.spec.dtype)
        if out is None:
            return y
        out[...] = y
        return out


class _Tunable(Algorithm):
    """Variants {"k": 1..3}; variant k sleeps delays[k] seconds; k in ``broken`` fails to build."""

    family = "reference"

    def __init__(self, id_, delays, broken=(), speed=1.0):
        self.id = id_
        self.delays = delays
        self.broken = broken
        self.speed = speed
        self.prepared: list[dict | None] = []

    def supports(self, spec, device):
        return Support.yes()

    def cost(self, spec, device):
        from clconv.costmodel import Cost

        return Cost(spec.flops * self.speed, 0, 1, 0.5)

    def variants(self, spec, device):
        return [{"k": k} for k in sorted(self.delays)]

    def prepare(self, spec, device, params=None):
        self.prepared.append(params)
        k = params["k"] if params else 1
        if k in self.broken:
            raise BuildError("building fake.cl failed", log="error: too many registers", source="fake.cl")
        return _SleepKernel(spec, device, self, self.delays[k], {"k": k})


class _Plain(Algorithm):
    """No variants: prepare takes two arguments, as any plugin written before tuning did."""

    family = "reference"

    def __init__(self, id_, delay, speed=1.0):
        self.id = id_
        self.delay = delay
        self.speed = speed

    def supports(self, spec, device):
        return Support.yes()

    def cost(self, spec, device):
        from clconv.costmodel import Cost

        return Cost(spec.flops * self.speed, 0, 1, 0.5)

    def prepare(self, spec, device):
        return _SleepKernel(spec, device, self, self.delay)


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


def by_id(expl):
    return {c.algorithm.id: c for c in expl.candidates}


# ---------------------------------------------------------------- dispatch and database
def test_untuned_candidates_use_the_default_and_say_so(fresh_host):
    tun, plain = _Tunable("tun", {1: 0.001, 2: 0.001}), _Plain("plain", 0.001, speed=2.0)
    install(fresh_host(), tun, plain)
    x, w = xw()
    e = clconv.explain("conv2d", x, w, backend="fakebe")
    c = by_id(e)
    assert (c["tun"].params, c["tun"].params_source) == ({"k": 1}, "default")
    assert c["tun"].params_text == "k=1 (default)" and "params k=1 (default)" in str(e)
    assert (c["plain"].params, c["plain"].params_source, c["plain"].params_text) == ({}, "", "")
    row = c["tun"].row()
    assert row["params"] == {"k": 1} and row["params_source"] == "default"
    assert c["plain"].row()["params"] is None
    p = clconv.plan("conv2d", x, w, backend="fakebe")
    assert p.algorithm.id == "tun" and tun.prepared == [None]  # the default: prepare(spec, device)


def test_measure_times_every_variant_and_stores_the_fastest(fresh_host):
    tun = _Tunable("tun", {1: 0.012, 2: 0.001, 3: 0.006})
    install(fresh_host(), tun, _Plain("plain", 0.015))
    x, w = xw()
    e = clconv.explain("conv2d", x, w, backend="fakebe", policy="measure")
    c = by_id(e)
    assert e.decided_by == "measured now" and e.chosen.algorithm.id == "tun"
    assert c["tun"].params == {"k": 2} and c["tun"].params_source == "tuned"
    assert 0.001 <= c["tun"].measured_s < 0.006
    assert "fastest of 3 parameter variants" in c["tun"].measure_note
    assert sorted(p["k"] for p in tun.prepared if p) == [1, 2, 3]
    entries = tuning.database().entries()
    entry = next(v for k, v in entries.items() if k.endswith("|tun"))
    assert entry["params"] == {"k": 2} and entry["params_text"] == "k=2"
    assert [v["params"]["k"] for v in entry["variants"]] == [1, 2, 3]
    assert entry["variants"][0]["time_s"] > entry["variants"][1]["time_s"]
    assert "params" not in next(v for k, v in entries.items() if k.endswith("|plain"))


def test_a_variant_within_the_noise_does_not_replace_the_default(fresh_host):
    """A variant 2% faster than the default (under VARIANT_MIN_GAIN) leaves the default."""
    assert tuning.VARIANT_MIN_GAIN >= 0.04
    install(fresh_host(), _Tunable("tun", {1: 0.0100, 2: 0.0098, 3: 0.03}))
    x, w = xw()
    c = by_id(clconv.explain("conv2d", x, w, backend="fakebe", policy="measure"))["tun"]
    assert c.params == {"k": 1}
    entry = next(iter(tuning.database().entries().values()))
    assert [v["params"]["k"] for v in entry["variants"]] == [1, 2, 3]


def test_a_later_process_prepares_with_the_tuned_params(fresh_host):
    """A database hit gives the tuned params (here: a fresh host and fresh plans, as in a new process)."""
    install(fresh_host(), _Tunable("tun", {1: 0.005, 2: 0.001}))
    x, w = xw()
    clconv.explain("conv2d", x, w, backend="fakebe", policy="measure")
    dispatch.clear_plans()
    plugins.reset_host()
    tun = _Tunable("tun", {1: 0.005, 2: 0.001})
    install(fresh_host(), tun)
    p = clconv.plan("conv2d", x, w, backend="fakebe")
    assert p.kernel.params == {"k": 2} and tun.prepared == [{"k": 2}]
    assert p.candidate.params_text == "k=2 (tuned)"
    assert p.explanation.decided_by == "tuning database"
    np.testing.assert_allclose(p(x, w), reference(p.spec, x, w, None), rtol=1e-5, atol=1e-5)
    # the cost model ranks, but the database's params still apply
    e = clconv.explain("conv2d", x, w, backend="fakebe", policy="heuristic")
    assert e.decided_by == "cost model" and by_id(e)["tun"].params_source == "tuned"


def test_stored_params_no_longer_offered_fall_back_to_the_default(fresh_host):
    install(fresh_host(), _Tunable("tun", {1: 0.001, 2: 0.001}))
    x, w = xw()
    spec = ConvSpec.from_arrays("conv", 2, x, w)
    (cand,) = dispatch.collect_candidates(spec, backend="fakebe", settings=config.Settings())
    tuning.database().record({dispatch._db_key(spec, cand): {"time_s": 0.001, "params": {"k": 9}}})
    c = by_id(clconv.explain("conv2d", x, w, backend="fakebe"))["tun"]
    assert (c.params, c.params_source) == ({"k": 1}, "default")


def test_a_failing_variant_only_loses(fresh_host):
    install(fresh_host(), _Tunable("tun", {1: 0.012, 2: 0.001, 3: 0.002}, broken=(2,)))
    x, w = xw()
    c = by_id(clconv.explain("conv2d", x, w, backend="fakebe", policy="measure"))["tun"]
    assert c.params == {"k": 3} and c.measured_s < 0.012
    entry = next(iter(tuning.database().entries().values()))
    assert entry["variants"][1]["note"].startswith("failed: BuildError")
    assert entry["variants"][1]["time_s"] == float("inf")


def test_a_clear_loser_is_not_tuned(fresh_host):
    """Variants are built only for candidates whose default is within VARIANT_MARGIN of the fastest."""
    slow = _Tunable("slow", {1: 0.02, 2: 0.001})
    install(fresh_host(), slow, _Plain("fast", 0.001))
    x, w = xw()
    c = by_id(clconv.explain("conv2d", x, w, backend="fakebe", policy="measure"))["slow"]
    assert slow.prepared == [{"k": 1}] and c.params == {"k": 1} and c.params_source == "tuned"
    assert "parameter variants" not in c.measure_note


def test_cli_cache_list_and_explain_show_the_params(fresh_host):
    install(fresh_host(), _Tunable("tun", {1: 0.004, 2: 0.001}))
    x, w = xw()
    clconv.explain("conv2d", x, w, backend="fakebe", policy="measure")
    r = CliRunner().invoke(cli, ["cache", "list"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "params" in r.output and "k=2" in r.output
    args = ["explain", "conv2d", "--input", "1,2,6,6", "--weight", "3,2,3,3", "--backend", "fakebe"]
    r = CliRunner().invoke(cli, args, env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "k=2 (tuned)" in r.output
    data = json.loads(CliRunner().invoke(cli, [*args, "--json"]).output)
    assert data["chosen"]["params"] == {"k": 2} and data["chosen"]["params_source"] == "tuned"


def test_prepare_with_passes_params_only_when_given():
    alg = _Plain("plain", 0.0)
    spec = ConvSpec.from_shapes("conv", (1, 2, 6, 6), (3, 2, 3, 3))
    dev = Device(id="x:0", backend="x", name="x")
    assert alg.variants(spec, dev) == [{}]
    assert alg.prepare_with(spec, dev, None).params == {}
    assert alg.prepare_with(spec, dev, {}).params == {}
    assert alg.describe_params({"a": 1, "b": "x"}) == "a=1 b=x"


# ---------------------------------------------------------------- im2col and Winograd variants
def fake_cl(name: str, kind: str, lanes: int, max_wg: int = 1024) -> OpenCLDevice:
    return OpenCLDevice(
        id=f"opencl:fake:{name}", backend="opencl", name=name, kind=kind, vendor="fake", driver="1",
        memory_bytes=2**32, compute_units=2, fp64=True, fp16=False,
        extra={"max_clock_mhz": 2600, "native_vector_width_float": lanes, "max_work_group_size": max_wg,
               "max_work_item_sizes": [max_wg, max_wg, max_wg], "local_mem_bytes": 65536,
               "max_alloc_bytes": 2**30},
        _probe="",
    )


DEVICES = {
    "avx512": fake_cl("avx512", "cpu", 16),
    "avx2": fake_cl("avx2", "cpu", 8),
    "gpu": fake_cl("gpu", "gpu", 1, max_wg=256),
    "small-wg-gpu": fake_cl("gpu", "gpu", 1, max_wg=32),
}
LAYERS = [layer.spec("float32") for layer in suite("resnet50")] + [
    ConvSpec.from_shapes("conv", (1, 3, 8, 8), (4, 3, 3, 3), padding=1),
    ConvSpec.from_shapes("conv_transpose", (2, 8, 5, 5), (8, 4, 4, 4), stride=2, padding=1),
    ConvSpec.from_shapes("conv", (2, 8, 9, 9), (16, 8, 3, 3), padding=1, dtype="float64"),
]


@pytest.mark.parametrize("profile", sorted(DEVICES))
def test_im2col_variants_are_few_valid_and_start_with_the_default(profile):
    dev = DEVICES[profile]
    alg = im2col.Im2col()
    for spec in LAYERS:
        vs = alg.variants(spec, dev)
        tiles = [im2col.Tiling.from_params(v) for v in vs]
        assert tiles[0] == im2col.tiling(spec, dev)  # untuned = today's default
        assert 1 <= len(vs) <= im2col.MAX_VARIANTS and len(set(tiles)) == len(tiles)
        assert json.loads(json.dumps(vs)) == vs  # survive the database
        for t in tiles[1:]:
            assert t.vw == tiles[0].vw and t.local[0] * t.local[1] <= dev.max_work_group_size
            if dev.kind == "cpu":
                assert t.tm * t.nv + t.nv <= im2col.vector_registers(dev) * 3 // 4
        assert alg.describe_params(vs[0])


def test_im2col_default_tiles_on_gpus():
    """GPUs: 8 x 8 tiles, but 4 x 4 for a 1x1 conv over few positions (measured on an H200)."""
    dev = DEVICES["gpu"]

    def tile(xs, ws, **params):
        t = im2col.tiling(ConvSpec.from_shapes("conv", xs, ws, **params), dev)
        return (t.tm, t.vw * t.nv, t.local)

    assert tile((1, 256, 14, 14), (256, 256, 3, 3), padding=1) == (8, 8, (16, 4))
    assert tile((1, 2048, 7, 7), (512, 2048, 1, 1)) == (4, 4, (16, 4))
    assert tile((1, 1024, 14, 14), (256, 1024, 1, 1)) == (4, 4, (16, 4))  # 196 columns
    assert tile((2, 1024, 14, 14), (256, 1024, 1, 1)) == (8, 8, (16, 4))  # 392
    assert tile((1, 512, 28, 28), (128, 512, 1, 1)) == (8, 8, (16, 4))
    assert tile((1, 256, 14, 14), (64, 256, 1, 1), stride=2) == (8, 8, (16, 4))  # stride 2: not a pointwise GEMM
    other = fake_cl("acc", "accelerator", 1, max_wg=256)
    t = im2col.tiling(ConvSpec.from_shapes("conv", (1, 256, 14, 14), (256, 256, 3, 3), padding=1), other)
    assert (t.tm, t.vw * t.nv) == (4, 8)  # not measured off GPUs: unchanged


def test_im2col_default_variants_on_avx512():
    def first(spec):
        return im2col.Im2col().describe_params(im2col.Im2col().variants(spec, DEVICES["avx512"])[0])

    spec = ConvSpec.from_shapes("conv", (8, 256, 28, 28), (256, 256, 1, 1))
    texts = [im2col.Im2col().describe_params(v) for v in im2col.Im2col().variants(spec, DEVICES["avx512"])]
    assert texts[0] == "8x32 (VW 16 x NV 2), local 1x8"
    assert "7x32 (VW 16 x NV 2), local 1x7" in texts  # measured faster on small images: tunable
    # the Y^T GEMM of a small image whose positions 7 divides: 7-row tiles (SMALL_IMAGE)
    assert first(ConvSpec.from_shapes("conv", (8, 256, 14, 14), (256, 256, 1, 1))) == "7x32 (VW 16 x NV 2), local 1x7"
    assert first(ConvSpec.from_shapes("conv", (1, 2048, 7, 7), (512, 2048, 1, 1))) == "7x32 (VW 16 x NV 2), local 1x7"
    assert first(ConvSpec.from_shapes("conv", (1, 256, 8, 8), (256, 256, 1, 1))) == "8x32 (VW 16 x NV 2), local 1x8"
    assert first(ConvSpec.from_shapes("conv", (1, 256, 14, 14), (256, 256, 3, 3))) == "8x32 (VW 16 x NV 2), local 1x8"
    assert "12x32 (VW 16 x NV 2), local 1x8" not in texts  # spills (module doc)
    tiny = ConvSpec.from_shapes("conv", (1, 3, 8, 8), (4, 3, 3, 3))
    assert all(v["tm"] <= 4 for v in im2col.Im2col().variants(tiny, DEVICES["avx512"])[1:])
    depthwise = ConvSpec.from_shapes("conv", (1, 32, 112, 112), (32, 1, 3, 3), padding=1, groups=32)
    assert [v["tm"] for v in im2col.Im2col().variants(depthwise, DEVICES["avx512"])] == [8, 1, 1]


@pytest.mark.parametrize("params", [{"tm": 8}, {"tm": 8, "vw": 3, "nv": 2, "l0": 1, "l1": 8},
                                    {"tm": 0, "vw": 16, "nv": 2, "l0": 1, "l1": 8}])
def test_bad_im2col_params_are_refused(params):
    with pytest.raises(ConvValueError, match="params="):
        im2col.Tiling.from_params(params)


@pytest.mark.parametrize("profile", sorted(DEVICES))
@pytest.mark.parametrize("cls", [winograd.WinogradF2, winograd.WinogradF4])
def test_winograd_variants_are_few_valid_and_start_with_the_default(profile, cls):
    dev = DEVICES[profile]
    alg = cls()
    for spec in LAYERS:
        if spec.transposed or spec.ndim != 2:
            assert alg.variants(spec, dev) == [{}]
            continue
        vs = alg.variants(spec, dev)
        blocks = [winograd.from_params(v) for v in vs]
        assert blocks[0][0] == winograd.make_plan(spec, dev, alg.mt).tile
        assert 1 <= len(vs) <= winograd.MAX_VARIANTS and len(set(blocks)) == len(blocks)
        for t, group in blocks:
            assert t.tm in (4, 8, 16) and group <= dev.max_work_group_size


def test_winograd_blocks_for_small_weights_on_pocl_cpus():
    """On PoCL's CPU devices a weight up to SMALL_WEIGHT_BYTES gets 4 x 4 blocks (a tile block's V
    in L1, U in L2); larger weights 16 x 1 where 9-16 tiles make one block, else 8 x 2, as other
    CPU drivers and few output channels do."""
    import dataclasses

    pocl = dataclasses.replace(DEVICES["avx512"], extra={**DEVICES["avx512"].extra, "platform_version": "OpenCL 3.0 PoCL 3.1"})
    layers = {layer.name: layer.spec("float32") for layer in suite("resnet50")}
    for name in ("resnet50.3x3-56", "resnet50.3x3-28"):
        spec = layers[name]
        assert spec.nbytes("weight") <= winograd.SMALL_WEIGHT_BYTES
        assert winograd.make_plan(spec, pocl, 4).tile == winograd.Tiling(vw=16, nv=4, tm=4)
        assert winograd.make_plan(spec, DEVICES["avx512"], 4).tile == winograd.Tiling(vw=16, nv=2, tm=8)
    big = layers["resnet50.3x3-14"]  # 2.4 MB: U no longer fits L2
    assert big.nbytes("weight") > winograd.SMALL_WEIGHT_BYTES
    # ... and its 16 tiles make one 16 x 1-vector block (TALL_BLOCK), U read once
    assert winograd.make_plan(big, pocl, 4).tile == winograd.Tiling(vw=16, nv=1, tm=16)
    assert winograd.make_plan(big, DEVICES["avx512"], 4).tile == winograd.Tiling(vw=16, nv=2, tm=8)
    assert not winograd.inlines_filters(big, pocl, 4)  # the inline GEMM keeps blocks of at most 8
    batch2 = ConvSpec.from_shapes("conv", (2, 256, 14, 14), (256, 256, 3, 3), padding=1)  # 32 tiles
    assert winograd.make_plan(batch2, pocl, 4).tile == winograd.Tiling(vw=16, nv=2, tm=8)
    narrow = ConvSpec.from_shapes("conv", (1, 16, 56, 56), (32, 16, 3, 3), padding=1)  # C_out = 2 vectors
    assert winograd.make_plan(narrow, pocl, 4).tile == winograd.Tiling(vw=16, nv=2, tm=8)
    assert winograd.pocl_cpu(pocl) and not winograd.pocl_cpu(DEVICES["avx512"])


def test_winograd_inline_filters_for_few_tile_blocks_of_a_large_u():
    """On PoCL's AVX-512 CPUs the GEMM transforms the filters itself where U (4x the weight) has
    more than INLINE_U_BYTES and at most one of its 8-tile blocks per INLINE_BLOCK_U_BYTES of U
    would read it: 512 channels (U 37.7 MB) up to 3 blocks (batch 6 at 7x7, 1 at 14x14), 256
    channels at 14x14 (9.4 MB) one block only, so not with its 16 tiles; never F(2x2), never off
    PoCL (the numbers: ``benchmarks/winograd_inline.py``, RESULTS.md)."""
    import dataclasses

    pocl = dataclasses.replace(DEVICES["avx512"], extra={**DEVICES["avx512"].extra, "platform_version": "OpenCL 3.0 PoCL 3.1"})
    cases = [((1, 512, 7, 7), 512, True), ((4, 512, 7, 7), 512, True), ((6, 512, 7, 7), 512, True),
             ((7, 512, 7, 7), 512, False), ((16, 512, 7, 7), 512, False), ((1, 512, 14, 14), 512, True),
             ((2, 512, 14, 14), 512, False), ((1, 256, 14, 14), 256, False), ((1, 128, 7, 7), 128, False)]
    for shape, cout, inline in cases:
        spec = ConvSpec.from_shapes("conv", shape, (cout, shape[1], 3, 3), padding=1)
        assert winograd.inlines_filters(spec, pocl, 4) == inline, shape
        assert not winograd.inlines_filters(spec, pocl, 2) and not winograd.inlines_filters(spec, DEVICES["avx512"], 4)
        if inline:
            tile = winograd.inline_tiling(spec, pocl, 4)
            assert tile.nv == 1 and tile.tm in (4, 8)
            assert winograd.WinogradF4().variants(spec, pocl)[0] == winograd.tile_params(tile, winograd.default_group(pocl))


def test_bad_winograd_params_are_refused():
    with pytest.raises(ConvValueError, match="params="):
        winograd.from_params({"tm": 6, "vw": 16, "nv": 2, "group": 8})


def test_fast_specs_get_many_rounds_slow_ones_few(fresh_host):
    """Sub-millisecond candidates are timed until TIMED_TARGET_S of calls (more than the 7
    default rounds); slow ones stop at the default rounds."""
    install(fresh_host(), _Plain("fast", 0.0), _Plain("fast2", 0.0))
    x, w = xw()
    e = clconv.explain("conv2d", x, w, backend="fakebe", policy="measure")
    rounds = int(re.search(r"\((\d+) interleaved rounds", by_id(e)["fast"].measure_note).group(1))
    assert rounds > 7
    install(fresh_host(), _Plain("slow", 0.06), _Plain("slow2", 0.06), name="fakeslow")
    e = clconv.explain("conv2d", x, w, backend="fakeslow", policy="measure")
    rounds = int(re.search(r"\((\d+) interleaved rounds", by_id(e)["slow"].measure_note).group(1))
    assert 3 <= rounds <= 7


def test_calibration_measures_the_fixed_cost_of_a_call(fresh_host):
    """tuning.calibrate adds call_us: a backend whose every call sleeps 2 ms gets ~2000 us,
    which the database keeps and predictions add once per call."""
    from clconv.costmodel import Cost, DeviceProfile

    class Be(Backend):
        name, version = "calbe", "1"

        def devices(self):
            return [Device(id="calbe:0", backend="calbe", name="fake", kind="cpu")]

        def algorithms(self):
            return [_Plain("slowcall", 0.002)]

        def calibrate(self, device):
            return DeviceProfile(100.0, 10.0, 1.0, "calibrated")

    be = Be()
    dev = be.devices()[0]
    prof = tuning.calibrate(be, dev, calls=7)
    assert 1500 <= prof.call_us <= 20000 and prof.launch_us == 1.0
    db = tuning.database()
    db.set_profile(dev, prof)
    assert db.profile(dev).call_us == pytest.approx(prof.call_us)
    cost = Cost(flops=0, bytes=0, launches=2)
    assert cost.predict(db.profile(dev)) == pytest.approx((2 * 1.0 + prof.call_us) * 1e-6)
