"""depthwise: the kernel specialized for groups == C_in (kernels_cl/depthwise.cl).

Non-transposed convolution with C_out = multiplier * C_in, 1D/2D/3D, any
stride, dilation, asymmetric padding, every padding mode, bias, float16/32/64.
Kernel size, stride, dilation and padding are compiled in (``-D``), so the tap
loops unroll and the weights sit in registers; shapes stay kernel arguments,
so one build serves every input size of a layer shape.

Each work-item computes a :class:`Tile`: ``mb`` output channels that share one
input channel x ``rh`` output rows x ``vw`` adjacent outputs along W, reusing
every input row it loads for all the products that row takes part in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ....backend import Device, Kernel, Support, first_failure
from ....spec import ConvSpec
from .. import runtime
from ..base import OpenCLAlgorithm, OpenCLKernel, round_up, spatial3

_MODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}

#: Largest kernel volume compiled into one work-item (weights are held in registers).
MAX_TAPS = 343
#: Upper bound on the accumulators one work-item holds (mb * rh * vw).
MAX_ACCUMULATORS = 32


@dataclass(frozen=True)
class Tile:
    """The work of one work-item and the work-group shape."""

    vw: int  # adjacent outputs along W
    rh: int  # output rows along H
    mb: int  # output channels sharing one input channel (divides the multiplier)
    lw: int  # work-group size along dimension 0 (strips along W)
    lh: int  # work-group size along dimension 1 (row blocks)


def choose_tile(spec: ConvSpec, device: Device) -> Tile:
    """A tile for ``spec``: small enough for registers, shaped for the device kind.

    Work-items adjacent in dimension 0 read adjacent inputs. CPU drivers (PoCL)
    vectorize across dimension 0, so on a CPU each work-item takes one column
    (vw = 1) and a strip of rows, and dimension 0 gets 16 work-items (one
    AVX-512 vector of floats). On GPUs a work-item takes a short strip along W
    too, and the work-group is 64 to 256 work-items.
    """
    _, kh, kw = spatial3(spec.kernel, 1)
    _, oh, ow = spatial3(spec.out_size, 1)
    mult = spec.out_channels // spec.in_channels
    mb = next(m for m in (4, 3, 2, 1) if mult % m == 0 and m <= mult)
    cpu = device.kind == "cpu"
    vw = 1 if cpu else (4 if ow >= 16 else 1)
    rh = 1 if oh == 1 else min(4, oh)
    while mb * rh * vw > MAX_ACCUMULATORS and rh > 1:
        rh //= 2
    lw = 16 if cpu else 32
    strips = -(-ow // vw)
    while lw > 1 and lw // 2 >= strips:
        lw //= 2
    lh = 1 if cpu else max(1, 64 // lw)
    return Tile(vw=vw, rh=rh, mb=mb, lw=lw, lh=lh)


class DepthwiseKernel(OpenCLKernel):
    tile: Tile

    def run(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        s = self.spec
        t = self.tile
        kd, kh, kw = spatial3(s.kernel, 1)
        sd, sh, sw = spatial3(s.stride, 1)
        dd, dh, dw = spatial3(s.dilation, 1)
        pd, ph, pw = spatial3(s.pad_before, 0)
        idp, ih, iw = spatial3(s.in_size, 1)
        od, oh, ow = spatial3(s.out_size, 1)
        mult = s.out_channels // s.in_channels
        prog = self.program(
            queue.context,
            "depthwise.cl",
            {
                "PADDING_MODE": _MODE[s.padding_mode],
                "HAS_BIAS": int(b is not None),
                "MULT": mult, "MB": t.mb,
                "KD": kd, "KH": kh, "KW": kw,
                "SD": sd, "SH": sh, "SW": sw,
                "DD": dd, "DH": dh, "DW": dw,
                "PD": pd, "PH": ph, "PW": pw,
                "VW": t.vw, "RH": t.rh,
            },
        )
        hb = -(-oh // t.rh)
        i32 = np.int32
        args = [*self.buf(x), *self.buf(w)]
        args += [*self.buf(b)] if b is not None else [None, i32(0)]
        args += [*self.buf(y), i32(s.in_channels), i32(idp), i32(ih), i32(iw), i32(od), i32(oh), i32(ow), i32(hb)]
        gsize = (
            round_up(-(-ow // t.vw), t.lw),
            round_up(od * hb, t.lh),
            s.batch * s.in_channels * (mult // t.mb),
        )
        runtime.launch(queue, prog, "conv_depthwise", gsize, (t.lw, t.lh, 1), *args)


class Depthwise(OpenCLAlgorithm):
    id = "depthwise"
    family = "direct"
    priority = 40
    description = "depthwise (groups == C_in): register tiles, taps and strides compiled in"

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        taps = int(np.prod(spec.kernel))
        own = first_failure(
            (spec.groups != spec.in_channels, f"not depthwise (groups={spec.groups} != C_in={spec.in_channels})"),
            (spec.transposed, "transposed convolution (the direct algorithm does it)"),
            (taps > MAX_TAPS, f"kernel of {taps} taps; at most {MAX_TAPS} are compiled into registers"),
        )
        return own if not own.ok else self.common_support(spec, device)

    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        kernel = DepthwiseKernel(spec, device, self)
        kernel.tile = choose_tile(spec, device)
        return kernel
