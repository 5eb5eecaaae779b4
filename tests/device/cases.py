"""The device-test grid: the conformance suite's geometries (one description of the shapes,
shared by the suite and clconv's own tests), every dtype.

Each case is (id, function name, input shape, weight shape, bias?, params).
"""

from __future__ import annotations

from clconv.conformance.cases import GEOMETRIES

CASES = [g[:6] for g in GEOMETRIES]

DTYPES = ("float32", "float64", "float16")

#: Normwise relative error allowed against the float64 reference, per dtype.
TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "float16": 2e-3}
