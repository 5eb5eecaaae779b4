"""Where one call with NumPy arrays spends its time, host and device on one clock: the Python
before the first launch, the launch calls, the wait for the first kernel to start, the kernels
themselves and the gaps between them, and the time from the last kernel's end to the call's
return; medians over the rounds, in microseconds.

The device's queue is replaced by a profiling one (before any plan is made), and every
``clEnqueueNDRangeKernel`` is wrapped to note the host time around it. The OpenCL profiling
clock is not the host's: each call's offset between them comes from a launch call whose
command's ``QUEUED`` time lies within it (the shortest of the call's launches), so host and
device times agree to within that call's few microseconds. ``constant`` runs the plan through
``clconv.plan(..., constant_weights=True)`` (the weight on the device; nothing compared).

    python benchmarks/call_timeline.py [--layers resnet50.3x3-14,resnet50.3x3-7]
        [--algorithms im2col,winograd-f4x4-3x3] [--weights numpy,constant] [--device opencl:0:0]
        [--rounds 200]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time

DEFAULT = "resnet50.3x3-14,resnet50.3x3-7"
COLUMNS = ("Python before the 1st launch", "launch calls", "1st kernel queued to start", "kernels",
           "gaps between kernels", "last end to return", "call")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=DEFAULT)
    ap.add_argument("--algorithms", default="im2col,winograd-f4x4-3x3")
    ap.add_argument("--weights", default="numpy,constant")
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    kinds = args.weights.split(",")
    if set(kinds) - {"numpy", "constant"}:
        ap.error(f"--weights {args.weights!r}: give numpy, constant or both")

    import clconv
    from clconv import api, dispatch
    from clconv.backends.opencl.runtime import cl
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    dev = next((d for d in clconv.list_devices() if d.id == args.device), None)
    if dev is None or not hasattr(dev, "cl_device"):
        ap.error(f"--device {args.device!r}: not an OpenCL device here (see `clconv devices`)")
    dev._queue = cl.CommandQueue(dev.context, dev.cl_device, properties=cl.command_queue_properties.PROFILING_ENABLE)
    launches: list[tuple[int, int, object]] = []  # (host ns before, after, event)
    enqueue = cl.enqueue_nd_range_kernel

    def noted(*a: object, **kw: object) -> object:
        t0 = time.perf_counter_ns()
        ev = enqueue(*a, **kw)
        launches.append((t0, time.perf_counter_ns(), ev))
        return ev

    cl.enqueue_nd_range_kernel = noted
    layers = {layer.name: layer for layer in SUITES["all"]}
    print("| layer | algorithm | weight | " + " | ".join(COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        for alg in args.algorithms.split(","):
            plan = api.plan(layer.fn, x, w, b, backend="opencl", device=args.device, algorithm=alg,
                            **_fn_params(layer, spec))
            for kind in kinds:
                run = dispatch.ConstantWeightsPlan(plan) if kind == "constant" else plan
                for _ in range(5):
                    run(x, w, b)
                rows: dict[str, list[float]] = {c: [] for c in COLUMNS}
                for _ in range(args.rounds):
                    launches.clear()
                    t0 = time.perf_counter_ns()
                    run(x, w, b)
                    t1 = time.perf_counter_ns()
                    if not launches:
                        raise SystemExit(f"{name} {alg}: no launch went through clEnqueueNDRangeKernel")
                    profs = [ev.profile for _, _, ev in launches]
                    # the host-to-device clock offset, from the shortest launch call
                    b0, a0, p0 = min(((lb, la, p) for (lb, la, _), p in zip(launches, profs)),
                                     key=lambda v: v[1] - v[0])
                    off = p0.queued - (b0 + a0) // 2
                    first, last = profs[0], profs[-1]
                    own = sum(p.end - p.start for p in profs)
                    gaps = sum(max(0, q.start - p.end) for p, q in itertools.pairwise(profs))
                    rows[COLUMNS[0]].append(launches[0][0] - t0)
                    rows[COLUMNS[1]].append(sum(la - lb for lb, la, _ in launches))
                    rows[COLUMNS[2]].append(first.start - first.queued)
                    rows[COLUMNS[3]].append(own)
                    rows[COLUMNS[4]].append(gaps)
                    rows[COLUMNS[5]].append(t1 - (last.end - off))
                    rows[COLUMNS[6]].append(t1 - t0)
                cells = " | ".join(f"{statistics.median(v) / 1e3:.0f}" for v in rows.values())
                print(f"| {name} | {alg} | {kind} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
