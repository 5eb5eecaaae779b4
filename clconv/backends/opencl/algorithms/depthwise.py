"""depthwise: the kernel specialized for groups == C_in (kernels_cl/depthwise.cl).

Non-transposed convolution with C_out = multiplier * C_in: 1D/2D/3D, any
stride, dilation, asymmetric padding, every padding mode, bias,
float16/32/64. Kernel size, stride, dilation, padding and the tile are
compiled in (``-D``), so the tap loops unroll and the weights sit in
registers. Shapes are kernel arguments, except on CPUs the width of the
chunk of W a work-item walks (the output width, up to ``MAX_CHUNK``), which
sizes its loop and its stage.

A work-item computes a :class:`Tile`: ``mb`` output channels that share one
input channel x ``rh`` output rows, along W, loading each input once for all
the products it takes part in. On CPUs (``row_loop``) a work-item stages its
input rows, padded, in local memory and runs a loop along W with no padding
logic, which the driver's compiler vectorizes; on GPUs adjacent work-items
take adjacent strips of W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ....costmodel import Cost, io_bytes
from ....backend import Device, Kernel, Support, first_failure
from ....spec import ConvSpec
from ..base import OpenCLAlgorithm, OpenCLKernel, round_up, spatial3
from ..runtime import cl

_MODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}

#: Largest kernel volume compiled in (7x7x7); larger kernels are left to other algorithms.
MAX_TAPS = 343
#: Bound on the unrolled multiply-adds per output position of a tile (mb * rh * taps),
#: which keeps the build time and the code size of one kernel reasonable.
MAX_UNROLLED = 1024
#: Accumulators (mb * rh) one work-item of the CPU form holds, each a vector register;
#: the GPU form holds half as many, times vw.
MAX_ACCUMULATORS = 8
#: Largest chunk of W one CPU work-item walks; wider rows are split into chunks.
MAX_CHUNK = 512
#: CPU form: the loop along W runs a multiple of this many outputs (the vector width the
#: driver's compiler picks; PoCL on AVX-512 uses 8 floats), storing only the real ones, so
#: that no scalar remainder loop runs.
VECW = 8
#: Outputs one CPU work-group should compute, so that the per-group cost is amortized...
TARGET_GROUP_OUTPUTS = 4096
#: ...while the stages of its work-items stay small next to an L1 cache (each work-item
#: has its own; measured on PoCL: 8 work-items with 7.7 KiB stages ran 1.5x slower than 1,
#: 2 of them 1.1x slower).
GROUP_STAGE_BYTES = 12 * 1024


@dataclass(frozen=True)
class Tile:
    """The work of one work-item and the work-group shape (see kernels_cl/depthwise.cl)."""

    row_loop: bool  # CPU form: stage rows in local memory, loop along W over `wch` outputs
    rh: int  # output rows per work-item (divides OH)
    mb: int  # output channels per work-item, sharing one input channel (divides the multiplier)
    wch: int = 0  # CPU form: outputs along W per work-item
    vw: int = 1  # GPU form: adjacent outputs along W per work-item
    local: tuple[int, int, int] = (1, 1, 1)  # work-group size

    def stage_rows(self, spec: ConvSpec) -> int:
        """Rows of input the tile reads per depth tap (JR in the kernel)."""
        _, sh, _ = spatial3(spec.stride, 1)
        _, kh, _ = spatial3(spec.kernel, 1)
        _, dh, _ = spatial3(spec.dilation, 1)
        return (self.rh - 1) * sh + (kh - 1) * dh + 1

    def stage_width(self, spec: ConvSpec) -> int:
        """Elements of one phase row of the stage (WPMAX in the kernel)."""
        _, _, kw = spatial3(spec.kernel, 1)
        _, _, sw = spatial3(spec.stride, 1)
        _, _, dw = spatial3(spec.dilation, 1)
        return round_up(self.wch, VECW) + (kw - 1) * dw // sw

    def local_bytes(self, spec: ConvSpec) -> int:
        """Local memory one work-group of the CPU form uses for its stages."""
        if not self.row_loop:
            return 0
        kd = spatial3(spec.kernel, 1)[0]
        sw = spatial3(spec.stride, 1)[2]
        acc = 8 if spec.dtype == "float64" else 4
        return self.local[0] * self.local[1] * kd * self.stage_rows(spec) * sw * self.stage_width(spec) * acc


def _divisor(n: int, options: tuple[int, ...]) -> int:
    """The first of ``options`` that divides n (options end with 1)."""
    return next(d for d in options if n % d == 0)


def _fit(tile: Tile, spec: ConvSpec, device: Device) -> Tile | None:
    """Shrink a CPU tile until its stages fit the device's local memory; None if they never do."""
    limit = int(getattr(device, "local_mem_bytes", 0) or 0)
    t = tile
    while limit and t.local_bytes(spec) > limit:
        lx, ly, rh, wch = t.local[0], t.local[1], t.rh, t.wch
        if ly > 1:
            t = Tile(True, rh, t.mb, wch, local=(lx, ly // 2, 1))
        elif lx > 1:
            t = Tile(True, rh, t.mb, wch, local=(lx // 2, 1, 1))
        elif rh > 1:
            oh = spatial3(spec.out_size, 1)[1]
            t = Tile(True, _divisor(oh, tuple(range(rh - 1, 0, -1))), t.mb, wch, local=t.local)
        elif wch > 16:
            t = Tile(True, rh, t.mb, max(16, wch // 2), local=t.local)
        else:
            return None
    return t


def choose_tile(spec: ConvSpec, device: Device) -> Tile:
    """A tile for ``spec`` on ``device``: registers, local memory and the device kind decide.

    CPU drivers (PoCL) vectorize loops inside a work-item, so on a CPU a
    work-item loops along W (``row_loop``) over up to 8 output rows at once
    (taller tiles load fewer rows per output; measured on PoCL 3.1, AVX-512,
    7 rows ran 1.2x faster than 8 on 112x112 3x3, and 4 or 2 were slower).
    GPUs want adjacent work-items on adjacent addresses, 64-item work-groups
    and fewer registers per work-item: up to 4 rows and 4 outputs along W.
    """
    od, oh, ow = spatial3(spec.out_size, 1)
    mult = spec.out_channels // spec.in_channels
    taps = math.prod(spec.kernel)
    cpu = device.kind == "cpu"
    most = MAX_ACCUMULATORS if cpu else MAX_ACCUMULATORS // 2
    mb = _divisor(mult, tuple(m for m in (4, 3, 2) if m * taps <= MAX_UNROLLED) + (1,))
    rh = _divisor(oh, tuple(r for r in (7, 8, 6, 5, 4, 3, 2)
                            if r * mb <= most and r * mb * taps <= MAX_UNROLLED) + (1,))
    cap = int(getattr(device, "max_work_group_size", 0) or 64)
    if cpu:
        wch = ow if ow <= MAX_CHUNK else MAX_CHUNK // 2
        items = od * (oh // rh) * -(-ow // wch)
        one = Tile(True, rh, mb, wch)
        lx = 1
        while (lx < 8 and 2 * lx <= min(items, cap)
               and 2 * lx * mb * rh * wch <= TARGET_GROUP_OUTPUTS
               and 2 * lx * one.local_bytes(spec) <= GROUP_STAGE_BYTES):
            lx *= 2
        # Small planes (fewer items than a group holds): the group takes several planes
        # (channels) too, so that the per-group cost is paid fewer times.
        planes = spec.batch * spec.in_channels * (mult // mb)
        ly = 1
        while (lx * ly < 8 and planes % (2 * ly) == 0 and 2 * lx * ly <= cap
               and 2 * lx * ly * mb * rh * wch <= TARGET_GROUP_OUTPUTS
               and 2 * lx * ly * one.local_bytes(spec) <= GROUP_STAGE_BYTES):
            ly *= 2
        fitted = _fit(Tile(True, rh, mb, wch, local=(lx, ly, 1)), spec, device)
        if fitted is not None:
            return fitted
    vw = 4 if ow >= 16 else 1
    lw = 64
    while lw > 8 and lw // 2 >= -(-ow // vw):
        lw //= 2
    lh = max(1, 64 // lw)
    while lw * lh > cap:
        lh, lw = (lh // 2, lw) if lh > 1 else (lh, lw // 2)
    return Tile(False, rh, mb, vw=vw, local=(lw, lh, 1))


class DepthwiseKernel(OpenCLKernel):
    ONE_LAUNCH = True

    tile: Tile

    def run(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        self.launch_buffers(queue, x, w, b, y)

    def _launch_setup(self, ctx: Any, has_bias: bool) -> tuple[Any, str, tuple[int, ...], tuple[int, ...], list[Any]]:
        s = self.spec
        t = self.tile
        kd, kh, kw = spatial3(s.kernel, 1)
        sd, sh, sw = spatial3(s.stride, 1)
        dd, dh, dw = spatial3(s.dilation, 1)
        pd, ph, pw = spatial3(s.pad_before, 0)
        idp, ih, iw = spatial3(s.in_size, 1)
        od, oh, ow = spatial3(s.out_size, 1)
        mult = s.out_channels // s.in_channels
        defines = {
            "PADDING_MODE": _MODE[s.padding_mode],
            "HAS_BIAS": int(has_bias),
            "MULT": mult, "MB": t.mb, "RH": t.rh,
            "KD": kd, "KH": kh, "KW": kw,
            "SD": sd, "SH": sh, "SW": sw,
            "DD": dd, "DH": dh, "DW": dw,
            "PD": pd, "PH": ph, "PW": pw,
            "ROW_LOOP": int(t.row_loop),
        }
        defines.update({"WCH": t.wch, "VECW": VECW} if t.row_loop else {"VW": t.vw})
        prog = self.program(ctx, "depthwise.cl", defines)
        hb = oh // t.rh
        planes = s.batch * s.in_channels * (mult // t.mb)
        nwc = -(-ow // t.wch) if t.row_loop else 1
        total0 = od * hb * nwc
        i32 = np.int32
        tail = [i32(s.in_channels), i32(idp), i32(ih), i32(iw), i32(od), i32(oh), i32(ow)]
        tail += [i32(hb), i32(nwc), i32(total0)]
        tail += [cl.LocalMemory(max(t.local_bytes(s), 8)), i32(dw)]
        lx, ly, lz = t.local
        if t.row_loop:
            gsize = (round_up(total0, lx), round_up(planes, ly), 1)
        else:
            gsize = (round_up(-(-ow // t.vw), lx), round_up(od * hb, ly), round_up(planes, lz))
        return prog, "conv_depthwise", gsize, tuple(t.local), tail


class Depthwise(OpenCLAlgorithm):
    id = "depthwise"
    family = "direct"
    priority = 40
    description = "groups == C_in: register tiles with taps, strides and padding compiled in"

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        taps = math.prod(spec.kernel)
        own = first_failure(
            (spec.groups != spec.in_channels,
             f"not depthwise (groups={spec.groups} != C_in={spec.in_channels})"),
            (spec.transposed, "transposed (this kernel does conv only; direct does conv_transpose)"),
            (taps > MAX_TAPS, f"kernel of {taps} taps; at most {MAX_TAPS} are compiled in"),
        )
        return own if not own.ok else self.common_support(spec, device)

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        # Every input and output element moves once, but the few MACs per output reach only
        # a small fraction of peak: measured (PoCL, Zen 5, MobileNetV2 layers at batch 8,
        # against a calibrated 234 GFLOP/s) 0.08 at stride 1 on 112/56-wide rows, falling
        # to ~0.03 on 7-wide ones, and ~0.035 at stride 2.
        width = spec.out_size[-1]
        eff = (0.08 if max(spec.stride) == 1 else 0.035) * min(1.0, width / 56) ** 0.4
        return Cost(spec.flops, io_bytes(spec), 1 + self.host_launches(device), eff)

    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        kernel = DepthwiseKernel(spec, device, self)
        kernel.tile = choose_tile(spec, device)
        return kernel
