"""Winograd F(2x2,3x3) and F(4x4,3x3) vs im2col on the suite's 3x3 stride-1 layers (issue 6).

Same process, the three plans interleaved round by round (so load changes hit all alike),
median of the rounds per plan, in ms; the last column is im2col / the faster Winograd.

    python benchmarks/winograd_vs_im2col.py [--rounds 21] [--layers resnet50.3x3-56,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

DEFAULT = "resnet50.3x3-56,resnet50.3x3-28,resnet50.3x3-14,resnet50.3x3-7,vgg.3x3-112"
ALGORITHMS = ("im2col", "winograd-f2x2-3x3", "winograd-f4x4-3x3")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--layers", default=DEFAULT)
    args = ap.parse_args()

    from clconv import api
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    layers = {layer.name: layer for layer in SUITES["all"]}
    print("| layer | im2col | F(2x2,3x3) | F(4x4,3x3) | im2col / best Winograd |")
    print("|---|---|---|---|---|")
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        plans = {a: api.plan(layer.fn, x, w, b, backend="opencl", algorithm=a, **_fn_params(layer, spec))
                 for a in ALGORITHMS}
        for p in plans.values():  # builds, filter transforms, first-touch
            p(x, w, b)
            p(x, w, b)
        times: dict[str, list[float]] = {a: [] for a in ALGORITHMS}
        for _ in range(args.rounds):
            for a, p in plans.items():
                t = time.perf_counter()
                p(x, w, b)
                times[a].append(time.perf_counter() - t)
        med = {a: statistics.median(v) * 1e3 for a, v in times.items()}
        best = min(med[ALGORITHMS[1]], med[ALGORITHMS[2]])
        print(f"| {name} | {med[ALGORITHMS[0]]:.3f} | {med[ALGORITHMS[1]]:.3f} | {med[ALGORITHMS[2]]:.3f} "
              f"| {med[ALGORITHMS[0]] / best:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
