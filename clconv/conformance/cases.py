"""The conformance case list: geometries that cover the whole contract, per level.

``GEOMETRIES`` is the one description of the test shapes, shared by the
conformance suite and clconv's own device tests. A numeric case is a geometry
with a dtype; its features (the rows of the pass table) are derived from its
spec, so a case can never be filed under the wrong feature.

Bump :data:`CASE_LIST_VERSION` whenever cases are added, removed or changed:
reports name it, so two reports compare only when it matches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..spec import ConvSpec

# 2: batch-0 cases and a concurrent-calls case; each numeric case also checks guard regions,
#    calls without out=, calls after new values in the same arrays, arrays that are not
#    C-contiguous and read-only inputs; bad-input cases after valid calls.
CASE_LIST_VERSION = "2"
LEVELS = ("quick", "full")
DTYPES = ("float32", "float64", "float16")

_OPS = {
    "conv1d": ("conv", 1), "conv2d": ("conv", 2), "conv3d": ("conv", 3),
    "conv_transpose1d": ("conv_transpose", 1), "conv_transpose2d": ("conv_transpose", 2),
    "conv_transpose3d": ("conv_transpose", 3),
}

# (id, function, input shape, weight shape, bias, params, in the quick level with all dtypes)
GEOMETRIES: list[tuple[str, str, tuple, tuple, bool, dict[str, Any], bool]] = [
    # 1D
    ("c1d-basic", "conv1d", (2, 3, 17), (4, 3, 3), True, {}, True),
    ("c1d-stride-pad", "conv1d", (1, 4, 20), (5, 4, 5), False, {"stride": 3, "padding": 2}, False),
    ("c1d-asym-dil", "conv1d", (2, 2, 15), (3, 2, 3), True, {"padding": ((2, 1),), "dilation": 3}, False),
    ("c1d-same-s2", "conv1d", (1, 3, 11), (2, 3, 4), False, {"padding": "same", "stride": 2}, False),
    ("c1d-reflect", "conv1d", (1, 2, 9), (2, 2, 3), True, {"padding": 2, "padding_mode": "reflect"}, False),
    ("c1d-k1-in1", "conv1d", (3, 1, 40), (8, 1, 10), True, {"stride": 5}, False),
    ("c1d-fullk", "conv1d", (2, 3, 7), (2, 3, 7), False, {}, False),
    # 2D
    ("c2d-basic", "conv2d", (2, 3, 9, 8), (4, 3, 3, 3), True, {"padding": 1}, True),
    ("c2d-1x1", "conv2d", (2, 8, 5, 6), (16, 8, 1, 1), False, {}, True),
    ("c2d-1x1-s2", "conv2d", (1, 8, 7, 7), (4, 8, 1, 1), True, {"stride": 2}, False),
    ("c2d-7x7-s2", "conv2d", (1, 3, 19, 21), (8, 3, 7, 7), True, {"stride": 2, "padding": 3}, False),
    ("c2d-asym", "conv2d", (1, 2, 8, 9), (3, 2, 3, 2), False, {"padding": ((0, 2), (1, 0))}, True),
    ("c2d-same-s2-even", "conv2d", (2, 3, 10, 9), (4, 3, 4, 4), True, {"padding": "same", "stride": 2}, False),
    ("c2d-valid", "conv2d", (1, 4, 6, 6), (2, 4, 3, 3), True, {"padding": "valid"}, False),
    ("c2d-dil2", "conv2d", (1, 4, 12, 12), (4, 4, 3, 3), False, {"padding": 2, "dilation": 2}, False),
    ("c2d-dil-aniso", "conv2d", (1, 2, 13, 11), (3, 2, 3, 3), True, {"padding": (3, 1), "dilation": (3, 1)}, False),
    ("c2d-groups", "conv2d", (2, 8, 7, 7), (6, 4, 3, 3), True, {"groups": 2, "padding": 1}, True),
    ("c2d-groups4", "conv2d", (1, 8, 6, 6), (8, 2, 3, 3), False, {"groups": 4, "stride": 2, "padding": 1}, False),
    ("c2d-dw", "conv2d", (2, 6, 9, 9), (6, 1, 3, 3), True, {"groups": 6, "padding": 1}, True),
    ("c2d-dw-mult", "conv2d", (1, 4, 8, 8), (8, 1, 3, 3), False, {"groups": 4, "padding": 1, "stride": 2}, False),
    ("c2d-dw-5x5-dil", "conv2d", (1, 3, 12, 12), (3, 1, 5, 5), True, {"groups": 3, "padding": 4, "dilation": 2}, False),
    ("c2d-reflect", "conv2d", (1, 2, 6, 7), (3, 2, 3, 3), True, {"padding": (2, 1), "padding_mode": "reflect"}, True),
    ("c2d-replicate", "conv2d", (2, 2, 5, 5), (2, 2, 3, 3), False, {"padding": 3, "padding_mode": "replicate"}, False),
    ("c2d-circular", "conv2d", (1, 3, 5, 6), (2, 3, 3, 3), True,
     {"padding": ((2, 1), (0, 3)), "padding_mode": "circular"}, False),
    ("c2d-fullk", "conv2d", (2, 2, 5, 4), (3, 2, 5, 4), True, {}, False),
    ("c2d-odd", "conv2d", (3, 5, 13, 7), (7, 5, 2, 3), True, {"stride": (2, 1), "padding": (1, 0)}, False),
    ("c2d-3x3-wide", "conv2d", (1, 16, 12, 12), (24, 16, 3, 3), True, {"padding": 1}, False),
    ("c2d-batch0", "conv2d", (0, 3, 7, 9), (4, 3, 3, 3), True, {"padding": 1}, False),
    # 3D
    ("c3d-basic", "conv3d", (1, 2, 5, 6, 7), (3, 2, 3, 3, 3), True, {"padding": 1}, True),
    ("c3d-stride-dil", "conv3d", (2, 2, 7, 7, 6), (2, 2, 2, 3, 2), False, {"stride": (2, 1, 2), "dilation": (1, 2, 1)}, False),
    ("c3d-groups-reflect", "conv3d", (1, 4, 5, 5, 5), (4, 2, 3, 3, 3), True,
     {"groups": 2, "padding": 1, "padding_mode": "reflect"}, False),
    ("c3d-dw", "conv3d", (1, 3, 4, 5, 6), (3, 1, 3, 3, 3), False, {"groups": 3, "padding": 1}, False),
    # transposed
    ("t1d-basic", "conv_transpose1d", (2, 3, 9), (3, 4, 3), True, {"stride": 2}, True),
    ("t1d-pad-op", "conv_transpose1d", (1, 2, 7), (2, 3, 4), False, {"stride": 3, "padding": 1, "output_padding": 2}, False),
    ("t2d-dcgan", "conv_transpose2d", (2, 8, 4, 4), (8, 4, 4, 4), True, {"stride": 2, "padding": 1}, True),
    ("t2d-asym-crop", "conv_transpose2d", (1, 3, 5, 6), (3, 2, 3, 3), True, {"stride": 2, "padding": ((1, 0), (0, 2))}, True),
    ("t2d-op-dil", "conv_transpose2d", (1, 2, 5, 5), (2, 3, 3, 3), False,
     {"stride": 2, "padding": 1, "output_padding": 1, "dilation": 2}, False),
    ("t2d-groups", "conv_transpose2d", (2, 4, 5, 4), (4, 3, 3, 2), True, {"stride": (1, 2), "groups": 2}, False),
    ("t2d-dw", "conv_transpose2d", (1, 4, 6, 6), (4, 1, 3, 3), True,
     {"stride": 2, "groups": 4, "padding": 1, "output_padding": 1}, False),
    ("t2d-thin", "conv_transpose2d", (1, 16, 5, 5), (16, 3, 4, 4), True, {"stride": 2, "padding": 1}, False),
    ("t2d-s1", "conv_transpose2d", (2, 3, 6, 5), (3, 2, 3, 3), False, {"padding": 1}, False),
    ("t2d-batch0", "conv_transpose2d", (0, 3, 5, 4), (3, 2, 3, 3), True, {"stride": 2}, False),
    ("t3d-basic", "conv_transpose3d", (1, 2, 3, 4, 3), (2, 3, 3, 3, 3), True,
     {"stride": 2, "padding": 1, "output_padding": (1, 0, 1)}, True),
    ("t3d-groups", "conv_transpose3d", (1, 4, 3, 3, 3), (4, 1, 2, 2, 2), False, {"stride": 2, "groups": 2}, False),
]

# Larger shapes only in the full level (real-layer-like, still quick to check).
FULL_ONLY: list[tuple[str, str, tuple, tuple, bool, dict[str, Any], bool]] = [
    ("c2d-resnet-3x3", "conv2d", (2, 32, 14, 14), (32, 32, 3, 3), True, {"padding": 1}, True),
    ("c2d-resnet-1x1-s2", "conv2d", (2, 64, 14, 14), (32, 64, 1, 1), False, {"stride": 2}, True),
    ("c2d-big-kernel", "conv2d", (1, 4, 32, 32), (4, 4, 11, 11), True, {"padding": 5}, True),
    ("c2d-dw-s2-big", "conv2d", (2, 32, 28, 28), (32, 1, 3, 3), True, {"groups": 32, "stride": 2, "padding": 1}, True),
    ("c2d-dilated-6", "conv2d", (1, 16, 33, 33), (16, 16, 3, 3), False, {"padding": 6, "dilation": 6}, True),
    ("c1d-audio", "conv1d", (1, 1, 1000), (16, 1, 10), True, {"stride": 5}, True),
    ("t2d-dcgan-big", "conv_transpose2d", (4, 32, 8, 8), (32, 16, 4, 4), True, {"stride": 2, "padding": 1}, True),
    ("c3d-video", "conv3d", (1, 8, 6, 10, 10), (8, 8, 3, 3, 3), True, {"padding": 1}, True),
]


def _freeze(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


@dataclass(frozen=True)
class Case:
    """One numeric case: a geometry, a dtype, and what to check."""

    id: str
    fn: str
    input_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    bias: bool
    params_items: tuple[tuple[str, Any], ...]
    dtype: str
    kind: str = "numeric"  # "numeric" | "nan"
    seed: int = 0
    features: tuple[str, ...] = field(default=(), compare=False)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.params_items)

    @property
    def spec(self) -> ConvSpec:
        op, nd = _OPS[self.fn]
        return ConvSpec.from_shapes(
            op, self.input_shape, self.weight_shape, bias=self.bias, dtype=self.dtype, ndim=nd, **self.params
        )


def features_of(spec: ConvSpec, kind: str = "numeric") -> tuple[str, ...]:
    """The contract features a spec exercises: the rows of the pass table."""
    f = [f"{spec.ndim}d", "transposed" if spec.transposed else "conv", spec.dtype]
    if any(s > 1 for s in spec.stride):
        f.append("stride")
    if spec.pad_before != spec.pad_after:
        f.append("padding-asymmetric")
    elif any(spec.pad_before):
        f.append("padding-symmetric")
    if any(d > 1 for d in spec.dilation):
        f.append("dilation")
    if spec.is_depthwise:
        f.append("depthwise")
    elif spec.groups > 1:
        f.append("groups")
    if spec.padding_mode != "zeros":
        f.append(f"padding-mode-{spec.padding_mode}")
    if any(spec.output_padding):
        f.append("output-padding")
    if spec.bias:
        f.append("bias")
    if spec.batch > 1:
        f.append("batch")
    if spec.batch == 0:
        f.append("empty-batch")
    if all(k == 1 for k in spec.kernel):
        f.append("1x1-kernel")
    if not spec.transposed and all(
        (k - 1) * d + 1 == n + a + b
        for k, d, n, a, b in zip(spec.kernel, spec.dilation, spec.in_size, spec.pad_before, spec.pad_after)
    ):
        f.append("kernel-as-large-as-input")
    if any(n % 2 for n in spec.in_size) or any(k % 2 == 0 for k in spec.kernel):
        f.append("odd-sizes")
    if kind == "nan":
        f.append("nan-inf-propagation")
    return tuple(f)


def _case(g: tuple, dtype: str, kind: str = "numeric", suffix: str = "") -> Case:
    gid, fn, xs, ws, bias, params, _ = g
    c = Case(f"{gid}{suffix}-{dtype}", fn, tuple(xs), tuple(ws), bias, _freeze(params), dtype, kind,
             seed=sum(map(ord, gid)) % 9973)
    return Case(c.id, c.fn, c.input_shape, c.weight_shape, c.bias, c.params_items, c.dtype, c.kind, c.seed,
                features_of(c.spec, kind))


def numeric_cases(level: str = "quick") -> list[Case]:
    """Numeric (and NaN-propagation) cases of a level."""
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is not accepted: give one of {', '.join(LEVELS)}")
    geoms = list(GEOMETRIES) + (FULL_ONLY if level == "full" else [])
    out = []
    for g in geoms:
        dtypes = DTYPES if (level == "full" or g[6]) else ("float32",)
        out.extend(_case(g, dt) for dt in dtypes)
    nan_geoms = [g for g in GEOMETRIES if g[0] in ("c2d-basic", "c2d-dw", "t2d-dcgan", "c1d-basic", "c3d-basic")]
    for g in nan_geoms if level == "full" else nan_geoms[:3]:
        out.append(_case(g, "float32", kind="nan", suffix="-nan"))
    return out


def random_examples(level: str) -> int:
    """How many hypothesis examples the random-spec check draws per target."""
    return {"quick": 25, "full": 200}[level]


def output_elements(case: Case) -> int:
    return math.prod(case.spec.output_shape)
