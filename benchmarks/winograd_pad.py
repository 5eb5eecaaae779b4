"""Winograd's input transform reading x itself (the default for float32/float64 zero-padded,
undilated specs) vs reading the zero-padded copy that ``pad_input`` writes first.

Both forms run in the same process through one plan (``CLCONV_WINOGRAD_PAD`` is read at each
call; each form has its own program), alternating in a new random order each round; medians of
the rounds, in ms. The two results are checked to be the same bits first.

    python benchmarks/winograd_pad.py [--rounds 21] [--device opencl:0:0] [--layers a,b,...]
        [--algorithms winograd-f4x4-3x3,winograd-f2x2-3x3]
"""

from __future__ import annotations

import env_ab

DEFAULT = "resnet50.3x3-56,resnet50.3x3-28,resnet50.3x3-14,resnet50.3x3-7,vgg.3x3-112"

if __name__ == "__main__":
    raise SystemExit(env_ab.main(__doc__, "CLCONV_WINOGRAD_PAD", ("1", "0"), ("padded copy", "x read directly"),
                                 DEFAULT, "winograd-f4x4-3x3,winograd-f2x2-3x3", rounds=21,
                                 constant_weights=True))
