/* depthwise: convolution with groups == C_in, each input channel feeding MULT
 * output channels (C_out = MULT * C_in). Non-transposed; 1D and 2D run as 3D
 * with leading size-1 dims.
 *
 * Layout: x (N, C_in, ID, IH, IW), w (C_out, 1, KD, KH, KW), y (N, C_out, OD, OH, OW),
 *   all C-contiguous. Output channel co reads input channel co / MULT.
 *
 * Algorithm: a work-item computes a tile of MB output channels (which share one
 *   input channel) x RH output rows at one output depth, along W. The tile
 *   needs JR input rows per depth tap; each input value it loads feeds every
 *   product it takes part in, up to MB * RH of them. Kernel size, stride,
 *   dilation, padding and the tile are compile-time constants: every tap loop
 *   unrolls and the weights sit in registers. Each output is one sum in the
 *   fixed tap order (kd, kh, kw), then the bias: deterministic, no atomics.
 *
 * Two forms of that computation (-D ROW_LOOP):
 *   1 (CPUs): a work-item walks WCH outputs along W in a loop, which CPU
 *     compilers vectorize along W. It first copies the JR input rows it needs
 *     into its own slice of local memory, padded (every padding mode) and, for
 *     stride SW > 1, split by phase (column mod SW). The loop then reads
 *     consecutive elements for every tap and has no padding logic at all; it
 *     runs a multiple of VECW outputs (masked stores, no scalar remainder).
 *     float16 is converted with integer arithmetic there (vectorizable), not
 *     with vload_half/vstore_half_rte, which PoCL leaves as calls.
 *     Launch: global (round_up(OD * (OH / RH) * ceil(OW / WCH), LX), N * C_in * MULT / MB),
 *     local (LX, LY) (LY > 1 takes several channels per group when a plane has few
 *     work-items); the local buffer holds LX * LY * KD * JR * SW * WPMAX elements of ACC,
 *     and the last argument is DW again (see `tap` in the kernel).
 *   0 (GPUs): a work-item computes VW adjacent outputs along W, so adjacent
 *     work-items read adjacent inputs (coalesced). Zero padding is a select on
 *     the load, never a branch. Launch: global (round_up(ceil(OW / VW), LX),
 *     round_up(OD * (OH / RH), LY), N * C_in * MULT / MB), local (LX, LY, 1).
 *
 * Macros: CLCONV_DTYPE (common.h), PADDING_MODE (0..3), HAS_BIAS (0/1), MULT,
 *   MB (divides MULT), KD KH KW, SD SH SW, DD DH DW, PD PH PW (padding before),
 *   RH (divides OH), ROW_LOOP (0/1); WCH and VECW when ROW_LOOP, VW otherwise.
 */
#include "common.h"

#define KK (KD * KH * KW)
/* Input rows one tile of RH output rows spans, per depth tap. */
#define JR ((RH - 1) * SH + (KH - 1) * DH + 1)

/* Whether tile row r reads input row j through tap kh (a constant once loops unroll). */
#define TAKES(r, kh, j) ((r) * SH + (kh) * DH == (j))

/* Whether any tile row reads input row j: a constant once the loops unroll. */
CLCONV_INLINE bool dw_row_used(const int j) {
    bool used = false;
#pragma unroll
    for (int r = 0; r < RH; ++r) {
#pragma unroll
        for (int kh = 0; kh < KH; ++kh) used = used || TAKES(r, kh, j);
    }
    return used;
}

#if ROW_LOOP

/* Columns of the chunk beyond WCH that the taps reach, in elements of one phase. */
#define QMAX (((KW - 1) * DW) / SW)
/* The loop along W runs a multiple of VECW outputs and stores only the real ones. */
#define WVEC ((WCH + VECW - 1) / VECW * VECW)
/* Elements of one phase row of the stage. */
#define WPMAX (WVEC + QMAX)

#if CLCONV_DTYPE == 16
/* float16 storage, converted with integer arithmetic that the loop vectorizer
 * handles, where vload_half/vstore_half_rte would be calls that stop it (PoCL).
 * Exact half -> float; float -> half rounds to nearest even, as vstore_half_rte. */
CLCONV_INLINE float dw_half_to_float(const ushort h) {
    const uint sign = (uint)(h & 0x8000) << 16;
    const uint e = (h >> 10) & 0x1f;
    const uint m = h & 0x3ff;
    const uint normal = sign | ((e + 112) << 23) | (m << 13);
    const uint special = sign | 0x7f800000 | (m << 13);           /* inf, nan */
    const uint sub = sign | as_uint((float)m * 0x1p-24f);        /* zero, subnormal: exact */
    return as_float(e == 31 ? special : (e == 0 ? sub : normal));
}

CLCONV_INLINE ushort dw_float_to_half(const float f) {
    const uint bits = as_uint(f);
    const uint sign = (bits >> 16) & 0x8000;
    const uint a = bits & 0x7fffffff;
    /* subnormal or zero result: adding 0.5 aligns the mantissa so the FPU's own
     * round-to-nearest-even does the rounding (F. Giesen, float_to_half_fast3_rtne) */
    const uint sub = as_uint(as_float(a) + 0.5f) - 0x3f000000;
    /* normal result: rebias the exponent, round to nearest even on bit 13 */
    const uint normal = (a + 0xc8000fff + ((a >> 13) & 1)) >> 13;
    uint h = a < 0x38800000 ? sub : normal;
    h = a >= 0x47800000 ? (a > 0x7f800000 ? 0x7e00 : 0x7c00) : h;   /* nan, overflow to inf */
    return (ushort)(h | sign);
}

#define XLOAD(p, i) dw_half_to_float(((__global const ushort*)(p))[i])
#define YSTORE(v, p, i) (((__global ushort*)(p))[i] = dw_float_to_half(v))
#else
#define XLOAD(p, i) LOAD(p, i)
#define YSTORE(v, p, i) STORE(v, p, i)
#endif

/* Element i of every phase row of a stage row: input columns base + SW * i + p
 * of row xrow, mapped through the padding mode, and clamped, since the stage
 * of a row's last chunk may run past the padded row (those elements are never used). */
CLCONV_INLINE void dw_stage_edge(__local ACC* row, __global const T* x, const int xrow,
                          const int base, const int i, const int IW) {
#pragma unroll
    for (int p = 0; p < SW; ++p) {
        const int c = base + SW * i + p;
        ACC v;
        if (PADDING_MODE == PAD_ZEROS) v = (c >= 0 && c < IW) ? XLOAD(x, xrow + c) : (ACC)0;
        else v = XLOAD(x, xrow + clamp(clconv_pad_index(c, IW, PADDING_MODE), 0, IW - 1));
        row[p * WPMAX + i] = v;
    }
}

/* Fill elements [0, wp) of one stage row from input row xrow, or with zeros for
 * a row outside the input (zero padding). Elements [ilo, ihi) are inside the
 * row in every phase: a plain copy, which the compiler vectorizes. */
CLCONV_INLINE void dw_stage_row(__local ACC* row, __global const T* x, const int xrow,
                         const bool zero, const int base, const int wp, const int ilo, const int ihi,
                         const int IW) {
    if (zero) {
        for (int i = 0; i < wp; ++i) {
#pragma unroll
            for (int p = 0; p < SW; ++p) row[p * WPMAX + i] = 0;
        }
        return;
    }
    for (int i = 0; i < ilo; ++i) dw_stage_edge(row, x, xrow, base, i, IW);
    for (int i = ilo; i < ihi; ++i) {
#pragma unroll
        for (int p = 0; p < SW; ++p) row[p * WPMAX + i] = XLOAD(x, xrow + base + SW * i + p);
    }
    for (int i = ihi; i < wp; ++i) dw_stage_edge(row, x, xrow, base, i, IW);
}

__kernel void conv_depthwise(
    __global const T* restrict x, const int x_off,
    __global const T* restrict w, const int w_off,
    __global const T* restrict bias, const int b_off,
    __global T* restrict y, const int y_off,
    const int C_in,
    const int ID, const int IH, const int IW,
    const int OD, const int OH, const int OW,
    const int HB,      /* OH / RH: row blocks per output depth */
    const int NWC,     /* ceil(OW / WCH): chunks per output row */
    const int total0,  /* OD * HB * NWC: work-items along dimension 0 */
    __local ACC* restrict xs,  /* KD * JR * SW * WPMAX elements per work-item */
    const int DWX)     /* DW again, as a run-time value: see tap below */
{
    const int g0 = get_global_id(0);
    if (g0 >= total0) return;
    const int plane = get_global_id(1);   /* (n * C_in + ci) * (MULT / MB) + mb */
    const int wc = g0 % NWC;
    const int dh = g0 / NWC;
    const int od = dh / HB;
    const int oh0 = (dh - od * HB) * RH;

    const int mb = plane % (MULT / MB);
    const int nc = plane / (MULT / MB);   /* n * C_in + ci */
    const int ci = nc % C_in;
    const int n = nc / C_in;
    const int co0 = ci * MULT + mb * MB;
    const int C_out = C_in * MULT;

    ACC wk[MB][KK];
    ACC bv[MB];
    int ybase[MB];
#pragma unroll
    for (int m = 0; m < MB; ++m) {
#pragma unroll
        for (int k = 0; k < KK; ++k) wk[m][k] = LOAD(w, w_off + (co0 + m) * KK + k);
#if HAS_BIAS
        bv[m] = LOAD(bias, b_off + co0 + m);
#else
        bv[m] = 0;
#endif
        ybase[m] = y_off + (((n * C_out + co0 + m) * OD + od) * OH + oh0) * OW;
    }

    /* The stage: phase row p of input row j at depth tap kd holds, at element i,
     * the padded input at column SW * (ow_begin + i) + p - PW. */
    const int ow_begin = wc * WCH;
    const int nout = min(OW - ow_begin, WCH);
    const int wp = (nout + VECW - 1) / VECW * VECW + QMAX;
    __local ACC* const stage = xs + (get_local_id(1) * get_local_size(0) + get_local_id(0)) * (KD * JR * SW * WPMAX);
    const int base = SW * ow_begin - PW;
    /* elements [ilo, ihi) read inside the input row in every phase */
    const int ilo = min(wp, base >= 0 ? 0 : (SW - 1 - base) / SW);
    const int ihi = clamp(IW - SW - base < 0 ? 0 : (IW - SW - base) / SW + 1, ilo, wp);
#pragma unroll 1
    for (int kj = 0; kj < KD * JR; ++kj) {   /* not unrolled: it is cheap, and unrolled it is big */
        const int kd = kj / JR;
        const int j = kj - kd * JR;
        if (!dw_row_used(j)) continue;
        int id = od * SD - PD + kd * DD;
        int ih = oh0 * SH - PH + j;
        const bool inside = id >= 0 && id < ID && ih >= 0 && ih < IH;
        id = clconv_pad_index(id, ID, PADDING_MODE);
        ih = clconv_pad_index(ih, IH, PADDING_MODE);
        dw_stage_row(stage + kj * SW * WPMAX, x, x_off + ((nc * ID + id) * IH + ih) * IW,
                     PADDING_MODE == PAD_ZEROS && !inside, base, wp, ilo, ihi, IW);
    }

    /* Where tap kw reads in a stage row: phase row (kw * DW) % SW, shifted by
     * (kw * DW) / SW. The dilation comes in as a run-time value on purpose: with
     * constant offsets the optimizer sees that output o + 1 reloads what output o
     * loaded for the next tap, carries those values across iterations in scalars,
     * and that loop-carried chain stops the loop vectorizer (LLVM 15 in PoCL 3.1). */
    __local const ACC* tap[KW];
#pragma unroll
    for (int kw = 0; kw < KW; ++kw) tap[kw] = stage + ((kw * DWX) % SW) * WPMAX + (kw * DWX) / SW;

    const int nvec = (nout + VECW - 1) / VECW * VECW;
    /* No iteration reads what another writes (the loads come from the stage, the stores go to
     * distinct outputs), which LLVM 14 (pip's PoCL 3.0) cannot prove by itself: without the
     * pragma it left this loop scalar ("cannot prove it is safe to reorder memory operations"). */
#pragma clang loop vectorize(assume_safety)
    for (int o = 0; o < nvec; ++o) {
        ACC acc[MB][RH];
#pragma unroll
        for (int m = 0; m < MB; ++m) {
#pragma unroll
            for (int r = 0; r < RH; ++r) acc[m][r] = 0;
        }
#pragma unroll
        for (int kd = 0; kd < KD; ++kd) {
#pragma unroll
            for (int j = 0; j < JR; ++j) {
                if (!dw_row_used(j)) continue;
#pragma unroll
                for (int kw = 0; kw < KW; ++kw) {
                    const ACC v = tap[kw][(kd * JR + j) * SW * WPMAX + o];
#pragma unroll
                    for (int r = 0; r < RH; ++r) {
#pragma unroll
                        for (int kh = 0; kh < KH; ++kh) {
                            if (!TAKES(r, kh, j)) continue;
#pragma unroll
                            for (int m = 0; m < MB; ++m)
                                acc[m][r] = acc[m][r] + v * wk[m][(kd * KH + kh) * KW + kw];
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int m = 0; m < MB; ++m) {
#pragma unroll
            for (int r = 0; r < RH; ++r) {
                if (o < nout) YSTORE(acc[m][r] + bv[m], y, ybase[m] + r * OW + ow_begin + o);
            }
        }
    }
}

#else /* !ROW_LOOP: the GPU form */

/* Inputs one strip of VW outputs spans per row. */
#define TS ((VW - 1) * SW + (KW - 1) * DW + 1)

__kernel void conv_depthwise(
    __global const T* restrict x, const int x_off,
    __global const T* restrict w, const int w_off,
    __global const T* restrict bias, const int b_off,
    __global T* restrict y, const int y_off,
    const int C_in,
    const int ID, const int IH, const int IW,
    const int OD, const int OH, const int OW,
    const int HB,      /* OH / RH: row blocks per output depth */
    const int NWC,     /* unused in this form */
    const int total0,  /* unused in this form */
    __local ACC* restrict xs,  /* unused in this form */
    const int DWX)     /* unused in this form */
{
    const int ow0 = get_global_id(0) * VW;
    const int dh = get_global_id(1);
    const int plane = get_global_id(2);   /* (n * C_in + ci) * (MULT / MB) + mb */
    const int od = dh / HB;
    const int oh0 = (dh - od * HB) * RH;
    if (od >= OD) return;   /* the same for every work-item along dimension 0 */

    const int mb = plane % (MULT / MB);
    const int nc = plane / (MULT / MB);
    const int ci = nc % C_in;
    const int n = nc / C_in;
    const int co0 = ci * MULT + mb * MB;
    const int C_out = C_in * MULT;

    ACC wk[MB][KK];
#pragma unroll
    for (int m = 0; m < MB; ++m) {
#pragma unroll
        for (int k = 0; k < KK; ++k) wk[m][k] = LOAD(w, w_off + (co0 + m) * KK + k);
    }

    ACC acc[MB][RH][VW];
#pragma unroll
    for (int m = 0; m < MB; ++m) {
#pragma unroll
        for (int r = 0; r < RH; ++r) {
#pragma unroll
            for (int v = 0; v < VW; ++v) acc[m][r][v] = 0;
        }
    }

    /* Strip columns: which are inside the input (zeros) or where they read (other
     * modes; clamped, since the strip of the last work-item may run past the edge). */
    const int iw0 = ow0 * SW - PW;
    bool colok[TS];
    int col[TS];
#pragma unroll
    for (int t = 0; t < TS; ++t) {
        colok[t] = iw0 + t >= 0 && iw0 + t < IW;
        col[t] = clamp(clconv_pad_index(iw0 + t, IW, PADDING_MODE), 0, IW - 1);
    }

#pragma unroll
    for (int kd = 0; kd < KD; ++kd) {
        int id = od * SD - PD + kd * DD;
        if (PADDING_MODE == PAD_ZEROS && (id < 0 || id >= ID)) continue;
        id = clconv_pad_index(id, ID, PADDING_MODE);
        const int xd = (nc * ID + id) * IH;
#pragma unroll
        for (int j = 0; j < JR; ++j) {
            if (!dw_row_used(j)) continue;
            int ih = oh0 * SH - PH + j;
            const bool rowok = ih >= 0 && ih < IH;
            ih = clconv_pad_index(ih, IH, PADDING_MODE);
            ACC in[TS];
            if (PADDING_MODE == PAD_ZEROS) {
                const int xrow = x_off + (xd + ih) * IW + iw0;
#pragma unroll
                for (int t = 0; t < TS; ++t) in[t] = (rowok && colok[t]) ? LOAD(x, xrow + t) : (ACC)0;
            } else {
                const int xrow = x_off + (xd + ih) * IW;
#pragma unroll
                for (int t = 0; t < TS; ++t) in[t] = LOAD(x, xrow + col[t]);
            }
#pragma unroll
            for (int r = 0; r < RH; ++r) {
#pragma unroll
                for (int kh = 0; kh < KH; ++kh) {
                    if (!TAKES(r, kh, j)) continue;
#pragma unroll
                    for (int m = 0; m < MB; ++m) {
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            const ACC wv = wk[m][(kd * KH + kh) * KW + kw];
#pragma unroll
                            for (int v = 0; v < VW; ++v)
                                acc[m][r][v] = acc[m][r][v] + in[v * SW + kw * DW] * wv;
                        }
                    }
                }
            }
        }
    }

#pragma unroll
    for (int m = 0; m < MB; ++m) {
#if HAS_BIAS
        const ACC bv = LOAD(bias, b_off + co0 + m);
#else
        const ACC bv = 0;
#endif
        const int ybase = y_off + (((n * C_out + co0 + m) * OD + od) * OH + oh0) * OW + ow0;
#pragma unroll
        for (int r = 0; r < RH; ++r) {
#pragma unroll
            for (int v = 0; v < VW; ++v) {
                if (ow0 + v < OW) STORE(acc[m][r][v] + bv, y, ybase + r * OW + v);
            }
        }
    }
}

#endif
