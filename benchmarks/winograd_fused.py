"""Winograd's GEMM transforming its own block of M into outputs (``wino_gemm_out``: the default
on PoCL's CPU devices) vs the separate ``wino_gemm`` + ``output_transform`` launches, M written
to the workspace and read back.

Both forms run in the same process through one plan (``CLCONV_WINOGRAD_FUSED`` is read at each
call), alternating in a new random order each round; medians of the rounds, in ms. The two
results are checked to be the same bits first.

    python benchmarks/winograd_fused.py [--rounds 21] [--device opencl:0:0] [--layers a,b,...]
        [--algorithms winograd-f4x4-3x3,winograd-f2x2-3x3]
"""

from __future__ import annotations

import env_ab

DEFAULT = "resnet50.3x3-56,resnet50.3x3-28,resnet50.3x3-14,resnet50.3x3-7,vgg.3x3-112,deeplab.3x3-d2-33"

if __name__ == "__main__":
    raise SystemExit(env_ab.main(__doc__, "CLCONV_WINOGRAD_FUSED", ("0", "1"), ("separate", "fused"),
                                 DEFAULT, "winograd-f4x4-3x3,winograd-f2x2-3x3", rounds=21,
                                 constant_weights=True))
