"""Default vs tuned kernel parameters, per layer, measured interleaved in one run.

For each layer: the tuner (``clconv tune``'s code path: the ``measure`` policy, pinned to one
algorithm and device) searches the algorithm's variants and stores the fastest in the tuning
database; then a fresh plan (which reads the database) and a kernel with the default parameters
run alternately, ``--rounds`` calls each, and the medians are compared. Alternating calls keep
a shared machine's load changes from deciding the ratio.

    python benchmarks/tuned_tiles.py --suite resnet50 --algorithm im2col --device opencl:0:0
    python benchmarks/tuned_tiles.py --spec 'conv2d input=8,256,14,14 weight=256,256,1,1'
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import clconv
from clconv import dispatch, tuning
from clconv.cli.tune import parse_spec
from clconv.suites import suite


def timed(kernel, x, w, b) -> float:
    t = time.perf_counter()
    kernel(x, w, b)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", action="append", default=[])
    ap.add_argument("--spec", action="append", default=[])
    ap.add_argument("--algorithm", default="im2col")
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--budget", type=float, default=4.0, help="tuning budget per layer (seconds)")
    ap.add_argument("--rounds", type=int, default=21)
    a = ap.parse_args()
    specs = [(layer.name, layer.spec("float32")) for name in a.suite for layer in suite(name)]
    specs += [(s, parse_spec(s, "float32")) for s in a.spec]
    print("| layer | tuned params | default ms | tuned ms | default / tuned |")
    print("|---|---|---|---|---|")
    for name, spec in specs:
        pins = {"device": a.device, "algorithm": a.algorithm}
        try:
            with clconv.settings(tune_budget=a.budget):
                e = dispatch.explain(spec, policy="measure", remeasure=True, **pins)
        except clconv.ClconvError as exc:
            print(f"| {name} | {str(exc).splitlines()[0]} | | | |")
            continue
        c = e.chosen
        if c is None or not c.params_source:
            print(f"| {name} | (not supported or not tunable) | | | |")
            continue
        dispatch.clear_plans()
        tuned = dispatch.plan(spec, **pins).kernel
        default = c.algorithm.prepare_with(spec, c.device, None)
        rng = np.random.default_rng(0)
        x = rng.standard_normal(spec.input_shape, dtype=np.float32)
        w = rng.standard_normal(spec.weight_shape, dtype=np.float32)
        b = rng.standard_normal(spec.out_channels, dtype=np.float32) if spec.bias else None
        for k in (default, tuned):
            k(x, w, b)  # warm-up: builds (cached), first-touch allocations
        td, tt = [], []
        for _ in range(a.rounds):
            td.append(timed(default, x, w, b))
            tt.append(timed(tuned, x, w, b))
        md, mt = statistics.median(td), statistics.median(tt)
        same = " (= default)" if tuned.params == default.params else ""
        print(f"| {name} | {c.algorithm.describe_params(tuned.params)}{same} | {md * 1e3:.3f} | {mt * 1e3:.3f} "
              f"| {md / mt:.2f} |", flush=True)
    print(f"\ntuning database: {tuning.database().path}")


if __name__ == "__main__":
    main()
