"""NumPy weights of kernels that cache a prepared weight: compared first vs launched first.

A kernel that keeps a prepared form of the weight (Winograd's transformed filters, FFT's
spectra, the transposed weight of im2col's pointwise path) compares a NumPy weight's bytes
with its kept copy on every call. Called again with the same array object whose bytes it found
unchanged last time, it launches first and compares while the kernel runs
(``CachedWeightKernel._speculation`` in clconv/backends/opencl/weightcache.py). Per layer, in
one process: blocks of ``--calls`` calls of one way (steady state, as ``clconv bench`` and a
network's loop call a layer), the ways' blocks alternating in a new random order each round;
the median call of each block, and the median of those per way, in ms. (Single calls
interleaved with other plans' calls overstate the gain on a 2-CPU machine: PoCL's two workers
are pinned one per CPU, and how often the calling thread is preempted while a kernel runs
depends on how much CPU it used just before.)

- ``compared first``: the same plan with speculation switched off for its calls;
- ``launched first``: the plan as it runs (the same object, unchanged);
- ``constant``: a ``constant_weights=True`` plan (no comparison at all), the bound.

    python benchmarks/weight_speculation.py [--rounds 8] [--calls 40] [--layers resnet50.1x1-7:im2col,...]
        [--device opencl:0:0]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

DEFAULT = "resnet50.1x1-28:im2col,resnet50.1x1-14:im2col,resnet50.1x1-7:im2col," \
          "resnet50.3x3-14:winograd-f4x4-3x3,resnet50.3x3-7:winograd-f2x2-3x3"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--calls", type=int, default=40, help="calls per block")
    ap.add_argument("--layers", default=DEFAULT, help="comma-separated layer:algorithm pairs")
    ap.add_argument("--device", default="opencl:0:0")
    args = ap.parse_args()

    from clconv import api
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    layers = {layer.name: layer for layer in SUITES["all"]}
    print("| layer | algorithm | compared first | launched first | constant | compared / launched |")
    print("|---|---|---|---|---|---|")
    for item in args.layers.split(","):
        name, alg = item.split(":")
        layer = layers[name]
        spec = layer.spec()
        arrays = layer_arrays(spec)
        kw = dict(backend="opencl", device=args.device, algorithm=alg, **_fn_params(layer, spec))
        med = measure(api.plan(layer.fn, *arrays, **kw), api.plan(layer.fn, *arrays, constant_weights=True, **kw),
                      arrays, args.rounds, args.calls)
        print(f"| {name} | {alg} | {med['compared first']:.3f} | {med['launched first']:.3f} | "
              f"{med['constant']:.3f} | {med['compared first'] / med['launched first']:.2f}x |", flush=True)
    return 0


def measure(plain: Any, const: Any, arrays: tuple[Any, ...], rounds: int, calls: int) -> dict[str, float]:
    """Medians in ms of the three ways: per round, one block of ``calls`` calls of each way in a
    new random order; the median call of each block, then the median over the rounds."""
    kernel = plain.kernel
    if not hasattr(kernel, "_speculation"):
        raise SystemExit(f"{plain!r} keeps no prepared weight ({type(kernel).__name__})")
    speculate = kernel._speculation
    ways = {"compared first": (plain, lambda queue, weight: None), "launched first": (plain, speculate),
            "constant": (const, speculate)}
    medians: dict[str, list[float]] = {k: [] for k in ways}
    misses = None
    for _ in range(rounds):
        for way in random.sample(list(ways), len(ways)):
            plan, spec_fn = ways[way]
            kernel._speculation = spec_fn
            plan(*arrays), plan(*arrays)  # the first call after a switch compares first
            if misses is None:
                misses = kernel.speculation_misses
            times = []
            for _ in range(calls):
                t = time.perf_counter()
                plan(*arrays)
                times.append(time.perf_counter() - t)
            medians[way].append(statistics.median(times))
    kernel._speculation = speculate
    assert kernel.speculation_misses == misses, "the weight did not change: no launch may miss"
    return {k: statistics.median(v) * 1e3 for k, v in medians.items()}

if __name__ == "__main__":
    raise SystemExit(main())
