"""winograd: F(2x2,3x3) and F(4x4,3x3) for 2D 3x3 stride-1 convolutions, any dilation and padding
mode (kernels_cl/winograd.cl).

Kernels: ``filter_transform`` (U = G g G^T, once per weight, cached in the kernel object), and per
chunk of tiles ``pad_input`` (a zero-padded copy of the chunk's input rows), ``input_transform``
(V = B^T d B, the tiles of a GEMM block as vector lanes), ``wino_gemm`` (for every group and each
of the 16 or 36 transform positions, M = V @ U, register-blocked) and ``output_transform``
(Y = A^T M A plus bias, straight into the NCHW output; tiles with a NaN or Inf are recomputed
directly there, so NaN/Inf propagate as in a direct convolution). On PoCL's CPU devices the last
two are one kernel, ``wino_gemm_out`` (:func:`fuses_output`): a work-item keeps its block of M
for every transform position in private memory and transforms it into outputs itself, so M
never goes to memory (its workspace region is then unused). Where U (4x the weight for F(4x4))
would stream from memory on every call while all the batch's tiles fit one GEMM block (ResNet-50's
3x3 layer at 7x7: U 37.7 MB against a 9.4 MB weight), that kernel is ``wino_gemm_out_inline``
(:func:`inlines_filters`): the cache holds the weight packed in channel blocks (``filter_pack``)
instead of U, and the GEMM transforms KC input channels' filters at a time into local memory
(with G's integer part; M is scaled by G's row factors before the output transform); a
float32 NumPy weight is read in place instead (``wino_gemm_out_raw``, :func:`reads_raw_weights`:
16 x 16 blocks transposed with shuffles), so that nothing is copied, cached or compared per
call (comparing a 9.4 MB weight's bytes cost ~0.35 ms a call, as much as the GEMM). Measured
(PoCL 3.1, AVX-512 Xeon, kernel alone, ms, U / inline, interleaved): 7x7 0.75-1.05 /
0.44-0.63; at 14x14 (two tile blocks, each transforming the filters) 0.37-0.45 / 0.39-0.47, and
more blocks are slower still (56x56 0.28 / 0.39): there it keeps U. Layouts: the kernel file.

Dilation and padding modes (the "atrous via space-to-batch" trick): a stride-1 convolution with
dilation (dh, dw) splits exactly into dh*dw undilated ones, one per phase (a, b) of the output
rows and columns mod (dh, dw), each reading only the padded-input rows and columns of its phase.
Such a spec runs as its :func:`phase_spec`: a batch of N*dh*dw phase images, each
ceil(Hp/dh) x ceil(Wp/dw) of the padded input (Hp x Wp), convolved without padding. The
``gather_phases`` kernel writes them straight into the workspace in place of ``pad_input`` (the
padding values included, in any padding mode; no extra buffer or pass), and the output transform
writes each phase's outputs DH rows and DW columns apart into the NCHW output, cropped to it
(batch-to-space). Zero-padded undilated specs keep ``pad_input``, except F(4x4) in float32 and
float64, whose input transform reads x itself (:func:`reads_x_directly`); other padding modes go
through the gather with dh = dw = 1. Plan, chunks, variants and cost are those of the phase spec, so the
wasted tiles of tiny phase images (DeepLab's dilation 12 on 33x33: 5x5 phases, 3x3 outputs) and
the zero margins of their workspace rows are counted.

Chunks are whole images, or tile rows of one image, kept under :data:`CHUNK_BYTES` (so that V and
M stay in cache from one kernel to the next, while each chunk's four launches are few) and under
:data:`WORKSPACE_BUDGET`. The workspace is allocated once per queue and
reused by every kernel of the algorithm (:class:`WorkspacePool`). The reduction order is fixed:
the same bits run after run.

Filter cache: the transformed weight U and the device copy of the weight that the output
transform's non-finite fallback reads are cached per kernel object and weight, NumPy weights
found by content, device weights by buffer (:mod:`..weightcache`; **in-place changes to a
device weight are not detected**: call :meth:`WinogradKernel.clear_filter_cache` after
changing one).

Counters on the kernel object: ``filter_transforms`` (U computed) and ``filter_cache_hits``.

Blocks (PoCL 3.1, AVX-512 Zen 5, 2 cores, shared): the GEMM computes TM = 8 tiles x TN = 32
output channels per work-item (two float16 vectors along C_out, 16 accumulators, like im2col's
8 x 32), TM = 4 and TN up to 64 when the whole batch has at most 4 tiles; float64 8 x 16 (double8).
It reaches ~350-440 GFLOP/s on the ResNet-50 layers when the machine is quiet. Vectors run along
C_out rather than along the tiles so that late layers with few tiles (7x7: 16 or 4) waste no
lanes. Work-groups of up to 8 tile blocks share one U panel in cache (PoCL runs a work-group's
items one after another on one core). The transforms were the slow part until their stores were
made contiguous per work-item (36 stores a page apart cost ~1000 cycles a work-item, ~100 when
contiguous) and their loads vectors with swizzles. On the 7x7 layers the GEMM streams U (16.8 MiB
for F(2x2), 37.7 MiB for F(4x4) at 512 channels) and runs at memory speed: F(2x2) is the faster
variant there, and the cost model says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ....backend import Device, Kernel, Support, first_failure
from ....costmodel import Cost, gemm_efficiency, profile
from ....errors import ConvValueError
from ....spec import ConvSpec, is_device_array
from .. import runtime
from ..base import (
    INT32_MAX,
    OpenCLAlgorithm,
    OpenCLKernel,
    WorkspacePool,
    host_address,
    pocl_cpu,
    round_up,
    zero_copy_io,
)
from ..runtime import cl, cl_array
from ..weightcache import CachedWeightKernel, FilterEntry, same_bytes
from .im2col import prefetches

#: Upper bound on the workspace (padded input, V and M of one chunk) in bytes (module-level so
#: tests can shrink it and force chunking).
WORKSPACE_BUDGET = 64 * 2**20

#: Chunks are kept about this small so that V and M stay in cache between the kernels; each
#: chunk costs four launches (~20-40 us each on PoCL's pthread device). Measured (PoCL 3.1,
#: Zen 5, 2 cores, ms, medians of 21 interleaved rounds, chunk bound 4 / 8 / 16 / 32 MiB):
#: ResNet-50 3x3-56 0.443 / 0.389 / 0.381 / - (2 / 1 / 1 chunks); VGG 3x3-112 3.76 / 3.45 /
#: 3.32 / - and, in another run, - / 2.79 / 2.57 / 2.96 (4 / 2 / 1 chunks: one chunk spills
#: the cache); DeepLab d=2 3.62 / 3.28 / 3.00, d=6 (F(2x2)) 3.44 / 3.15 / 3.33 / 3.49.
CHUNK_BYTES = 16 * 2**20

#: The GEMM's prefetch distance in k where :func:`..im2col.prefetches` (PoCL's CPU devices, unless
#: ``CLCONV_GEMM_PREFETCH=0``): see wino_gemm in kernels_cl/winograd.cl. Measured (AVX-512 Xeon,
#: GEMM launch alone, ms, none / 4 / 8 / 16 k ahead): ResNet-50 3x3 at 56 0.306 / 0.268 / 0.241 /
#: 0.248, 28 0.274 / 0.235 / 0.214 / 0.242, VGG 2.26 / 1.94 / 1.70 / 1.65.
GEMM_PREFETCH = 8

#: Local sizes: filter transform and padded copy (1-D), input transform (channels, tile blocks),
#: output transform (channel vectors, tile blocks), GEMM (tile blocks per work-group, at most).
#: Measured: the transforms change little with them (PoCL runs a work-group's items in a loop).
_FILTER_LOCAL = 64
_PAD_LOCAL = 8
_INPUT_LOCAL = (8, 1)
#: ... except the input transform reading x itself (DIRECT_X) on CPU devices: one work-item per
#: work-group. Measured (PoCL 3.1, AVX-512 Xeon, ms, kernel alone, (8, 1) / (1, 1), two runs):
#: F(4x4) ResNet-50 3x3 at 56 0.156-0.159 / 0.131-0.134, 28 0.095 / 0.085-0.091, VGG
#: 0.665-0.682 / 0.560-0.592; F(2x2), which reads pad_input's copy, was slower with (1, 1)
#: (0.16 / 0.19-0.20 at 56; DeepLab d=2 0.34 / 0.49-0.52).
_INPUT_LOCAL_DIRECT_CPU = (1, 1)
_OUTPUT_LOCAL = (1, 4)
_GEMM_GROUP = 8
#: The fused GEMM + output transform (:func:`fuses_output`): one tile block per work-group (each
#: work-item does A2 times a GEMM work-item's work). Measured against the GEMM's groups of up to
#: 8 (ms, 21 interleaved rounds, constant weights): F(4x4) ResNet-50 3x3 at 56 0.691 / 0.740,
#: 28 0.634 / 0.676, 14 0.721 / 0.708, 7 1.058 / 1.041, VGG 2.97 / 3.03; F(2x2) 0.92-0.99x.
_FUSED_LOCAL = 1


@dataclass(frozen=True)
class Tiling:
    """GEMM block: TM tiles x TN = VW * NV output channels per work-item."""

    vw: int
    nv: int
    tm: int

    @property
    def tn(self) -> int:
        return self.vw * self.nv

    def defines(self) -> dict[str, int]:
        return {"VW": self.vw, "NV": self.nv, "TM": self.tm}

    @property
    def seg(self) -> int:
        """Tiles per input-transform work-item (the lanes of its vectors): TM, at most 8."""
        return min(self.tm, 8)


def tile_params(tile: Tiling, group: int) -> dict[str, int]:
    """A GEMM block and work-group as tunable parameters (``variants``; JSON in the database)."""
    return {"tm": tile.tm, "vw": tile.vw, "nv": tile.nv, "group": group}


def from_params(params: dict[str, Any]) -> tuple[Tiling, int]:
    """(GEMM block, tile blocks per GEMM work-group) of one variant."""
    try:
        tile, group = Tiling(vw=int(params["vw"]), nv=int(params["nv"]), tm=int(params["tm"])), int(params["group"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConvValueError(f"params={params!r} is not a Winograd block: give tm, vw, nv, group ({exc})") from None
    if tile.tm not in (4, 8, 16) or tile.vw not in (4, 8, 16) or tile.nv < 1 or group < 1:
        raise ConvValueError(f"params={params!r} is not a Winograd block: tm 4, 8 or 16, vw 4, 8 or 16, nv and group >= 1")
    return tile, group


#: GEMM blocks (TM, NV, work-group) worth measuring, most promising first; the vector width is the
#: device's. TM is also the input transform's lane count: 4 or 8 only.
_CPU_BLOCKS = ((8, 2, 8), (4, 2, 8), (4, 4, 8), (8, 1, 8), (8, 2, 4), (8, 2, 16), (4, 1, 8))
_GPU_BLOCKS = ((4, 2, 8), (8, 2, 8), (4, 4, 8), (8, 1, 8), (4, 2, 4), (4, 2, 16), (4, 1, 8))

#: At most this many blocks are measured per spec (each is a kernel build).
MAX_VARIANTS = 6


def default_group(device: Device) -> int:
    """Tile blocks per GEMM work-group by default: :data:`_GEMM_GROUP`, within the device's limit."""
    extra = getattr(device, "extra", {}) or {}
    return max(1, min(_GEMM_GROUP, int(extra.get("max_work_group_size", 0) or _GEMM_GROUP)))


def blocks(spec: ConvSpec, device: Device, mt: int) -> list[tuple[Tiling, int]]:
    """The (GEMM block, work-group) pairs worth measuring, the default first: on CPUs, TM * NV
    accumulators plus NV U vectors within 3/4 of the vector registers (im2col's rule); work-groups
    within the device's limit; no block taller than the batch's tiles or wider than the output
    channels per group (beyond the default's)."""
    from .im2col import vector_registers

    tiles = tile_grid(spec, mt)[2]
    default = inline_tiling(spec, device, mt) if inlines_filters(spec, device, mt) else tiling(spec, device, tiles)
    extra = getattr(device, "extra", {}) or {}
    max_wg = int(extra.get("max_work_group_size", 0) or 1)
    cpu = device.kind == "cpu"
    regs = vector_registers(device)
    out = [(default, default_group(device))]
    for tm, nv, group in _CPU_BLOCKS if cpu else _GPU_BLOCKS:
        t = Tiling(vw=default.vw, nv=nv, tm=tm)
        if (
            (t, group) in out
            or (cpu and tm * nv + nv > regs * 3 // 4)
            or group > max_wg
            or (tm > tiles and tm > default.tm)
            or (t.tn > spec.out_per_group and t.tn > default.tn)
        ):
            continue
        out.append((t, group))
    return out[:MAX_VARIANTS]


def compute_itemsize(spec: ConvSpec) -> int:
    """Bytes of one workspace element: double for float64, else float (float16 computes in it)."""
    return 8 if spec.dtype == "float64" else 4


def tile_grid(spec: ConvSpec, mt: int) -> tuple[int, int, int]:
    """(TH, TW, T): tiles per column and row of one image, and over the whole batch."""
    th = -(-spec.out_size[0] // mt)
    tw = -(-spec.out_size[1] // mt)
    return th, tw, spec.batch * th * tw


def tiling(spec: ConvSpec, device: Device, tiles: int) -> Tiling:
    """The GEMM block for a spec on a device (see the module doc for the measurements)."""
    extra = getattr(device, "extra", {}) or {}
    if device.kind != "cpu":  # not measured: small blocks
        return Tiling(vw=4, nv=2, tm=4)
    width = int(extra.get("native_vector_width_float", 0) or extra.get("preferred_vector_width_float", 0) or 8)
    bits = width * 32
    vw = max(4, min(16, bits // (compute_itemsize(spec) * 8)))
    cog = spec.out_per_group
    if tiles <= 4:  # few tiles: fewer rows, more channels
        return Tiling(vw=vw, nv=4 if cog > 2 * vw else (2 if cog > vw else 1), tm=4)
    if cog > 2 * vw and spec.nbytes("weight") <= SMALL_WEIGHT_BYTES and pocl_cpu(device):
        return Tiling(vw=vw, nv=4, tm=4)
    if 8 < tiles <= TALL_BLOCK and bits >= 512 and pocl_cpu(device):
        return Tiling(vw=vw, nv=1, tm=TALL_BLOCK)  # one block of every tile: U read once
    return Tiling(vw=vw, nv=2 if cog > vw else 1, tm=8 if bits >= 512 else 4)


#: Batches of 9 to 16 tiles (ResNet-50's 3x3 layer at 14x14, batch 1) get one 16 x 1-vector
#: block on PoCL's AVX-512 devices: every work-item reads its U panel once (with 8 x 2 blocks
#: two tile blocks read it, the second from L2), and the 16 accumulators hide the FMA latency.
#: Measured (AVX-512 Xeon, kernels alone, ms, medians of 40 interleaved rounds, two runs,
#: input transform + fused GEMM): 8 x 2 0.447-0.461, 16 x 1 0.400-0.425. At 28x28 (49
#: tiles: 64 in 16-tile blocks) 16 x 1 was slower (0.46-0.50 against 0.40-0.41), and the GEMM
#: transforming the filters (:func:`inlines_filters`) with 16 x 1 blocks at 14x14 too (0.55).
TALL_BLOCK = 16


#: Weights up to this size get TM = 4 x NV = 4 blocks on PoCL's CPU devices (:func:`tiling`): a
#: tile block's V (C_in/groups x A2 x 4 values) then stays in L1 over the fused kernel's A2
#: GEMMs, and U (4x the weight for F(4x4)) in L2 while every tile block reads it again.
#: Measured (AVX-512 Xeon, fused kernel alone, ms, 8 x 2 / 4 x 4, two runs): F(4x4) ResNet-50
#: 3x3 at 56 0.31-0.34 / 0.30-0.31, 28 0.32-0.34 / 0.29-0.31, VGG 2.34-2.47 / 1.87-2.01; at 14
#: (2.4 MB weight) 0.40 / 0.60-0.62: U no longer fits, and smaller blocks read it more often.
SMALL_WEIGHT_BYTES = 2**20


@dataclass(frozen=True)
class Chunk:
    """``nimg`` images from ``n0``, tile rows ``th0 .. th0 + nth - 1`` of each."""

    n0: int
    nimg: int
    th0: int
    nth: int

    @property
    def rows(self) -> int:
        return self.nimg * self.nth


@dataclass(frozen=True)
class Plan:
    """Everything the launches of one spec need: tile grid, blocks, chunking, workspace layout.

    A chunk is whole images (as many as fit), or tile rows of one image when one image does not
    fit. The workspace holds, for the largest chunk: the zero-padded input rows (xp), V and M.
    """

    mt: int
    th: int
    tw: int
    tile: Tiling
    cpg: int  # output channels per group, padded to TN
    cig: int
    groups: int
    c_in: int
    batch: int
    item: int
    nimg: int  # images per chunk
    nth: int  # tile rows per image per chunk

    @property
    def alpha(self) -> int:
        return self.mt + 2

    @property
    def a2(self) -> int:
        return self.alpha * self.alpha

    @property
    def tiles(self) -> int:
        return self.batch * self.th * self.tw

    @property
    def cpt(self) -> int:
        return self.groups * self.cpg

    @property
    def ncb(self) -> int:
        return self.cpg // self.tile.tn

    @property
    def margin(self) -> int:
        """Zero columns left of the padded input rows (see input_transform in the kernel file)."""
        return self.tile.seg * self.mt

    @property
    def xpw(self) -> int:
        """Columns of the padded input: every run's vector loads stay inside."""
        return padded_width(self.tw, self.tile.seg, self.mt)

    def xph(self, nth: int) -> int:
        return nth * self.mt + 2

    def tcp(self, rows: int) -> int:
        """Tile columns of V and M for a chunk of ``rows`` tile rows (a multiple of TM)."""
        return round_up(rows * self.tw, self.tile.tm)

    def xp_elems(self) -> int:
        return round_up(self.nimg * self.c_in * self.xph(self.nth) * self.xpw, 32)

    def v_elems(self) -> int:
        return round_up(self.a2 * self.c_in * self.tcp(self.nimg * self.nth), 32)

    def m_elems(self) -> int:
        return round_up(self.a2 * self.tcp(self.nimg * self.nth) * self.cpt, 32)

    def workspace_elems(self) -> int:
        return self.xp_elems() + self.v_elems() + self.m_elems()

    def workspace_bytes(self) -> int:
        return self.workspace_elems() * self.item

    def u_bytes(self) -> int:
        return self.groups * self.a2 * self.cpg * self.cig * self.item

    def packed_bytes(self) -> int:
        """filter_pack's untransformed weight (:func:`inlines_filters`), channels padded to TN."""
        return self.groups * 9 * self.cpg * self.cig * self.item

    def chunks(self) -> Iterator[Chunk]:
        if self.nth == self.th:
            for n0 in range(0, self.batch, self.nimg):
                yield Chunk(n0, min(self.nimg, self.batch - n0), 0, self.th)
        else:
            for n in range(self.batch):
                for th0 in range(0, self.th, self.nth):
                    yield Chunk(n, 1, th0, min(self.nth, self.th - th0))

    @property
    def nchunks(self) -> int:
        if self.nth == self.th:
            return -(-self.batch // self.nimg)
        return self.batch * -(-self.th // self.nth)


def padded_width(tw: int, tm: int, mt: int) -> int:
    return (tw + 2 * tm) * mt + 2


def budget_bytes(device: Device) -> int:
    """The bound on one chunk's workspace: the smaller of :data:`WORKSPACE_BUDGET`,
    :data:`CHUNK_BYTES` (cache locality) and a quarter of the device's max allocation.
    One tile row of one image is the smallest chunk and may exceed it."""
    max_alloc = getattr(device, "max_alloc_bytes", 0)
    b = min(WORKSPACE_BUDGET, CHUNK_BYTES)
    return min(b, max_alloc // 4) if max_alloc else b


def make_plan(spec: ConvSpec, device: Device, mt: int, tile: Tiling | None = None) -> Plan:
    th, tw, tiles = tile_grid(spec, mt)
    tile = tile or tiling(spec, device, tiles)
    item = compute_itemsize(spec)
    cpg = round_up(spec.out_per_group, tile.tn)
    a2 = (mt + 2) ** 2
    xpw = padded_width(tw, tile.seg, mt)
    c_in, cpt = spec.in_channels, spec.groups * cpg
    per_row = (c_in * mt * xpw + a2 * (c_in + cpt) * tw) * item
    per_image = th * per_row + 2 * c_in * xpw * item
    budget = budget_bytes(device)
    if per_image <= budget:
        nimg, nth = max(1, min(spec.batch, budget // per_image)), th
    else:
        nimg, nth = 1, max(1, min(th, (budget - 2 * c_in * xpw * item) // per_row))

    def plan(nimg: int, nth: int) -> Plan:
        return Plan(mt, th, tw, tile, cpg, spec.in_per_group, spec.groups, c_in, spec.batch, item, nimg, nth)

    # the estimate above leaves out the rounding of V's and M's columns to whole blocks
    p = plan(nimg, nth)
    while p.workspace_bytes() > budget and (p.nimg > 1 or p.nth > 1):
        p = plan(p.nimg - 1, th) if p.nimg > 1 else plan(1, p.nth - 1)
    return p


_MODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}


def reads_x_directly(spec: ConvSpec, mt: int) -> bool:
    """Whether the input transform reads x itself (``DIRECT_X``) instead of a zero-padded copy
    that ``pad_input`` writes first: F(4x4,3x3) in float32 and float64, for specs that
    :func:`gathers` nothing, unless ``CLCONV_WINOGRAD_PAD=1`` (kept for measuring the two
    against each other). The copy costs a launch and a pass over the input; the direct reads load
    a row that crosses the input's left or right edge as the same vectors with the lanes outside
    it zeroed (only x's first and last rows, where such loads would leave x, go through a scalar,
    bounds-checked row: reading every edge row that way, as at first, made the input transform
    0.235 ms at 56x56 and 0.165 at 28x28, where every run touches an edge; now 0.143 and 0.096,
    the copy's 0.13 and 0.09 without its 0.07 ms launch). Measured before that change
    (PoCL 3.1, AVX-512 Xeon, ms, copy / direct, medians of 21 and 31 interleaved rounds,
    ``python benchmarks/winograd_pad.py``): F(4x4) ResNet-50 3x3 at 56 1.06x / 1.00x, 28 1.06x /
    1.00x, 14 1.10x / 1.05x, 7 1.10x / 1.03x, VGG 1.03x / 1.03x; F(2x2), whose rows are shorter
    (more of them border rows), 0.93-1.06x: it keeps the copy, as does float16 (its copy
    converts to float once)."""
    return (
        mt == 4
        and spec.dtype != "float16"
        and not gathers(spec)
        and runtime.env("CLCONV_WINOGRAD_PAD", "0") != "1"
    )


def gathers(spec: ConvSpec) -> bool:
    """Whether a spec runs through phase images (``gather_phases``): dilated, or padded in a mode
    other than zeros. The rest use ``pad_input`` directly."""
    return any(d != 1 for d in spec.dilation) or spec.padding_mode != "zeros"


def phase_spec(spec: ConvSpec) -> ConvSpec:
    """The undilated, unpadded convolution that a 2D stride-1 spec runs as: N*dh*dw phase images
    of ceil(Hp/dh) x ceil(Wp/dw) (Hp, Wp: the padded input), phase (a, b) of image n at batch
    index (n*dh + a)*dw + b; output (i, j) of phase (a, b) is output (a + dh*i, b + dw*j), dropped
    past the real output's end. A spec that :func:`gathers` nothing is its own phase spec."""
    if not gathers(spec):
        return spec
    dh, dw = spec.dilation
    hp = spec.in_size[0] + spec.pad_before[0] + spec.pad_after[0]
    wp = spec.in_size[1] + spec.pad_before[1] + spec.pad_after[1]
    return ConvSpec(
        op="conv", batch=spec.batch * dh * dw, in_channels=spec.in_channels,
        out_channels=spec.out_channels, in_size=(-(-hp // dh), -(-wp // dw)), kernel=spec.kernel,
        stride=(1, 1), dilation=(1, 1), pad_before=(0, 0), pad_after=(0, 0), groups=spec.groups,
        dtype=spec.dtype, bias=spec.bias,
    )


# ------------------------------------------------------------------ kernel
class WinogradKernel(CachedWeightKernel):
    """One spec on one device; transformed weights cached here, workspace from the algorithm."""

    algorithm: _Winograd

    def __init__(self, spec: ConvSpec, device: Device, algorithm: _Winograd,
                 params: dict[str, Any] | None = None):
        super().__init__(spec, device, algorithm)
        tile, group = from_params(params) if params else (None, default_group(device))
        self.phases = phase_spec(spec)
        #: whether the GEMM transforms the filters itself (decided once: the cache holds one form)
        self.inline = inlines_filters(self.phases, device, algorithm.mt)
        if tile is None and self.inline:
            tile = inline_tiling(self.phases, device, algorithm.mt)
        self.plan = make_plan(self.phases, device, algorithm.mt, tile)
        #: NumPy weights read as they are, in place of the packed copy (:func:`reads_raw_weights`)
        self.raw = self.inline and reads_raw_weights(spec, self.plan.tile) and raw_fits(self.plan, device)
        self._raw_call = False  # the call in progress reads the raw weight (set under the call lock)
        self.group = group
        self.params = tile_params(self.plan.tile, group)
        self._x_elems = spec.batch * spec.in_channels * spec.in_size[0] * spec.in_size[1]

    def _program(self, ctx: Any, has_bias: bool, direct: bool | None = None) -> Any:
        """``direct``: :func:`reads_x_directly` as the caller decided it for its launches
        (None: decided here; the filter transform does not depend on it)."""
        stream = int(streams_output(self.spec, self.device, self.plan.tile, self.plan.mt))
        direct = int(reads_x_directly(self.spec, self.plan.mt) if direct is None else direct)
        wpf = GEMM_PREFETCH if prefetches(self.device) else 0
        kc = inline_chunk(self.plan, self.device, self.raw)
        return self.memo_program((ctx.int_ptr, has_bias, stream, direct, wpf), lambda: self.program(
            ctx,
            "winograd.cl",
            {
                "ALPHA": self.plan.alpha,
                "HAS_BIAS": int(has_bias),
                "PADDING_MODE": _MODE[self.spec.padding_mode],
                "OUT_STREAM": stream,
                "DIRECT_X": direct,
                "WPF": wpf,
                "KC": kc,
                "INLINE": 2 if self.raw else int(self.inline),
                **self.plan.tile.defines(),
            },
        ))

    # -- filter transform (cached by CachedWeightKernel)
    def _transform(self, queue: Any, weight: Any, host: np.ndarray | None) -> FilterEntry:
        """Compute U into a new buffer (a NumPy weight is uploaded first; the entry keeps a host
        copy of it)."""
        p = self.plan
        s = self.spec
        nbytes = p.packed_bytes() if self.inline else p.u_bytes()
        u = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, max(nbytes, 64))
        if host is None:
            w_dev = weight
        else:
            w_dev = cl_array.to_device(queue, host)
            host = host.copy()
        prog = self._program(queue.context, s.bias)
        total = p.groups * p.ncb * p.cig
        ev = runtime.launch(
            queue,
            prog,
            "filter_pack" if self.inline else "filter_transform",
            (round_up(total, _FILTER_LOCAL),),
            (_FILTER_LOCAL,),
            *self.buf(w_dev),
            u,
            np.int32(p.cig),
            np.int32(s.out_per_group),
            np.int32(p.cpg),
            np.int32(total),
        )
        return FilterEntry(u, w_dev, host, queue, ev, nbytes + (0 if host is None else 2 * host.nbytes))

    # -- the fast path: a call replayed with every constant worked out once
    def _compute(self, queue: Any, on_device: bool, input: Any, weight: Any, bias: Any, out: Any) -> Any:
        if self.raw and not is_device_array(weight):
            # the kernels read the caller's weight itself: no prepared copy, nothing to compare
            self._raw_call = True
            try:
                result = OpenCLKernel._compute(self, queue, on_device, input, weight, bias, out)
            finally:
                self._raw_call = False
        else:
            result = super()._compute(queue, on_device, input, weight, bias, out)
        replays = self.__dict__.setdefault("_replays", {})
        # (a replay keeps its weight and bias alive: the ids stay theirs)
        key = (id(weight), id(bias), tuple(runtime.env(name, default) for name, default in _SWITCHES))
        if out is None and not on_device and key not in replays:
            fast = self._make_replay(queue, weight, bias, key)
            if fast is not None:
                # the oldest go; over a snapshot, as a replay on another thread may drop its own
                for old in list(replays)[:max(0, len(replays) - MAX_REPLAYS + 1)]:
                    replays.pop(old, None)
                replays[key] = fast
                self.__dict__["_fast"] = self._replayed
        return result

    def _replayed(self, x: Any, w: Any, b: Any) -> np.ndarray | None:
        """The replay made for these weight and bias objects and the switches as they are, run;
        None: none, or it declined."""
        env = runtime.env
        fast = self._replays.get((id(w), id(b), tuple(env(name, default) for name, default in _SWITCHES)))
        return None if fast is None else fast(x, w, b)

    def _make_replay(self, queue: Any, weight: Any, bias: Any, key: tuple) -> Any:
        """After a general call with a NumPy input and no ``out``, on a host-coherent zero-copy
        device, with a device weight (a ``clconv.plan(..., constant_weights=True)`` makes its
        weight one, or the caller passes a pyopencl array) or a NumPy weight whose bytes this
        call found unchanged: the function that replays that call's launches for the same
        weight and bias objects (:meth:`OpenCLKernel.__call__` tries it first). Per call it checks
        the input (a C-contiguous NumPy array of the spec's shape and dtype) and that the prepared
        weight is still cached (replays are kept per weight, bias and value of the switches the
        launches depend on: :data:`_SWITCHES`), makes the input's and a new output's host-pointer
        buffers, sets the two arrays' arguments, enqueues and, for a NumPy weight, compares its
        bytes with the prepared weight's copy while the kernels run (as :meth:`_speculation` does:
        if they changed, the result is dropped, the call goes the general way, which compares
        first, and ``speculation_misses`` counts it), then waits. Anything else returns None: the
        general path, which makes every check. The general path spends ~110 us of Python before its
        first launch at 56x56 (each step runs from caches the kernels have just evicted); a replay
        a fraction of that (``python benchmarks/winograd_vs_im2col.py``).
        """
        dev = self.device
        align = getattr(dev, "zero_copy_align", 0)
        if not (align and getattr(dev, "host_coherent", False) and queue is dev.queue):
            return None
        views = self.__dict__.get("_views", {})
        if bias is not None and not (isinstance(bias, np.ndarray) and views.get("bias", (None,))[0] is bias):
            return None  # a device bias, or one staged (not read in place): the general path
        ctx = queue.context
        host = isinstance(weight, np.ndarray)
        w_args: tuple | None = None
        if host and self.raw:  # read in place by the kernels: nothing to compare
            kept = views.get("weight")
            if kept is None or kept[0] is not weight:
                return None  # staged (not read in place): the general path
            entry, w_args, host = None, self.buf(kept[1]), False
        elif host:  # found unchanged by this call's comparison: replays speculate as _speculation does
            last = self._last_host
            if last is None or last[0] != id(weight) or last[1] != host_address(weight):
                return None
            entry = last[2]
        elif is_device_array(weight):
            with self._lock:
                entry = self.filter_cache.find_device(("device", ctx.int_ptr, weight.base_data.int_ptr,
                                                       int(weight.offset)))
        else:
            return None
        if ((w_args is None and (entry is None or entry.queue.int_ptr != queue.int_ptr))
                or queue.properties & cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE):
            return None
        w_host = entry.host if host else None
        w_addr = host_address(weight) if isinstance(weight, np.ndarray) else 0
        spec, p = self.spec, self.plan
        direct = reads_x_directly(spec, p.mt)
        prog = self._program(ctx, bias is not None, direct)
        pool, nbytes = self.algorithm.pool, p.workspace_bytes()
        with pool.hold(queue, nbytes) as ws0:
            pass
        slot = {name: object() for name in ("x", "x_off", "x_end", "y", "y_off")}
        b_args = self.buf(views["bias"][1]) if bias is not None else (None, np.int32(0))
        u, w_args = (None, w_args) if entry is None else (entry.u, self.buf(entry.w_dev))
        plan = self._launches(direct, slot["x"], slot["x_off"], slot["x_end"], u, w_args,
                              b_args, slot["y"], slot["y_off"], ws0)
        which = {id(v): k for k, v in slot.items()}
        sample = {"x": ws0, "y": ws0, "x_off": np.int32(0), "x_end": np.int32(0), "y_off": np.int32(0)}
        launches = []
        for name, gsize, lsize, args in plan:
            holes = tuple((i, which[id(a)]) for i, a in enumerate(args) if id(a) in which)
            knl, lock = runtime.kernel_object(prog, name, [sample[which[id(a)]] if id(a) in which else a for a in args])
            launches.append((knl, lock, gsize, lsize, list(args), holes))
        io = zero_copy_io(spec, ctx, align)
        w_shape, b_shape, x_elems = spec.weight_shape, (spec.out_channels,), self._x_elems
        enqueue, finish, error, i32 = cl.enqueue_nd_range_kernel, queue.finish, cl.Error, np.int32
        zero, replays, still_cached = i32(0), self.__dict__["_replays"], self._still_cached
        label = f"{self.algorithm.id} on {dev.id}"

        def fast(x: Any, w: Any, b: Any) -> np.ndarray | None:
            if (w is not weight or b is not bias or w.shape != w_shape
                    or (w_addr and host_address(w) != w_addr) or (b is not None and b.shape != b_shape)):
                return None
            if entry is not None and not still_cached(entry):  # the prepared weight was evicted
                replays.pop(key, None)  # made again by the next general call
                return None
            arrays = io(x)
            if arrays is None:
                return None
            xb, x_off, result, yb = arrays
            fill = {"x": xb, "x_off": i32(x_off), "x_end": i32(x_off + x_elems), "y": yb, "y_off": zero}
            try:
                try:
                    with pool.hold(queue, nbytes) as ws:
                        if ws is not ws0:  # the workspace was replaced (a larger spec): start over
                            replays.pop(key, None)
                            return None
                        for knl, lock, gsize, lsize, args, holes in launches:
                            for i, k in holes:
                                args[i] = fill[k]
                            with lock:
                                knl.set_args(*args)
                                enqueue(queue, knl, gsize, lsize)
                    # a NumPy weight: compared with the prepared one's copy while the kernels run
                    same = not host or same_bytes(w, w_host)
                finally:
                    finish()  # no kernel may still read or write the caller's memory
            except error as exc:
                raise runtime.device_error(label, exc) from exc
            if not same:  # changed in place: the general path compares first and prepares it
                self.speculation_misses += 1
                self._last_host = None
                replays.pop(key, None)
                return None
            if entry is not None:
                self.filter_cache_hits += 1
            return result

        return fast

    # -- the launches per chunk
    def run(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        if self._raw_call:  # the caller's weight itself (see _compute)
            self._launch(queue, x, None, b, y, w)
        else:
            super().run(queue, x, w, b, y)

    def _launch(self, queue: Any, x: Any, entry: FilterEntry | None, b: Any, y: Any, w: Any = None) -> None:
        """The launches with the prepared weight ``entry``, or (None) reading the weight ``w``."""
        direct = reads_x_directly(self.spec, self.plan.mt)  # once: the program and the launches agree
        prog = self._program(queue.context, b is not None, direct)
        x_buf, x_off = self.buf(x)
        x_end = np.int32(int(x_off) + self._x_elems)
        bias = self.buf(b) if b is not None else (None, np.int32(0))
        u, w_args = (None, self.buf(w)) if entry is None else (entry.u, self.buf(entry.w_dev))
        with self.algorithm.pool.hold(queue, self.plan.workspace_bytes()) as ws:
            for name, gsize, lsize, args in self._launches(direct, x_buf, x_off, x_end,
                                                         u, w_args, bias, *self.buf(y), ws):
                runtime.launch(queue, prog, name, gsize, lsize, *args)

    def _launches(self, direct: bool, x_buf: Any, x_off: Any, x_end: Any, u: Any,
                  w_args: tuple[Any, Any], bias: tuple[Any, Any], y_buf: Any, y_off: Any,
                  ws: Any) -> list[tuple[str, tuple, tuple, tuple]]:
        """(kernel name, global size, local size, arguments) of every launch of a call, in order
        (u: the prepared weight's buffer, None where the GEMM reads the weight itself; w_args:
        the weight's buffer and offset, which the non-finite fallback reads; x_end: the element
        index past x's last, which the direct input transform's loads stay below)."""
        s = self.spec
        p = self.plan
        fused = fuses_output(self.device, p.u_bytes())
        tile = p.tile
        i32 = np.int32
        out: list[tuple[str, tuple, tuple, tuple]] = []
        ih, iw = s.in_size
        oh, ow = s.out_size
        ph, pw = s.pad_before
        w_buf, w_off = w_args
        v_off = p.xp_elems()
        m_off = v_off + p.v_elems()
        xpw = p.xpw
        dh, dw = s.dilation
        gather = gathers(s)
        hp, wp = ih + ph + s.pad_after[0], iw + pw + s.pad_after[1]
        for c in p.chunks():
            xph = p.xph(c.nth)
            rows = c.nimg * s.in_channels * xph
            source: tuple = (ws, i32(0))  # the input transform reads the padded copy or phase images
            if direct:  # ... or x itself: no copy
                source = (x_buf, x_off, x_end, i32(ih), i32(iw), i32(ph), i32(pw), i32(c.n0), i32(c.th0 * p.mt))
            elif gather:  # phase images (space-to-batch), padding values included
                out.append(("gather_phases", (round_up(rows, _PAD_LOCAL),), (_PAD_LOCAL,), (
                    x_buf, x_off, ws, i32(0), i32(s.in_channels), i32(ih), i32(iw), i32(ph),
                    i32(pw), i32(hp), i32(wp), i32(dh), i32(dw), i32(p.margin), i32(c.n0),
                    i32(c.th0 * p.mt), i32(xph), i32(xpw), i32(rows),
                )))
            else:
                out.append(("pad_input", (round_up(rows, _PAD_LOCAL),), (_PAD_LOCAL,), (
                    x_buf, x_off, ws, i32(0), i32(s.in_channels), i32(ih), i32(iw), i32(ph),
                    i32(pw + p.margin), i32(c.n0), i32(c.th0 * p.mt), i32(xph), i32(xpw), i32(rows),
                )))
            count = c.rows * p.tw
            tcp = p.tcp(c.rows)
            ntb = tcp // tile.tm
            l0, l1 = _INPUT_LOCAL_DIRECT_CPU if direct and self.device.kind == "cpu" else _INPUT_LOCAL
            out.append(("input_transform", (round_up(s.in_channels, l0), round_up(ntb, l1)), (l0, l1), (
                *source, ws, i32(v_off), i32(s.in_channels), i32(p.cig), i32(p.tw),
                i32(c.nth), i32(count), i32(ntb), i32(xph), i32(xpw),
            )))
            g0 = min(self.group, ntb)
            out_args = (
                x_buf, x_off, w_buf, w_off, *bias, y_buf, y_off,
                i32(s.in_channels), i32(s.out_channels), i32(p.cig), i32(s.out_per_group),
                i32(p.cpg), i32(p.cpt), i32(ih), i32(iw), i32(oh), i32(ow),
                i32(ph), i32(pw), i32(c.n0), i32(c.th0), i32(c.nth), i32(p.tw), i32(count),
                i32(dh), i32(dw),
            )
            if u is None:  # ... and the filters are read from the weight and transformed there
                out.append(("wino_gemm_out_raw", (ntb, p.ncb, p.groups), (_FUSED_LOCAL, 1, 1),
                            (ws, i32(v_off), i32(p.ncb), i32(ntb), *out_args)))
                continue
            if self.inline:  # ... from the packed weight
                out.append(("wino_gemm_out_inline", (ntb, p.ncb, p.groups), (_FUSED_LOCAL, 1, 1),
                            (u, ws, i32(v_off), i32(p.ncb), i32(ntb), *out_args)))
                continue
            if fused:  # M stays in the work-item: one launch for the GEMM and the outputs
                out.append(("wino_gemm_out", (ntb, p.ncb, p.groups), (_FUSED_LOCAL, 1, 1),
                            (u, ws, i32(v_off), i32(p.ncb), i32(ntb), *out_args)))
                continue
            out.append(("wino_gemm", (round_up(ntb, g0), p.ncb, p.groups * p.a2), (g0, 1, 1), (
                u, ws, i32(v_off), ws, i32(m_off), i32(p.cig), i32(p.ncb), i32(ntb),
                i32(p.cpg), i32(p.cpt),
            )))
            o0, o1 = _OUTPUT_LOCAL
            out.append(("output_transform", (round_up(p.cpt // tile.vw, o0), round_up(ntb, o1)), (o0, o1),
                        (ws, i32(m_off), *out_args)))
        return out


def inlines_filters(spec: ConvSpec, device: Device, mt: int) -> bool:
    """Whether the fused GEMM transforms the filters itself (``wino_gemm_out_inline``) from the
    weight packed in blocks (``filter_pack``), instead of reading U: ``CLCONV_WINOGRAD_INLINE``
    ``1`` / ``0`` forces it on / off (read when the kernel is made: its filter cache holds one
    form); by default (``auto``) on PoCL's CPU devices where U streams from memory every call
    (more than :data:`INLINE_U_BYTES`) and few tile blocks would read it: one, or at most one per
    :data:`INLINE_BLOCK_U_BYTES` of U (each block transforms the filters again, reading the
    weight, a quarter of U's bytes)."""
    mode = runtime.env("CLCONV_WINOGRAD_INLINE", "auto")
    if mode in ("0", "1", "raw"):
        return mode != "0"
    if mode != "auto":
        raise ConvValueError(f"CLCONV_WINOGRAD_INLINE={mode!r}: give auto, 0, 1 or raw")
    if mt != 4 or not pocl_cpu(device):
        return False
    tile = inline_tiling(spec, device, mt)
    u_bytes = make_plan(spec, device, mt, tile).u_bytes()
    tile_blocks = -(-tile_grid(spec, mt)[2] // tile.tm)
    return u_bytes > INLINE_U_BYTES and tile_blocks <= max(1, u_bytes // INLINE_BLOCK_U_BYTES)


#: :func:`inlines_filters` by default only where U has more bytes than this (it would not stay in
#: cache from one call to the next).
INLINE_U_BYTES = 4 * 2**20

#: ... and with at most one tile block (of the inline kernel's, TM <= 8 tiles) per this many bytes
#: of U. Measured (PoCL 3.1, AVX-512 Xeon, ms, U / inline, NumPy and device weights,
#: ``python benchmarks/winograd_inline.py``): U 37.7 MB (512 channels) at 7x7 batch 3, 4, 6
#: (2, 2, 3 blocks) 1.49 / 1.37 / 1.04x faster inline, batch 8 (4 blocks) 0.95-1.01x, 16
#: 0.91-1.00x; at 14x14 batch 1 (VGG-16's last 3x3 layers, 2 blocks) 1.42x, batch 2 (4) 0.99-1.05x;
#: U 9.4 MB (256 channels) at 14x14 batch 1 (2 blocks) 0.90-0.94x: one block only there.
INLINE_BLOCK_U_BYTES = 12 * 2**20


def reads_raw_weights(spec: ConvSpec, tile: Tiling) -> bool:
    """Whether a kernel that :func:`inlines_filters` reads a NumPy weight as it is
    (``wino_gemm_out_raw``: no packed copy, so no comparison of the weight's bytes per call)
    rather than through the filter cache: float32 with 16-channel vectors (the kernel transposes
    16 x 16 blocks of it with shuffles), or any spec with ``CLCONV_WINOGRAD_INLINE=raw`` (other
    vector widths and dtypes gather the values one by one). Device weights keep the cache."""
    if runtime.env("CLCONV_WINOGRAD_INLINE", "auto") == "raw":
        return True
    return spec.dtype == "float32" and tile.vw == 16


def inline_tiling(spec: ConvSpec, device: Device, mt: int) -> Tiling:
    """The GEMM block of :func:`inlines_filters`' kernel: one vector of channels (a work-item's
    transformed filters, KC x A2 vectors, and its M block stay within L1)."""
    tiles = tile_grid(spec, mt)[2]
    t = tiling(spec, device, tiles)
    return Tiling(vw=t.vw, nv=1, tm=4 if tiles <= 4 else min(t.tm, 8))


#: Input channels whose filters ``wino_gemm_out_inline`` transforms at a time (``KC``), at most:
#: their A2 x KC vectors stay in L1 with the block of M. Measured (AVX-512 Xeon, kernel alone, ms,
#: KC 4 / 8 / 16 / 32 / 64): ResNet-50 3x3 at 7 0.445 / 0.444 / 0.69-0.80 / 0.98 / 1.10, at 14
#: 0.39 / 0.40-0.47 / 0.50 / 0.61 / 0.68.
INLINE_KC = 8


#: Input channels of a raw weight that ``wino_gemm_out_raw`` transposes at a time (``RC``).
RAW_CHANNELS = 16


def _local_budget(device: Device) -> int:
    """The local memory the inline kernels may take: half the device's (0: unknown, no limit)."""
    return int((getattr(device, "extra", {}) or {}).get("local_mem_bytes", 0) or 0) // 2


def raw_fits(plan: Plan, device: Device) -> bool:
    """Whether ``wino_gemm_out_raw``'s transposed rows (RC x 9 vectors) and one channel's
    transformed filters fit :func:`_local_budget`."""
    budget = _local_budget(device)
    return not budget or (RAW_CHANNELS * 9 + plan.a2) * plan.tile.tn * plan.item <= budget


def inline_chunk(plan: Plan, device: Device, raw: bool = False) -> int:
    """``KC`` for a plan: :data:`INLINE_KC`, halved until the chunk's transformed filters (and,
    ``raw``, the transposed rows) take at most half the device's local memory."""
    budget = _local_budget(device)
    rows = RAW_CHANNELS * 9 * plan.tile.tn * plan.item if raw else 0
    kc = INLINE_KC
    while kc > 1 and budget and kc * plan.a2 * plan.tile.tn * plan.item + rows > budget:
        kc //= 2
    return kc


def fuses_output(device: Device, u_bytes: int = 0) -> bool:
    """Whether the GEMM transforms its own block of M into outputs (``wino_gemm_out``, one launch
    in place of ``wino_gemm`` + ``output_transform``): ``CLCONV_WINOGRAD_FUSED`` ``1`` / ``0``
    forces it on / off; by default (``auto``) on PoCL's CPU devices, where it was measured (a
    work-item's M block lives in private memory, 36 KiB for F(4x4): cache on a CPU, spilled
    registers on a GPU), for a transformed weight U of at most :data:`FUSED_U_BYTES`.
    Measured (PoCL 3.1, AVX-512 Xeon, separate / fused, medians of 21
    interleaved rounds, two runs, ``python benchmarks/winograd_fused.py``): F(2x2) ResNet-50 3x3
    at 56 1.35-1.47x, 28 1.09-1.21x, 14 1.02-1.04x, 7 0.93-0.95x, VGG 1.71-1.77x, DeepLab d=2
    1.55-1.57x; F(4x4) 1.05-1.07x, 1.03-1.04x, 0.98x, 1.02-1.05x, 1.08-1.10x, 0.98x (its GEMM
    was already the larger part; the gain is mostly a launch and M's round trip)."""
    mode = runtime.env("CLCONV_WINOGRAD_FUSED", "auto")
    if mode == "auto":
        return pocl_cpu(device) and u_bytes <= FUSED_U_BYTES
    if mode in ("0", "1"):
        return mode == "1"
    raise ConvValueError(f"CLCONV_WINOGRAD_FUSED={mode!r}: give auto, 0 or 1")


#: :func:`fuses_output` by default only where U has at most this many bytes. The fused kernel's
#: work-items each stream their channel block's U panels for one block of tiles; the separate
#: GEMM runs a work-group of 8 tile blocks against each panel, which then comes from cache.
#: With U past the caches that wins: measured (AVX-512 Xeon, F(4x4), constant weights,
#: ``python benchmarks/winograd_fused.py --algorithms winograd-f4x4-3x3 --layers
#: 14x14x512:2,...``), U 37.7 MB (512 channels; 14x14 batch 2 and 4, 28x28 batch 1 and 2, 7x7
#: batch 8 and 16) 1.32-1.44x faster separate on PoCL 3.1, 1.33-1.57x on pip's PoCL 3.0; U 9.4
#: MB (256 channels; 14x14 batch 1-8, 28x28, 56x56) 0.93-1.06x and 0.92-1.12x; U 2.4 MB at 56x56
#: 0.93x: those stay fused. (Where the GEMM transforms the filters itself, :func:`inlines_filters`,
#: neither runs: 7x7 batch 1-6 and 14x14x512 batch 1 are faster that way still.)
FUSED_U_BYTES = 16 * 2**20


#: Replayed calls kept per Winograd kernel (one per weight and bias objects and values of the
#: switches; the oldest goes).
MAX_REPLAYS = 4

#: The environment switches a call's launches depend on (part of a replayed call's key:
#: :meth:`WinogradKernel._make_replay`).
_SWITCHES = (("CLCONV_WINOGRAD_PAD", "0"), ("CLCONV_WINOGRAD_FUSED", "auto"), ("CLCONV_WINOGRAD_STREAM", "1"),
             ("CLCONV_GEMM_PREFETCH", "1"), ("CLCONV_ZERO_COPY", "1"))


#: The output transform stages its tiles and writes them with streaming stores (``OUT_STREAM``,
#: kernels_cl/winograd.cl) when the output has at least this many bytes.
STREAM_BYTES = 4 * 2**20


def streams_output(spec: ConvSpec, device: Device, tile: Tiling, mt: int) -> bool:
    """Whether the output transform stages its tiles and streams them out (``OUT_STREAM``):
    F(4x4,3x3) in float32 with 8 or 16 channels per vector, on CPU devices (measured there
    only), for outputs of at least :data:`STREAM_BYTES`, unless ``CLCONV_WINOGRAD_STREAM=0``.
    Measured (PoCL 3.1, AVX-512 Xeon, ms, plain / streamed, 21 interleaved rounds,
    ``benchmarks/winograd_stream.py``): VGG 3x3 64@112 batch 2 (6.4 MB output) F(4x4) 7.41 /
    6.00; F(2x2) 12.6 / 13.9 (its rows of 2 outputs fill a line per 8 tiles; slower); ResNet-50
    3x3 at 56/28/14/7 (0.8 MB down to 0.1 MB) 0.82-1.00x (slower: those stay in cache, where
    plain stores are as fast)."""
    return (
        mt == 4
        and spec.dtype == "float32"
        and tile.vw in (8, 16)
        and device.kind == "cpu"
        and spec.nbytes("output") >= STREAM_BYTES
        and runtime.env("CLCONV_WINOGRAD_STREAM", "1") != "0"
    )


# ------------------------------------------------------------------ algorithms
class _Winograd(OpenCLAlgorithm):
    family = "winograd"
    mt: int = 2
    #: fraction of peak the batched GEMM reaches on large shapes (im2col's GEMM: 0.55; this one
    #: has the transforms and their launches around it)
    gemm_base: float = 0.45

    def __init__(self) -> None:
        self.pool = WorkspacePool()

    def workspace_bytes(self, spec: ConvSpec, device: Device) -> int:
        """V + M of one chunk, plus one transformed weight U or packed weight (kept across calls)."""
        if spec.batch == 0 or spec.ndim != 2 or spec.transposed:
            return 0
        ps = phase_spec(spec)
        if inlines_filters(ps, device, self.mt):
            p = make_plan(ps, device, self.mt, inline_tiling(ps, device, self.mt))
            return p.workspace_bytes() + p.packed_bytes()
        p = make_plan(ps, device, self.mt)
        return p.workspace_bytes() + p.u_bytes()

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        common = self.common_support(spec, device)
        if not common:
            return common
        checks = first_failure(
            (spec.transposed, "transposed convolution: Winograd here computes conv only"),
            (spec.ndim != 2, f"2D convolutions only (this is {spec.ndim}D)"),
            (spec.kernel != (3, 3), f"3x3 kernels only (this is {'x'.join(map(str, spec.kernel))})"),
            (spec.stride != (1, 1), f"stride 1 only (this is {'x'.join(map(str, spec.stride))}; "
             "strided phases are not done)"),
            (spec.is_depthwise, "depthwise (one input channel per group): no reduction for the GEMM"),
        )
        if not checks:
            return checks
        # dilation and padding modes run as phase images (phase_spec): checked at that size
        p = make_plan(phase_spec(spec), device, self.mt)
        max_alloc = getattr(device, "max_alloc_bytes", 0)
        return first_failure(
            (max(p.v_elems() + p.m_elems(), p.u_bytes() // p.item) > INT32_MAX,
             "the workspace or the transformed weight needs more than 2**31 elements", "size"),
            (0 < max_alloc < max(p.workspace_bytes(), p.u_bytes()),
             ("the transformed weight or the smallest workspace chunk exceeds the device's max "
              "allocation size"), "memory"),
        )

    def variants(self, spec: ConvSpec, device: Device) -> list[dict[str, Any]]:
        """GEMM blocks and work-groups worth measuring (:func:`blocks`), the default first."""
        if spec.ndim != 2 or spec.transposed:
            return [{}]
        return [tile_params(t, g) for t, g in blocks(phase_spec(spec), device, self.mt)]

    def describe_params(self, params: dict[str, Any]) -> str:
        t, g = from_params(params)
        return f"{t.tm}x{t.tn} (VW {t.vw} x NV {t.nv}), {g} blocks per group"

    def prepare(self, spec: ConvSpec, device: Device, params: dict[str, Any] | None = None) -> Kernel:
        """A kernel with the GEMM block ``params`` (one of :meth:`variants`), or the default.
        ``workspace_bytes`` and ``cost`` describe the default block."""
        return WinogradKernel(spec, device, self, params)

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        """Winograd FLOPs: the GEMMs (A2 positions x padded C_out x C_in/groups x padded tiles x 2)
        plus the transforms; bytes: input, output, the transformed weight (read every call) and
        the padded input, V and M written once (each chunk's are read back from cache); four
        launches per chunk plus the host transfers; the GEMM's efficiency for its shape.

        A dilated spec (or one padded in another mode) is costed as its :func:`phase_spec`: the
        tiles of every phase image, whole tiles even where a tiny phase has fewer outputs (3x3
        outputs cost one 4x4 tile of F(4x4) or four 2x2 tiles of F(2x2)), and every phase row's
        zero margins in the workspace. Columns dw apart make the gather read each input cache
        line and the scatter write each output line once per column phase: dw times the bytes."""
        if spec.ndim != 2 or spec.batch == 0 or spec.transposed:
            return super().cost(spec, device)
        ps = phase_spec(spec)
        inline = inlines_filters(ps, device, self.mt)
        p = make_plan(ps, device, self.mt, inline_tiling(ps, device, self.mt) if inline else None)
        a2, alpha, mt = p.a2, p.alpha, self.mt
        tiles = round_up(p.tiles, p.tile.tm)
        gemm = 2.0 * a2 * p.cpt * p.cig * tiles
        # B^T d B: 2*alpha 1-D transforms of ~2*alpha FLOPs per tile and input channel;
        # A^T M A: (alpha + mt) 1-D transforms of ~2*alpha FLOPs per tile and output channel
        transforms = tiles * (4.0 * alpha * alpha * spec.in_channels + 2.0 * (alpha + mt) * alpha * p.cpt)
        tile_blocks = tiles // p.tile.tm
        if inline:  # G g G^T in every tile block: (3 + alpha) 1-D transforms of ~alpha FLOPs
            transforms += tile_blocks * p.cpt * p.cig * (3.0 + alpha) * alpha
        xp = ps.batch * spec.in_channels * (p.th * mt + 2) * p.xpw
        staged = (xp + a2 * tiles * (spec.in_channels + p.cpt)) * p.item
        # the kernels read U (or the packed weight, once per tile block), not the weight (a cached
        # weight is not even uploaded)
        strided = spec.dilation[1]
        prepared = p.packed_bytes() * tile_blocks if inline else p.u_bytes()
        bytes_ = strided * (spec.nbytes("input") + spec.nbytes("output")) + prepared + staged
        # vectors run along the output channels, blocks of TM rows along the tiles
        # (the inline kernel's few tiles read their transformed filters from L1, not memory: no
        # thin-shape penalty; measured 0.44-0.52 ms for ResNet-50's 3x3 layer at 7x7, ~45% of peak)
        eff = gemm_efficiency(32 if inline else tiles, p.cpg, p.cig, self.gemm_base)
        if spec.groups > 1:
            eff *= 0.5
        if strided > 1:
            # Column phases: the gather, the transforms and the scatter move strided data in
            # kernels of their own, not overlapped with the GEMM, so their traffic adds to its
            # time instead of hiding under it (folded into the efficiency, as im2col's col2im).
            # A plain roofline picked F(4x4) for DeepLab's d=12 layer (6.5 ms predicted
            # against im2col's 7.2): measured 5.2-5.7 ms against 3.1-3.3.
            prof = profile(device)
            peak = prof.peak_gflops * 1e9
            compute_s = (gemm + transforms) / max(peak * eff, 1.0)
            memory_s = bytes_ / max(prof.bandwidth_gbs * 1e9, 1.0)
            eff = (gemm + transforms) / max(peak * (compute_s + memory_s), 1.0)
        return Cost(gemm + transforms, bytes_, 4 * p.nchunks + self.host_launches(device), eff)


class WinogradF2(_Winograd):
    id = "winograd-f2x2-3x3"
    mt = 2
    description = ("Winograd F(2x2,3x3): 3x3 stride-1 2D conv (dilated: phase images), 16 batched GEMMs, "
                   "cached filter transform")


class WinogradF4(_Winograd):
    id = "winograd-f4x4-3x3"
    mt = 4
    description = ("Winograd F(4x4,3x3): 3x3 stride-1 2D conv (dilated: phase images), 36 batched GEMMs, "
                   "cached filter transform")
