"""im2col's GEMM kernels with software prefetch (the default on PoCL's CPU devices) vs without.

gemm_conv and gemm_cols prefetch the row of B (x read in place, or the column workspace)
``GEMM_BPF`` values of k ahead; the pointwise Y^T GEMM prefetches the row of x ``POINTWISE_XPF``
ahead (clconv/backends/opencl/algorithms/im2col.py). Both forms run in the same process
through one plan (``CLCONV_GEMM_PREFETCH`` is read at each call; each form has its own
program), alternating in a new random order each round; medians of the rounds, in ms. The
two results are checked to be the same bits first.

    python benchmarks/gemm_prefetch.py [--rounds 15] [--device opencl:0:0] [--layers a,b,...]
"""

from __future__ import annotations

import argparse

from env_ab import compare

DEFAULT = (
    "resnet50.1x1-56-reduce,resnet50.1x1-56-expand,resnet50.1x1-28,resnet50.1x1-14,resnet50.1x1-7,"
    "resnet50.1x1s2-downsample,mobilenetv2.1x1-56,resnet50.3x3-7,deeplab.3x3-d6-33,"
    "3d.3x3x3-64-8x28x28,audio.1d-512-k3s2,dcgan.t4x4s2-8"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--layers", default=DEFAULT)
    args = ap.parse_args()

    from clconv import api
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    layers = {layer.name: layer for layer in SUITES["all"]}
    print("| layer | no prefetch ms | prefetch ms | without / with |")
    print("|---|---|---|---|")
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        p = api.plan(layer.fn, x, w, b, backend="opencl", device=args.device, algorithm="im2col",
                     constant_weights=True, **_fn_params(layer, spec))
        off, on = compare(p, (x, w, b), "CLCONV_GEMM_PREFETCH", ("0", "1"), args.rounds)
        print(f"| {name} | {off:.3f} | {on:.3f} | {off / on:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
