"""Two forms of one plan, selected by an environment variable that clconv reads at each call
(each form builds its own program), timed against each other: shared by im2col_panels.py,
winograd_stream.py and gemm_prefetch.py."""

from __future__ import annotations

import os
import random
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
