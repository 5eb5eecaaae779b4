"""Named tolerances of the conformance suite, per algorithm family and dtype.

A result passes when both hold, against the float64 reference computed from the
same (dtype-rounded) inputs:

- normwise: ||y - ref||_2 <= tol * ||ref||_2 (over the finite elements);
- elementwise: |y - ref| <= ELEMENT_FACTOR * tol * (|w| * |x| + |b|), the
  magnitude bound of each output (a convolution of absolute values), so that a
  single wrong element cannot hide in a large norm.

The numbers leave room for a K-term float32 dot product in any order (about
sqrt(K) * 6e-8 relative) and for the transforms of Winograd and FFT; float16
results carry one rounding to half (~4.9e-4 relative) after float accumulation.
"""

from __future__ import annotations

TOLERANCES: dict[str, dict[str, float]] = {
    "reference": {"float64": 1e-13, "float32": 1e-6, "float16": 1e-3},
    "direct": {"float64": 1e-12, "float32": 1e-5, "float16": 2e-3},
    "gemm": {"float64": 1e-12, "float32": 1e-5, "float16": 2e-3},
    "winograd": {"float64": 1e-10, "float32": 1e-4, "float16": 5e-3},
    "fft": {"float64": 1e-10, "float32": 1e-4, "float16": 5e-3},
    # vendor runtimes (plugins) that may use their own reduced-precision paths
    "vendor": {"float64": 1e-10, "float32": 1e-4, "float16": 5e-3},
}

ELEMENT_FACTOR = 4.0


def tolerance(family: str, dtype: str) -> tuple[str, float]:
    """The tolerance's name (``family/dtype``) and value; unknown families use ``direct``'s."""
    fam = family if family in TOLERANCES else "direct"
    return f"{fam}/{dtype}", TOLERANCES[fam][dtype]
