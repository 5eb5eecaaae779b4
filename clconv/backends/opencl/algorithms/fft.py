"""fft: convolution by FFT for large kernels (kernels_cl/fft.cl).

Every spec is computed as a linear convolution on an FFT grid, one power-of-two size per
spatial dim, chosen as small as the outputs allow (:func:`fft_plan`; "same" padding needs
input + span/2, not input + span - 1):

- conv, zero padding: the grid holds x as is; the kernel goes in flipped and dilated;
  output o reads grid position ``o * stride + span - 1 - pad_before``. Any amount of
  padding, asymmetric too: an output whose taps all miss the input (padding, dilation
  holes) is exactly the bias (:func:`output_hits`), never the transform's rounding noise.
- conv, reflect/replicate/circular padding: the load maps grid positions through the
  padding mode (the grid holds the padded input; there is no separate padding pass).
- stride: the stride-1 result is computed and subsampled. Only the grid rows an output
  reads are inverse-transformed along the last dim, but the other transforms and the
  frequency-domain product cost what they cost at stride 1 (:meth:`FFT.cost` counts that).
- conv_transpose: a full convolution of the input, with ``stride - 1`` zeros inserted by
  the load's index map, and the unflipped dilated kernel, then cropped by the padding;
  output_padding positions past the full result are the bias.
- groups: the product runs per group. float32 and float64 compute in their own precision
  (complex float/double); float16 is stored as half and computed in float. 1D, 2D, 3D.

Per chunk of images: ``rfft_rows`` (real FFT along the last dim: an N2/2-point complex
Stockham FFT, radix 4 with one radix-2 pass when needed, in local memory, one work-group
per row, then the split into N2/2 + 1 bins), ``fft_cols`` along the other dims (one
work-item per VEC adjacent columns, in place: DIF forward, the mirrored DIT inverse, so the
digit-reversed frequency order never needs undoing: the product is pointwise), ``cgemm``
(a complex GEMM over C_in per frequency, BN images x BCO output channels x VEC frequencies
per work-item, plain a*b+c), ``fft_cols`` inverse, ``irfft_rows_crop`` (inverse rows,
crop, subsample, bias, store). Index maps along the last dim come from a host-made table
(:func:`source_index`). The row kernels' work-group size is a build macro (one radix-4
butterfly per work-item, up to 256), so every region between barriers has a compile-time
trip count: PoCL then vectorizes across work-items (2-3x faster than a runtime loop).

NaN/Inf: a non-finite input or weight reaches every frequency, so an output the FFT made
non-finite is recomputed by the direct sum in the last kernel (direct.cl's loop): NaN and
Inf land exactly where the direct algorithm puts them, and the rest stays exact.

Weight spectra are computed once per weight and cached in the kernel object (at most
:data:`WEIGHT_CACHE_ENTRIES`, least recently used out; :mod:`..weightcache`: NumPy weights
found by content with memcmp, pyopencl weights by buffer), scaled by 1/(4 N0 N1 N2) so that
no normalization pass is needed. **A pyopencl weight changed in place keeps its old
spectra**: pass a new array, or call :meth:`FFTKernel.clear_filter_cache`.
``filter_transforms`` and ``filter_cache_hits`` count misses and hits. The weight transform
runs in the workspace, a few output channels at a time, and finishes the queue once (another
queue may use the spectra next).

The workspace (the input and output spectra of a chunk of images) is bounded by
:data:`WORKSPACE_BUDGET` (one image at least) and reused across calls, one buffer per
queue; :meth:`FFT.workspace_bytes` reports it plus the cached weight spectra. A row
transform that does not fit in local memory is declined with the reason ("capability").
Deterministic: fixed reduction order, no atomics.

Measured on PoCL 3.1, 2 shared Zen 5 cores, float32, batch 1, pyopencl arrays in and out
(medians, noisy): conv2d 16x64x64 * 16x16x15x15: ~1.2 ms (OpenCL im2col ~7.3 ms);
8x128x128 * 8x8x31x31: ~1.8 ms (im2col 40-85 ms); 4x64x64 * 4x4x11x11: ~0.5 ms (im2col
~0.65 ms); conv1d 8x4096 * 8x8x129: ~0.75 ms (im2col ~0.75-1.0 ms); a 3x3 64->64 56x56
layer: ~6 ms (im2col ~0.8-1.6 ms): there the weight spectra (75 MB) are streamed per call.
Normwise error vs the float64 reference ~2e-7 in float32.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ....backend import Device, Kernel, Support, first_failure
from ....costmodel import Cost, io_bytes
from ....spec import ConvSpec
from .. import runtime
from ..base import INT32_MAX, OpenCLAlgorithm, round_up, spatial3, WorkspacePool
from ..runtime import OpenCLDevice, cl, cl_array
from ..weightcache import CachedWeightKernel, FilterEntry

_MODE = {"zeros": 0, "reflect": 1, "replicate": 2, "circular": 3}

#: Upper bound on the per-call workspace (spectra of a chunk of images), in bytes;
#: module-level so tests can shrink it and force chunking. One image always fits.
WORKSPACE_BUDGET = 64 * 2**20

#: Weight spectra kept per kernel (least recently used first out).
WEIGHT_CACHE_ENTRIES = 2

#: Local memory the row transforms may use, as a fraction of the device's.
LOCAL_MEM_FRACTION = 0.75

#: Work-items per row transform at most, and local size of the 1-D kernels.
_ROW_LOCAL = 256
_LOCAL_1D = 8

#: Cost-model efficiencies (fractions of peak FLOP/s) of the transforms and of the
#: frequency-domain GEMM's arithmetic, fitted to PoCL 3.1 on 2 Zen 5 cores (estimated peak
#: 332 GFLOP/s): the transforms reach 11-25 GFLOP/s (small grids and long 1D rows at the
#: low end); the GEMM streams the weight spectra at batch 1 and is bandwidth-bound.
_EFF_FFT = 0.045
_EFF_GEMM = 0.2


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class Dim:
    """One spatial dim of the FFT grid (3 per plan; leading dims of 1D/2D are trivial)."""

    n: int  # FFT size
    load: tuple[int, int, int, int, int]  # input map (flip, off, up, lim, size), see grid_src
    wload: tuple[int, int, int, int, int]  # weight map
    rs: int  # output o reads grid position o * rs + ro
    ro: int
    rl: int  # positions of the linear convolution: [0, rl) (sizes the grid)


@dataclass(frozen=True)
class FFTPlan:
    dims: tuple[Dim, Dim, Dim]
    vec: int  # frequencies per vector (cgemm, fft_cols)
    bn: int  # cgemm images per work-item
    bco: int  # cgemm output channels per work-item
    cogp: int  # output channels per group, padded to bco
    images: int  # images per chunk
    esize: int  # bytes of a spectrum element (float or double)
    row_cap: int = _ROW_LOCAL  # most work-items of a row transform

    @property
    def sizes(self) -> tuple[int, int, int]:
        return tuple(d.n for d in self.dims)  # type: ignore[return-value]

    @property
    def h(self) -> int:
        return self.dims[2].n // 2

    @property
    def p2(self) -> int:
        return round_up(self.h + 1, self.vec)

    @property
    def s(self) -> int:
        """Spectrum values (per plane) of one channel."""
        return self.dims[0].n * self.dims[1].n * self.p2

    @property
    def row_local(self) -> int:
        """Work-items of a row transform: one radix-4 butterfly each (H/4), at most _ROW_LOCAL."""
        return max(1, min(self.row_cap, self.h // 4))

    @property
    def local_mem(self) -> int:
        return 2 * self.h * 2 * self.esize

    def chunk_elems(self, spec: ConvSpec, images: int | None = None) -> int:
        """Workspace values of a chunk: input and output spectra."""
        k = self.images if images is None else images
        return k * (spec.in_channels + spec.out_channels) * 2 * self.s

    def workspace_elems(self, spec: ConvSpec) -> int:
        """The workspace: the chunk's input spectra (padded to 64 values), its output spectra;
        at least one output channel's weight spectra (the weight transform runs in it)."""
        x = round_up(self.images * spec.in_channels * 2 * self.s, 64)
        return max(x + self.images * spec.out_channels * 2 * self.s, spec.in_per_group * 2 * self.s)

    def weight_elems(self, spec: ConvSpec) -> int:
        """Values of the cached (blocked) weight spectra."""
        return spec.groups * spec.in_per_group * self.cogp * 2 * self.s


def _dim(spec: ConvSpec, i: int) -> tuple[int, tuple, tuple, int, int, int]:
    """(minimum grid size, input map, weight map, rs, ro, rl) of spatial dim i."""
    n_in, k, s, d = spec.in_size[i], spec.kernel[i], spec.stride[i], spec.dilation[i]
    pb, pa, o_n = spec.pad_before[i], spec.pad_after[i], spec.out_size[i]
    span = d * (k - 1) + 1
    if spec.transposed:  # full convolution of zero-inserted x with the unflipped kernel
        lim = (n_in - 1) * s + 1
        load = (0, 0, s, lim, n_in)
        wload = (0, 0, d, span, k)
        rs, ro = 1, pb
    elif spec.padding_mode == "zeros":  # correlation: the kernel flipped into the grid
        lim = n_in
        load = (0, 0, 1, lim, n_in)
        wload = (1, span - 1, d, span, k)
        rs, ro = s, span - 1 - pb
    else:  # the grid holds the padded input, through the padding mode's index map
        lim = n_in + pb + pa
        load = (0, pb, 1, lim, n_in)
        wload = (1, span - 1, d, span, k)
        rs, ro = s, span - 1
    rl = lim + span - 1  # positions of the linear convolution
    # The outputs that read the grid (others are the bias) read positions r_min..r_max;
    # a circular convolution of size N gives them exactly when nothing aliases onto them.
    o_lo = (-ro + rs - 1) // rs if ro < 0 else 0
    o_hi = min(o_n - 1, (rl - 1 - ro) // rs) if rl - 1 - ro >= 0 else -1
    if o_lo <= o_hi:
        r_min, r_max = o_lo * rs + ro, o_hi * rs + ro
        need = max(lim, r_max + 1, lim + span - 1 - r_min)
    else:  # every output is in the padding
        need = lim
    return need, load, wload, rs, ro, rl


def _vec(spec: ConvSpec, device: Device, h: int) -> int:
    """Frequencies per vector: the device's native vector width on CPUs, narrowed while the
    row padding (N2/2 + 1 rounded up to it) would waste more than 1/8; 1 elsewhere."""
    if device.kind != "cpu":
        return 1
    extra = getattr(device, "extra", {}) or {}
    width = int(extra.get("native_vector_width_float", 0) or extra.get("preferred_vector_width_float", 0) or 4)
    if spec.dtype == "float64":
        width //= 2
    v = 1
    while v * 2 <= min(width, 16):
        v *= 2
    while v > 1 and round_up(h + 1, v) * 8 > (h + 1) * 9:
        v //= 2
    return v


def fft_plan(spec: ConvSpec, device: Device) -> FFTPlan:
    """The grid sizes, index maps, vector width, GEMM block and chunking of a spec."""
    nd = spec.ndim
    dims = []
    for i in range(3):
        j = i - (3 - nd)
        if j < 0:
            dims.append(Dim(1, (0, 0, 1, 1, 1), (0, 0, 1, 1, 1), 1, 0, 1))
            continue
        need, load, wload, rs, ro, rl = _dim(spec, j)
        n = _pow2(max(need, 2 if i == 2 else 1))
        dims.append(Dim(n, load, wload, rs, ro, rl))
    esize = 8 if spec.dtype == "float64" else 4
    h = dims[2].n // 2
    vec = _vec(spec, device, h)
    cog = spec.out_per_group
    bco = 8 if cog >= 8 else _pow2(cog)
    bn = 2 if spec.batch >= 2 and bco <= 4 else 1
    cogp = round_up(cog, bco)
    row_cap = max(1, min(_ROW_LOCAL, int(getattr(device, "max_work_group_size", 1) or 1)))
    p = FFTPlan(tuple(dims), vec, bn, bco, cogp, 1, esize, row_cap)  # type: ignore[arg-type]
    per_image = p.chunk_elems(spec, 1) * esize
    images = max(1, min(max(spec.batch, 1), budget_bytes(device) // max(per_image, 1)))
    return FFTPlan(tuple(dims), vec, bn, bco, cogp, images, esize, row_cap)  # type: ignore[arg-type]


def budget_bytes(device: Device) -> int:
    max_alloc = getattr(device, "max_alloc_bytes", 0)
    return min(WORKSPACE_BUDGET, max_alloc // 4) if max_alloc else WORKSPACE_BUDGET


_twiddle_lock = threading.Lock()
_twiddles: dict[tuple[int, int, int], Any] = {}


def twiddles(ctx: Any, n: int, dtype: str) -> Any:
    """A device buffer of exp(-2 pi i k / n), k < n, interleaved (re, im), float64-accurate."""
    real = np.float64 if dtype == "float64" else np.float32
    key = (ctx.int_ptr, n, np.dtype(real).itemsize)
    with _twiddle_lock:
        buf = _twiddles.get(key)
        if buf is None:
            k = np.arange(max(n, 1), dtype=np.float64)
            ang = -2.0 * np.pi * k / max(n, 1)
            # exact values at multiples of pi/2 keep symmetric inputs symmetric
            c, s = np.cos(ang), np.sin(ang)
            c[np.abs(c) < 1e-15], s[np.abs(s) < 1e-15] = 0.0, 0.0
            host = np.empty((max(n, 1), 2), dtype=real)
            host[:, 0], host[:, 1] = c, s
            buf = cl.Buffer(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=host)
            _twiddles[key] = buf
        return buf


class FFTKernel(CachedWeightKernel):
    """One spec on one device, with the spectra of the weights it has seen."""

    algorithm: FFT
    filter_cache_entries = WEIGHT_CACHE_ENTRIES

    def __init__(self, spec: ConvSpec, device: Device, algorithm: FFT):
        super().__init__(spec, device, algorithm)
        self.plan = fft_plan(spec, device)
        self._tables: dict[tuple[int, Any], Any] = {}
        self._tables_lock = threading.Lock()  # not self._lock: the weight transform, under it, reads tables

    def _table(self, ctx: Any, name: Any, make: Any) -> Any:
        """A small read-only device table made on the host once per context."""
        with self._tables_lock:
            buf = self._tables.get((ctx.int_ptr, name))
            if buf is None:
                host = np.ascontiguousarray(make())
                buf = cl.Buffer(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=host)
                self._tables[(ctx.int_ptr, name)] = buf
            return buf

    def _hits(self, ctx: Any) -> Any:
        return self._table(ctx, "hits", lambda: output_hits(self.spec))

    # ---------------------------------------------------------------- weights
    def _transform(self, queue: Any, weight: Any, host: np.ndarray | None) -> FilterEntry:
        """The weight spectra of a new weight (cached by CachedWeightKernel), made in the
        workspace (a NumPy weight is uploaded first; the entry keeps a host copy of it)."""
        s, p = self.spec, self.plan
        if host is None:
            w_dev = weight
        else:
            w_dev = cl_array.to_device(queue, host)
            host = host.copy()
        need = p.workspace_elems(s)
        with self.algorithm.pool.hold(queue, need * p.esize) as ws:
            buf = self._transform_weight(queue, self._program(queue.context, s.bias), w_dev, ws, need)
        nbytes = p.weight_elems(s) * p.esize + (0 if host is None else 2 * host.nbytes)
        return FilterEntry(buf, w_dev, host, queue, cl.enqueue_marker(queue), nbytes)

    def _transform_weight(self, queue: Any, prog: Any, w: Any, ws: Any, ws_elems: int) -> Any:
        """The blocked weight spectra, made in the workspace a few output channels at a time."""
        s, p = self.spec, self.plan
        i32 = np.int32
        cig, cog = s.in_per_group, s.out_per_group
        out = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, max(p.weight_elems(s) * p.esize, 64))
        ksz = math.prod(s.kernel)
        # 1/(4 N): the transforms are unnormalized and the real split skips two halves
        scale = 1.0 / (4 * math.prod(p.sizes))
        step = max(1, min(s.out_channels, ws_elems // (cig * 2 * p.s)))
        total = s.groups * (p.s // p.vec) * cig * p.cogp
        for c0 in range(0, s.out_channels, step):
            c1 = min(s.out_channels, c0 + step)
            nb = (c1 - c0) * cig
            self._rows(queue, prog, w, nb, ws, int(s.transposed), ksz, spatial3(s.kernel, 1), 0,
                       [d.wload for d in p.dims], scale,
                       src_elem_off=0 if s.transposed else c0 * cig * ksz, wfirst=c0 * cig)
            self._cols(queue, prog, ws, nb, inverse=False)
            runtime.launch(queue, prog, "w_block", (round_up(total, _LOCAL_1D),), (_LOCAL_1D,),
                           ws, out, i32(p.s), i32(cig), i32(cog), i32(p.cogp), i32(total), i32(c0), i32(c1))
        # Another queue of this context may use the cached spectra next: finish them now
        # (once per weight), so that no call can read them half-made.
        queue.finish()
        return out

    # ---------------------------------------------------------------- launches
    def _rows(self, queue: Any, prog: Any, src: Any, nb: int, dst: Any, wmode: int, chan_stride: int,
              sizes: tuple[int, int, int], mode: int, maps: list[tuple], scale: float,
              src_elem_off: int = 0, dst_off: int = 0, wfirst: int = 0) -> None:
        s, p = self.spec, self.plan
        i32 = np.int32
        real = np.float64 if s.dtype == "float64" else np.float32
        sbuf, soff = self.buf(src)
        n0, n1, n2 = p.sizes
        args = [sbuf, i32(int(soff) + src_elem_off), dst, i32(dst_off), twiddles(queue.context, n2, s.dtype),
                i32(n0), i32(n1), i32(p.p2), i32(p.s),
                i32(wmode), i32(wfirst), i32(chan_stride), i32(s.in_per_group), i32(s.out_per_group),
                *(i32(v) for v in sizes), i32(mode)]
        for m in maps[:2]:
            args += [i32(v) for v in m[:4]]
        args += [self._table(queue.context, ("src2", maps[2], mode), lambda: source_index(maps[2], n2, mode)),
                 real(scale)]
        rows = nb * n0 * n1
        ls = p.row_local
        runtime.launch(queue, prog, "rfft_rows", (rows * ls,), (ls,), *args)

    def _cols(self, queue: Any, prog: Any, data: Any, nb: int, inverse: bool, off: int = 0) -> None:
        p = self.plan
        i32 = np.int32
        n0, n1, _ = p.sizes
        passes = []
        if n1 > 1:  # dim 1: columns (b, i0, k-vector), elements P2 apart
            passes.append((n1, p.p2, p.p2 // p.vec, n0, n1 * p.p2))
        if n0 > 1:  # dim 0: columns (b, i1 and k together), elements N1*P2 apart
            passes.append((n0, n1 * p.p2, n1 * p.p2 // p.vec, 1, 0))
        if inverse:
            passes.reverse()
        for n, stride, inner, outer, ostride in passes:
            total = nb * outer * inner
            runtime.launch(
                queue, prog, "fft_cols", (round_up(total, _LOCAL_1D),), (_LOCAL_1D,),
                data, i32(off), i32(p.s), i32(n), i32(stride), i32(inner), i32(outer), i32(ostride),
                i32(total), twiddles(queue.context, n, self.spec.dtype), i32(int(inverse)),
            )

    def _program(self, ctx: Any, has_bias: bool) -> Any:
        s, p = self.spec, self.plan
        return self.program(ctx, "fft.cl", {
            "FFT_H": p.h, "ROW_LS": p.row_local, "VEC": p.vec, "BN": p.bn, "BCO": p.bco,
            "PADDING_MODE": _MODE[s.padding_mode], "TRANSPOSED": int(s.transposed),
            "HAS_BIAS": int(has_bias),
        })

    def _launch(self, queue: Any, x: Any, entry: FilterEntry, b: Any, y: Any) -> None:
        s, p = self.spec, self.plan
        if p.local_mem > self.device.local_mem_bytes:  # supports() declines this; never build it
            runtime.check_capabilities(self.device, local_mem=p.local_mem)
        prog = self._program(queue.context, b is not None)
        i32 = np.int32
        cig, cog = s.in_per_group, s.out_per_group
        isz = math.prod(s.in_size)
        x_buf, x_off = self.buf(x)
        w_buf, w_off = self.buf(entry.w_dev)
        y_buf, y_off = self.buf(y)
        bias = [*self.buf(b)] if b is not None else [None, i32(0)]
        _, n1, n2 = p.sizes
        o3 = spatial3(s.out_size, 1)
        geometry = [i32(v) for t, fill in (
            (s.in_size, 1), (s.kernel, 1), (s.stride, 1), (s.dilation, 1), (s.pad_before, 0),
        ) for v in spatial3(t, fill)]
        y_region = round_up(p.images * s.in_channels * 2 * p.s, 64)
        need = p.workspace_elems(s)
        with self.algorithm.pool.hold(queue, need * p.esize) as ws:
            wspec = entry.u
            for first in range(0, s.batch, p.images):
                k = min(p.images, s.batch - first)
                # forward transforms of the chunk's images into the X region
                self._rows(queue, prog, x, k * s.in_channels, ws, 0, isz, spatial3(s.in_size, 1),
                           _MODE[s.padding_mode], [d.load for d in p.dims], 1.0,
                           src_elem_off=first * s.in_channels * isz)
                self._cols(queue, prog, ws, k * s.in_channels, inverse=False)
                # frequency-domain product into the Y region
                runtime.launch(
                    queue, prog, "cgemm",
                    (round_up(p.s // p.vec, _LOCAL_1D), s.groups * (p.cogp // p.bco), -(-k // p.bn)),
                    (_LOCAL_1D, 1, 1),
                    ws, i32(0), wspec, ws, i32(y_region),
                    i32(p.s), i32(cig), i32(cog), i32(p.cogp), i32(s.in_channels), i32(s.out_channels), i32(k),
                )
                self._cols(queue, prog, ws, k * s.out_channels, inverse=True, off=y_region)
                rows = k * s.out_channels * o3[0] * o3[1]
                ls = p.row_local
                runtime.launch(
                    queue, prog, "irfft_rows_crop", (rows * ls,), (ls,),
                    ws, i32(y_region), twiddles(queue.context, n2, s.dtype),
                    i32(n1), i32(p.p2), i32(p.s),
                    y_buf, y_off, *bias, x_buf, x_off, w_buf, w_off,
                    i32(first), i32(s.in_channels), i32(s.out_channels), i32(s.groups),
                    *(i32(v) for v in o3),
                    *(i32(d.rs) for d in p.dims), *(i32(d.ro) for d in p.dims), self._hits(queue.context),
                    *geometry,
                )


def _pad_index(i: np.ndarray, n: int, mode: int) -> np.ndarray:
    """clconv_pad_index of common.h, vectorized: the input index a padded index reads, or -1."""
    inside = (i >= 0) & (i < n)
    if mode == _MODE["zeros"]:
        out = np.full_like(i, -1)
    elif mode == _MODE["reflect"]:
        out = np.where(i < 0, -i, 2 * (n - 1) - i)
    elif mode == _MODE["replicate"]:
        out = np.where(i < 0, 0, n - 1)
    else:
        out = np.where(i < 0, i + n, i - n)
    return np.where(inside, i, out).astype(np.int32)


def source_index(m: tuple[int, int, int, int, int], n: int, mode: int) -> np.ndarray:
    """grid_src of fft.cl for grid positions 0..n-1 of one dim: the source index or -1."""
    flip, off, up, lim, size = m
    p = np.arange(n, dtype=np.int64)
    t = off - p if flip else p - off
    ok = p < lim
    if up > 1:
        ok &= (t >= 0) & (t % up == 0)
        t = np.where(ok, t // up, 0)
    src = _pad_index(t, size, mode)
    return np.where(ok, src, -1).astype(np.int32)


def output_hits(spec: ConvSpec) -> np.ndarray:
    """Per spatial dim (padded to 3, concatenated), whether output index o has a kernel tap
    that reaches the input. An output that misses along some dim sums no input at all."""
    parts = []
    for i in range(3):
        j = i - (3 - spec.ndim)
        if j < 0:
            parts.append(np.ones(1, np.uint8))
            continue
        n_in, k, s, d = spec.in_size[j], spec.kernel[j], spec.stride[j], spec.dilation[j]
        pb, o_n = spec.pad_before[j], spec.out_size[j]
        hit = np.zeros(o_n, np.uint8)
        for tap in range(k):
            if spec.transposed:  # o + pb = i * s + tap * d, 0 <= i < n_in
                start = tap * d - pb
                first = start if start >= 0 else start + (-start + s - 1) // s * s
                hit[first: max(start + (n_in - 1) * s + 1, 0): s] = 1
            elif spec.padding_mode != "zeros":  # every tap reads the (padded) input
                hit[:] = 1
                break
            else:  # 0 <= o * s - pb + tap * d < n_in
                lo = pb - tap * d
                first = max(0, -(-lo // s))
                last = (lo + n_in - 1) // s
                if last >= first:
                    hit[first: last + 1] = 1
        parts.append(hit)
    return np.concatenate(parts)


class FFT(OpenCLAlgorithm):
    id = "fft"
    family = "fft"
    priority = 40
    description = "FFT convolution (own radix-4/2 kernels), weight spectra cached per weight"

    def __init__(self) -> None:
        self.pool = WorkspacePool()

    def supports(self, spec: ConvSpec, device: Device) -> Support:
        common = self.common_support(spec, device)
        if not common:
            return common
        p = fft_plan(spec, device)
        max_alloc = getattr(device, "max_alloc_bytes", 0)
        local = getattr(device, "local_mem_bytes", 0)
        biggest = max(p.workspace_elems(spec), p.weight_elems(spec))
        return first_failure(
            (p.local_mem > local * LOCAL_MEM_FRACTION,
             (f"a row transform of {2 * p.h} points needs {p.local_mem} bytes of local memory; "
              f"the device has {local}"), "capability"),
            (biggest > INT32_MAX, f"a spectrum buffer needs {biggest} elements; kernels index with 32-bit ints",
             "size"),
            (0 < max_alloc < biggest * p.esize,
             "a spectrum buffer exceeds the device's max allocation size", "memory"),
        )

    def workspace_bytes(self, spec: ConvSpec, device: Device) -> int:
        """The chunk's spectra, plus the cached weight spectra (held between calls)."""
        if not isinstance(device, OpenCLDevice) or spec.batch == 0:
            return 0
        p = fft_plan(spec, device)
        return (p.workspace_elems(spec) + p.weight_elems(spec)) * p.esize

    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        return FFTKernel(spec, device, self)

    def cost(self, spec: ConvSpec, device: Device) -> Cost:
        """Transforms (2.5 N log2 N real FLOPs per real transform of an N-point grid, at
        :data:`_EFF_FFT` of peak), the complex GEMM (8 FLOPs per complex multiply-add, at
        :data:`_EFF_GEMM`, or the time to stream the weight spectra and the chunk's spectra
        once, when that is longer: at batch 1 it is), and the launches. The kernels run one
        after another, so the time is the transforms' plus the GEMM's; ``efficiency`` is the
        fraction of peak that makes ``flops / (peak * efficiency)`` equal that sum. The weight
        transform runs once per weight and is not counted."""
        from ....costmodel import profile

        p = fft_plan(spec, device)
        prof = profile(device)
        peak = prof.peak_gflops * 1e9 * (0.5 if spec.dtype == "float64" else 1.0)
        n0, n1, n2 = p.sizes
        grid = n0 * n1 * n2
        transforms = spec.batch * (spec.in_channels + spec.out_channels)
        fft_flops = 2.5 * grid * math.log2(max(grid, 2)) * transforms
        gemm_flops = 8.0 * spec.batch * spec.out_channels * spec.in_per_group * p.s
        chunks = -(-max(spec.batch, 1) // p.images)
        spectra = spec.batch * (spec.in_channels + spec.out_channels) * 2 * p.s * p.esize
        gemm_bytes = p.weight_elems(spec) * p.esize * chunks + spectra
        t_gemm = max(gemm_flops / (peak * _EFF_GEMM), gemm_bytes / (prof.bandwidth_gbs * 1e9))
        t = fft_flops / (peak * _EFF_FFT) + t_gemm
        flops = fft_flops + gemm_flops
        col_dims = (n0 > 1) + (n1 > 1)
        moved = io_bytes(spec) + spectra * (2 + 2 * col_dims) + gemm_bytes
        launches = chunks * (3 + 2 * col_dims) + self.host_launches(device)
        return Cost(flops, moved, launches, flops / max(peak * t, 1e-30))
