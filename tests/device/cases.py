"""The grid of device-test cases: every feature and dtype, small shapes.

Each case is (id, function name, input shape, weight shape, bias?, params).
"""

from __future__ import annotations

from typing import Any

CASES: list[tuple[str, str, tuple, tuple, bool, dict[str, Any]]] = [
    # 1D
    ("c1d-basic", "conv1d", (2, 3, 17), (4, 3, 3), True, {}),
    ("c1d-stride-pad", "conv1d", (1, 4, 20), (5, 4, 5), False, {"stride": 3, "padding": 2}),
    ("c1d-asym-dil", "conv1d", (2, 2, 15), (3, 2, 3), True, {"padding": ((2, 1),), "dilation": 3}),
    ("c1d-same-s2", "conv1d", (1, 3, 11), (2, 3, 4), False, {"padding": "same", "stride": 2}),
    ("c1d-reflect", "conv1d", (1, 2, 9), (2, 2, 3), True, {"padding": 2, "padding_mode": "reflect"}),
    ("c1d-k1-in1", "conv1d", (3, 1, 40), (8, 1, 10), True, {"stride": 5}),
    ("c1d-fullk", "conv1d", (2, 3, 7), (2, 3, 7), False, {}),
    # 2D
    ("c2d-basic", "conv2d", (2, 3, 9, 8), (4, 3, 3, 3), True, {"padding": 1}),
    ("c2d-1x1", "conv2d", (2, 8, 5, 6), (16, 8, 1, 1), False, {}),
    ("c2d-1x1-s2", "conv2d", (1, 8, 7, 7), (4, 8, 1, 1), True, {"stride": 2}),
    ("c2d-7x7-s2", "conv2d", (1, 3, 19, 21), (8, 3, 7, 7), True, {"stride": 2, "padding": 3}),
    ("c2d-asym", "conv2d", (1, 2, 8, 9), (3, 2, 3, 2), False, {"padding": ((0, 2), (1, 0))}),
    ("c2d-same-s2-even", "conv2d", (2, 3, 10, 9), (4, 3, 4, 4), True, {"padding": "same", "stride": 2}),
    ("c2d-valid", "conv2d", (1, 4, 6, 6), (2, 4, 3, 3), True, {"padding": "valid"}),
    ("c2d-dil2", "conv2d", (1, 4, 12, 12), (4, 4, 3, 3), False, {"padding": 2, "dilation": 2}),
    ("c2d-dil-aniso", "conv2d", (1, 2, 13, 11), (3, 2, 3, 3), True, {"padding": (3, 1), "dilation": (3, 1)}),
    ("c2d-groups", "conv2d", (2, 8, 7, 7), (6, 4, 3, 3), True, {"groups": 2, "padding": 1}),
    ("c2d-groups4", "conv2d", (1, 8, 6, 6), (8, 2, 3, 3), False, {"groups": 4, "stride": 2, "padding": 1}),
    ("c2d-dw", "conv2d", (2, 6, 9, 9), (6, 1, 3, 3), True, {"groups": 6, "padding": 1}),
    ("c2d-dw-mult", "conv2d", (1, 4, 8, 8), (8, 1, 3, 3), False, {"groups": 4, "padding": 1, "stride": 2}),
    ("c2d-dw-5x5-dil", "conv2d", (1, 3, 12, 12), (3, 1, 5, 5), True, {"groups": 3, "padding": 4, "dilation": 2}),
    ("c2d-reflect", "conv2d", (1, 2, 6, 7), (3, 2, 3, 3), True, {"padding": (2, 1), "padding_mode": "reflect"}),
    ("c2d-replicate", "conv2d", (2, 2, 5, 5), (2, 2, 3, 3), False, {"padding": 3, "padding_mode": "replicate"}),
    ("c2d-circular", "conv2d", (1, 3, 5, 6), (2, 3, 3, 3), True, {"padding": ((2, 1), (0, 3)), "padding_mode": "circular"}),
    ("c2d-fullk", "conv2d", (2, 2, 5, 4), (3, 2, 5, 4), True, {}),
    ("c2d-odd", "conv2d", (3, 5, 13, 7), (7, 5, 2, 3), True, {"stride": (2, 1), "padding": (1, 0)}),
    # 3D
    ("c3d-basic", "conv3d", (1, 2, 5, 6, 7), (3, 2, 3, 3, 3), True, {"padding": 1}),
    ("c3d-stride-dil", "conv3d", (2, 2, 7, 7, 6), (2, 2, 2, 3, 2), False, {"stride": (2, 1, 2), "dilation": (1, 2, 1)}),
    ("c3d-groups-reflect", "conv3d", (1, 4, 5, 5, 5), (4, 2, 3, 3, 3), True,
     {"groups": 2, "padding": 1, "padding_mode": "reflect"}),
    ("c3d-dw", "conv3d", (1, 3, 4, 5, 6), (3, 1, 3, 3, 3), False, {"groups": 3, "padding": 1}),
    # transposed
    ("t1d-basic", "conv_transpose1d", (2, 3, 9), (3, 4, 3), True, {"stride": 2}),
    ("t1d-pad-op", "conv_transpose1d", (1, 2, 7), (2, 3, 4), False, {"stride": 3, "padding": 1, "output_padding": 2}),
    ("t2d-dcgan", "conv_transpose2d", (2, 8, 4, 4), (8, 4, 4, 4), True, {"stride": 2, "padding": 1}),
    ("t2d-asym-crop", "conv_transpose2d", (1, 3, 5, 6), (3, 2, 3, 3), True, {"stride": 2, "padding": ((1, 0), (0, 2))}),
    ("t2d-op-dil", "conv_transpose2d", (1, 2, 5, 5), (2, 3, 3, 3), False,
     {"stride": 2, "padding": 1, "output_padding": 1, "dilation": 2}),
    ("t2d-groups", "conv_transpose2d", (2, 4, 5, 4), (4, 3, 3, 2), True, {"stride": (1, 2), "groups": 2}),
    ("t2d-dw", "conv_transpose2d", (1, 4, 6, 6), (4, 1, 3, 3), True, {"stride": 2, "groups": 4, "padding": 1, "output_padding": 1}),
    ("t2d-thin", "conv_transpose2d", (1, 16, 5, 5), (16, 3, 4, 4), True, {"stride": 2, "padding": 1}),
    ("t2d-s1", "conv_transpose2d", (2, 3, 6, 5), (3, 2, 3, 3), False, {"padding": 1}),
    ("t3d-basic", "conv_transpose3d", (1, 2, 3, 4, 3), (2, 3, 3, 3, 3), True, {"stride": 2, "padding": 1, "output_padding": (1, 0, 1)}),
    ("t3d-groups", "conv_transpose3d", (1, 4, 3, 3, 3), (4, 1, 2, 2, 2), False, {"stride": 2, "groups": 2}),
]

DTYPES = ("float32", "float64", "float16")

#: Normwise relative error allowed against the float64 reference, per dtype.
TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "float16": 2e-3}
