"""im2col's conv column workspace in K x TN panels (the default) vs in rows, per layer.

Both layouts run in the same process through one plan (``CLCONV_IM2COL_PANELS`` is read at
each call; each layout has its own program), alternating in a new random order each round;
medians of the rounds, in ms. The two results are checked to be the same bits first.

    python benchmarks/im2col_panels.py [--rounds 15] [--device opencl:0:0] [--layers a,b,...]
"""

from __future__ import annotations

import argparse

from env_ab import compare

DEFAULT = (
    "audio.1d-512-k3s2,deeplab.3x3-d12-33,3d.3x3x3-64-8x28x28,resnet50.3x3-7,resnet50.3x3-56,"
    "resnet50.stem-7x7s2,vgg.3x3-112,resnet50.1x1s2-downsample"
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
    print("| layer | rows ms | panels ms | rows / panels |")
    print("|---|---|---|---|")
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        p = api.plan(layer.fn, x, w, b, backend="opencl", device=args.device, algorithm="im2col",
                     **_fn_params(layer, spec))
        rows, panels = compare(p, (x, w, b), "CLCONV_IM2COL_PANELS", ("0", "1"), args.rounds)
        print(f"| {name} | {rows:.3f} | {panels:.3f} | {rows / panels:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
