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

import env_ab

DEFAULT = (
    "resnet50.1x1-56-reduce,resnet50.1x1-56-expand,resnet50.1x1-28,resnet50.1x1-14,resnet50.1x1-7,"
    "resnet50.1x1s2-downsample,mobilenetv2.1x1-56,resnet50.3x3-7,deeplab.3x3-d6-33,"
    "3d.3x3x3-64-8x28x28,audio.1d-512-k3s2,dcgan.t4x4s2-8"
)

if __name__ == "__main__":
    raise SystemExit(env_ab.main(__doc__, "CLCONV_GEMM_PREFETCH", ("0", "1"), ("no prefetch", "prefetch"),
                                 DEFAULT, "im2col", constant_weights=True))
