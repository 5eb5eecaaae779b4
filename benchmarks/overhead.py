"""Per-call overhead on tiny layers: where the time of a small convolution goes.

Side by side, in one run, interleaved, medians of rounds (microseconds per call):

- ``floor``: one trivial OpenCL kernel enqueue + finish on the device (the driver's own
  latency: no clconv involved);
- ``kernel``: clconv's prepared kernel object called with NumPy arrays (the device work
  plus clconv's data handling);
- ``plan``: a cached :func:`clconv.plan` called (adds the fallback wrapper);
- ``api``: ``clconv.conv2d(...)`` with the algorithm pinned (adds validation and lookup);
- ``device``: the plan called with pyopencl arrays (uploaded once), to the queue's finish
  (repeated calls take ``OpenCLKernel._device_call``); ``device-general``: the same calls with
  that fast path switched off, as they ran before it;
- ``onnxruntime``: the same layer through an ONNX Runtime session (when installed).

    python benchmarks/overhead.py [--device opencl:0:0] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=200, help="calls per round")
    args = ap.parse_args()

    import pyopencl as cl

    import clconv
    from clconv.bench import layer_arrays, onnxruntime_runner
    from clconv.suites import suite

    dev = next(d for d in clconv.list_devices() if d.id == args.device)
    q = dev.queue
    buf = cl.Buffer(dev.context, cl.mem_flags.READ_WRITE, 256)
    trivial = cl.Program(dev.context, "__kernel void k(__global float* a) { a[get_global_id(0)] += 1; }").build().k
    trivial.set_args(buf)

    def floor() -> None:
        cl.enqueue_nd_range_kernel(q, trivial, (64,), (64,))
        q.finish()

    fns = {n: getattr(clconv, n) for n in ("conv1d", "conv2d", "conv3d")}
    rows = []
    for layer in suite("small"):
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        p = clconv.plan(layer.fn, x, w, b, device=args.device, **layer.params)
        alg = p.algorithm.id
        k = p.kernel
        f = fns[layer.fn]
        runners = {
            "floor": floor,
            "kernel": lambda: k(x, w, b),
            "plan": lambda: p(x, w, b),
            "api": lambda: f(x, w, b, device=args.device, algorithm=alg, **layer.params),
        }
        import pyopencl.array as cl_array

        xd, wd, bd = (cl_array.to_device(q, a) if a is not None else None for a in (x, w, b))

        def device(p=p, xd=xd, wd=wd, bd=bd) -> None:
            p(xd, wd, bd)
            q.finish()

        def device_general(k=k, device=device) -> None:
            saved = k.__dict__.get("_device_fast")
            k.__dict__["_device_fast"] = None  # None: neither taken nor made
            try:
                device()
            finally:
                k.__dict__["_device_fast"] = saved

        runners["device"] = device
        runners["device-general"] = device_general
        try:
            runners["onnxruntime"] = onnxruntime_runner(layer, spec, (x, w, b))
        except ImportError:
            pass
        times: dict[str, list[float]] = {n: [] for n in runners}
        for fn in runners.values():
            for _ in range(20):
                fn()
        for _ in range(args.rounds):
            for n, fn in runners.items():
                t = time.perf_counter()
                for _ in range(args.calls):
                    fn()
                times[n].append((time.perf_counter() - t) / args.calls * 1e6)
        med = {n: statistics.median(v) for n, v in times.items()}
        rows.append((layer.name, alg, med))
    names = list(rows[0][2])
    print(f"{'layer':22s} {'algorithm':15s} " + " ".join(f"{n:>12s}" for n in names) + "   (us per call, median)")
    for name, alg, med in rows:
        print(f"{name:22s} {alg:15s} " + " ".join(f"{med[n]:12.1f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
