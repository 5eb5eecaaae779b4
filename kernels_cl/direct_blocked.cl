/* direct_blocked: register-blocked direct convolution, and transposed convolution as
 * sub-pixel phases (TRANSPOSED=1, below).
 *
 * Algorithm: a work-item computes a block of COB output channels of one group x
 *   NV * VW consecutive outputs along W (NV vectors of VW lanes) at one output
 *   (n, od, oh). For each input channel of the group (ci), depth tap (kd), row tap
 *   (kh) and column tap (kw), in that fixed order, it loads NV input vectors (lanes
 *   SW apart) once and multiplies them by the COB scalar weights of that tap:
 *   COB * NV vector multiply-adds per NV loads. Each output is one sum in the order
 *   (ci, kd, kh, kw), then the bias: deterministic, no atomics.
 *   Padding: a depth or row tap outside the input is skipped (zeros) or mapped
 *   through the padding mode (clconv_pad_index) once per row. Along W, a block
 *   whose every read lies inside the input row (the interior) loads straight from
 *   x; a border block first stages the SPAN input columns it reads, mapped through
 *   the padding mode, in private memory, and loads from there.
 *   The last channel block of a group starts at COG - COB (it overlaps the one
 *   before) and stores only the channels the one before does not: every weight read
 *   is in bounds and no output is written twice.
 * Layout: x (N, C_in, ID, IH, IW), w (C_out, CIG, KD, KH, KW), y (N, C_out, OD, OH, OW),
 *   C-contiguous; 1D and 2D run as 3D with leading size-1 dims.
 *   XSTAT (x-stationary, for a short reduction: CIG * KK * NV vectors fit in registers): a
 *   work-item loads its input vectors once and computes CBI channel blocks from them in turn.
 * Launch: global (round_up(NWB, L0), round_up(OD * OH, L1), N * groups * ceil(NCB / CBI)),
 *   local (L0, L1, 1); NWB = ceil(OW / (NV * VW)), NCB = ceil(COG / COB); CBI = 1 unless XSTAT.
 * Macros: CLCONV_DTYPE (common.h), PADDING_MODE (0..3), HAS_BIAS (0/1),
 *   CIG, COG (channels per group in and out), COB (<= COG), VW (1, 2, 4, 8, 16), NV,
 *   XSTAT (0/1), CBI, KD KH KW, SD SH SW, DD DH DW, PD PH PW (padding before),
 *   TRANSPOSED (0/1), EMIN EMAX (TRANSPOSED only, below).
 *
 * TRANSPOSED (kernel conv_transpose_direct_blocked): y[o] gathers x[(o + P - k * D) / S]
 *   over the taps k for which the division is exact. Along W, output o = SW * m + r
 *   (r in [0, SW): its sub-pixel phase) is reached by the taps kw with
 *   (r + PW - kw * DW) % SW == 0 only, each reading input m + e(r, kw), e = (r + PW - kw * DW)
 *   / SW: per phase an ordinary stride-1 correlation with a sub-kernel whose taps and
 *   offsets are compile-time constants. A work-item computes COB channels x NV vectors of
 *   VW consecutive m for all SW phases (COB * NV * SW accumulators), i.e. SW * NV * VW
 *   consecutive outputs along W starting at a multiple of SW; each input vector (at offset
 *   e, lanes consecutive, loaded once) feeds every (r, kw) with that offset. The phases
 *   are interleaved into consecutive outputs at the store. Along D and H, an output row
 *   takes the taps whose division is exact (checked once per row). Outputs no tap reaches
 *   get the bias (or 0). Each output is one sum in the order (ci, kd, kh, e, kw), then the
 *   bias. EMIN/EMAX: the smallest and largest e; a block reads input columns
 *   [m0 + EMIN, m0 + WB + EMAX). Border blocks stage them with zeros outside the row.
 *   Layout: w (C_in, COG, KD, KH, KW); PD PH PW are the crops before; launch as above with
 *   NWB = ceil(OW / (SW * NV * VW)), no XSTAT.
 */
#include "common.h"

#if CLCONV_DTYPE == 64
#define ACCN double
#else
#define ACCN float
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#if VW == 1
typedef ACCN ACCV;
#else
typedef CAT(ACCN, VW) ACCV;
#endif
/* The same vector with element alignment: loads and stores at any element offset
 * compile to unaligned vector moves (vload/vstore are calls on PoCL). */
typedef ACCV __attribute__((aligned(sizeof(ACCN)))) ACCV_U;

#define KK (KD * KH * KW)
#define WB (NV * VW)                                  /* lanes along W per work-item */
#if TRANSPOSED
#define XS 1                                          /* input step between lanes */
#define SPAN (WB + EMAX - EMIN)                       /* input columns a block reads */
#else
#define XS SW
#define SPAN ((WB - 1) * SW + (KW - 1) * DW + 1)
#endif

/* Lanes of one vector, element f(j) for lane j. */
#define LANES1(f) (f(0))
#define LANES2(f) (ACCV)(f(0), f(1))
#define LANES4(f) (ACCV)(f(0), f(1), f(2), f(3))
#define LANES8(f) (ACCV)(f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7))
#define LANES16(f) (ACCV)(f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7), \
                          f(8), f(9), f(10), f(11), f(12), f(13), f(14), f(15))
#define LANES(f) CAT(LANES, VW)(f)

/* One vector of input from x: lanes p[0], p[XS], ..., p[(VW - 1) * XS]. */
#if CLCONV_DTYPE == 16
#define XG(j) vload_half(xo + (j) * XS, xr)
#define XVEC(xr, off) ({ const int xo = (off); LANES(XG); })
#elif XS == 1
#define XVEC(xr, off) (*(const __global ACCV_U*)((xr) + (off)))
#elif XS == 2 && VW >= 2
/* elements 0..2VW-2 as two vectors: [0, VW) and [VW - 1, 2VW - 1) (never past the last lane) */
#define XVEC(xr, off) ({ const __global T* xp_ = (xr) + (off); \
    const ACCV a_ = *(const __global ACCV_U*)xp_; const ACCV b_ = *(const __global ACCV_U*)(xp_ + VW - 1); \
    (ACCV)(a_.even, b_.odd); })
#else
#define XG(j) xp_[(j) * XS]
#define XVEC(xr, off) ({ const __global T* xp_ = (xr) + (off); LANES(XG); })
#endif

/* The same from the private stage of a border block. */
#define SG(j) sp_[(j) * XS]
#define SVEC(off) ({ const ACCN* sp_ = stage + (off); LANES(SG); })

/* Stage the input columns of row xr that the border vectors of a border block read:
 * the stage elements [ilo, ihi) lie inside the row, and only [ilo, lend) and [rbeg, ihi)
 * of them are read from the stage (a vector wholly inside the row loads from x); zero
 * padding was written once per work-item. */
#if PADDING_MODE == PAD_ZEROS
#define STAGE_ROW(xr) { __global const T* xs_ = (xr) + iw0; \
    for (int i = ilo; i < lend; ++i) stage[i] = LOAD(xs_, i); \
    for (int i = rbeg; i < ihi; ++i) stage[i] = LOAD(xs_, i); }
#else
/* clamped: columns past the padded row feed only lanes past OW */
#define STAGE_ROW(xr) { __global const T* xs_ = (xr) + iw0; \
    for (int i = ilo; i < lend; ++i) stage[i] = LOAD(xs_, i); \
    for (int i = rbeg; i < ihi; ++i) stage[i] = LOAD(xs_, i); \
    for (int i = 0; i < ilo; ++i) \
        stage[i] = LOAD(xr, clamp(clconv_pad_index(iw0 + i, IW, PADDING_MODE), 0, IW - 1)); \
    for (int i = ihi; i < SPAN; ++i) \
        stage[i] = LOAD(xr, clamp(clconv_pad_index(iw0 + i, IW, PADDING_MODE), 0, IW - 1)); }
#endif

/* Input vector v of tap kw from row xr: straight from x when wholly inside the row
 * (always, in an interior block), else from the stage. */
#define ROW_VEC(xv, xr, kw, v) ROW_VEC_AT(xv, xr, (kw) * DW + (v) * VW * XS)
#define ROW_VEC_AT(xv, xr, s0_) { const int s0 = (s0_); \
    if (s0 >= ilo && s0 + (VW - 1) * XS < ihi) xv = XVEC(xr, iw0 + s0); else xv = SVEC(s0); }

/* Store the COB x NV accumulators of channels co0.. (those from co_own on), plus bias. */
#define STORE_BLOCK() \
    _Pragma("unroll") \
    for (int c = 0; c < COB; ++c) { \
        const int co = co0 + c; \
        if (co < co_own) continue; \
        const int cog = g * COG + co; \
        const ACCN bv = HAS_BIAS ? LOAD(bias, b_off + cog) : (ACCN)0; \
        __global T* yr = y + y_off + (((n * C_out + cog) * OD + od) * OH + oh) * OW + ow0; \
        _Pragma("unroll") \
        for (int v = 0; v < NV; ++v) { \
            union { ACCV v; ACCN s[VW]; } out; \
            out.v = acc[c * NV + v] + bv; \
            if (VECTOR_STORE && nvalid == WB) { \
                *(__global ACCV_U*)(yr + v * VW) = out.v; \
                continue; \
            } \
            _Pragma("unroll") \
            for (int j = 0; j < VW; ++j) \
                if (v * VW + j < nvalid) STORE(out.s[j], yr, v * VW + j); \
        } \
    }
#if CLCONV_DTYPE == 16
#define VECTOR_STORE 0
#else
#define VECTOR_STORE 1
#endif

#if !TRANSPOSED
__kernel void conv_direct_blocked(
    __global const T* restrict x, const int x_off,
    __global const T* restrict w, const int w_off,
    __global const T* restrict bias, const int b_off,
    __global T* restrict y, const int y_off,
    const int C_in, const int C_out, const int groups,
    const int ID, const int IH, const int IW,
    const int OD, const int OH, const int OW,
    const int NWB, const int NCB, const int total2)
{
    const int wb = get_global_id(0);
    const int odh = get_global_id(1);
    const int r2 = get_global_id(2);
    if (wb >= NWB || odh >= OD * OH || r2 >= total2) return;
    const int oh = odh % OH;
    const int od = odh / OH;
    const int nci = (NCB + CBI - 1) / CBI;       /* work-items per group along channels */
    const int cbi = r2 % nci;
    const int ng = r2 / nci;
    const int g = ng % groups;
    const int n = ng / groups;

    const int ow0 = wb * WB;
    const int nvalid = min(WB, OW - ow0);
    const int iw0 = ow0 * SW - PW;
    const bool interior = iw0 >= 0 && iw0 + SPAN <= IW;

    /* Border blocks: stage elements [ilo, ihi) lie inside the input row; the others are
     * padding (zeros: written once here; other modes: mapped per row). */
    ACCN stage[SPAN];
    const int ilo = clamp(-iw0, 0, SPAN);
    const int ihi = clamp(IW - iw0, ilo, SPAN);
    /* a vector starting before ilo ends before lend; one ending at or after ihi starts at rbeg or later */
    const int lend = min(ihi, ilo + (VW - 1) * XS);
    const int rbeg = max(lend, ihi - (VW - 1) * XS);
#if PADDING_MODE == PAD_ZEROS
    if (!interior) {
        for (int i = 0; i < ilo; ++i) stage[i] = 0;
        for (int i = ihi; i < SPAN; ++i) stage[i] = 0;
    }
#endif
    const int plane = ID * IH * IW;
    __global const T* xg = x + x_off + (n * C_in + g * CIG) * plane;

#if XSTAT
    /* x-stationary: the whole reduction's input vectors sit in registers, loaded once and
     * used by each of the CBI channel blocks in turn. A tap row outside the input (zero
     * padding) holds zeros. */
    ACCV xin[CIG * KK * NV];
#pragma unroll
    for (int ci = 0; ci < CIG; ++ci) {
#pragma unroll
        for (int kd = 0; kd < KD; ++kd) {
            const int id = clconv_pad_index(od * SD - PD + kd * DD, ID, PADDING_MODE);
#pragma unroll
            for (int kh = 0; kh < KH; ++kh) {
                const int ih = clconv_pad_index(oh * SH - PH + kh * DH, IH, PADDING_MODE);
                const int t0 = (ci * KK + (kd * KH + kh) * KW) * NV;
                if (id < 0 || ih < 0) {
#pragma unroll
                    for (int i = 0; i < KW * NV; ++i) xin[t0 + i] = (ACCV)0;
                    continue;
                }
                __global const T* xr = xg + (ci * ID + id) * IH * IW + ih * IW;
                if (!interior) STAGE_ROW(xr)
#pragma unroll
                for (int kw = 0; kw < KW; ++kw) {
#pragma unroll
                    for (int v = 0; v < NV; ++v) ROW_VEC(xin[t0 + kw * NV + v], xr, kw, v)
                }
            }
        }
    }
    for (int cb = cbi * CBI; cb < min(NCB, cbi * CBI + CBI); ++cb) {
        const int co_own = cb * COB;                  /* first channel this block stores */
        const int co0 = min(co_own, COG - COB);       /* first channel it computes */
        __global const T* wc = w + w_off + (g * COG + co0) * CIG * KK;
        ACCV acc[COB * NV];
#pragma unroll
        for (int i = 0; i < COB * NV; ++i) acc[i] = (ACCV)0;
#pragma unroll
        for (int t = 0; t < CIG * KK; ++t) {
#pragma unroll
            for (int v = 0; v < NV; ++v) {
#pragma unroll
                for (int c = 0; c < COB; ++c)
                    acc[c * NV + v] = xin[t * NV + v] * (ACCV)LOAD(wc, c * CIG * KK + t) + acc[c * NV + v];
            }
        }
        STORE_BLOCK()
    }
#else
    const int co_own = cbi * COB;                 /* first channel this block stores */
    const int co0 = min(co_own, COG - COB);       /* first channel it computes */
    ACCV acc[COB * NV];
#pragma unroll
    for (int i = 0; i < COB * NV; ++i) acc[i] = (ACCV)0;
    __global const T* xc = xg;
    __global const T* wc = w + w_off + (g * COG + co0) * CIG * KK;
    for (int ci = 0; ci < CIG; ++ci, xc += plane, wc += KK) {
        for (int kd = 0; kd < KD; ++kd) {
            const int id = clconv_pad_index(od * SD - PD + kd * DD, ID, PADDING_MODE);
            if (id < 0) continue;
            for (int kh = 0; kh < KH; ++kh) {
                const int ih = clconv_pad_index(oh * SH - PH + kh * DH, IH, PADDING_MODE);
                if (ih < 0) continue;
                __global const T* xr = xc + (id * IH + ih) * IW;
                __global const T* wr = wc + (kd * KH + kh) * KW;
                if (!interior) STAGE_ROW(xr)
#pragma unroll
                for (int kw = 0; kw < KW; ++kw) {
#pragma unroll
                    for (int v = 0; v < NV; ++v) {
                        ACCV xv;
                        ROW_VEC(xv, xr, kw, v)
#pragma unroll
                        for (int c = 0; c < COB; ++c)
                            acc[c * NV + v] = xv * (ACCV)LOAD(wr, c * CIG * KK + kw) + acc[c * NV + v];
                    }
                }
            }
        }
    }
    STORE_BLOCK()
#endif
}
#else /* TRANSPOSED */

/* Stores of SW * VW interleaved outputs: vectors of TSV lanes (the largest power of two up
 * to 16 dividing SW * VW) where the whole block lies inside the row, else element by element. */
#if (SW * VW) % 16 == 0
#define TSV 16
#elif (SW * VW) % 8 == 0
#define TSV 8
#elif (SW * VW) % 4 == 0
#define TSV 4
#elif (SW * VW) % 2 == 0
#define TSV 2
#else
#define TSV 1
#endif
#if TSV == 1
typedef ACCN TSVEC;
#else
typedef CAT(ACCN, TSV) TSVEC;
#endif
typedef TSVEC __attribute__((aligned(sizeof(ACCN)))) TSVEC_U;

#define OWB (SW * WB)                                 /* outputs along W per work-item */
/* stride-1 lanes: a vector of the stage is one unaligned private load */
#undef SVEC
#define SVEC(off) (*(const ACCV_U*)(stage + (off)))

__kernel void conv_transpose_direct_blocked(
    __global const T* restrict x, const int x_off,
    __global const T* restrict w, const int w_off,
    __global const T* restrict bias, const int b_off,
    __global T* restrict y, const int y_off,
    const int C_in, const int C_out, const int groups,
    const int ID, const int IH, const int IW,
    const int OD, const int OH, const int OW,
    const int NWB, const int NCB, const int total2)
{
    const int wb = get_global_id(0);
    const int odh = get_global_id(1);
    const int r2 = get_global_id(2);
    if (wb >= NWB || odh >= OD * OH || r2 >= total2) return;
    const int oh = odh % OH;
    const int od = odh / OH;
    const int cb = r2 % NCB;
    const int ng = r2 / NCB;
    const int g = ng % groups;
    const int n = ng / groups;

    const int ow0 = wb * OWB;                     /* a multiple of SW: phase r is lane r */
    const int nvalid = min(OWB, OW - ow0);
    const int m0 = wb * WB;                       /* output ow0 + SW * j + r reads input m0 + j + e */
    const int iw0 = m0 + EMIN;
    const bool interior = iw0 >= 0 && iw0 + SPAN <= IW;

    ACCN stage[SPAN];
    const int ilo = clamp(-iw0, 0, SPAN);
    const int ihi = clamp(IW - iw0, ilo, SPAN);
    const int lend = min(ihi, ilo + (VW - 1) * XS);
    const int rbeg = max(lend, ihi - (VW - 1) * XS);
    if (!interior) {
        for (int i = 0; i < ilo; ++i) stage[i] = 0;
        for (int i = ihi; i < SPAN; ++i) stage[i] = 0;
    }
    /* a row holding a whole vector stages each edge as one vector copy (its first VW
     * columns from ilo, its last VW ending at ihi), else element by element */
#if VECTOR_STORE && VW > 1
    const bool vstage = ihi - ilo >= VW;
#else
    const bool vstage = false;
#endif
    const int plane = ID * IH * IW;
    const int co_own = cb * COB;                  /* first channel this block stores */
    const int co0 = min(co_own, COG - COB);       /* first channel it computes */
    ACCV acc[COB * SW * NV];                      /* (c, r, v) */
#pragma unroll
    for (int i = 0; i < COB * SW * NV; ++i) acc[i] = (ACCV)0;
    __global const T* xc = x + x_off + (n * C_in + g * CIG) * plane;
    __global const T* wc = w + w_off + (g * CIG * COG + co0) * KK;
    for (int ci = 0; ci < CIG; ++ci, xc += plane, wc += COG * KK) {
        for (int kd = 0; kd < KD; ++kd) {
            const int id = clconv_gather_index(od + PD - kd * DD, SD, ID);
            if (id < 0) continue;
            for (int kh = 0; kh < KH; ++kh) {
                const int ih = clconv_gather_index(oh + PH - kh * DH, SH, IH);
                if (ih < 0) continue;
                __global const T* xr = xc + (id * IH + ih) * IW;
                __global const T* wr = wc + (kd * KH + kh) * KW;
                if (!interior) {
                    if (vstage) {
                        *(ACCV_U*)(stage + ilo) = XVEC(xr, iw0 + ilo);
                        *(ACCV_U*)(stage + ihi - VW) = XVEC(xr, iw0 + ihi - VW);
                    } else STAGE_ROW(xr)
                }
#pragma unroll
                for (int e = EMIN; e <= EMAX; ++e) {
#pragma unroll
                    for (int v = 0; v < NV; ++v) {
                        ACCV xv;
                        ROW_VEC_AT(xv, xr, e - EMIN + v * VW)
#pragma unroll
                        for (int r = 0; r < SW; ++r) {
#pragma unroll
                            for (int kw = 0; kw < KW; ++kw) {
                                /* compile-time after unrolling: tap kw feeds phase r from offset e */
                                if ((r + PW - kw * DW) % SW != 0 || (r + PW - kw * DW) / SW != e) continue;
#pragma unroll
                                for (int c = 0; c < COB; ++c)
                                    acc[(c * SW + r) * NV + v] =
                                        xv * (ACCV)LOAD(wr, c * KK + kw) + acc[(c * SW + r) * NV + v];
                            }
                        }
                    }
                }
            }
        }
    }
#pragma unroll
    for (int c = 0; c < COB; ++c) {
        const int co = co0 + c;
        if (co < co_own) continue;
        const int cog = g * COG + co;
        const ACCN bv = HAS_BIAS ? LOAD(bias, b_off + cog) : (ACCN)0;
        __global T* yr = y + y_off + (((n * C_out + cog) * OD + od) * OH + oh) * OW + ow0;
#pragma unroll
        for (int v = 0; v < NV; ++v) {
            /* output ow0 + SW * (v * VW + j) + r is lane j of phase r */
            union { ACCN s[SW * VW]; TSVEC t[SW * VW / TSV]; } out;
#pragma unroll
            for (int r = 0; r < SW; ++r) {
                union { ACCV v; ACCN s[VW]; } ph;
                ph.v = acc[(c * SW + r) * NV + v] + bv;
#pragma unroll
                for (int j = 0; j < VW; ++j) out.s[j * SW + r] = ph.s[j];
            }
            __global T* yv = yr + v * SW * VW;
            if (VECTOR_STORE && nvalid == OWB) {
#pragma unroll
                for (int i = 0; i < SW * VW / TSV; ++i) *(__global TSVEC_U*)(yv + i * TSV) = out.t[i];
                continue;
            }
#pragma unroll
            for (int q = 0; q < SW * VW; ++q)
                if (v * SW * VW + q < nvalid) STORE(out.s[q], yv, q);
        }
    }
}
#endif /* TRANSPOSED */
