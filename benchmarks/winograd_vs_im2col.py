"""Winograd F(2x2,3x3) and F(4x4,3x3) vs im2col on the suite's 3x3 stride-1 layers (issue 6).

Same process, the plans interleaved round by round in a new random order each round (so load
changes hit all alike, and no plan always runs right after the same other one, whose data it
would find in cache or not), median of the rounds per plan, in ms; the last column is im2col /
the faster Winograd.

``--arrays`` lists the ways to pass the arrays, each measured in the same rounds:
``numpy`` (the default) passes NumPy arrays, as ``clconv bench`` does: each call checks the
weight's bytes against the cached transformed filter's (an exact memcmp of the whole weight,
see clconv/backends/opencl/weightcache.py); ``constant`` passes the same NumPy arrays to a
``clconv.plan(..., constant_weights=True)`` (the weight goes to the device once: no check);
``device`` passes pyopencl arrays on the device's queue (a device weight is found by its
buffer) and waits for the queue after each call.

``--burst N`` runs each plan N times in a row within a round and keeps the times of all but
the first call of each burst: the back-to-back repeats that ``clconv bench`` times (the
layer's data, a transformed filter too, stays in cache from one call to the next), still
interleaved with the other plans round by round. With the default 1, each call follows
other plans' calls, which evict what they do not share (the transformed filter of a
14x14 layer, 9 MiB, often is).

    python benchmarks/winograd_vs_im2col.py [--rounds 21] [--burst 1] [--layers resnet50.3x3-56,...]
        [--device opencl:0:0] [--arrays numpy,constant,device]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

DEFAULT = "resnet50.3x3-56,resnet50.3x3-28,resnet50.3x3-14,resnet50.3x3-7,vgg.3x3-112"
ALGORITHMS = ("im2col", "winograd-f2x2-3x3", "winograd-f4x4-3x3")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--layers", default=DEFAULT)
    ap.add_argument("--device", default=None, help="an OpenCL device id (default: the dispatcher's)")
    ap.add_argument("--arrays", default="numpy", help="comma-separated: numpy, constant, device")
    ap.add_argument("--burst", type=int, default=1, help="calls of a plan in a row per round (timed: all but the first)")
    args = ap.parse_args()
    if args.burst < 1:
        ap.error(f"--burst {args.burst}: give 1 or more")
    kinds = tuple(args.arrays.split(","))
    if not kinds or set(kinds) - {"numpy", "constant", "device"}:
        ap.error(f"--arrays {args.arrays!r}: give a comma-separated list of numpy, constant, device")

    import clconv
    from clconv import api, dispatch
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    layers = {layer.name: layer for layer in SUITES["all"]}
    print("| layer | arrays | im2col | F(2x2,3x3) | F(4x4,3x3) | im2col / best Winograd |")
    print("|---|---|---|---|---|---|")
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        runs = {}
        for a in ALGORITHMS:
            p = api.plan(layer.fn, x, w, b, backend="opencl", device=args.device, algorithm=a,
                         **_fn_params(layer, spec))
            for kind in kinds:
                if kind == "numpy":
                    runs[kind, a] = (p, (x, w, b), None)
                    continue
                if kind == "constant":
                    runs[kind, a] = (dispatch.ConstantWeightsPlan(p), (x, w, b), None)
                    continue
                import pyopencl.array as cl_array

                queue = next(d for d in clconv.list_devices() if d.id == p.device.id).queue
                runs[kind, a] = (p, tuple(cl_array.to_device(queue, v) for v in (x, w, b)), queue)
        for p, arrays, queue in runs.values():  # builds, filter transforms, first touch
            for _ in range(2):
                p(*arrays)
                if queue is not None:
                    queue.finish()
        times: dict[tuple[str, str], list[float]] = {k: [] for k in runs}
        order = list(runs)
        shuffle = random.Random(0).shuffle
        for _ in range(args.rounds):
            shuffle(order)
            for key in order:
                p, arrays, queue = runs[key]
                for i in range(args.burst):
                    t = time.perf_counter()
                    p(*arrays)
                    if queue is not None:
                        queue.finish()
                    if i or args.burst == 1:
                        times[key].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        for kind in kinds:
            m = [med[kind, a] for a in ALGORITHMS]
            print(f"| {name} | {kind} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | {m[0] / min(m[1], m[2]):.2f}x |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
