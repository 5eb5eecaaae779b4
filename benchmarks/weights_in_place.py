"""Kernels that read a NumPy weight in place against the same algorithm reading a cached,
prepared copy of it (found by comparing the weight's bytes on every call).

- im2col's 1x1 GEMM with positions as rows (``PointwiseKernel``): ``CLCONV_POINTWISE_RAW=0``
  (the transposed copy) against the default (``gemm_pointwise_raw`` on CPU devices);
- Winograd F(4x4,3x3): ``CLCONV_WINOGRAD_INLINE=0`` (the transformed filter U, cached) against
  the default (at 7x7: the GEMM transforming the filters itself, from the caller's weight).

The switches are read when a kernel is made, so each form is its own kernel object; the calls
alternate in a new random order each round (NumPy input, weight and bias, no ``out``: the
replayed or fast path after the first calls), medians in ms. The last column is the largest
difference between the two results relative to the largest output (0 for the 1x1 GEMM: the
same bits; Winograd's forms round differently).

    python benchmarks/weights_in_place.py [--rounds 40] [--device opencl:0:0] [--layers a,b,...]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import numpy as np

DEFAULT = "resnet50.1x1-7,resnet50.1x1-14,resnet50.1x1-28,resnet50.3x3-7"

#: (algorithm id, switch, value that keeps the cached copy)
FORMS = {"im2col": ("CLCONV_POINTWISE_RAW", "0"), "winograd-f4x4-3x3": ("CLCONV_WINOGRAD_INLINE", "0")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--layers", default=DEFAULT)
    args = ap.parse_args()

    import clconv
    from clconv.backends.opencl.algorithms import im2col, winograd
    from clconv.bench import layer_arrays
    from clconv.suites import SUITES

    layers = {layer.name: layer for layer in SUITES["all"]}
    dev = next((d for d in clconv.list_devices() if d.id == args.device), None)
    if dev is None:
        ap.error(f"--device {args.device!r}: not a device here (see `clconv devices`)")
    print("| layer | algorithm | cached copy | in place | cached / in place | max difference |")
    print("|---|---|---|---|---|---|")
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        alg_id = "im2col" if spec.kernel == (1, 1) else "winograd-f4x4-3x3"
        alg = im2col.Im2col() if alg_id == "im2col" else winograd.WinogradF4()
        var, cached_value = FORMS[alg_id]
        kernels = {}
        for form, value in (("cached", cached_value), ("in place", None)):
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
            kernels[form] = alg.prepare(spec, dev)
        os.environ.pop(var, None)
        first = {}
        for form, kernel in kernels.items():
            kernel(x, w, b)
            first[form] = np.array(kernel(x, w, b), copy=True)
        diff = float(np.abs(first["cached"] - first["in place"]).max() / np.abs(first["cached"]).max())
        times: dict[str, list[float]] = {form: [] for form in kernels}
        order = list(kernels)
        for _ in range(args.rounds):
            random.shuffle(order)
            for form in order:
                t = time.perf_counter()
                kernels[form](x, w, b)
                times[form].append(time.perf_counter() - t)
        a, c = (statistics.median(times[f]) * 1e3 for f in ("cached", "in place"))
        print(f"| {name} | {alg_id} | {a:.3f} | {c:.3f} | {a / c:.2f}x | {diff:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
