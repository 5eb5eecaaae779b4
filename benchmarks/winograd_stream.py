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

import env_ab

DEFAULT = "vgg.3x3-112,resnet50.3x3-56,resnet50.3x3-28,resnet50.3x3-14,resnet50.3x3-7"


def _all_sizes(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--all-sizes", action="store_true")


def _setup(args: argparse.Namespace) -> None:
    from clconv.backends.opencl.algorithms import winograd

    if args.all_sizes:
        winograd.STREAM_BYTES = 0
        real = winograd.streams_output
        winograd.streams_output = lambda spec, device, tile, mt: real(spec, device, tile, 4)


if __name__ == "__main__":
    raise SystemExit(env_ab.main(__doc__, "CLCONV_WINOGRAD_STREAM", ("0", "1"), ("plain", "streamed"), DEFAULT,
                                 "winograd-f4x4-3x3,winograd-f2x2-3x3", rounds=21, extra=_all_sizes,
                                 setup=_setup))
