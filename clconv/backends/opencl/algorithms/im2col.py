"""im2col: column building + a tiled, register-blocked GEMM per group (kernels_cl/im2col.cl).

conv: ``im2col`` writes the columns of a chunk of the flattened batch into a
workspace (every padding mode, stride, dilation, asymmetric padding, groups;
1D/2D/3D as 3D), then ``gemm_conv`` computes W_g @ cols_g for every group and
writes each column straight into the NC(D)(H)W output, plus bias.

conv_transpose: ``im2col`` with a 1x1x1 kernel packs a chunk of whole images
of x, ``gemm_cols`` computes W_g^T @ x_g into a column workspace, and
``col2im`` gathers each output element from the taps that reach it (no
atomics, no zero insertion).

The workspace is bounded (:data:`WORKSPACE_BUDGET`, or a quarter of the
device's max allocation if smaller): conv chunks the flattened batch by
columns (several images per chunk, or part of one image), each chunk's
columns kept near :data:`CHUNK_BYTES` so that they are still in cache when
the GEMM reads them; conv_transpose chunks by whole images, and by output
channels when one image's columns are too large. It is allocated once per
queue and reused by every later call (:class:`WorkspacePool`). A pointwise
conv whose image size is a multiple of the tile width needs no workspace:
the GEMM reads the input itself; one whose image size is not (ResNet-50's 1x1
layers at 28/14/7) runs as Y^T = X^T W^T (:class:`PointwiseKernel`), with the
weight transposed once and cached; on CPUs a work-item computes several position
tiles a k block at a time, so that the block of the transposed weight stays in
L1 for all of them. The reduction order is fixed: the same bits run after run.

GEMM tiles (PoCL 3.1, AVX-512 Zen 5, 2 cores; GFLOP/s of the GEMM kernel
alone on 64x56x56 3x3, 256x14x14 3x3, 256->64 1x1 56x56, best of rounds on a
shared, noisy machine): float32 TM x TN = 8 x 32 (VW 16, NV 2) with local
(1, 8): ~500/430/480; 6 x 32: ~450/385/435; 4 x 32: ~310/340/375; 8 x 16:
~320/350/390; 6 x 48: ~350/365/410; 12 x 32 spills registers (<150). Local
(1, 8) keeps the K x TN panel of B in cache across the 8 row tiles of a
work-group (PoCL runs a work-group's items one after another on one core).
float64 8 x 16 (VW 8, NV 2): ~245/235/245; 6 x 16: ~235/210/235.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ....costmodel import Cost, gemm_efficiency, io_bytes, profile
from ....backend import Device, Kernel, Support, first_failure
from ....errors import ConvValueError
from ....spec import ConvSpec, is_device_array
from .. import runtime
from ..base import INT32_MAX, OpenCLAlgorithm, OpenCLKernel, pocl_cpu, round_up, spatial3, WorkspacePool
from ..runtime import OpenCLDevice, cl, cl_array
from ..weightcache import CachedWeightKernel, FilterEntry

_MODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}

#: Upper bound on the workspace in bytes (module-level so tests can shrink it and force chunking).
WORKSPACE_BUDGET = 64 * 2**20

#: conv: column chunks are kept about this small (and at least :data:`MIN_CHUNK_TILES` tile
#: widths wide), so that the columns im2col writes are still in cache when the GEMM reads them.
#: Measured (PoCL 3.1, Zen 5, 2 cores, ms, medians of 31 interleaved rounds, 4 / 8 / 64 MiB):
#: 3D 3x3x3 64@8x28x28 5.5 / 4.9 / 6.5; VGG 3x3 64@112 5.5 / 5.1 / 9.5; audio 512 k3s2 6.5 /
#: 6.5 / 6.4 (1-16 MiB alike within noise).
CHUNK_BYTES = 8 * 2**20
MIN_CHUNK_TILES = 16

#: Workspace regions start at multiples of this many elements, so vector loads stay aligned.
_ALIGN = 32

#: Local size of to_acc.
_LOCAL_1D = 64

#: col2im: a work-item computes at most this many outputs of one output row (private accumulators).
_COL2IM_SEG = 64

#: Local size of col2im.
_COL2IM_LOCAL = 8

#: im2col: a work-item fills this many consecutive columns of one workspace row.
_IM2COL_SEG = 512

#: Local size of im2col (dim 0: output row segments, dim 1: workspace rows).
_IM2COL_LOCAL = (1, 8)


@dataclass(frozen=True)
class Tiling:
    """GEMM register tile: TM rows x VW*NV columns per work-item; local work size (l0, l1)."""

    vw: int
    nv: int
    tm: int
    local: tuple[int, int]

    @property
    def tn(self) -> int:
        return self.vw * self.nv

    def defines(self) -> dict[str, int]:
        return {"VW": self.vw, "NV": self.nv, "TM": self.tm}

    def params(self) -> dict[str, int]:
        """This tile as tunable parameters (``Im2col.variants``; JSON in the tuning database)."""
        return {"tm": self.tm, "vw": self.vw, "nv": self.nv, "l0": self.local[0], "l1": self.local[1]}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Tiling":
        try:
            t = cls(vw=int(params["vw"]), nv=int(params["nv"]), tm=int(params["tm"]),
                    local=(int(params["l0"]), int(params["l1"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConvValueError(f"params={params!r} is not an im2col tile: give tm, vw, nv, l0, l1 ({exc})") from None
        if t.vw not in (2, 4, 8, 16) or min(t.nv, t.tm, *t.local) < 1:
            raise ConvValueError(f"params={params!r} is not an im2col tile: vw in 2, 4, 8, 16; the others >= 1")
        return t


def tiling(spec: ConvSpec, device: Device) -> Tiling:
    """The default GEMM tile for a spec on a device (tuned ones: :func:`tilings`).

    CPUs: one register tile per work-item, vectors as wide as the device's native
    float vectors. 512-bit vectors (32 registers on AVX-512): 8 x 2 vectors, measured
    (module doc); narrower ones (AVX2: 16 registers): 6 x 2 vectors, not measured here.
    GPUs: 8 x 8 tiles (two 4-wide vectors), 64 work-items per group; 4 x 4 tiles (one
    vector) for a 1x1 conv over few positions (at most :data:`GPU_FEW_COLUMNS` GEMM columns),
    where more work-items beat more reuse. Measured by ``clconv tune`` on an NVIDIA H200
    (kernel times on resident arrays, six tiles per layer, the suite's 31 im2col layers): 8 x 8
    was fastest or within 2% on every layer but those 1x1 ones, 10-25% faster than 4 x 8 on
    the 3x3 layers (ResNet-50 at 14x14 1.300 against 1.574 ms, copies included); 4 x 4 took
    ResNet-50's 1x1 at 14x14 and 7x7 from 0.76 / 1.39 ms to 0.64 / 1.16 (benchmarks/RESULTS.md).
    Other devices: a small 4 x 8 tile and 64 work-items per group, not measured.
    """
    extra = getattr(device, "extra", {}) or {}
    if device.kind == "cpu":
        width = int(
            extra.get("native_vector_width_float", 0)
            or extra.get("preferred_vector_width_float", 0)
            or 8
        )
        bits = width * 32
        vw = max(2, min(16, bits // (compute_itemsize(spec) * 8)))
        positions = math.prod(spec.out_size)
        if (bits >= 512 and spec.is_pointwise and not spec.transposed and positions <= SMALL_IMAGE
                and positions % 7 == 0 and positions % (2 * vw) != 0):
            # the Y^T GEMM of a small image (PointwiseKernel; rows are its positions):
            # 7-row tiles, 7 per work-item on CPUs (7 work-items per group elsewhere;
            # SMALL_IMAGE: ResNet-50's 1x1 at 7x7 and 14x14)
            return Tiling(vw=vw, nv=2, tm=7, local=(1, 7))
        return Tiling(vw=vw, nv=2, tm=8 if bits >= 512 else 6, local=(1, 8))
    if device.kind == "gpu":
        if spec.is_pointwise and not spec.transposed and spec.batch * math.prod(spec.out_size) <= GPU_FEW_COLUMNS:
            return Tiling(vw=4, nv=1, tm=4, local=(16, 4))
        return Tiling(vw=4, nv=2, tm=8, local=(16, 4))
    return Tiling(vw=4, nv=2, tm=4, local=(16, 4))


#: GPUs: a 1x1 conv with at most this many GEMM columns (batch x positions) gets 4 x 4 tiles
#: (:func:`tiling`; ResNet-50's 1x1 layers at 14x14 and 7x7, batch 1, on an NVIDIA H200).
GPU_FEW_COLUMNS = 256


#: Pointwise convs with at most this many output positions per image that run as Y^T
#: (:func:`transposes_weight`) get 7-row tiles when 7 divides the positions. Measured (PoCL
#: 3.1, Zen 5, ms, medians of 15 interleaved rounds, 8x2 (1, 8) / 7x2 (1, 7) vectors, with the
#: earlier form of the kernel: one tile per work-item, l1 work-items per group):
#: ResNet-50 1x1 at 7x7 0.42-0.43 / 0.38-0.39, at 14x14 0.36-0.37 / 0.32-0.33, at 28x28
#: 0.283 / 0.293 (so not there).
SMALL_IMAGE = 256

#: PointwiseKernel on CPUs: values of k per block (a 128 x 32 block of the transposed weight is
#: 16 KiB, L1-resident for the work-item's position tiles) and the prefetch distance in k.
#: Measured (PoCL 3.1, AVX-512 Xeon, ms, medians of 41 interleaved rounds, ResNet-50 1x1 at
#: 28/14/7; before: one tile per work-item, rows clamped, no prefetch): see benchmarks/RESULTS.md.
POINTWISE_KC = 128
POINTWISE_XPF = 8

#: gemm_conv and gemm_cols on CPUs: prefetch the row of B this many k ahead. x read in place
#: (pointwise) has rows a whole image apart, and the workspace's rows a chunk apart, which the
#: hardware prefetcher does not follow. Measured (PoCL 3.1, AVX-512 Xeon, ms, medians of 41
#: interleaved rounds, GEMM launches alone, no prefetch / 16): ResNet-50 1x1 56-reduce 0.624 /
#: 0.581, MobileNetV2 1x1 1.155 / 0.996, the 1x1 s2 downsample 1.161 / 1.079, 3x3 at 7 1.572 /
#: 1.508, audio 512 k3s2 12.9 / 11.4, 3D 10.2 / 9.3, DeepLab d=6 7.09 / 6.12, DCGAN 4x4 s2 at 8
#: 9.20 / 8.70; 1x1 56-expand (K = 64) 0.565 / 0.584.
GEMM_BPF = 16


def prefetches(device: Device) -> bool:
    """Whether the GEMM kernels prefetch (XPF, BPF): clang's ``__builtin_prefetch``, on PoCL's
    CPU devices only (measured there; Oclgrind, for one, cannot run ``llvm.prefetch``), unless
    ``CLCONV_GEMM_PREFETCH=0`` (read at each program lookup, for ``benchmarks/gemm_prefetch.py``)."""
    return pocl_cpu(device) and runtime.env("CLCONV_GEMM_PREFETCH", "1") != "0"

#: Tile shapes (TM, NV, local size) worth measuring, most promising first; the vector width is
#: the device's. CPUs: the measured neighbours of 8 x 2 vectors (module doc), then the same
#: tile with fewer or more row tiles per work-group (how many share one B panel in cache), then
#: smaller tiles for CPUs with 16 vector registers, then short tiles for GEMMs of very few rows
#: (grouped and depthwise convs: one row per group), whose work-groups run along the columns.
#: GPUs: measured on an NVIDIA H200 (see tiling); other devices: not measured.
_CPU_SHAPES = (
    (8, 2, (1, 8)), (7, 2, (1, 7)), (6, 2, (1, 8)), (6, 3, (1, 8)), (4, 4, (1, 8)), (8, 1, (1, 8)),
    (8, 2, (1, 4)), (8, 2, (1, 16)), (4, 2, (1, 8)), (6, 1, (1, 8)), (4, 1, (1, 8)),
    (2, 4, (1, 8)), (2, 4, (4, 1)), (1, 4, (8, 1)), (1, 2, (8, 1)), (2, 2, (4, 1)),
)
_GPU_SHAPES = (
    (4, 2, (16, 4)), (8, 2, (16, 4)), (4, 1, (16, 4)), (4, 2, (8, 8)), (4, 2, (32, 2)), (8, 1, (16, 8)),
)

#: At most this many tiles are measured per spec (each is a kernel build).
MAX_VARIANTS = 7


def vector_registers(device: Device) -> int:
    """A guess at a CPU's vector registers: 32 with 512-bit vectors (AVX-512), else 16."""
    extra = getattr(device, "extra", {}) or {}
    width = int(extra.get("native_vector_width_float", 0) or extra.get("preferred_vector_width_float", 0) or 8)
    return 32 if width * 32 >= 512 else 16


def tilings(spec: ConvSpec, device: Device) -> list[Tiling]:
    """The GEMM tiles worth measuring for a spec on a device: the default first, then valid
    neighbours. Pruned by device facts: the device's vector width; on CPUs, TM * NV
    accumulators plus NV B vectors within 3/4 of the vector registers (12 x 2 on AVX-512
    spills, module doc); local sizes within the device's work-group and item limits; and by
    the spec: no tile taller than the GEMM's rows (the output channels per group, times the
    taps for conv_transpose) or wider than its columns."""
    default = tiling(spec, device)
    extra = getattr(device, "extra", {}) or {}
    max_wg = int(extra.get("max_work_group_size", 0) or 1)
    items = list(extra.get("max_work_item_sizes", []) or [max_wg, max_wg, max_wg])
    rows = spec.out_per_group * (math.prod(spec.kernel) if spec.transposed else 1)
    cols = spec.batch * math.prod(spec.in_size if spec.transposed else spec.out_size)
    if transposes_weight(spec, device):  # Y^T: rows are an image's positions, columns channels
        rows, cols = math.prod(spec.out_size), spec.out_per_group
    out = [default]
    cpu = device.kind == "cpu"
    regs = vector_registers(device)
    for tm, nv, local in _CPU_SHAPES if cpu else _GPU_SHAPES:
        t = Tiling(vw=default.vw, nv=nv, tm=tm, local=local)
        if (
            t in out
            or (cpu and tm * nv + nv > regs * 3 // 4)
            or local[0] * local[1] > max_wg
            or local[0] > items[0]
            or local[1] > items[1]
            or tm > rows
            or (t.tn > cols and t.tn > default.tn)
        ):
            continue
        out.append(t)
    return out[:MAX_VARIANTS]


def compute_itemsize(spec: ConvSpec) -> int:
    """Bytes of one workspace element: double for float64, else float (float16 computes in it)."""
    return 8 if spec.dtype == "float64" else 4


def budget_bytes(device: Device) -> int:
    """The workspace bound on a device; the smallest chunk (TN columns, or one image and one
    output channel per group for conv_transpose) may exceed it."""
    max_alloc = getattr(device, "max_alloc_bytes", 0)
    return min(WORKSPACE_BUDGET, max_alloc // 4) if max_alloc else WORKSPACE_BUDGET


def _weight_copy_elems(spec: ConvSpec) -> int:
    """float16 weights are converted once per call to a float copy the GEMM reads."""
    return round_up(math.prod(spec.weight_shape), _ALIGN) if spec.dtype == "float16" else 0


@dataclass(frozen=True)
class ConvChunks:
    """conv: columns of the flattened batch (N * O of them), ``cols`` per chunk."""

    total: int  # N * O
    cols: int  # columns per chunk, a multiple of the tile width
    rows: int  # C_in * K
    w_elems: int

    def elems(self) -> int:
        return self.w_elems + self.rows * self.cols

    def chunks(self) -> Iterator[tuple[int, int]]:
        for q0 in range(0, self.total, self.cols):
            yield q0, min(self.cols, self.total - q0)


@dataclass(frozen=True)
class TransposedChunks:
    """conv_transpose: ``images`` whole images per chunk; ``channels`` output channels per group
    per pass over a chunk."""

    batch: int
    images: int
    channels: int
    cog: int
    c_in: int
    groups: int
    taps: int
    in_positions: int  # I
    tn: int
    w_elems: int

    def ldb(self, images: int) -> int:
        return round_up(images * self.in_positions, self.tn)

    def pack_elems(self, images: int) -> int:
        return round_up(self.c_in * self.ldb(images), _ALIGN)

    def elems(self) -> int:
        ldb = self.ldb(self.images)
        return (
            self.w_elems
            + self.pack_elems(self.images)
            + self.groups * self.channels * self.taps * ldb
        )

    def image_chunks(self) -> Iterator[tuple[int, int]]:
        for n0 in range(0, self.batch, self.images):
            yield n0, min(self.images, self.batch - n0)

    def channel_chunks(self) -> Iterator[tuple[int, int]]:
        for c0 in range(0, self.cog, self.channels):
            yield c0, min(self.channels, self.cog - c0)


def conv_chunks(spec: ConvSpec, device: Device, tile: Tiling | None = None) -> ConvChunks:
    tile = tile or tiling(spec, device)
    item = compute_itemsize(spec)
    rows = spec.in_channels * math.prod(spec.kernel)
    total = spec.batch * math.prod(spec.out_size)
    w_elems = _weight_copy_elems(spec)
    room = max(budget_bytes(device) // item - w_elems, 0)
    cols = max(tile.tn, room // rows // tile.tn * tile.tn)
    cached = max(MIN_CHUNK_TILES * tile.tn, CHUNK_BYTES // item // rows // tile.tn * tile.tn)
    cols = min(cols, cached)
    cols = min(cols, round_up(max(total, 1), tile.tn))
    return ConvChunks(total=total, cols=cols, rows=rows, w_elems=w_elems)


def transposed_chunks(spec: ConvSpec, device: Device, tile: Tiling | None = None) -> TransposedChunks:
    budget = budget_bytes(device) // compute_itemsize(spec)
    tn = (tile or tiling(spec, device)).tn

    def make(images: int, channels: int) -> TransposedChunks:
        return TransposedChunks(
            batch=spec.batch,
            images=images,
            channels=channels,
            cog=spec.out_per_group,
            c_in=spec.in_channels,
            groups=spec.groups,
            taps=math.prod(spec.kernel),
            in_positions=math.prod(spec.in_size),
            tn=tn,
            w_elems=_weight_copy_elems(spec),
        )

    cog = spec.out_per_group
    if make(1, cog).elems() <= budget:  # whole images: as many as fit
        per_image = (spec.in_channels + spec.out_channels * math.prod(spec.kernel)) * math.prod(
            spec.in_size
        )
        images = max(1, min(spec.batch, budget // max(per_image, 1)))
        while images > 1 and make(images, cog).elems() > budget:
            images -= 1
        return make(images, cog)
    channels = cog  # one image is too large: fewer output channels per pass
    while channels > 1 and make(1, channels).elems() > budget:
        channels = max(1, channels // 2) if channels > 64 else channels - 1
    return make(1, channels)


def _panel_layout(spec: ConvSpec, device: Device, b_direct: bool) -> bool:
    """Whether a conv's column workspace is stored in K x TN panels (``B_PANEL``, im2col.cl).

    On CPU devices, for conv (not transposed: gemm_cols and col2im read that workspace by
    rows), unless ``CLCONV_IM2COL_PANELS=0`` (kept for measuring the row layout against it).
    GPUs keep rows: there neighbouring work-items read neighbouring tiles of one row (coalesced),
    which panels would put a panel apart; panels are measured on CPUs only."""
    return (
        not b_direct
        and not spec.transposed
        and device.kind == "cpu"
        and runtime.env("CLCONV_IM2COL_PANELS", "1") != "0"
    )


def reads_input_directly(spec: ConvSpec, device: Device, tile: Tiling | None = None) -> bool:
    """Pointwise conv whose per-image column count is a multiple of the tile width: the GEMM
    reads x itself as B (no im2col, no workspace), provided x's offset keeps vectors aligned."""
    return (
        not spec.transposed
        and spec.is_pointwise
        and spec.dtype != "float16"
        and math.prod(spec.out_size) % (tile or tiling(spec, device)).tn == 0
    )


def transposes_weight(spec: ConvSpec, device: Device) -> bool:
    """Pointwise conv whose image size is not a multiple of the default tile width (ResNet-50's
    1x1 layers at 28/14/7): :class:`PointwiseKernel` computes Y^T = X^T W^T with the weight
    transposed once and cached, so that no column is wasted on partial tiles and nothing is
    copied (float16 storage keeps the column path: its GEMM reads float)."""
    return (
        not spec.transposed
        and spec.is_pointwise
        and spec.dtype != "float16"
        and math.prod(spec.out_size) % tiling(spec, device).tn != 0
    )


def reads_raw_pointwise(spec: ConvSpec, tile: Tiling) -> bool:
    """Whether :class:`PointwiseKernel` reads a NumPy weight as it is (``gemm_pointwise_raw``,
    building each block of the transposed panel itself) instead of a transposed copy found by
    comparing the weight's bytes on every call (~0.3 ms for ResNet-50's 2048x512 weight at 7x7,
    as much as the GEMM): float32 with 16-channel vectors (16 x 16 blocks transposed with
    shuffles) on CPU devices, images of at least TM positions, unless
    ``CLCONV_POINTWISE_RAW=0``; ``1`` forces it for any width and dtype (values gathered one
    by one) where the image has TM positions."""
    mode = runtime.env("CLCONV_POINTWISE_RAW", "auto")
    if mode not in ("auto", "0", "1"):
        raise ConvValueError(f"CLCONV_POINTWISE_RAW={mode!r}: give auto, 0 or 1")
    if mode == "0" or math.prod(spec.out_size) < tile.tm:
        return False
    return mode == "1" or (spec.dtype == "float32" and tile.vw == 16)


def chunk_plan(spec: ConvSpec, device: Device, tile: Tiling | None = None) -> ConvChunks | TransposedChunks:
    return transposed_chunks(spec, device, tile) if spec.transposed else conv_chunks(spec, device, tile)


class Im2colKernel(OpenCLKernel):
    """One spec on one device with one GEMM tile; its workspace comes from the algorithm's
    per-queue pool."""

    algorithm: Im2col
    REPLAYS = True  # launches through runtime.launch, x and y as (buffer, offset) pairs

    def __init__(self, spec: ConvSpec, device: Device, algorithm: "Im2col", tile: Tiling):
        super().__init__(spec, device, algorithm)
        self.tile = tile
        self.params = tile.params()

    def run(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        s = self.spec
        tile = self.tile
        if reads_input_directly(s, self.device, tile):
            self._run_pointwise(queue, tile, x, w, b, y)
            return
        plan = chunk_plan(s, self.device, tile)
        with self.algorithm.pool.hold(queue, plan.elems() * compute_itemsize(s)) as ws:
            self._run_columns(queue, tile, plan, ws, x, w, b, y)

    def _program(self, queue: Any, tile: Tiling, b: Any, b_direct: bool, panel: bool) -> Any:
        """``panel``: :func:`_panel_layout`, decided once per call by the caller, whose launches
        lay the columns out the same way (the switch is read at each call)."""
        s = self.spec
        ctx = queue.context
        panel = int(panel)
        bpf = GEMM_BPF if prefetches(self.device) else 0
        return self.memo_program((ctx.int_ptr, tile, b is not None, b_direct, panel, bpf), lambda: self.program(
            ctx,
            "im2col.cl",
            {
                "PADDING_MODE": _MODE[s.padding_mode],
                "HAS_BIAS": int(b is not None),
                "A_TRANS": int(s.transposed),
                "B_DIRECT": int(b_direct),
                "B_PANEL": panel,
                "COL2IM_SEG": _COL2IM_SEG,
                "BPF": bpf,
                **tile.defines(),
            },
        ))

    def _run_columns(
        self,
        queue: Any,
        tile: Tiling,
        plan: ConvChunks | TransposedChunks,
        ws: Any,
        x: Any,
        w: Any,
        b: Any,
        y: Any,
    ) -> None:
        s = self.spec
        panel = _panel_layout(s, self.device, False)
        prog = self._program(queue, tile, b, b_direct=False, panel=panel)
        i32 = np.int32
        if s.dtype == "float16":  # the GEMM reads a float copy of the weight
            n = math.prod(s.weight_shape)
            runtime.launch(
                queue,
                prog,
                "to_acc",
                (round_up(n, _LOCAL_1D),),
                (_LOCAL_1D,),
                *self.buf(w),
                ws,
                i32(0),
                i32(n),
            )
            a, a_off = ws, i32(0)
        else:
            a, a_off = self.buf(w)
        bias = [*self.buf(b)] if b is not None else [None, i32(0)]
        if s.transposed:
            self._run_transposed(queue, prog, tile, plan, x, a, a_off, bias, y, ws)
        else:
            self._run_conv(queue, prog, tile, plan, x, a, a_off, bias, y, ws, panel)

    def _shape_args(self, *tuples: tuple[tuple[int, ...], int]) -> list[np.int32]:
        return [np.int32(v) for t, fill in tuples for v in spatial3(t, fill)]

    def _im2col(
        self,
        queue: Any,
        prog: Any,
        x: Any,
        ws: Any,
        off: int,
        ldb: int,
        q0: int,
        p: int,
        out_size: tuple[int, ...],
        kernel: tuple[int, ...],
        stride: tuple[int, ...],
        dilation: tuple[int, ...],
        pad: tuple[int, ...],
    ) -> None:
        s = self.spec
        i32 = np.int32
        args = [
            *self.buf(x),
            ws,
            i32(off),
            i32(ldb),
            i32(q0),
            i32(p),
            i32(s.in_channels),
            i32(_IM2COL_SEG),
        ]
        args += self._shape_args(
            (s.in_size, 1), (out_size, 1), (kernel, 1), (stride, 1), (dilation, 1), (pad, 0)
        )
        l0, l1 = _IM2COL_LOCAL
        gsize = (
            round_up(-(-ldb // _IM2COL_SEG), l0),
            round_up(s.in_channels * math.prod(kernel), l1),
        )
        runtime.launch(queue, prog, "im2col", gsize, (l0, l1), *args)

    def _gemm_size(
        self, tile: Tiling, m: int, n: int
    ) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        l0, l1 = tile.local
        g = (round_up(-(-n // tile.tn), l0), round_up(-(-m // tile.tm), l1), self.spec.groups)
        return g, (l0, l1, 1)

    def _run_conv(
        self,
        queue: Any,
        prog: Any,
        tile: Tiling,
        plan: ConvChunks,
        x: Any,
        a: Any,
        a_off: Any,
        bias: list[Any],
        y: Any,
        ws: Any,
        panel: bool,
    ) -> None:
        s = self.spec
        i32 = np.int32
        cig, cog = s.in_per_group, s.out_per_group
        taps = math.prod(s.kernel)
        out_pos = math.prod(s.out_size)
        cols_off = plan.w_elems
        y_buf, y_off = self.buf(y)
        for q0, p in plan.chunks():
            ldb = round_up(p, tile.tn)
            self._im2col(
                queue,
                prog,
                x,
                ws,
                cols_off,
                ldb,
                q0,
                p,
                s.out_size,
                s.kernel,
                s.stride,
                s.dilation,
                s.pad_before,
            )
            gsize, lsize = self._gemm_size(tile, cog, p)
            runtime.launch(
                queue,
                prog,
                "gemm_conv",
                gsize,
                lsize,
                a,
                a_off,
                i32(cig * taps),
                i32(cog * cig * taps),
                ws,
                i32(cols_off),
                # panels: the panel stride, a group's rows within one; else rows and groups
                i32(s.in_channels * taps * tile.tn if panel else ldb),
                i32(cig * taps * (tile.tn if panel else ldb)),
                i32(0),
                i32(cog),
                i32(p),
                i32(cig * taps),
                *bias,
                y_buf,
                y_off,
                i32(q0),
                i32(out_pos),
                i32(s.out_channels),
            )

    def _run_pointwise(self, queue: Any, tile: Tiling, x: Any, w: Any, b: Any, y: Any) -> None:
        """1x1, stride 1, unpadded: one GEMM launch per call with B = x itself."""
        s = self.spec
        i32 = np.int32
        prog = self._program(queue, tile, b, b_direct=True, panel=False)
        cig, cog = s.in_per_group, s.out_per_group
        out_pos = math.prod(s.out_size)
        total = s.batch * out_pos
        bias = [*self.buf(b)] if b is not None else [None, i32(0)]
        gsize, lsize = self._gemm_size(tile, cog, total)
        runtime.launch(
            queue,
            prog,
            "gemm_conv",
            gsize,
            lsize,
            *self.buf(w),
            i32(cig),
            i32(cog * cig),
            *self.buf(x),
            i32(out_pos),
            i32(cig * out_pos),
            i32(s.in_channels * out_pos),
            i32(cog),
            i32(total),
            i32(cig),
            *bias,
            *self.buf(y),
            i32(0),
            i32(out_pos),
            i32(s.out_channels),
        )

    def _run_transposed(
        self,
        queue: Any,
        prog: Any,
        tile: Tiling,
        plan: TransposedChunks,
        x: Any,
        a: Any,
        a_off: Any,
        bias: list[Any],
        y: Any,
        ws: Any,
    ) -> None:
        s = self.spec
        i32 = np.int32
        cig, cog, g = s.in_per_group, s.out_per_group, s.groups
        taps = math.prod(s.kernel)
        in_pos = math.prod(s.in_size)
        out_pos = math.prod(s.out_size)
        ones = (1,) * s.ndim
        pack_off = plan.w_elems
        y_buf, y_off = self.buf(y)
        # per axis, consecutive taps reaching one output are kstep apart, their inputs istep apart
        gcds = [math.gcd(st, d) for st, d in zip(s.stride, s.dilation)]
        ksteps = tuple(st // g_ for st, g_ in zip(s.stride, gcds))
        isteps = tuple(d // g_ for d, g_ in zip(s.dilation, gcds))
        nseg = -(-s.out_size[-1] // _COL2IM_SEG)  # segments per output row
        for n0, nb in plan.image_chunks():
            p = nb * in_pos
            ldb = plan.ldb(nb)
            cols_off = pack_off + plan.pack_elems(nb)
            self._im2col(
                queue,
                prog,
                x,
                ws,
                pack_off,
                ldb,
                n0 * in_pos,
                p,
                s.in_size,
                ones,
                ones,
                ones,
                (0,) * s.ndim,
            )
            for c0, cc in plan.channel_chunks():
                m = cc * taps
                gsize, lsize = self._gemm_size(tile, m, p)
                runtime.launch(
                    queue,
                    prog,
                    "gemm_cols",
                    gsize,
                    lsize,
                    a,
                    i32(int(a_off) + c0 * taps),
                    i32(cog * taps),
                    i32(cig * cog * taps),
                    ws,
                    i32(pack_off),
                    i32(ldb),
                    i32(cig * ldb),
                    i32(m),
                    i32(p),
                    i32(cig),
                    ws,
                    i32(cols_off),
                    i32(m * ldb),
                )
                rows = nb * g * cc * out_pos // s.out_size[-1]
                args = [
                    ws,
                    i32(cols_off),
                    i32(ldb),
                    i32(m * ldb),
                    *bias,
                    y_buf,
                    y_off,
                    i32(rows),
                    i32(nseg),
                    i32(n0),
                    i32(c0),
                    i32(cc),
                    i32(g),
                    i32(cog),
                ]
                args += self._shape_args(
                    (s.in_size, 1),
                    (s.out_size, 1),
                    (s.kernel, 1),
                    (s.stride, 1),
                    (s.dilation, 1),
                    (s.pad_before, 0),
                    (ksteps, 1),
                    (isteps, 1),
                )
                runtime.launch(
                    queue,
                    prog,
                    "col2im",
                    (round_up(rows * nseg, _COL2IM_LOCAL),),
                    (_COL2IM_LOCAL,),
                    *args,
                )


class PointwiseKernel(CachedWeightKernel):
    """A pointwise conv as Y^T = X^T W^T (:func:`transposes_weight`): one GEMM launch per call,
    tiles of TM output positions x TN output channels, vectors along the channels read from the
    weight transposed into zero-padded K x TN panels, one per channel tile, so that a work-item
    streams its panel sequentially (``transpose_weight``, once per weight: :mod:`..weightcache`).

    On CPUs a work-item computes ``l1`` position tiles (the tile's local size (l0, l1), where
    other devices run l1 work-items of one tile each), :data:`POINTWISE_KC` values of k at a
    time, so that the weight panel's block stays in L1 for all of them, and prefetches x
    :data:`POINTWISE_XPF` rows ahead."""

    algorithm: "Im2col"

    def __init__(self, spec: ConvSpec, device: Device, algorithm: "Im2col", tile: Tiling):
        super().__init__(spec, device, algorithm)
        self.tile = tile
        self.params = tile.params()
        self.ldw = round_up(spec.out_per_group, tile.tn)
        cpu = device.kind == "cpu"
        self.tiles_per_item = tile.local[1] if cpu else 1
        self.local = (tile.local[0], 1 if cpu else tile.local[1], 1)
        self.defines: dict[str, int] = {"NP": self.tiles_per_item, "KC": POINTWISE_KC if cpu else 1 << 30}  # else: one block
        #: NumPy weights read as they are (``gemm_pointwise_raw``, :func:`reads_raw_pointwise`);
        #: then a call is one launch of the generic kind, with its fast path
        local = int((getattr(device, "extra", {}) or {}).get("local_mem_bytes", 0) or 0)
        self.raw = (cpu and self.local == (1, 1, 1) and reads_raw_pointwise(spec, tile)
                    and (not local or POINTWISE_KC * tile.tn * compute_itemsize(spec) <= local // 2))
        self.defines["PW_RAW"] = int(self.raw)
        self.ONE_LAUNCH = self.raw
        self._raw_call = False  # the call in progress reads the caller's weight (under the call lock)

    def _compute(self, queue: Any, on_device: bool, input: Any, weight: Any, bias: Any, out: Any) -> Any:
        if self.raw and not is_device_array(weight):
            self._raw_call = True  # no prepared copy: nothing to find, cache or compare
            try:
                return OpenCLKernel._compute(self, queue, on_device, input, weight, bias, out)
            finally:
                self._raw_call = False
        return super()._compute(queue, on_device, input, weight, bias, out)

    def run(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        if self._raw_call:
            self.launch_buffers(queue, x, w, b, y)
        else:
            super().run(queue, x, w, b, y)

    def _launch_setup(self, ctx: Any, has_bias: bool) -> tuple[Any, str, tuple, tuple, list]:
        """``gemm_pointwise_raw``'s program, sizes and shape arguments (:meth:`launch_buffers`)."""
        s = self.spec
        out_pos = math.prod(s.out_size)
        return (self._program(ctx, has_bias), "gemm_pointwise_raw", self._gsize(), self.local,
                [np.int32(out_pos), np.int32(s.out_per_group), np.int32(s.in_per_group), np.int32(s.groups)])

    def _gsize(self) -> tuple[int, int, int]:
        s, tile = self.spec, self.tile
        l0, l1, _ = self.local
        return (
            round_up(-(-s.out_per_group // tile.tn), l0),
            round_up(-(-math.prod(s.out_size) // (tile.tm * self.tiles_per_item)), l1),
            s.batch * s.groups,
        )

    def _program(self, ctx: Any, has_bias: bool) -> Any:
        xpf = POINTWISE_XPF if prefetches(self.device) else 0
        return self.memo_program((ctx.int_ptr, has_bias, xpf), lambda: self.program(
            ctx,
            "im2col.cl",
            {"PADDING_MODE": 0, "HAS_BIAS": int(has_bias), "A_TRANS": 1, "B_DIRECT": 0,
             "COL2IM_SEG": _COL2IM_SEG, **self.tile.defines(), **self.defines, "XPF": xpf},
        ))

    def _transform(self, queue: Any, weight: Any, host: np.ndarray | None) -> FilterEntry:
        s = self.spec
        total = s.groups * s.in_per_group * self.ldw
        nbytes = total * compute_itemsize(s)
        wt = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, max(nbytes, 64))
        if host is None:
            w_dev = weight
        else:
            w_dev = cl_array.to_device(queue, host)
            host = host.copy()
        ev = runtime.launch(
            queue, self._program(queue.context, s.bias), "transpose_weight",
            (round_up(total, _LOCAL_1D),), (_LOCAL_1D,),
            *self.buf(w_dev), wt, np.int32(s.out_per_group), np.int32(s.in_per_group), np.int32(total),
        )
        return FilterEntry(wt, w_dev, host, queue, ev, nbytes + (0 if host is None else 2 * host.nbytes))

    def _launch(self, queue: Any, x: Any, entry: FilterEntry, b: Any, y: Any) -> None:
        s = self.spec
        i32 = np.int32
        out_pos = math.prod(s.out_size)
        runtime.launch(
            queue, self._program(queue.context, b is not None), "gemm_pointwise_t", self._gsize(), self.local,
            *self.buf(x), entry.u, i32(out_pos),
            i32(s.out_per_group), i32(s.in_per_group), i32(s.groups),
            *([*self.buf(b)] if b is not None else [None, i32(0)]), *self.buf(y),
        )


class Im2col(OpenCLAlgorithm):
    id = "im2col"
    family = "gemm"
    priority = 30
    description = (
        "im2col (col2im gather for transposed) + register-tiled GEMM per group, chunked workspace"
    )

    def __init__(self) -> None:
        self.pool = WorkspacePool()

    def workspace_bytes(self, spec: ConvSpec, device: Device) -> int:
        """The column workspace of one chunk (0 for pointwise specs that read x directly;
        an input view whose offset breaks vector alignment still takes the column path)."""
        if (
            not isinstance(device, OpenCLDevice)
            or spec.batch == 0
            or reads_input_directly(spec, device)
            or transposes_weight(spec, device)
        ):
            return 0
        return chunk_plan(spec, device).elems() * compute_itemsize(spec)

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        common = self.common_support(spec, device)
        if not common:
            return common
        ws = self.workspace_bytes(spec, device)
        max_alloc = getattr(device, "max_alloc_bytes", 0)
        return first_failure(
            (
                ws // compute_itemsize(spec) > INT32_MAX,
                "the workspace needs more than 2**31 elements",
            ),
            (
                0 < max_alloc < ws,
                "the smallest workspace chunk exceeds the device's max allocation size",
                "memory",
            ),
        )

    #: Fraction of peak the GEMM reaches on large, square-ish shapes (cost model).
    gemm_base = 0.55

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        plan = chunk_plan(spec, device)
        k = math.prod(spec.kernel)
        item = compute_itemsize(spec)
        if spec.transposed:
            n_chunks = sum(1 for _ in plan.image_chunks()) * sum(1 for _ in plan.channel_chunks())
            m, n, kk = spec.out_per_group * k, spec.batch * math.prod(spec.in_size), spec.in_per_group
            cols = spec.batch * spec.out_channels * k * math.prod(spec.in_size) * item
            launches = 3 * n_chunks
        else:
            n_chunks = sum(1 for _ in plan.chunks())
            m, n, kk = spec.out_per_group, spec.batch * math.prod(spec.out_size), spec.in_per_group * k
            if transposes_weight(spec, device):  # one GEMM launch, no columns
                cols, launches = 0, 1
            else:
                cols = 0 if reads_input_directly(spec, device) else spec.batch * spec.in_channels * k * math.prod(spec.out_size) * item
                launches = 2 * n_chunks
        eff = gemm_efficiency(m, n, kk, self.gemm_base)
        if spec.groups > 1:  # per-group GEMMs are smaller and less regular
            eff *= 0.5
        if spec.transposed:
            # The GEMM and col2im's gather run one after the other, not overlapped (a single
            # roofline predicted 1.7-3.3x too little on DCGAN/FCN layers, PoCL, Zen 5): the
            # columns' traffic (written, then gathered with poor locality: ~3 passes) is added
            # to the GEMM's time, folded into the efficiency.
            prof = profile(device)
            peak = prof.peak_gflops * 1e9
            gemm_s = spec.flops / max(peak * eff, 1.0)
            cols_s = 3 * cols / max(prof.bandwidth_gbs * 1e9, 1.0)
            eff = spec.flops / max(peak * (gemm_s + cols_s), 1.0)
        return Cost(spec.flops, io_bytes(spec) + 2 * cols, launches + self.host_launches(device), eff)

    def variants(self, spec: ConvSpec, device: Device) -> list[dict[str, Any]]:
        """GEMM tiles worth measuring (:func:`tilings`), the default first."""
        return [t.params() for t in tilings(spec, device)]

    def describe_params(self, params: dict[str, Any]) -> str:
        t = Tiling.from_params(params)
        return f"{t.tm}x{t.tn} (VW {t.vw} x NV {t.nv}), local {t.local[0]}x{t.local[1]}"

    def prepare(self, spec: ConvSpec, device: Device, params: dict[str, Any] | None = None) -> Kernel:
        """A kernel with the GEMM tile ``params`` (one of :meth:`variants`), or the default tile.
        The workspace follows the tile (its width rounds the chunks); ``workspace_bytes``
        reports the default tile's, which differs by less than one tile width per row."""
        tile = Tiling.from_params(params) if params else tiling(spec, device)
        if transposes_weight(spec, device):
            return PointwiseKernel(spec, device, self, tile)
        return Im2colKernel(spec, device, self, tile)
