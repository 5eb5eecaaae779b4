"""direct-blocked: register-blocked direct convolution (kernels_cl/direct_blocked.cl).

Convolution: 1D/2D/3D, any stride, dilation, asymmetric
padding, every padding mode, groups, bias, float16/32/64. One launch, no
workspace, no weight packing. A work-item computes a :class:`Block` of ``cob``
output channels of one group x ``nv * vw`` consecutive outputs along W,
loading each input vector once for ``cob`` multiply-adds. The kernel geometry
(taps, stride, dilation, padding, channels per group) and the block are
compiled in, so the tap loops unroll and the weight offsets are constants.
A pointwise conv (1x1, stride 1, unpadded) runs as 1D over the flattened
image, so small images still fill whole vectors.

It fills the gaps of im2col + GEMM: a short reduction (few input channels per
group, e.g. the 3-channel stem, 1-channel audio front ends), small per-group
GEMMs (grouped convs) and small layers, where im2col's column traffic and
extra launch cost more than the arithmetic.

Transposed convolution (gather form, sub-pixel phases): along W, the outputs
congruent to r (mod stride) are reached by a fixed subset of taps, each reading
the input at a fixed offset, so each phase is a stride-1 correlation with a
sub-kernel of about ceil(k / stride) taps (:func:`phase_taps`). A work-item
computes ``cob`` channels x ``nv * vw`` consecutive input positions for every
phase, i.e. ``stride * nv * vw`` consecutive outputs, interleaved at the store;
along D and H a row takes the taps that reach it. One launch, no col2im, no
zero multiplies, every output written once (unreached ones get the bias).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ....backend import Device, Kernel, Support, first_failure
from ....costmodel import Cost, io_bytes
from ....errors import ConvValueError
from ....spec import ConvSpec
from ..base import OpenCLAlgorithm, OpenCLKernel, round_up, spatial3

_MODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}

#: Accumulator vectors (cob * nv) of one work-item: 16 of the 32 AVX-512 registers.
ACCUMULATORS = 16
#: Largest private stage of a border block (input columns), and largest unrolled kernel row.
MAX_SPAN = 1024
MAX_KW = 32
#: Blocks offered to the tuner (each costs a build when measured).
MAX_VARIANTS = 7
#: x-stationary blocks: at most this many input vectors held in registers.
XSTAT_VECTORS = 12
#: ...and at least this many work-items per compute unit left after merging channel blocks.
MIN_ITEMS_PER_CU = 32
#: Largest channels per group compiled in; more channels per group are im2col's ground.
MAX_CIG = 4096
#: Transposed: accumulator vectors (cob * nv * stride) of one work-item (measured: 24 beat 16).
TRANSPOSED_ACCUMULATORS = 24
#: Transposed: most sub-pixel phases along W (stride) a work-item computes side by side.
MAX_PHASES = 16


def phase_taps(spec: ConvSpec) -> list[tuple[int, int, int]]:
    """Transposed, along W: ``(r, kw, e)`` for each phase r (output ``stride * m + r``) and
    each tap kw that reaches it, reading input ``m + e``."""
    geo = geometry(spec)
    sw, dw, kw_, pw = geo["stride"][2], geo["dilation"][2], geo["kernel"][2], geo["pad"][2]
    return [(r, k, (r + pw - k * dw) // sw) for r in range(sw) for k in range(kw_) if (r + pw - k * dw) % sw == 0]


def offsets(spec: ConvSpec) -> tuple[int, int]:
    """Transposed: the smallest and largest input offset e of :func:`phase_taps`."""
    es = [e for _, _, e in phase_taps(spec)]
    return min(es), max(es)


@dataclass(frozen=True)
class Block:
    """The work of one work-item (cob channels x nv vectors of vw lanes) and the work-group."""

    cob: int
    vw: int
    nv: int
    local: tuple[int, int, int] = (1, 1, 1)
    xstat: bool = False  # input vectors of the whole reduction in registers...
    cbi: int = 1  # ...reused by this many channel blocks in turn

    @property
    def wb(self) -> int:
        return self.vw * self.nv

    def defines(self) -> dict[str, int]:
        return {"COB": self.cob, "VW": self.vw, "NV": self.nv, "XSTAT": int(self.xstat), "CBI": self.cbi}

    def params(self) -> dict[str, Any]:
        """The block as tunable kernel parameters (JSON-safe)."""
        return {"cob": self.cob, "vw": self.vw, "nv": self.nv, "local": list(self.local),
                "xstat": self.xstat, "cbi": self.cbi}

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Block:
        return cls(int(p["cob"]), int(p["vw"]), int(p["nv"]), tuple(int(v) for v in p["local"]),  # type: ignore[arg-type]
                   bool(p.get("xstat", False)), int(p.get("cbi", 1)))

    def valid(self, spec: ConvSpec) -> bool:
        """Whether the kernel can run ``spec`` with this block."""
        return (
            1 <= self.cob <= spec.out_per_group
            and self.vw in (1, 2, 4, 8, 16)
            and self.nv >= 1
            and all(v >= 1 for v in self.local)
            and self.cbi >= 1
            and (self.xstat or self.cbi == 1)
            and not (spec.transposed and self.xstat)
        )


def geometry(spec: ConvSpec) -> dict[str, tuple[int, int, int]]:
    """The spec as 3D (D, H, W); a pointwise conv as 1D over the flattened image."""
    if spec.is_pointwise and spec.ndim > 1:
        p = math.prod(spec.in_size)
        return {"in": (1, 1, p), "out": (1, 1, p), "kernel": (1, 1, 1), "stride": (1, 1, 1),
                "dilation": (1, 1, 1), "pad": (0, 0, 0)}
    return {
        "in": spatial3(spec.in_size, 1), "out": spatial3(spec.out_size, 1),
        "kernel": spatial3(spec.kernel, 1), "stride": spatial3(spec.stride, 1),
        "dilation": spatial3(spec.dilation, 1), "pad": spatial3(spec.pad_before, 0),
    }


def _pow2_at_least(n: int, cap: int) -> int:
    v = 1
    while v < n and v < cap:
        v *= 2
    return v


def choose_block(spec: ConvSpec, device: Device) -> Block:
    """The register block for ``spec``: as many output channels as the group has (up to 16),
    vectors as wide as the device's (16 floats, 8 doubles on AVX-512) or the output row,
    and enough vectors along W to fill the accumulator budget."""
    geo = geometry(spec)
    ow = geo["out"][2]
    lanes = _lanes(spec, device)
    if spec.transposed:
        return _transposed_block(spec, device, lanes)
    cog = spec.out_per_group
    cob = next(c for c in (16, 8, 4, 2, 1) if c <= cog)
    vw = _pow2_at_least(ow, lanes)
    nv = max(1, min(ACCUMULATORS // cob, -(-ow // vw)))
    # work-items of a group walk adjacent blocks along W, then rows (they share weights in cache)
    nwb = -(-ow // (vw * nv))
    l0 = min(nwb, 4)
    l1 = max(1, min(4 // l0, geo["out"][0] * geo["out"][1]))
    ncb = -(-cog // cob)
    taps = spec.in_per_group * math.prod(geo["kernel"])
    if taps * nv <= XSTAT_VECTORS and ncb > 1:
        # a short reduction: load its inputs once, reuse them for several channel blocks,
        # keeping enough work-items for every compute unit
        items = nwb * geo["out"][0] * geo["out"][1] * spec.batch * spec.groups
        cbi = max(1, min(ncb, ncb * items // (MIN_ITEMS_PER_CU * max(device.compute_units, 1))))
        return Block(cob, vw, nv, (l0, l1, 1), True, cbi)
    return Block(cob, vw, nv, (l0, l1, 1))


def _lanes(spec: ConvSpec, device: Device) -> int:
    extra = getattr(device, "extra", {}) or {}
    lanes = int(extra.get("native_vector_width_float", 0) or extra.get("preferred_vector_width_float", 0) or 8)
    lanes = max(4, min(16, lanes))
    return max(2, lanes // 2) if spec.dtype == "float64" else lanes


def _transposed_block(spec: ConvSpec, device: Device, lanes: int) -> Block:
    """Transposed: every phase along W (stride s) has its own accumulators, so a block holds
    cob * nv * s vectors (up to :data:`TRANSPOSED_ACCUMULATORS`). Channel blocks as even as
    that allows (21 -> 3 x 7 at stride 2: no overlap), vectors as wide as the device's unless
    a narrower one needs no more vectors per phase row (wide vectors with idle lanes beat
    more narrow ones: fcn 4x4s2 at 17 positions per phase, 16 lanes 0.14 ms, 4 lanes 0.19)."""
    geo = geometry(spec)
    sw = geo["stride"][2]
    mw = -(-geo["out"][2] // sw)  # positions per phase along W
    cog = spec.out_per_group
    cob_max = max(1, TRANSPOSED_ACCUMULATORS // sw)
    cob = -(-cog // -(-cog // cob_max))
    vw = lanes
    while vw > 2 and -(-mw // (vw // 2)) == -(-mw // vw):
        vw //= 2
    nv = max(1, min(TRANSPOSED_ACCUMULATORS // (cob * sw), -(-mw // vw)))
    nwb = -(-mw // (vw * nv))
    l0 = min(nwb, 4)
    l1 = max(1, min(4 // l0, geo["out"][0] * geo["out"][1]))
    return Block(cob, vw, nv, (l0, l1, 1))


def blocks(spec: ConvSpec, device: Device) -> list[Block]:
    """Blocks worth measuring for ``spec`` (the default first): fewer channels and more
    vectors along W, narrower vectors, other work-group shapes, x-stationary or not."""
    default = choose_block(spec, device)
    out = [default]
    c, vw, nv = default.cob, default.vw, default.nv
    cands = [
        Block(c, vw, nv, (1, 1, 1), default.xstat, default.cbi),
        Block(c, vw, nv, (1, 8, 1), default.xstat, default.cbi),
        Block(max(1, c // 2), vw, min(2 * nv, ACCUMULATORS), default.local),
        Block(c, max(1, vw // 2), nv, default.local),
        Block(c, max(1, vw // 2), min(2 * nv, ACCUMULATORS // c), default.local),
        Block(max(1, c // 2), vw, nv, default.local),
    ]
    if default.xstat:
        cands.append(Block(c, vw, nv, default.local))
        cands.append(Block(c, vw, nv, default.local, True, max(1, default.cbi // 4)))
    for b in cands:
        if b.valid(spec) and b not in out and span(spec, b) <= MAX_SPAN:
            out.append(b)
    return out[:MAX_VARIANTS]


def efficiency(spec: ConvSpec, device: Device) -> float:
    """Fraction of peak the kernel reaches on ``spec`` (cost model), fitted to measurements on
    PoCL 3.1, AVX-512 Zen 5 (fraction of the estimated peak; interleaved runs, module doc).

    Near peak for a stem-like layer (7 taps per row, 16 channels, few border blocks); less
    with fewer channels per block (less reuse of each input vector), fewer taps per kernel
    row (the per-row work is amortized over fewer multiply-adds), more border blocks (their
    rows are staged), lanes computed past the end of the row, strides of 3 or more (lanes
    gathered one by one), and float16 (converted lane by lane).
    Measured (ms, direct-blocked vs im2col, same run): stem 7x7s2 0.87 vs 1.42, ResNeXt
    3x3 g32 0.31 vs 0.76, audio 1->512 k10s5 0.21-0.37 vs 0.25-0.33 (memory-bound, even),
    audio 512 k3s2 9.7 vs 14.8;
    ResNet-50 3x3 at 56/28/14/7 1.1/2.7/1.4/2.2 vs 0.77/1.3/0.80/0.90, 1x1 at 56 0.64 vs 0.48.
    """
    if spec.transposed:
        return _transposed_efficiency(spec, device)
    block = choose_block(spec, device)
    geo = geometry(spec)
    ow, kw, sw = geo["out"][2], geo["kernel"][2], geo["stride"][2]
    nwb = -(-ow // block.wb)
    used = ow / (nwb * block.wb)
    reuse = min(1.0, block.cob / 8) * min(1.0, block.cob * block.nv / 8) ** 0.5
    if block.cob < 4:
        reuse *= 0.5
    row = 1.0 if block.xstat else kw * block.nv / (kw * block.nv + 1)
    border = sum(1 for b in range(nwb) if _border(spec, block, b)) / nwb
    eff = 0.8 * used * reuse * row / (1 + 0.5 * border)
    if sw > 2 and not block.xstat:
        eff *= 0.7
    if spec.dtype == "float16":
        eff *= 0.3
    if device.kind != "cpu":
        # not measured off CPUs: a work-item's vectors are contiguous, so adjacent work-items
        # read addresses a block apart (uncoalesced on GPUs); leave GPUs to the GEMM
        eff *= 0.25
    return eff


def _transposed_efficiency(spec: ConvSpec, device: Device) -> float:
    """Transposed: fraction of peak on the true multiply-adds (``spec.flops``: no zeros),
    fitted to kernel times on PoCL 3.1, AVX-512 Zen 5 (ms, default block vs im2col, same
    run; the machine is shared, so ranges): fcn 4x4s2 21ch @16 0.13 vs 0.21 (launch-bound),
    DCGAN 4x4s2 64->3 @32 0.8-1.2 vs 1.4, fcn 16x16s8 21ch @32 1.7 vs 7.6, DCGAN 128->64
    @16 8.2 vs 10.0, 256->128 @8 14.8 vs 8.4, 512->256 @4 13.4 vs 4.2.
    About 0.4 of peak with full vectors and several channels per block; less with vectors
    narrower than the device's (a phase row of 8 or 4 positions), idle lanes past the row,
    and few channels per block (each input vector feeds fewer multiply-adds)."""
    block = choose_block(spec, device)
    geo = geometry(spec)
    mw = -(-geo["out"][2] // geo["stride"][2])
    used = mw / (-(-mw // block.wb) * block.wb)
    width = (block.vw / _lanes(spec, device)) ** 0.6
    reuse = min(1.0, block.cob / 8) ** 0.3
    eff = 0.45 * used * width * reuse
    if spec.dtype == "float16":
        eff *= 0.3
    if device.kind != "cpu":
        eff *= 0.25  # not measured off CPUs (see efficiency)
    return eff


def _border(spec: ConvSpec, block: Block, b: int) -> bool:
    geo = geometry(spec)
    if spec.transposed:
        iw0 = b * block.wb + offsets(spec)[0]
    else:
        iw0 = b * block.wb * geo["stride"][2] - geo["pad"][2]
    return iw0 < 0 or iw0 + span(spec, block) > geo["in"][2]


def span(spec: ConvSpec, block: Block) -> int:
    """Input columns one block reads (and a border block stages)."""
    if spec.transposed:
        lo, hi = offsets(spec)
        return block.wb + hi - lo
    geo = geometry(spec)
    sw, dw, kw = geo["stride"][2], geo["dilation"][2], geo["kernel"][2]
    return (block.wb - 1) * sw + (kw - 1) * dw + 1


class DirectBlockedKernel(OpenCLKernel):
    ONE_LAUNCH = True

    block: Block

    def run(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        self.launch_buffers(queue, x, w, b, y)

    def _launch_setup(self, ctx: Any, has_bias: bool) -> tuple[Any, str, tuple[int, ...], tuple[int, ...], list[Any]]:
        s = self.spec
        t = self.block
        geo = geometry(s)
        defines = {
            "PADDING_MODE": _MODE[s.padding_mode],
            "HAS_BIAS": int(has_bias),
            "CIG": s.in_per_group,
            "COG": s.out_per_group,
            "TRANSPOSED": int(s.transposed),
            **t.defines(),
        }
        for key, names in (("kernel", "K"), ("stride", "S"), ("dilation", "D"), ("pad", "P")):
            for axis, v in zip("DHW", geo[key]):
                defines[names + axis] = v
        if s.transposed:
            defines["EMIN"], defines["EMAX"] = offsets(s)
        prog = self.program(ctx, "direct_blocked.cl", defines)
        idp, ih, iw = geo["in"]
        od, oh, ow = geo["out"]
        nwb = -(-ow // (t.wb * (geo["stride"][2] if s.transposed else 1)))
        ncb = -(-s.out_per_group // t.cob)
        total2 = s.batch * s.groups * -(-ncb // t.cbi)
        i32 = np.int32
        tail = [i32(s.in_channels), i32(s.out_channels), i32(s.groups)]
        tail += [i32(idp), i32(ih), i32(iw), i32(od), i32(oh), i32(ow), i32(nwb), i32(ncb), i32(total2)]
        l0, l1, l2 = t.local
        gsize = (round_up(nwb, l0), round_up(od * oh, l1), round_up(total2, l2))
        name = "conv_transpose_direct_blocked" if s.transposed else "conv_direct_blocked"
        return prog, name, gsize, tuple(t.local), tail


class DirectBlocked(OpenCLAlgorithm):
    id = "direct-blocked"
    family = "direct"
    priority = 25
    description = "register blocks of output channels x vectors along W, geometry compiled in"

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        geo = geometry(spec)
        kw, sw = geo["kernel"][2], geo["stride"][2]
        if spec.transposed and sw > MAX_PHASES:
            return Support.no(f"transposed with stride {sw} along W; at most {MAX_PHASES} sub-pixel phases "
                              "are computed side by side")
        block = choose_block(spec, device)
        own = first_failure(
            (kw > MAX_KW, f"kernel width {kw}; at most {MAX_KW} taps along W are unrolled"),
            (span(spec, block) > MAX_SPAN,
             f"a block reads {span(spec, block)} input columns; its private stage holds at most {MAX_SPAN}"),
            (spec.in_per_group > MAX_CIG,
             f"{spec.in_per_group} input channels per group; at most {MAX_CIG} are compiled in"),
        )
        return own if not own.ok else self.common_support(spec, device)

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        return Cost(spec.flops, io_bytes(spec), 1 + self.host_launches(device), efficiency(spec, device))

    def variants(self, spec: ConvSpec, device: Device) -> list[dict[str, Any]]:
        """Register blocks worth measuring (:func:`blocks`), the default first."""
        return [b.params() for b in blocks(spec, device)]

    def describe_params(self, params: dict[str, Any]) -> str:
        b = Block.from_params(params)
        xs = f", x-stationary x{b.cbi}" if b.xstat else ""
        return f"{b.cob} ch x {b.nv}x{b.vw} (COB x NV x VW){xs}, local {b.local[0]}x{b.local[1]}"

    def prepare(self, spec: ConvSpec, device: Device, params: dict[str, Any] | None = None) -> Kernel:
        """A kernel with the block ``params`` (one of :meth:`variants`), or the default block."""
        block = Block.from_params(params) if params else choose_block(spec, device)
        if not block.valid(spec):
            raise ConvValueError(f"direct-blocked block {block} does not fit {spec.describe()}")
        kernel = DirectBlockedKernel(spec, device, self)
        kernel.block = block
        kernel.params = block.params()
        return kernel
