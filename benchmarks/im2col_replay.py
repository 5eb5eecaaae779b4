"""im2col's replayed calls against its general path, per layer, interleaved in one process.

Two kernels of the same spec and tile: one replays its first call's launches on repeated host
calls (``OpenCLKernel._make_launch_replay``), the other takes the general path every call
(``REPLAYS`` off on the instance). Both are called with the layer's NumPy arrays, in a new
random order each round; medians in ms, and what the replay saves per call.

    python benchmarks/im2col_replay.py [--layers resnet50.stem-7x7s2,...] [--device opencl:0:0]
        [--rounds 61]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

DEFAULT = ("resnet50.stem-7x7s2,resnet50.3x3-56,resnet50.3x3-14,resnet50.1x1s2-downsample,small.3x3-16@8,"
           "small.1d-8@16,dcgan.t4x4s2-8,audio.1d-512-k3s2,3d.3x3x3-64-8x28x28")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=DEFAULT)
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--rounds", type=int, default=61)
    args = ap.parse_args()

    from clconv import api, dispatch
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    layers = {layer.name: layer for layer in SUITES["all"]}
    print("| layer | general path | replayed | saved per call |")
    print("|---|---|---|---|")
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        replayed = api.plan(layer.fn, x, w, b, backend="opencl", device=args.device, algorithm="im2col",
                            **_fn_params(layer, spec))
        kernel = replayed.algorithm.prepare(replayed.spec, replayed.device, replayed.kernel.params)
        kernel.REPLAYS = False
        general = dispatch.Plan(replayed.spec, replayed.explanation, kernel)
        plans = {"replayed": replayed, "general": general}
        for p in plans.values():
            for _ in range(3):
                p(x, w, b)
        if "_fast" not in replayed.kernel.__dict__:
            print(f"| {name} | (no replay on {args.device}: not a zero-copy host-coherent device) | | |")
            continue
        times: dict[str, list[float]] = {k: [] for k in plans}
        order = list(plans)
        for _ in range(args.rounds):
            random.shuffle(order)
            for key in order:
                t = time.perf_counter()
                plans[key](x, w, b)
                times[key].append(time.perf_counter() - t)
        g, r = (statistics.median(times[k]) * 1e3 for k in ("general", "replayed"))
        print(f"| {name} | {g:.3f} | {r:.3f} | {g - r:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
