"""Two forms of one plan, selected by an environment variable that clconv reads at each call
(each form builds its own program), timed against each other: ``compare`` times one plan,
``main`` is the command line of im2col_panels.py, gemm_prefetch.py, winograd_pad.py and
winograd_stream.py (a table row per layer and algorithm)."""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def compare(plan: Callable[..., Any], args: tuple, var: str, values: tuple[str, str], rounds: int) -> tuple[float, float]:
    """Medians in ms of ``plan(*args)`` with ``var`` set to each of ``values``, alternating in a
    new random order each round after a warm-up of each (builds); the two results must be the
    same bits (SystemExit otherwise). ``var`` is removed from the environment afterwards."""
    try:
        first = {}
        for v in values:
            os.environ[var] = v
            plan(*args)
            first[v] = np.array(plan(*args), copy=True)
        if first[values[0]].tobytes() != first[values[1]].tobytes():
            raise SystemExit(f"{var}={values[0]} and {var}={values[1]} give different results")
        times: dict[str, list[float]] = {v: [] for v in values}
        for _ in range(rounds):
            order = list(values)
            random.shuffle(order)
            for v in order:
                os.environ[var] = v
                t = time.perf_counter()
                plan(*args)
                times[v].append(time.perf_counter() - t)
        a, b = (statistics.median(times[v]) * 1e3 for v in values)
        return a, b
    finally:
        os.environ.pop(var, None)


def parse_shape(name: str) -> tuple[int, int, int, int] | None:
    """(H, W, C, N) of a layer named ``HxWxC:N`` (a 3x3 conv2d with padding 1, C channels in and
    out, batch N), or None for any other name."""
    m = re.fullmatch(r"(\d+)x(\d+)x(\d+):(\d+)", name)
    return None if m is None else tuple(int(v) for v in m.groups())  # type: ignore[return-value]


def shape_arrays(h: int, w: int, c: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float32 input, weight (scaled so outputs stay near unit size) and bias of that layer."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, c, h, w), dtype=np.float32),
            (rng.standard_normal((c, c, 3, 3)) / (3 * c**0.5)).astype(np.float32),
            rng.standard_normal(c, dtype=np.float32))


def main(doc: str, var: str, values: tuple[str, str], labels: tuple[str, str], layers: str, algorithms: str,
         rounds: int = 15, constant_weights: bool = False,
         extra: Callable[[argparse.ArgumentParser], None] | None = None,
         setup: Callable[[argparse.Namespace], None] | None = None) -> int:
    """Parse ``--rounds --device --layers --algorithms`` (a layer: a suite layer's name, or
    ``HxWxC:N`` for a 3x3 conv2d with padding 1, C channels in and out and batch N; and what
    ``extra`` adds), call
    ``setup(args)``, then print a Markdown row per layer and algorithm: the medians in ms with
    ``var`` set to each of ``values`` (named ``labels``) and their ratio."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--layers", default=layers)
    ap.add_argument("--algorithms", default=algorithms)
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    if setup is not None:
        setup(args)

    from clconv import api
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    suite = {layer.name: layer for layer in SUITES["all"]}
    a, b = labels
    print(f"| layer | algorithm | {a} ms | {b} ms | {a} / {b} |")
    print("|---|---|---|---|---|")
    for name in args.layers.split(","):
        shape = parse_shape(name)
        if shape:  # a 3x3 conv2d with padding 1
            arrays = shape_arrays(*shape)
            fn, params = "conv2d", {"padding": 1}
        elif name in suite:
            layer = suite[name]
            spec = layer.spec()
            arrays = layer_arrays(spec)
            fn, params = layer.fn, _fn_params(layer, spec)
        else:
            raise SystemExit(f"--layers: {name!r} is neither a suite layer nor HxWxC:N")
        for alg in args.algorithms.split(","):
            plan = api.plan(fn, *arrays, backend="opencl", device=args.device, algorithm=alg,
                            constant_weights=constant_weights, **params)
            ta, tb = compare(plan, arrays, var, values, args.rounds)
            print(f"| {name} | {alg} | {ta:.3f} | {tb:.3f} | {ta / tb:.2f}x |", flush=True)
    return 0
