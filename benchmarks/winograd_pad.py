"""Winograd's input transform reading x itself (the default for float32/float64 zero-padded,
undilated specs) vs reading the zero-padded copy that ``pad_input`` writes first.

Both forms run in the same process through one plan (``CLCONV_WINOGRAD_PAD`` is read at each
call; each form has its own program), alternating in a new random order each round; medians of
the rounds, in ms. The two results are checked to be the same bits first.

    python benchmarks/winograd_pad.py [--rounds 21] [--device opencl:0:0] [--layers a,b,...]
        [--algorithms winograd-f4x4-3x3,winograd-f2x2-3x3]
"""

from __future__ import annotations

import argparse

from env_ab import compare

DEFAULT = "resnet50.3x3-56,resnet50.3x3-28,resnet50.3x3-14,resnet50.3x3-7,vgg.3x3-112"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--layers", default=DEFAULT)
    ap.add_argument("--algorithms", default="winograd-f4x4-3x3,winograd-f2x2-3x3")
    args = ap.parse_args()

    from clconv import api
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    layers = {layer.name: layer for layer in SUITES["all"]}
    print("| layer | algorithm | padded copy ms | x read directly ms | copy / direct |")
    print("|---|---|---|---|---|")
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        for alg in args.algorithms.split(","):
            p = api.plan(layer.fn, x, w, b, backend="opencl", device=args.device, algorithm=alg,
                         constant_weights=True, **_fn_params(layer, spec))
            copy, direct = compare(p, (x, w, b), "CLCONV_WINOGRAD_PAD", ("1", "0"), args.rounds)
            print(f"| {name} | {alg} | {copy:.3f} | {direct:.3f} | {copy / direct:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
