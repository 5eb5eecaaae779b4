"""im2col's conv column workspace in K x TN panels (the default) vs in rows, per layer.

Both layouts run in the same process through one plan (``CLCONV_IM2COL_PANELS`` is read at
each call; each layout has its own program), alternating in a new random order each round;
medians of the rounds, in ms. The two results are checked to be the same bits first.

    python benchmarks/im2col_panels.py [--rounds 15] [--device opencl:0:0] [--layers a,b,...]
"""

from __future__ import annotations

import env_ab

DEFAULT = (
    "audio.1d-512-k3s2,deeplab.3x3-d12-33,3d.3x3x3-64-8x28x28,resnet50.3x3-7,resnet50.3x3-56,"
    "resnet50.stem-7x7s2,vgg.3x3-112,resnet50.1x1s2-downsample"
)

if __name__ == "__main__":
    raise SystemExit(env_ab.main(__doc__, "CLCONV_IM2COL_PANELS", ("0", "1"), ("rows", "panels"), DEFAULT, "im2col"))
