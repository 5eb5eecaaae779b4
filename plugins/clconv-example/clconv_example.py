"""clconv-example: a complete, minimal clconv backend in NumPy.

One device (the host), one algorithm (a tap-by-tap float64 contraction), forward
convolution only. docs/writing-a-plugin.md explains every line.
"""

from __future__ import annotations

import math
import os

import numpy as np

import clconv
from clconv.backend import Algorithm, Backend, Device, Kernel, Support, first_failure
from clconv.costmodel import Cost, io_bytes
from clconv.spec import ConvSpec

__version__ = "0.1.0"

# clconv's padding modes, as np.pad calls them
_NP_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def convolve(spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Forward convolution of any rank, in float64, rounded once to the spec's dtype."""
    nd, g = spec.ndim, spec.groups
    pads = [(0, 0), (0, 0)] + list(spec.padding)
    xp = np.pad(x.astype(np.float64), pads, mode=_NP_PAD[spec.padding_mode])
    xg = xp.reshape(spec.batch, g, spec.in_per_group, *xp.shape[2:])
    wg = w.astype(np.float64).reshape(g, spec.out_per_group, spec.in_per_group, *spec.kernel)
    y = np.zeros((spec.batch, g, spec.out_per_group, *spec.out_size))
    for tap in np.ndindex(*spec.kernel):
        window = tuple(
            slice(t * d, t * d + (n - 1) * s + 1, s)
            for t, d, s, n in zip(tap, spec.dilation, spec.stride, spec.out_size)
        )
        y += np.einsum("ngc...,goc->ngo...", xg[(...,) + window], wg[(...,) + tap])
    y = y.reshape(spec.output_shape)
    if b is not None:
        y += b.astype(np.float64).reshape((1, -1) + (1,) * nd)
    return y.astype(spec.dtype)


class ExampleKernel(Kernel):
    def compute(self, input, weight, bias, out):
        y = convolve(self.spec, input, weight, bias)
        if out is None:
            return y
        out[...] = y
        return out


class TapByTap(Algorithm):
    id = "tap-by-tap"
    family = "reference"
    description = "float64 einsum per kernel tap (forward convolution only)"

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        return first_failure(
            (spec.transposed, "clconv-example does forward convolution only"),
        )

    def workspace_bytes(self, spec: ConvSpec, device: Device) -> int:
        padded = math.prod(n + a + b for n, a, b in zip(spec.in_size, spec.pad_before, spec.pad_after))
        return 8 * (spec.batch * spec.in_channels * padded + math.prod(spec.output_shape))

    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        return ExampleKernel(spec, device, self)

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        return Cost(spec.flops, 3 * io_bytes(spec), launches=math.prod(spec.kernel), efficiency=0.01)


class ExampleBackend(Backend):
    name = "example"
    version = __version__
    description = "clconv-example: forward convolution in NumPy"

    def devices(self) -> list[Device]:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return [Device(id="example:cpu", backend=self.name, name="host CPU (NumPy)", kind="cpu",
                       vendor="numpy", driver=f"numpy {np.__version__}", memory_bytes=memory,
                       compute_units=os.cpu_count() or 1, fp64=True, fp16=True)]

    def algorithms(self) -> list[Algorithm]:
        return [TapByTap()]


@clconv.hookimpl
def clconv_register_backends(register):
    register(ExampleBackend())
