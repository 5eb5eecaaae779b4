"""The NumPy backend (``reference`` and ``im2col``) against an independent naive oracle.

The oracle (``tests/naive.py``) is plain Python loops with explicit index
arithmetic; it shares no code with clconv. Every case goes through the public
API (``clconv.conv*d`` / ``clconv.conv_transpose*d``) with the backend (``numpy``)
and the algorithm pinned, so other installed backends never change what is tested.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import clconv
from clconv import dispatch
from tests.naive import naive, per_dim, resolve_padding

ALGORITHMS = ("reference", "im2col")

#: Normwise relative tolerance of the im2col path (max|diff| / max|exact|) per dtype.
IM2COL_RTOL = {"float64": 1e-12, "float32": 2e-6, "float16": 2e-3}
#: Unit roundoff of each dtype: the reference rounds the exact float64 result once.
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11}


# --------------------------------------------------------------------- helpers
def fn_for(op: str, nd: int):
    return getattr(clconv, f"{op}{nd}d")


def weight_shape(op: str, c_in: int, c_out: int, groups: int, kernel: tuple[int, ...]) -> tuple[int, ...]:
    if op == "conv":
        return (c_out, c_in // groups, *kernel)
    return (c_in, c_out // groups, *kernel)


def make_arrays(case: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    dt = np.dtype(case["dtype"])
    x = rng.uniform(-1, 1, (case["n"], case["c_in"], *case["in_size"])).astype(dt)
    w = rng.uniform(-1, 1, weight_shape(case["op"], case["c_in"], case["c_out"], case["params"].get("groups", 1), case["kernel"])).astype(dt)
    b = rng.uniform(-1, 1, case["c_out"]).astype(dt) if case["bias"] else None
    return x, w, b


def check_against_oracle(out: np.ndarray, exact: np.ndarray, dtype: str, algorithm: str) -> None:
    """Output dtype, shape, layout, then the numbers, with the algorithm's tolerance."""
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
    assert out.shape == exact.shape, (out.shape, exact.shape)
    assert out.flags.c_contiguous
    if exact.size == 0:
        return
    assert np.all(np.isfinite(out))
    diff = np.abs(out.astype(np.float64) - exact)
    # all zeros happens (a window that only ever sees padding): then it is an absolute error
    scale = float(np.max(np.abs(exact))) or 1.0
    if algorithm == "reference":
        # Exact in float64, rounded once to the output dtype: at most half an ulp
        # of each value (plus float64 summation-order noise and the subnormal gap).
        u = UNIT_ROUNDOFF[dtype]
        tiny = float(np.finfo(dtype).smallest_subnormal)
        bound = u * np.abs(exact) * (1 + 1e-9) + 1e-12 * scale + tiny
        bad = diff > bound
        assert not bad.any(), (
            f"{int(bad.sum())} of {out.size} outputs off by more than a rounding; "
            f"worst {float(np.max(diff - bound))} over the bound"
        )
        if dtype == "float64":
            assert float(np.max(diff)) / scale <= 1e-12
    else:
        err = float(np.max(diff)) / scale
        assert err <= IM2COL_RTOL[dtype], f"normwise relative error {err:.3g} > {IM2COL_RTOL[dtype]:.3g}"


# ------------------------------------------------------------------ the table
def case(
    cid: str,
    op: str,
    n: int,
    c_in: int,
    c_out: int,
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    *,
    bias: bool = True,
    dtype: str = "float64",
    **params: Any,
):
    assert len(in_size) == len(kernel)
    return pytest.param(
        dict(op=op, n=n, c_in=c_in, c_out=c_out, in_size=in_size, kernel=kernel, bias=bias, dtype=dtype, params=params),
        id=cid,
    )


C, T = "conv", "conv_transpose"

CASES = [
    # ------------------------------------------------------------------ conv1d
    case("c1-basic", C, 2, 3, 4, (9,), (3,)),
    case("c1-stride2-pad1", C, 2, 3, 4, (9,), (3,), stride=2, padding=1),
    case("c1-stride3-pad-int-list", C, 1, 2, 3, (10,), (3,), stride=[3], padding=[2]),
    case("c1-asym-pad", C, 1, 2, 3, (8,), (3,), padding=((2, 0),)),
    case("c1-asym-pad-after", C, 1, 2, 3, (8,), (4,), stride=2, padding=[(0, 3)]),
    case("c1-same-s1-k3", C, 2, 2, 3, (7,), (3,), padding="same"),
    case("c1-same-s1-k4-even", C, 1, 2, 3, (7,), (4,), padding="same"),
    case("c1-same-s2-k3", C, 1, 2, 3, (8,), (3,), stride=2, padding="same"),
    case("c1-same-s2-k4-even", C, 1, 2, 3, (9,), (4,), stride=2, padding="same"),
    case("c1-same-s3-k2", C, 1, 2, 2, (10,), (2,), stride=3, padding="same"),
    case("c1-same-s2-k1", C, 1, 2, 2, (7,), (1,), stride=2, padding="same"),
    case("c1-same-dil2", C, 1, 2, 3, (9,), (3,), dilation=2, padding="same"),
    case("c1-same-s2-dil2-k2", C, 1, 2, 3, (9,), (2,), stride=2, dilation=2, padding="same"),
    case("c1-valid", C, 2, 2, 3, (8,), (3,), padding="valid"),
    case("c1-dil3", C, 1, 2, 3, (11,), (3,), dilation=3),
    case("c1-groups2", C, 2, 4, 6, (7,), (3,), groups=2, padding=1),
    case("c1-depthwise-mult2", C, 2, 3, 6, (8,), (3,), groups=3, padding=1),
    case("c1-depthwise-mult1", C, 1, 4, 4, (8,), (3,), groups=4, stride=2),
    case("c1-reflect", C, 1, 2, 3, (6,), (3,), padding=((2, 5),), padding_mode="reflect"),
    case("c1-replicate", C, 1, 2, 3, (5,), (3,), padding=((4, 1),), padding_mode="replicate"),
    case("c1-circular", C, 1, 2, 3, (5,), (3,), padding=((5, 2),), padding_mode="circular"),
    case("c1-reflect-same-s2", C, 1, 2, 2, (7,), (4,), stride=2, padding="same", padding_mode="reflect"),
    case("c1-circular-groups", C, 2, 4, 2, (6,), (3,), groups=2, padding=2, padding_mode="circular"),
    case("c1-n0", C, 0, 2, 3, (7,), (3,), padding=1),
    case("c1-1x1", C, 2, 3, 4, (6,), (1,)),
    case("c1-kernel-eq-input", C, 2, 2, 3, (5,), (5,)),
    case("c1-kernel-eq-padded", C, 1, 2, 3, (4,), (6,), padding=1),
    case("c1-nobias", C, 2, 3, 4, (9,), (3,), bias=False, stride=2),
    case("c1-f32", C, 2, 3, 4, (9,), (3,), dtype="float32", padding=1),
    case("c1-f16", C, 2, 3, 4, (9,), (3,), dtype="float16", padding=1),
    # ------------------------------------------------------------------ conv2d
    case("c2-basic", C, 2, 3, 4, (6, 5), (3, 3)),
    case("c2-stride-pad-dil", C, 1, 2, 3, (7, 8), (3, 2), stride=(2, 1), padding=((1, 0), (0, 2)), dilation=(1, 2)),
    case("c2-same-s1-even", C, 1, 2, 2, (5, 6), (2, 4), padding="same"),
    case("c2-same-s2-even", C, 1, 2, 2, (7, 6), (2, 4), stride=2, padding="same"),
    case("c2-same-s-mixed", C, 1, 2, 2, (7, 6), (3, 3), stride=(3, 1), dilation=(1, 2), padding="same"),
    case("c2-valid-stride", C, 2, 2, 2, (6, 6), (3, 2), stride=(1, 3), padding="valid"),
    case("c2-groups-reflect", C, 1, 4, 4, (5, 4), (3, 3), groups=2, padding=((2, 1), (3, 0)), padding_mode="reflect"),
    case("c2-depthwise-replicate-s2", C, 2, 3, 6, (6, 5), (3, 3), groups=3, stride=2, padding=2, padding_mode="replicate"),
    case("c2-circular", C, 1, 2, 3, (4, 5), (3, 3), padding=((4, 0), (1, 5)), padding_mode="circular"),
    case("c2-reflect-same-s2", C, 1, 2, 2, (6, 5), (3, 4), stride=2, padding="same", padding_mode="reflect"),
    case("c2-1x1", C, 2, 4, 3, (5, 4), (1, 1)),
    case("c2-1x1-stride", C, 1, 4, 3, (5, 4), (1, 1), stride=2),
    case("c2-kernel-eq-input", C, 2, 3, 2, (4, 3), (4, 3)),
    case("c2-n0", C, 0, 2, 3, (5, 5), (3, 3), padding=1),
    case("c2-nobias", C, 1, 2, 3, (5, 5), (3, 3), bias=False, dilation=2, padding=2),
    case("c2-f32", C, 2, 4, 4, (6, 6), (3, 3), dtype="float32", groups=2, padding="same"),
    case("c2-f16", C, 2, 4, 4, (6, 6), (3, 3), dtype="float16", stride=2, padding=1),
    case("c2-same-dil-reflect-s2", C, 1, 2, 3, (6, 7), (3, 2), stride=2, dilation=(2, 3), padding="same", padding_mode="reflect"),
    case("c2-circular-dil-s2-full", C, 2, 2, 2, (5, 6), (2, 3), stride=(2, 1), dilation=2, padding=((5, 1), (0, 6)), padding_mode="circular"),
    case("c2-f16-depthwise", C, 1, 2, 4, (5, 5), (3, 3), dtype="float16", groups=2, padding=1, padding_mode="reflect"),
    # ------------------------------------------------------------------ conv3d
    case("c3-basic", C, 1, 2, 2, (4, 4, 3), (2, 3, 2)),
    case("c3-stride-asym-dil", C, 1, 2, 2, (5, 4, 4), (2, 2, 2), stride=(2, 1, 2), padding=((1, 0), (0, 1), (2, 1)), dilation=(1, 2, 1)),
    case("c3-same-s2", C, 2, 1, 2, (5, 4, 3), (2, 3, 2), stride=2, padding="same"),
    case("c3-groups-reflect", C, 1, 4, 2, (3, 4, 3), (2, 2, 2), groups=2, padding=1, padding_mode="reflect"),
    case("c3-replicate", C, 1, 1, 2, (3, 3, 3), (2, 2, 2), padding=((2, 0), (0, 1), (1, 1)), padding_mode="replicate"),
    case("c3-circular", C, 1, 2, 1, (3, 3, 2), (2, 2, 2), padding=((3, 0), (1, 2), (2, 2)), padding_mode="circular"),
    case("c3-depthwise", C, 1, 2, 4, (4, 3, 3), (3, 2, 2), groups=2, padding=1),
    case("c3-1x1x1", C, 2, 3, 2, (3, 2, 3), (1, 1, 1)),
    case("c3-kernel-eq-input", C, 1, 2, 2, (3, 2, 3), (3, 2, 3), bias=False),
    case("c3-same-dil-s2-even", C, 1, 2, 2, (5, 4, 5), (2, 3, 2), stride=(1, 2, 1), dilation=(2, 1, 2), padding="same"),
    case("c3-same-dil-circular", C, 1, 2, 2, (4, 5, 4), (3, 2, 2), dilation=(1, 2, 2), padding="same", padding_mode="circular"),
    case("c3-valid-stride", C, 1, 2, 2, (4, 5, 6), (2, 2, 2), stride=(1, 2, 3), padding="valid"),
    case("c3-n0", C, 0, 2, 2, (3, 3, 3), (2, 2, 2)),
    case("c3-f32", C, 1, 2, 2, (4, 4, 4), (3, 3, 3), dtype="float32", padding="same"),
    case("c3-f16", C, 1, 2, 2, (4, 4, 4), (3, 3, 3), dtype="float16", padding=1),
    # -------------------------------------------------------- conv_transpose1d
    case("t1-basic", T, 2, 3, 4, (5,), (3,)),
    case("t1-stride2-pad1-op1", T, 2, 2, 3, (5,), (3,), stride=2, padding=1, output_padding=1),
    case("t1-asym-crop", T, 1, 2, 3, (5,), (4,), stride=3, padding=((0, 2),)),
    case("t1-asym-crop-before", T, 1, 2, 3, (4,), (3,), stride=2, padding=[(3, 0)], output_padding=1),
    case("t1-dil2-op1-stride1", T, 1, 2, 2, (4,), (3,), dilation=2, output_padding=1),
    case("t1-dil3-stride2-op2", T, 1, 2, 2, (4,), (2,), stride=2, dilation=3, output_padding=2),
    case("t1-groups2", T, 2, 4, 6, (5,), (3,), groups=2, stride=2),
    case("t1-depthwise", T, 1, 3, 6, (4,), (3,), groups=3, stride=2, padding=1),
    case("t1-groups-dil-op-asym", T, 2, 4, 6, (5,), (3,), groups=2, stride=2, dilation=3, output_padding=2, padding=((1, 3),)),
    case("t1-valid", T, 1, 2, 3, (5,), (3,), stride=2, padding="valid"),
    case("t1-stride-gt-kernel", T, 1, 2, 2, (4,), (2,), stride=4, output_padding=3),
    case("t1-n0", T, 0, 2, 3, (5,), (3,), stride=2),
    case("t1-1x1", T, 2, 3, 2, (5,), (1,)),
    case("t1-1x1-stride", T, 1, 3, 2, (4,), (1,), stride=3, output_padding=2),
    case("t1-kernel-eq-input", T, 1, 2, 2, (4,), (4,), padding=3),
    case("t1-nobias", T, 2, 3, 2, (5,), (3,), bias=False, stride=2),
    case("t1-f32", T, 2, 3, 4, (5,), (3,), dtype="float32", stride=2, padding=1),
    case("t1-f16", T, 2, 3, 4, (5,), (3,), dtype="float16", stride=2, padding=1),
    # -------------------------------------------------------- conv_transpose2d
    case("t2-basic", T, 1, 2, 3, (3, 4), (3, 3)),
    case("t2-everything", T, 2, 4, 4, (3, 4), (3, 2), stride=(2, 3), padding=((1, 0), (0, 2)), output_padding=(1, 2), groups=2),
    case("t2-dil-op", T, 1, 2, 2, (3, 3), (2, 3), dilation=(2, 1), stride=(1, 2), output_padding=(1, 1)),
    case("t2-depthwise", T, 1, 2, 4, (3, 3), (3, 3), groups=2, stride=2, padding=1, output_padding=1),
    case("t2-groups-dil-op-asym", T, 1, 4, 4, (3, 4), (2, 3), groups=2, stride=(2, 1), dilation=(1, 2), output_padding=(1, 1), padding=((0, 1), (2, 0))),
    case("t2-depthwise-mult-dil-op", T, 1, 2, 6, (3, 3), (3, 2), groups=2, stride=3, dilation=2, output_padding=(2, 1)),
    case("t2-kernel-eq-input", T, 1, 2, 2, (3, 2), (3, 2)),
    case("t2-n0", T, 0, 2, 2, (3, 3), (2, 2), stride=2),
    case("t2-f32", T, 1, 3, 2, (4, 4), (3, 3), dtype="float32", stride=2, padding=1, output_padding=1),
    case("t2-f16", T, 1, 3, 2, (4, 4), (3, 3), dtype="float16", stride=2, padding=((0, 1), (1, 0))),
    # -------------------------------------------------------- conv_transpose3d
    case("t3-stride2-op1", T, 1, 2, 2, (2, 3, 2), (2, 2, 3), stride=2, output_padding=1),
    case("t3-asym-groups", T, 1, 2, 2, (2, 2, 3), (3, 2, 2), groups=2, stride=(1, 2, 2), padding=((1, 0), (0, 1), (2, 1)), dilation=(1, 1, 2)),
    case("t3-everything", T, 1, 4, 2, (2, 3, 2), (2, 2, 3), groups=2, stride=(2, 3, 1), dilation=(2, 1, 2), output_padding=(1, 2, 1), padding=((1, 0), (0, 2), (1, 1))),
    case("t3-depthwise-mult-f32", T, 1, 2, 4, (2, 2, 3), (2, 3, 2), dtype="float32", groups=2, stride=2, dilation=(1, 2, 1), output_padding=1),
    case("t3-1x1x1", T, 2, 2, 3, (2, 2, 2), (1, 1, 1)),
    case("t3-n0", T, 0, 2, 2, (2, 2, 2), (2, 2, 2)),
    case("t3-f32", T, 1, 2, 2, (3, 2, 3), (2, 2, 2), dtype="float32", stride=2, padding=1),
    case("t3-f16", T, 1, 2, 2, (3, 2, 3), (2, 2, 2), dtype="float16", stride=(2, 1, 2), padding=(0, 1, 0)),
]


def _seed(cid: str) -> int:
    return zlib.crc32(cid.encode())


@pytest.fixture(scope="module")
def oracle_cache() -> dict[str, tuple]:
    """The naive result per case, computed once for both algorithms."""
    return {}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("c", CASES)
def test_case_table(c: dict[str, Any], algorithm: str, oracle_cache) -> None:
    cid = repr(sorted(c.items()))
    if cid not in oracle_cache:
        x, w, b = make_arrays(c, _seed(cid))
        oracle_cache[cid] = (x, w, b, naive(c["op"], x, w, b, **c["params"]))
    x, w, b, exact = oracle_cache[cid]
    nd = len(c["in_size"])
    out = fn_for(c["op"], nd)(x, w, b, **c["params"], algorithm=algorithm, backend="numpy")
    check_against_oracle(out, exact, c["dtype"], algorithm)


def test_case_table_covers_every_feature() -> None:
    """The table itself: guards against a refactor quietly dropping a combination."""
    cs = [p.values[0] for p in CASES]
    seen = set()
    for c in cs:
        p = c["params"]
        nd = len(c["in_size"])
        seen.add((c["op"], nd))
        seen.add(("dtype", c["op"], c["dtype"]))
        seen.add(("mode", p.get("padding_mode", "zeros")))
        s = per_dim(p.get("stride", 1), nd)
        d = per_dim(p.get("dilation", 1), nd)
        if p.get("padding") == "same":
            pads = resolve_padding("same", c["in_size"], c["kernel"], s, d)
            seen.add(("same", max(s) > 1, any(a != bb for a, bb in pads)))
        elif p.get("padding") == "valid":
            seen.add(("valid", c["op"]))
        elif "padding" in p:
            pads = resolve_padding(p["padding"], c["in_size"], c["kernel"], s, d)
            seen.add(("pad", c["op"], any(a != bb for a, bb in pads)))
        if max(s) > 1:
            seen.add(("stride", c["op"]))
        if max(d) > 1:
            seen.add(("dilation", c["op"]))
            if p.get("padding") == "same":
                seen.add(("same+dilation", nd))
        seen.add(("mode", p.get("padding_mode", "zeros"), nd))
        if c["op"] == T and p.get("groups", 1) > 1 and max(d) > 1 and any(per_dim(p.get("output_padding", 0), nd)):
            seen.add(("transposed groups+dilation+output_padding", nd))
        g = p.get("groups", 1)
        if g > 1:
            seen.add(("groups", c["op"], "depthwise" if g == c["c_in"] else "grouped"))
            if g == c["c_in"] and c["c_out"] > c["c_in"]:
                seen.add(("multiplier", c["op"]))
        if any(per_dim(p.get("output_padding", 0), nd)):
            seen.add("output_padding")
        seen.add(("bias", c["bias"]))
        seen.add(("batch", min(c["n"], 2)))
        if all(k == 1 for k in c["kernel"]):
            seen.add(("1x1", c["op"]))
        if tuple(c["kernel"]) == tuple(c["in_size"]):
            seen.add(("kernel==input", c["op"]))
    need = {(op, nd) for op in (C, T) for nd in (1, 2, 3)}
    need |= {("dtype", op, dt) for op in (C, T) for dt in ("float16", "float32", "float64")}
    need |= {("mode", m) for m in ("zeros", "reflect", "replicate", "circular")}
    need |= {("same", False, False), ("same", False, True), ("same", True, False), ("same", True, True)}
    need |= {("valid", C), ("valid", T), ("pad", C, False), ("pad", C, True), ("pad", T, False), ("pad", T, True)}
    need |= {("stride", C), ("stride", T), ("dilation", C), ("dilation", T)}
    need |= {("groups", op, k) for op in (C, T) for k in ("depthwise", "grouped")}
    need |= {("multiplier", C), ("multiplier", T), "output_padding", ("bias", True), ("bias", False)}
    need |= {("batch", 0), ("batch", 1), ("batch", 2), ("1x1", C), ("1x1", T)}
    need |= {("kernel==input", C), ("kernel==input", T)}
    need |= {("same+dilation", nd) for nd in (1, 2, 3)}
    need |= {("mode", m, nd) for m in ("zeros", "reflect", "replicate", "circular") for nd in (1, 2, 3)}
    need |= {("transposed groups+dilation+output_padding", nd) for nd in (1, 2, 3)}
    assert need <= seen, sorted(map(str, need - seen))


# ---------------------------------------------------------------- hypothesis
@st.composite
def random_cases(draw, dtypes=("float64", "float32", "float16")) -> dict[str, Any]:
    """A valid call, by construction from the rules (not from clconv's validation)."""
    op = draw(st.sampled_from((C, T)))
    nd = draw(st.integers(1, 3))
    max_size, max_k = {1: (9, 4), 2: (6, 3), 3: (4, 2)}[nd]
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    n = draw(st.integers(0, 2))
    in_size = tuple(draw(st.integers(1, max_size)) for _ in range(nd))
    kernel = tuple(draw(st.integers(1, max_k)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    params: dict[str, Any] = {"groups": groups}
    # stride/dilation as an int when they agree, sometimes
    params["stride"] = stride[0] if len(set(stride)) == 1 and draw(st.booleans()) else stride
    params["dilation"] = dilation[0] if len(set(dilation)) == 1 and draw(st.booleans()) else dilation
    if op == C:
        mode = draw(st.sampled_from(("zeros", "reflect", "replicate", "circular")))
        form = draw(st.sampled_from(("int", "pairs", "same", "valid")))
        if form == "int":
            padding: Any = draw(st.integers(0, 3))
        elif form == "pairs":
            padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
        else:
            padding = form
        pads = resolve_padding(padding, in_size, kernel, stride, dilation)
        for L, k, d, (pb, pa) in zip(in_size, kernel, dilation, pads):
            assume(d * (k - 1) + 1 <= L + pb + pa)
            if mode == "reflect":
                assume(max(pb, pa) < L)
            if mode == "circular":
                assume(max(pb, pa) <= L)
        params["padding"] = padding
        params["padding_mode"] = mode
    else:
        out_pad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd))
        for L, k, s, d, op_, (pb, pa) in zip(in_size, kernel, stride, dilation, out_pad, pads):
            assume((L - 1) * s + d * (k - 1) + 1 + op_ - pb - pa >= 1)
        params["output_padding"] = out_pad
        params["padding"] = draw(st.sampled_from((pads, tuple(p[0] for p in pads))))
        if isinstance(params["padding"][0], int):
            for L, k, s, d, op_, pb in zip(in_size, kernel, stride, dilation, out_pad, params["padding"]):
                assume((L - 1) * s + d * (k - 1) + 1 + op_ - 2 * pb >= 1)
    return dict(
        op=op, n=n, c_in=c_in, c_out=c_out, in_size=in_size, kernel=kernel,
        bias=draw(st.booleans()), dtype=draw(st.sampled_from(dtypes)), params=params,
    )


HYP = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow], derandomize=True)


@HYP
@given(c=random_cases(), seed=st.integers(0, 2**31 - 1))
def test_random_cases_against_naive(c: dict[str, Any], seed: int) -> None:
    x, w, b = make_arrays(c, seed)
    exact = naive(c["op"], x, w, b, **c["params"])
    fn = fn_for(c["op"], len(c["in_size"]))
    for algorithm in ALGORITHMS:
        out = fn(x, w, b, **c["params"], algorithm=algorithm, backend="numpy")
        check_against_oracle(out, exact, c["dtype"], algorithm)


# ------------------------------------------------------------------- PyTorch
def torch_reference(c: dict[str, Any], x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """The same call in PyTorch (float64). Asymmetric padding, padding modes and "same"
    at stride > 1 go through F.pad (conv) or a crop of the uncropped result (transposed)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    nd = len(c["in_size"])
    p = dict(c["params"])
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    tb = None if b is None else torch.from_numpy(b)
    stride = per_dim(p.get("stride", 1), nd)
    dilation = per_dim(p.get("dilation", 1), nd)
    groups = p.get("groups", 1)
    pads = resolve_padding(p.get("padding", 0), c["in_size"], c["kernel"], stride, dilation)
    if c["op"] == C:
        conv = getattr(F, f"conv{nd}d")
        mode = p.get("padding_mode", "zeros")
        if p.get("padding") == "same" and max(stride) == 1 and mode == "zeros":
            # torch's own "same" (stride 1 only): the odd element at the end too
            return conv(tx, tw, tb, stride=1, padding="same", dilation=dilation, groups=groups).numpy()
        if mode == "zeros" and all(a == bb for a, bb in pads):
            return conv(tx, tw, tb, stride=stride, padding=[a for a, _ in pads], dilation=dilation, groups=groups).numpy()
        flat = [v for pair in reversed(pads) for v in pair]  # F.pad: last dim first
        tm = {"zeros": "constant"}.get(mode, mode)
        if c["n"] == 0 and tm != "constant":
            # torch's reflect/replicate/circular padding refuse an empty batch
            tx = torch.zeros((0, c["c_in"], *(L + a + bb for L, (a, bb) in zip(c["in_size"], pads))), dtype=tx.dtype)
        else:
            tx = F.pad(tx, flat, mode=tm)
        return conv(tx, tw, tb, stride=stride, padding=0, dilation=dilation, groups=groups).numpy()
    convt = getattr(F, f"conv_transpose{nd}d")
    out_pad = per_dim(p.get("output_padding", 0), nd)
    if all(a == bb for a, bb in pads):
        return convt(tx, tw, tb, stride=stride, padding=[a for a, _ in pads], output_padding=out_pad,
                     groups=groups, dilation=dilation).numpy()
    full = convt(tx, tw, tb, stride=stride, padding=0, output_padding=out_pad, groups=groups, dilation=dilation)
    sl = tuple(slice(a, full.shape[2 + i] - bb) for i, (a, bb) in enumerate(pads))
    return full[(slice(None), slice(None)) + sl].numpy()


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@HYP
@given(c=random_cases(dtypes=("float64",)), seed=st.integers(0, 2**31 - 1))
def test_random_cases_against_torch(c: dict[str, Any], seed: int) -> None:
    pytest.importorskip("torch")
    x, w, b = make_arrays(c, seed)
    expected = torch_reference(c, x, w, b)
    fn = fn_for(c["op"], len(c["in_size"]))
    for algorithm in ALGORITHMS:
        out = fn(x, w, b, **c["params"], algorithm=algorithm, backend="numpy")
        assert out.shape == expected.shape
        if expected.size:
            err = float(np.max(np.abs(out - expected))) / (float(np.max(np.abs(expected))) or 1.0)
            assert err <= 1e-12, (algorithm, err)


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("c", [p for p in CASES if p.values[0]["dtype"] == "float64"])
def test_case_table_against_torch(c: dict[str, Any]) -> None:
    """The table's float64 cases against PyTorch too: the naive oracle is checked by a third party."""
    pytest.importorskip("torch")
    x, w, b = make_arrays(c, 1)
    expected = torch_reference(c, x, w, b)
    got = naive(c["op"], x, w, b, **c["params"])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    out = fn_for(c["op"], len(c["in_size"]))(x, w, b, **c["params"], algorithm="im2col", backend="numpy")
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------- array layouts
LAYOUT_CALLS = [
    pytest.param(dict(op=C, nd=2, x=(2, 4, 6, 5), w=(6, 2, 3, 2), params=dict(stride=(2, 1), padding=((1, 2), (0, 1)), groups=2, padding_mode="reflect")), id="conv2d"),
    pytest.param(dict(op=T, nd=2, x=(2, 4, 4, 3), w=(4, 3, 3, 2), params=dict(stride=2, padding=((1, 0), (0, 1)), output_padding=1, groups=2)), id="conv_transpose2d"),
    pytest.param(dict(op=C, nd=1, x=(3, 2, 9), w=(4, 2, 3), params=dict(padding="same", stride=2, padding_mode="circular")), id="conv1d"),
    pytest.param(dict(op=C, nd=3, x=(1, 2, 4, 3, 4), w=(2, 2, 2, 2, 2), params=dict(padding=1, dilation=(1, 2, 1))), id="conv3d"),
]


def _layouts(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> dict[str, np.ndarray]:
    """The same values in several memory layouts."""
    base = rng.uniform(-1, 1, shape).astype(dtype)
    big = np.zeros(tuple(2 * s for s in shape), dtype=dtype)
    big[tuple(slice(None, None, 2) for _ in shape)] = base
    strided = big[tuple(slice(None, None, 2) for _ in shape)]
    rev_store = np.ascontiguousarray(base[tuple(slice(None, None, -1) for _ in shape)])
    negative = rev_store[tuple(slice(None, None, -1) for _ in shape)]
    readonly = base.copy()
    readonly.flags.writeable = False
    # a transposed-then-transposed-back view: C order values, permuted strides
    perm = tuple(reversed(range(len(shape))))
    permuted = np.ascontiguousarray(base.transpose(perm)).transpose(perm)
    out = {
        "strided": strided,
        "fortran": np.asfortranarray(base),
        "negative": negative,
        "readonly": readonly,
        "permuted": permuted,
    }
    for name, arr in out.items():
        assert np.array_equal(arr, base), name
    assert not out["strided"].flags.c_contiguous
    if len(shape) > 1:
        assert not out["fortran"].flags.c_contiguous
    assert any(s < 0 for s in out["negative"].strides)
    return {"contiguous": base, **out}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("c", LAYOUT_CALLS)
def test_layouts_give_the_contiguous_result_and_leave_inputs_alone(c, algorithm: str, dtype: str) -> None:
    rng = np.random.default_rng(7)
    xs = _layouts(rng, c["x"], dtype)
    ws = _layouts(rng, c["w"], dtype)
    c_out = c["w"][0] if c["op"] == C else c["w"][1] * c["params"].get("groups", 1)
    bs = _layouts(rng, (c_out,), dtype)
    fn = fn_for(c["op"], c["nd"])
    want = fn(xs["contiguous"], ws["contiguous"], bs["contiguous"], **c["params"], algorithm=algorithm, backend="numpy")
    for name in xs:
        x, w, b = xs[name], ws[name], bs[name]
        before = [(a.copy(), a.strides, a.flags.writeable) for a in (x, w, b)]
        got = fn(x, w, b, **c["params"], algorithm=algorithm, backend="numpy")
        assert got.flags.c_contiguous and got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want, err_msg=name)
        for a, (copy, strides, writeable) in zip((x, w, b), before):
            assert np.array_equal(a, copy), f"{name}: an argument was modified"
            assert a.strides == strides and a.flags.writeable == writeable
        assert not np.shares_memory(got, x) and not np.shares_memory(got, w)
    # the result is the caller's to modify, and doing so changes no later result
    got = fn(xs["readonly"], ws["readonly"], bs["readonly"], **c["params"], algorithm=algorithm, backend="numpy")
    assert got.flags.writeable
    got[...] = 0
    again = fn(xs["readonly"], ws["readonly"], bs["readonly"], **c["params"], algorithm=algorithm, backend="numpy")
    np.testing.assert_array_equal(again, want)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_big_endian_input(algorithm: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (1, 2, 5, 5))
    w = rng.uniform(-1, 1, (3, 2, 3, 3))
    want = clconv.conv2d(x, w, padding=1, algorithm=algorithm, backend="numpy")
    xb, wb = x.astype(">f8"), w.astype(">f8")
    got = clconv.conv2d(xb, wb, padding=1, algorithm=algorithm, backend="numpy")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    assert xb.dtype == np.dtype(">f8") and np.array_equal(xb, x)


# ----------------------------------------------------------------- NaN / Inf
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_one_nan_reaches_exactly_its_window(algorithm: str, dtype: str) -> None:
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (2, 2, 7, 8)).astype(dtype)
    w = (rng.uniform(0.5, 1.0, (3, 2, 3, 3)) * rng.choice([-1, 1], (3, 2, 3, 3))).astype(dtype)
    b = rng.uniform(-1, 1, 3).astype(dtype)
    x[1, 1, 3, 4] = np.nan
    out = clconv.conv2d(x, w, b, algorithm=algorithm, backend="numpy")  # 3x3, stride 1, no padding: out (2, 3, 5, 6)
    expected = np.zeros(out.shape, dtype=bool)
    expected[1, :, 1:4, 2:5] = True  # output (i, j) reads input rows i..i+2, cols j..j+2
    np.testing.assert_array_equal(np.isnan(out), expected)
    assert np.all(np.isfinite(out[~expected]))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_inf_reaches_exactly_its_window(algorithm: str) -> None:
    rng = np.random.default_rng(12)
    x = rng.uniform(-1, 1, (1, 1, 6, 6))
    w = rng.uniform(0.5, 1.0, (2, 1, 3, 3)) * rng.choice([-1, 1], (2, 1, 3, 3))
    x[0, 0, 0, 5] = np.inf
    out = clconv.conv2d(x, w, padding=1, algorithm=algorithm, backend="numpy")  # out (1, 2, 6, 6)
    expected = np.zeros(out.shape, dtype=bool)
    expected[0, :, 0:2, 4:6] = True
    np.testing.assert_array_equal(np.isinf(out), expected)
    assert not np.isnan(out).any()
    assert np.all(np.isfinite(out[~expected]))


NAN_CALLS = [
    pytest.param(C, (1, 2, 7), (2, 2, 3), dict(padding=((2, 3),), padding_mode="reflect"), id="conv1d-reflect"),
    pytest.param(C, (1, 2, 6), (2, 2, 3), dict(padding=((4, 2),), padding_mode="circular", stride=2), id="conv1d-circular"),
    pytest.param(C, (1, 2, 5, 5), (2, 2, 2, 3), dict(padding=((0, 3), (2, 0)), padding_mode="replicate", dilation=(2, 1)), id="conv2d-replicate"),
    pytest.param(C, (1, 4, 6, 5), (4, 2, 3, 3), dict(groups=2, stride=2, padding="same"), id="conv2d-groups-same"),
    pytest.param(T, (1, 2, 4, 3), (2, 2, 3, 2), dict(stride=(2, 3), padding=((1, 0), (0, 2)), output_padding=(1, 0), dilation=(1, 2)), id="convT2d"),
    pytest.param(T, (1, 4, 3, 3), (4, 1, 2, 2), dict(groups=4, stride=2), id="convT2d-depthwise"),
    pytest.param(C, (1, 1, 3, 4, 3), (2, 1, 2, 2, 2), dict(padding=1, padding_mode="reflect"), id="conv3d-reflect"),
]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # IEEE results, not events to warn about
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("op,xshape,wshape,params", NAN_CALLS)
def test_nan_and_inf_reach_what_the_oracle_says(op, xshape, wshape, params, algorithm: str) -> None:
    """One NaN and one Inf in the input (including where padding mirrors or wraps
    them): the non-finite outputs are exactly the oracle's, each of the same kind."""
    rng = np.random.default_rng(5)
    for pos in ((0, 0) + (0,) * (len(xshape) - 2), (0, xshape[1] - 1) + tuple(s - 1 for s in xshape[2:]), (0, xshape[1] // 2) + tuple(s // 2 for s in xshape[2:])):
        x = rng.uniform(-1, 1, xshape)
        w = rng.uniform(0.5, 1.0, wshape) * rng.choice([-1, 1], wshape)
        x[pos] = np.nan
        inf_pos = (0, 0) + tuple((s - 2) % s for s in xshape[2:])
        if inf_pos != pos:
            x[inf_pos] = np.inf
        exact = naive(op, x, w, None, **params)
        out = fn_for(op, len(xshape) - 2)(x, w, None, **params, algorithm=algorithm, backend="numpy")
        assert np.isnan(exact).any()
        np.testing.assert_array_equal(np.isnan(out), np.isnan(exact))
        np.testing.assert_array_equal(np.isinf(out), np.isinf(exact))
        np.testing.assert_array_equal(np.sign(out[np.isinf(out)]), np.sign(exact[np.isinf(exact)]))


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inf_through_blas_without_a_warning(algorithm: str, dtype: str) -> None:
    """An Inf in a float32 im2col column trips BLAS's invalid flag in lanes it throws away;
    numpy then warned 'invalid value encountered in matmul' on a correct result."""
    for size, pos, k in ((2, 0, 2), (5, 3, 2), (6, 4, 3), (7, 5, 3), (9, 8, 2)):
        x = np.full((1, 1, size), 0.75, dtype)
        x[0, 0, pos] = np.inf
        w = np.full((2, 1, k), 0.75, dtype)
        out = clconv.conv1d(x, w, stride=2, padding=((1, 0),), algorithm=algorithm, backend="numpy")
        exact = naive(C, x, w, None, stride=2, padding=((1, 0),))
        np.testing.assert_array_equal(np.isposinf(out), np.isposinf(exact))
        assert np.isposinf(exact).any() and not np.isnan(out).any()


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_float16_overflow_is_inf_without_a_warning(algorithm: str) -> None:
    x = np.full((1, 1, 4, 4), 60000, np.float16)
    w = np.full((1, 1, 2, 2), 2, np.float16)
    out = clconv.conv2d(x, w, algorithm=algorithm, backend="numpy")
    assert out.dtype == np.float16 and np.isposinf(out).all()
    out = clconv.conv2d(-x, w, algorithm=algorithm, backend="numpy")
    assert np.isneginf(out).all()


@pytest.mark.filterwarnings("error")  # a fallback to another algorithm is a failure here
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("stride", [2**31, 2**62, 2**70, (2**70, 2)])
def test_stride_larger_than_the_input(algorithm: str, stride) -> None:
    """A stride beyond the padded input leaves one output on that dim; any int is valid
    (im2col multiplied it into as_strided's byte strides, which overflowed)."""
    rng = np.random.default_rng(23)
    x = rng.uniform(-1, 1, (2, 3, 5, 6))
    w = rng.uniform(-1, 1, (4, 3, 3, 2))
    out = clconv.conv2d(x, w, stride=stride, padding=1, algorithm=algorithm, backend="numpy")
    exact = naive(C, x, w, None, stride=stride, padding=1)
    assert out.shape == exact.shape == ((2, 4, 1, 1) if isinstance(stride, int) else (2, 4, 1, 4))
    check_against_oracle(out, exact, "float64", algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_in_weight_or_bias_poisons_only_its_channel(algorithm: str) -> None:
    rng = np.random.default_rng(13)
    x = rng.uniform(-1, 1, (2, 4, 5, 5))
    w = rng.uniform(-1, 1, (6, 2, 3, 3))
    b = rng.uniform(-1, 1, 6)
    w[4, 1, 2, 0] = np.nan  # group 1, out channel 4
    b[1] = np.nan
    out = clconv.conv2d(x, w, b, groups=2, algorithm=algorithm, backend="numpy")
    nan_channels = sorted(set(np.argwhere(np.isnan(out))[:, 1].tolist()))
    assert nan_channels == [1, 4]
    assert np.isnan(out[:, [1, 4]]).all()
    assert np.isfinite(out[:, [0, 2, 3, 5]]).all()
    wt = rng.uniform(-1, 1, (4, 3, 2, 2))
    wt[2, 0, 1, 1] = np.nan  # input channel 2 is in group 1 -> out channel 3 + 0
    out = clconv.conv_transpose2d(x, wt, None, groups=2, stride=2, algorithm=algorithm, backend="numpy")  # (2, 6, 10, 10)
    nan_mask = np.isnan(out)
    # tap (1, 1) of stride 2 lands on odd rows and cols only
    expected = np.zeros(out.shape, dtype=bool)
    expected[:, 3, 1::2, 1::2] = True
    np.testing.assert_array_equal(nan_mask, expected)


# ------------------------------------------------------------- determinism
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("op", [C, T])
def test_same_bits_run_after_run(algorithm: str, op: str) -> None:
    rng = np.random.default_rng(17)
    x = rng.standard_normal((4, 16, 12, 12)).astype(np.float32)
    if op == C:
        w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
        params = dict(padding=1, stride=1)
    else:
        w = rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
        params = dict(padding=1, stride=2, output_padding=1)
    b = rng.standard_normal(32).astype(np.float32)
    fn = fn_for(op, 2)
    first = fn(x, w, b, **params, algorithm=algorithm, backend="numpy").tobytes()
    for i in range(3):
        if i == 1:
            dispatch.clear_plans()  # a freshly prepared plan too
        assert fn(x, w, b, **params, algorithm=algorithm, backend="numpy").tobytes() == first
    # also the same bits through an explicit plan
    p = clconv.plan(f"{op}2d", x, w, b, algorithm=algorithm, backend="numpy", **params)
    assert p(x, w, b).tobytes() == first


# ------------------------------------------------------------ im2col chunking
@pytest.mark.parametrize("op", [C, T])
@pytest.mark.parametrize("chunk_images", [1, 2, 3])
def test_im2col_chunked_over_the_batch(op: str, chunk_images: int, monkeypatch) -> None:
    """Large batches are done a chunk of images at a time; an uneven last chunk included."""
    from clconv.backends.numpy import ops

    rng = np.random.default_rng(19)
    x = rng.uniform(-1, 1, (5, 4, 6, 5))
    w = rng.uniform(-1, 1, (6, 2, 3, 2) if op == C else (4, 3, 3, 2))
    b = rng.uniform(-1, 1, 6)
    params = dict(groups=2, stride=2, padding=((1, 0), (0, 1)))
    if op == T:
        params["output_padding"] = 1
    exact = naive(op, x, w, b, **params)
    spec = clconv.ConvSpec.from_shapes(op, x.shape, w.shape, bias=True, dtype="float64", **params)
    monkeypatch.setattr(ops, "IM2COL_CHUNK_BYTES", 1)
    assert ops._chunks(spec) == 1  # sanity of the knob this test turns
    per_image = 8 * 3 * 2 * (spec.in_channels * math.prod(spec.out_size) if op == C else spec.out_channels * math.prod(spec.in_size))
    monkeypatch.setattr(ops, "IM2COL_CHUNK_BYTES", per_image * chunk_images)
    assert ops._chunks(spec) == chunk_images
    dispatch.clear_plans()
    out = fn_for(op, 2)(x, w, b, **params, algorithm="im2col", backend="numpy")
    check_against_oracle(out, exact, "float64", "im2col")


# ------------------------------------------- ConvSpec's rewrites for the vendor plugins
@pytest.mark.parametrize("stride,dilation,padding,output_padding", [
    (1, 3, (0, 1), 2),   # output_padding >= stride: all of pads_end taken, one element left over
    (2, 4, (1, 3), 3),   # the whole output_padding folded into pads_end
    (2, 1, (1, 1), 1),   # output_padding < stride: unchanged
    (1, 2, (0, 0), 1),   # no pads_end to trade: all appended
])
def test_output_padding_within_stride(stride, dilation, padding, output_padding) -> None:
    """The rewritten crop (pads_end', output_padding' < stride, then ``extra`` zeros appended)
    gives the reference's result of the original spec, bias added after the zeros."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6))
    w = rng.standard_normal((3, 2, 3))
    b = rng.standard_normal(2)
    spec = clconv.ConvSpec.from_arrays("conv_transpose", 1, x, w, b, stride=stride, padding=(padding,),
                                       dilation=dilation, output_padding=output_padding)
    pads_end, out_pad, extra = spec.output_padding_within_stride()
    assert out_pad[0] < stride
    want = clconv.conv_transpose1d(x, w, b, stride, (padding,), output_padding, 1, dilation, backend="numpy")
    got = clconv.conv_transpose1d(x, w, None, stride, ((padding[0], pads_end[0]),), out_pad[0], 1, dilation,
                                  backend="numpy")
    got = np.pad(got, ((0, 0), (0, 0), (0, extra[0]))) + b[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_crops_past_result() -> None:
    """A crop that starts past the full result ((2-1)*2 + 3*(2-1) + 1 = 6 long here; output_padding
    appends a 7th element) leaves only the bias."""
    x, w, b = np.ones((1, 2, 2)), np.ones((2, 1, 2)), np.array([0.5])
    spec = clconv.ConvSpec.from_arrays("conv_transpose", 1, x, w, b, stride=2, padding=((6, 0),),
                                       output_padding=1, dilation=3)
    assert spec.crops_past_result
    assert (clconv.conv_transpose1d(x, w, b, 2, ((6, 0),), 1, 1, 3, backend="numpy") == 0.5).all()
    for padding in (((5, 0),), ((0, 0),)):  # starts inside the full result
        inside = clconv.ConvSpec.from_arrays("conv_transpose", 1, x, w, b, stride=2, padding=padding,
                                             output_padding=1, dilation=3)
        assert not inside.crops_past_result
    assert not clconv.ConvSpec.from_arrays("conv", 1, x, np.ones((1, 2, 2)), None).crops_past_result
