"""Where a layer's time goes on the device: each kernel's own time (OpenCL profiling events),
the gaps between kernels and the time from the first enqueue to the first kernel's start,
medians over the rounds, in ms.

The layer runs with pyopencl arrays on a profiling queue of the device (so the launches go
through ``runtime.launch``, which this script records; the plan's own queue is not touched),
one plan per algorithm, each after two warm-up calls.

    python benchmarks/kernel_times.py [--layers resnet50.3x3-56,...] [--algorithms im2col,...]
        [--device opencl:0:0] [--rounds 30]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import statistics

DEFAULT = "resnet50.3x3-56,resnet50.3x3-28,resnet50.3x3-14,resnet50.3x3-7,vgg.3x3-112"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=DEFAULT)
    ap.add_argument("--algorithms", default="im2col,winograd-f4x4-3x3")
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()

    import clconv
    from clconv import api
    from clconv.backends.opencl import runtime
    from clconv.backends.opencl.runtime import cl, cl_array
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    layers = {layer.name: layer for layer in SUITES["all"]}
    dev = next((d for d in clconv.list_devices() if d.id == args.device), None)
    if dev is None or not hasattr(dev, "cl_device"):
        ap.error(f"--device {args.device!r}: not an OpenCL device here (see `clconv devices`)")
    queue = cl.CommandQueue(dev.context, dev.cl_device, properties=cl.command_queue_properties.PROFILING_ENABLE)
    events: list = []
    launch = runtime.launch

    def record(q, program, name, *rest):
        ev = launch(q, program, name, *rest)
        events.append((name, ev))
        return ev

    runtime.launch = record
    print("| layer | algorithm | kernels (ms each) | gaps | enqueue to start | first start to last end |")
    print("|---|---|---|---|---|---|")
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        arrays = tuple(None if a is None else cl_array.to_device(queue, a) for a in (x, w, b))
        for alg in args.algorithms.split(","):
            plan = api.plan(layer.fn, x, w, b, backend="opencl", device=args.device, algorithm=alg,
                            **_fn_params(layer, spec))
            for _ in range(2):
                plan(*arrays)
                queue.finish()
            own: dict[str, list[float]] = collections.defaultdict(list)
            gaps, starts, spans = [], [], []
            for _ in range(args.rounds):
                events.clear()
                plan(*arrays)
                queue.finish()
                per: dict[str, float] = collections.defaultdict(float)
                for kname, ev in events:
                    per[kname] += (ev.profile.end - ev.profile.start) * 1e-6
                for kname, t in per.items():
                    own[kname].append(t)
                gaps.append(sum((e1.profile.start - e0.profile.end) * 1e-6
                                for (_, e0), (_, e1) in itertools.pairwise(events)))
                starts.append((events[0][1].profile.start - events[0][1].profile.queued) * 1e-6)
                spans.append((events[-1][1].profile.end - events[0][1].profile.start) * 1e-6)
            kernels = ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in own.items())
            print(f"| {name} | {alg} | {kernels} | {statistics.median(gaps):.3f} | "
                  f"{statistics.median(starts):.3f} | {statistics.median(spans):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
