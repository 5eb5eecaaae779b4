"""Winograd F(4x4,3x3) reading U (the transformed weight, 4x the weight's bytes) against the GEMM
that transforms the filters itself (``wino_gemm_out_inline``, or ``wino_gemm_out_raw`` with a
NumPy weight), and im2col, on 3x3 layers with large weights at several batch sizes: where
``inlines_filters``' rule should switch.

Each shape runs im2col, F(4x4) with ``CLCONV_WINOGRAD_INLINE=0`` (U) and ``=1`` (inline; a NumPy
weight is read in place), each with the weight as a NumPy array and as a pyopencl array on the
device's queue (a cached U or packed weight, no comparison of bytes), in the same process,
interleaved in a new random order each round, ``--burst`` calls in a row (all but the first
timed); medians in ms. ``auto`` names what the default rule picks for the shape. The results
of every form are checked against im2col's first.

    python benchmarks/winograd_inline.py [--rounds 10] [--burst 3] [--device opencl:0:0]
        [--shapes 7x7x512:1,7x7x512:4,14x14x512:1,...]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import env_ab

DEFAULT = ("7x7x512:1,7x7x512:2,7x7x512:3,7x7x512:4,7x7x512:6,7x7x512:8,7x7x512:16,"
           "14x14x512:1,14x14x512:2,14x14x512:4,14x14x256:1,14x14x256:2,28x28x512:1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--burst", type=int, default=3)
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--shapes", default=DEFAULT, help="comma-separated HxWxC:batch (C in = C out)")
    args = ap.parse_args()
    if args.burst < 2:
        ap.error(f"--burst {args.burst}: give 2 or more (the first call of a burst is not timed)")

    import numpy as np
    import pyopencl.array as cl_array

    import clconv
    from clconv import api
    from clconv.backends.opencl.algorithms import winograd

    dev = next((d for d in clconv.list_devices() if d.id == args.device), None)
    if dev is None or not hasattr(dev, "queue"):
        ap.error(f"--device {args.device!r}: not an OpenCL device here (see `clconv devices`)")
    print("| shape | batch | weight | im2col | F(4x4) U | F(4x4) inline | auto picks | U / inline | im2col / auto |")
    print("|---|---|---|---|---|---|---|---|---|")
    for item in args.shapes.split(","):
        shape = env_ab.parse_shape(item)
        if shape is None:
            ap.error(f"--shapes: {item!r} is not HxWxC:N")
        h, w_, c, n = shape
        x, w, b = env_ab.shape_arrays(*shape)
        wd = cl_array.to_device(dev.queue, w)
        im2col = api.plan("conv2d", x, w, b, backend="opencl", device=args.device, algorithm="im2col", padding=1)
        f4 = api.plan("conv2d", x, w, b, backend="opencl", device=args.device, algorithm="winograd-f4x4-3x3",
                      padding=1)
        alg, spec = f4.kernel.algorithm, f4.kernel.spec
        auto = "inline" if winograd.inlines_filters(winograd.phase_spec(spec), dev, 4) else "U"
        kernels = {}
        for label, mode in (("U", "0"), ("inline", "1")):
            os.environ["CLCONV_WINOGRAD_INLINE"] = mode  # read when the kernel is made
            try:
                kernels[label] = alg.prepare(spec, dev)
            finally:
                os.environ.pop("CLCONV_WINOGRAD_INLINE", None)
        runs = {}
        for wname, weight in (("numpy", w), ("device", wd)):
            runs["im2col", wname] = (im2col.kernel, weight)
            for label, k in kernels.items():
                runs[label, wname] = (k, weight)
        ref = np.asarray(im2col(x, w, b))
        scale = float(np.abs(ref).max())
        for key, (k, weight) in runs.items():
            for _ in range(2):
                y = k(x, weight, b)
            err = float(np.abs(np.asarray(y) - ref).max()) / scale
            if err > 1e-4:
                raise SystemExit(f"{item} {key}: max error {err:.2e} of the largest output against im2col")
        times: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
        order = list(runs)
        for _ in range(args.rounds):
            random.shuffle(order)
            for key in order:
                k, weight = runs[key]
                for i in range(args.burst):
                    t = time.perf_counter()
                    k(x, weight, b)
                    if i:
                        times[key].append(time.perf_counter() - t)
        med = {key: statistics.median(v) * 1e3 for key, v in times.items()}
        for wname in ("numpy", "device"):
            i2c, u, inl = med["im2col", wname], med["U", wname], med["inline", wname]
            print(f"| {h}x{w_}x{c} | {n} | {wname} | {i2c:.3f} | {u:.3f} | {inl:.3f} | {auto} | {u / inl:.2f}x | "
                  f"{i2c / med[auto, wname]:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
