"""Winograd GEMM blocks against each other: each kernel's own time (OpenCL profiling events) and
the time from the first kernel's start to the last one's end, medians of interleaved rounds, ms.

Every block runs as its own kernel (its own cached U), with pyopencl arrays on a profiling queue
of the device, in a new random order each round; the default block of the spec on the device is
marked. A block is ``TM,VW,NV`` (tiles x vectors of output channels per work-item); a leading
``i`` makes the GEMM transform the filters itself (``CLCONV_WINOGRAD_INLINE=1``).

    python benchmarks/winograd_blocks.py [--layer resnet50.3x3-14] [--algorithm winograd-f4x4-3x3]
        [--blocks 8,16,2;16,16,1] [--device opencl:0:0] [--rounds 40]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", default="resnet50.3x3-14")
    ap.add_argument("--algorithm", default="winograd-f4x4-3x3")
    ap.add_argument("--blocks", default="8,16,2;16,16,1")
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()

    import clconv
    from clconv import api, dispatch
    from clconv.backends.opencl import runtime
    from clconv.backends.opencl.runtime import cl, cl_array
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    layer = {layer.name: layer for layer in SUITES["all"]}[args.layer]
    dev = next((d for d in clconv.list_devices() if d.id == args.device), None)
    if dev is None or not hasattr(dev, "cl_device"):
        ap.error(f"--device {args.device!r}: not an OpenCL device here (see `clconv devices`)")
    spec = layer.spec()
    x, w, b = layer_arrays(spec)
    queue = cl.CommandQueue(dev.context, dev.cl_device, properties=cl.command_queue_properties.PROFILING_ENABLE)
    events: list = []
    launch = runtime.launch

    def record(q, program, name, *rest):
        ev = launch(q, program, name, *rest)
        events.append((name, ev))
        return ev

    runtime.launch = record
    arrays = tuple(None if a is None else cl_array.to_device(queue, a) for a in (x, w, b))
    base = api.plan(layer.fn, x, w, b, backend="opencl", device=args.device, algorithm=args.algorithm,
                    **_fn_params(layer, spec))
    default = base.kernel.params
    plans = {}
    for block in args.blocks.split(";"):
        inline = block.startswith("i")
        tm, vw, nv = (int(v) for v in block.lstrip("i").split(","))
        os.environ["CLCONV_WINOGRAD_INLINE"] = "1" if inline else "0"  # read when the kernel is made
        params = {"tm": tm, "vw": vw, "nv": nv, "group": default["group"]}
        kernel = base.algorithm.prepare(base.spec, dev, params)
        mark = " (default)" if params == default and inline == getattr(base.kernel, "inline", False) else ""
        plans[f"{'inline ' if inline else ''}{tm} x {nv} x {vw}{mark}"] = dispatch.Plan(base.spec, base.explanation, kernel)
    os.environ.pop("CLCONV_WINOGRAD_INLINE", None)
    times: dict[str, dict[str, list[float]]] = {k: {} for k in plans}
    for p in plans.values():  # builds, filter transforms, first touch
        for _ in range(3):
            p(*arrays)
            queue.finish()
    order = list(plans)
    shuffle = random.Random(0).shuffle
    for _ in range(args.rounds):
        shuffle(order)
        for key in order:
            events.clear()
            plans[key](*arrays)
            queue.finish()
            for name, ev in events:
                times[key].setdefault(name, []).append((ev.profile.end - ev.profile.start) * 1e-6)
            times[key].setdefault("first start to last end", []).append(
                (events[-1][1].profile.end - events[0][1].profile.start) * 1e-6)
    print(f"{args.layer}, {args.algorithm} on {args.device}, medians of {args.rounds} rounds, ms")
    print("| block (TM x NV x VW) | kernels | first start to last end |")
    print("|---|---|---|")
    for key, per in times.items():
        total = per.pop("first start to last end")
        kernels = ", ".join(f"{name} {statistics.median(t):.3f}" for name, t in per.items())
        print(f"| {key} | {kernels} | {statistics.median(total):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
