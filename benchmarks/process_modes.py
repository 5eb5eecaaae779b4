"""Does a process settle into a fast or a slow mode? Times the same plans in several fresh
processes, one after another (medians of >= 30 calls each, ms).

    python benchmarks/process_modes.py [--runs 5] [--layers resnet50.1x1-56-expand,...]

clconv pins PoCL's worker threads (POCL_AFFINITY=1) unless the environment says otherwise: run
with POCL_AFFINITY=0 to see the unpinned behaviour.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

DEFAULT = "resnet50.1x1-56-expand,resnet50.3x3-56,resnet50.stem-7x7s2"

CHILD = """
import sys
from clconv import api
from clconv.bench import _fn_params, layer_arrays, time_call
from clconv.suites import SUITES
layers = {l.name: l for l in SUITES["all"]}
out = []
for name in sys.argv[1].split(","):
    layer = layers[name]; spec = layer.spec(); x, w, b = layer_arrays(spec)
    plan = api.plan(layer.fn, x, w, b, backend="opencl", **_fn_params(layer, spec))
    out.append(f"{time_call(lambda: plan(x, w, b), 30, 0.3) * 1e3:.3f}")
print(" | ".join(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--layers", default=DEFAULT)
    args = ap.parse_args()
    names = args.layers.split(",")
    print("| run | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for i in range(args.runs):
        res = subprocess.run([sys.executable, "-c", CHILD, args.layers], capture_output=True, text=True, check=True)
        print(f"| {i + 1} | {res.stdout.strip()} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
