"""Winograd's output transform with staged, streaming stores (``OUT_STREAM``) vs plain stores.

Both forms run in the same process through one plan (``CLCONV_WINOGRAD_STREAM`` is read at
each call; each form has its own program), alternating in a new random order each round;
medians of the rounds, in ms. The two results are checked to be the same bits first.
``--all-sizes`` streams every layer's output (``STREAM_BYTES`` = 0), not only the large ones
the default threshold picks, and every F(m), not only F(4x4), to show where streaming loses.

    python benchmarks/winograd_stream.py [--rounds 21] [--device opencl:0:0] [--layers a,b,...]
        [--algorithms winograd-f4x4-3x3,winograd-f2x2-3x3] [--all-sizes]
"""

from __future__ import annotations

import argparse

from env_ab import compare

DEFAULT = "vgg.3x3-112,resnet50.3x3-56,resnet50.3x3-28,resnet50.3x3-14,resnet50.3x3-7"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--device", default="opencl:0:0")
    ap.add_argument("--layers", default=DEFAULT)
    ap.add_argument("--algorithms", default="winograd-f4x4-3x3,winograd-f2x2-3x3")
    ap.add_argument("--all-sizes", action="store_true")
    args = ap.parse_args()

    from clconv import api
    from clconv.backends.opencl.algorithms import winograd
    from clconv.bench import _fn_params, layer_arrays
    from clconv.suites import SUITES

    if args.all_sizes:
        winograd.STREAM_BYTES = 0
        real = winograd.streams_output
        winograd.streams_output = lambda spec, device, tile, mt: real(spec, device, tile, 4)
    layers = {layer.name: layer for layer in SUITES["all"]}
    print("| layer | algorithm | plain ms | streamed ms | plain / streamed |")
    print("|---|---|---|---|---|")
    for name in args.layers.split(","):
        layer = layers[name]
        spec = layer.spec()
        x, w, b = layer_arrays(spec)
        for alg in args.algorithms.split(","):
            p = api.plan(layer.fn, x, w, b, backend="opencl", device=args.device, algorithm=alg,
                         **_fn_params(layer, spec))
            plain, streamed = compare(p, (x, w, b), "CLCONV_WINOGRAD_STREAM", ("0", "1"), args.rounds)
            print(f"| {name} | {alg} | {plain:.3f} | {streamed:.3f} | {plain / streamed:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
