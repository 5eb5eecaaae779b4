"""Print this machine's devices, run one convolution and verify it against the float64 reference."""

from __future__ import annotations

import numpy as np

import clconv
from clconv.backends.numpy.ops import reference


def main() -> int:
    print(f"clconv {clconv.__version__}")
    print("devices:")
    for d in clconv.list_devices():
        problem = d.problem()
        status = "usable" if not problem else f"unusable: {problem}"
        print(f"  {d.id:<14} {d.kind:<4} {d.name} ({d.driver}) - {status}")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 32, 32)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)

    plan = clconv.plan("conv2d", x, w, b, stride=2, padding="same")
    y = plan(x, w, b)
    exact = reference(plan.spec, x, w, b)
    err = float(np.linalg.norm(y - exact) / np.linalg.norm(exact))
    c = plan.candidate
    print(f"\n{plan.spec.describe()}")
    print(f"ran on backend={c.backend} device={c.device.id} algorithm={c.algorithm.id}")
    print(f"relative error vs float64 reference: {err:.2e}")
    ok = err <= 1e-5
    print("verified" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
