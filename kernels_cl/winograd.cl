/* winograd: 2D 3x3 stride-1 convolution by Winograd's minimal filtering, F(MT x MT, 3 x 3).
 *
 * ALPHA = MT + 2 = 4 (F(2x2,3x3)) or 6 (F(4x4,3x3)); A2 = ALPHA * ALPHA transform positions.
 * Lavin & Gray's matrices (interpolation points 0, 1, -1 for F(2,3); 0, 1, -1, 2, -2 for F(4,3)):
 *   U = G g G^T        filter_transform: once per weight (the host caches U)
 *   V = B^T d B        pad_input + input_transform: ALPHA x ALPHA patches of a zero-padded copy
 *   M_xi = V_xi @ U_xi wino_gemm: one GEMM per group and transform position xi
 *   Y = A^T M A + bias output_transform, straight into the NCHW output
 *                      (wino_gemm_out: the last two in one kernel, M kept in private memory;
 *                      the host's choice on CPU devices; wino_gemm_out_inline: the same, reading
 *                      filter_pack's untransformed weight and transforming it itself, KC input
 *                      channels at a time, where U would stream from memory every call)
 *
 * Tiles: output tile (th, tw) of image n covers outputs [th*MT, th*MT+MT) x [tw*MT, tw*MT+MT) and
 * reads the input patch whose top-left is (th*MT - PH, tw*MT - PW). The host runs the tiles in
 * chunks of whole images (or of tile rows of one image); within a chunk, tile t = rr*TW + tw with
 * rr = nl*nth + (th - th0) (nl: image of the chunk, nth tile rows per image), and tile block
 * tb = t / TM (the last block padded with zero tiles).
 *
 * Layouts (GACC: float for float16/float32 storage, double for float64; element indices):
 *   U[((g*A2 + xi)*NCB + cb)*cig + ci][TN]  co = cb*TN + j within group g, C_out per group padded
 *                                           with zero channels to CPg = NCB*TN: the GEMM reads NV
 *                                           aligned VW-vectors per ci, contiguous along ci
 *   xp[nl][ci][XPH][XPW]                    the chunk's input rows, zero-padded, LM = SEG*MT zero
 *                                           columns on the left (see input_transform)
 *   V[((tb*groups + g)*cig + ci)*A2 + xi][TM]  one input-transform work-item writes one contiguous
 *                                           block (stores a page apart cost ten times more on
 *                                           PoCL); the GEMM reads TM scalars per ci, A2*TM apart
 *   M[((tb*A2 + xi)*TM + i)*CPT + g*CPg + co]  CPT = groups*CPg, co contiguous: the GEMM stores
 *                                           aligned vectors, the output transform loads them
 *
 * The GEMM is register-blocked: a work-item computes TM tiles x TN = VW*NV output channels of one
 * (g, xi) with TM*NV vector accumulators, reading per ci NV aligned vectors of U and TM scalars of
 * V. WPF > 0 (PoCL's CPU devices): V's and U's values WPF k ahead are prefetched; V's rows lie
 * A2*TM values apart (1152 bytes for F(4x4) x 8 tiles), and without it the GEMM ran at 60-70% of
 * its speed with it (AVX-512 Xeon: ResNet-50 3x3 at 56 0.306 -> 0.241 ms, 28 0.274 -> 0.214, VGG
 * 2.26 -> 1.70; prefetching U as well: 7x7, which streams U, 0.795 -> 0.683). No edge cases:
 * the host pads C_out to TN and the tiles to TM. Plain a*b+c on purpose (not
 * fma()/mad()), vectors through cast pointers (vloadN/vstoreN are function calls on PoCL's CPU
 * driver; unaligned vectors through typedefs that lower the alignment). The reduction order is
 * fixed: the same bits every run.
 *
 * Non-finite values: Winograd spreads a NaN or Inf over a whole tile (and turns Inf into NaN), so
 * the output transform checks Y of each (tile, channel vector; a non-finite M shows there); where any is not finite it
 * recomputes those outputs directly from x and w (as kernels_cl/direct.cl does). NaN/Inf then
 * propagate exactly as in a direct convolution, and an overflow inside the transforms is repaired.
 *
 * Dilation and padding modes ("atrous via space-to-batch"): a stride-1 convolution with dilation
 * (DH, DW) splits into DH*DW undilated ones, one per phase (pa, pb): output (pa + DH*i, pb + DW*j)
 * reads only the padded input rows pa + DH*r and columns pb + DW*c. gather_phases writes these
 * phase images (their padding included, in any padding mode) into xp in place of pad_input, as a
 * batch of N*DH*DW images (phase image q = (n*DH + pa)*DW + pb) convolved without padding; the
 * output transform scatters phase outputs back into the NCHW output (batch-to-space) and drops
 * those past its end. An undilated call with zero padding is the case DH = DW = 1 with pad_input.
 *
 * Index arithmetic writes q - (q / d) * d rather than q % d (see im2col.cl: Oclgrind and `freeze`).
 *
 * Macros: CLCONV_DTYPE (common.h), ALPHA (4 or 6), VW (vector width along co: 4, 8 or 16),
 *   NV (vectors per GEMM row), TM (tiles per GEMM block, and the input transform's lanes: 4 or 8),
 *   HAS_BIAS (0/1), PADDING_MODE (common.h: gather_phases and the non-finite fallback),
 *   OUT_STREAM (0/1: staged, streaming output stores; see output_transform),
 *   DIRECT_X (0/1: the input transform reads x itself, in place of pad_input's copy; float32
 *   and float64 with zero padding and no dilation; see input_transform), WPF (0 or the GEMM's
 *   prefetch distance in k, see wino_gemm; the output transform then prefetches too).
 */
#include "common.h"

#if CLCONV_DTYPE == 64
#define GACC double
#else
#define GACC float
#endif

#ifndef DIRECT_X
#define DIRECT_X 0
#endif
#ifndef WPF
#define WPF 0
#endif

#define WCAT2(a, b) a##b
#define WCAT(a, b) WCAT2(a, b)
#define VACC WCAT(GACC, VW) /* along output channels */
#define V16 WCAT(GACC, 16)
#define V8 WCAT(GACC, 8)
#define V4 WCAT(GACC, 4)
#define V2 WCAT(GACC, 2)
#if TM > 8
#define SEG 8 /* input transform: 8 of a GEMM block's tiles as lanes (TM 16: two of them per block) */
#else
#define SEG TM /* input transform: the tiles of a GEMM block as lanes */
#endif
#define VS WCAT(GACC, SEG)
#if CLCONV_DTYPE == 64
#define VSI WCAT(long, SEG)
#else
#define VSI WCAT(int, SEG)
#endif
#if SEG == 8
#define LANE_IDS ((VSI)(0, 1, 2, 3, 4, 5, 6, 7))
#else
#define LANE_IDS ((VSI)(0, 1, 2, 3))
#endif
/* unaligned vectors (a typedef may lower the alignment): plain unaligned loads and stores */
#if CLCONV_DTYPE == 64
typedef double16 __attribute__((aligned(8))) UV16;
typedef double8 __attribute__((aligned(8))) UV8;
typedef double4 __attribute__((aligned(8))) UV4;
typedef double2 __attribute__((aligned(8))) UV2;
#else
typedef float16 __attribute__((aligned(4))) UV16;
typedef float8 __attribute__((aligned(4))) UV8;
typedef float4 __attribute__((aligned(4))) UV4;
typedef float2 __attribute__((aligned(4))) UV2;
#endif
#define TN (VW * NV)
#define A2 (ALPHA * ALPHA)
#if ALPHA == 4
#define MT 2
#else
#define MT 4
#endif

/* 1D transforms on any arithmetic type (scalars or vectors); outputs are assigned. */
#if ALPHA == 4
/* B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
#define BT_1D(d, o, s)                               \
    do {                                             \
        o[0 * (s)] = d[0 * (s)] - d[2 * (s)];        \
        o[1 * (s)] = d[1 * (s)] + d[2 * (s)];        \
        o[2 * (s)] = d[2 * (s)] - d[1 * (s)];        \
        o[3 * (s)] = d[1 * (s)] - d[3 * (s)];        \
    } while (0)
/* G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] */
#define G_1D(g, o, s)                                                  \
    do {                                                               \
        const G_T a_ = g[0 * (s)] + g[2 * (s)];                        \
        o[0 * (s)] = g[0 * (s)];                                       \
        o[1 * (s)] = (a_ + g[1 * (s)]) * (GACC)0.5;                    \
        o[2 * (s)] = (a_ - g[1 * (s)]) * (GACC)0.5;                    \
        o[3 * (s)] = g[2 * (s)];                                       \
    } while (0)
/* A^T = [1 1 1 0; 0 1 -1 -1] */
#define AT_1D(m, o, s)                                          \
    do {                                                        \
        o[0 * (s)] = m[0 * (s)] + m[1 * (s)] + m[2 * (s)];      \
        o[1 * (s)] = m[1 * (s)] - m[2 * (s)] - m[3 * (s)];      \
    } while (0)
#elif ALPHA == 6
/* B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1] */
#define BT_1D(d, o, s)                                                              \
    do {                                                                            \
        const VTMP p_ = d[4 * (s)] - (GACC)4 * d[2 * (s)];                          \
        const VTMP q_ = d[3 * (s)] - (GACC)4 * d[1 * (s)];                          \
        const VTMP r_ = d[4 * (s)] - d[2 * (s)];                                    \
        const VTMP s_ = (GACC)2 * (d[3 * (s)] - d[1 * (s)]);                        \
        o[0 * (s)] = (GACC)4 * d[0 * (s)] - (GACC)5 * d[2 * (s)] + d[4 * (s)];      \
        o[1 * (s)] = p_ + q_;                                                       \
        o[2 * (s)] = p_ - q_;                                                       \
        o[3 * (s)] = r_ + s_;                                                       \
        o[4 * (s)] = r_ - s_;                                                       \
        o[5 * (s)] = (GACC)4 * d[1 * (s)] - (GACC)5 * d[3 * (s)] + d[5 * (s)];      \
    } while (0)
/* G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1] */
#define G_1D(g, o, s)                                                               \
    do {                                                                            \
        const G_T a_ = g[0 * (s)] + g[2 * (s)];                                     \
        const G_T b_ = g[0 * (s)] * (GACC)(1.0 / 24.0) + g[2 * (s)] * (GACC)(1.0 / 6.0); \
        const G_T c_ = g[1 * (s)] * (GACC)(1.0 / 12.0);                             \
        o[0 * (s)] = g[0 * (s)] * (GACC)0.25;                                       \
        o[1 * (s)] = -(a_ + g[1 * (s)]) * (GACC)(1.0 / 6.0);                        \
        o[2 * (s)] = -(a_ - g[1 * (s)]) * (GACC)(1.0 / 6.0);                        \
        o[3 * (s)] = b_ + c_;                                                       \
        o[4 * (s)] = b_ - c_;                                                       \
        o[5 * (s)] = g[2 * (s)];                                                    \
    } while (0)
/* A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] */
#define AT_1D(m, o, s)                                                  \
    do {                                                                \
        const VTMP a_ = m[1 * (s)] + m[2 * (s)];                        \
        const VTMP b_ = m[1 * (s)] - m[2 * (s)];                        \
        const VTMP c_ = m[3 * (s)] + m[4 * (s)];                        \
        const VTMP d_ = m[3 * (s)] - m[4 * (s)];                        \
        o[0 * (s)] = m[0 * (s)] + a_ + c_;                              \
        o[1 * (s)] = b_ + (GACC)2 * d_;                                 \
        o[2 * (s)] = a_ + (GACC)4 * c_;                                 \
        o[3 * (s)] = b_ + (GACC)8 * d_ + m[5 * (s)];                    \
    } while (0)
#else
#error "ALPHA must be 4 or 6"
#endif

/* G = diag(GD) G' with integer G' (the inline filter transform: fewer operations; M is scaled by
 * GD[a] * GD[b] at position (a, b) instead). */
#if ALPHA == 4
/* G' = [1 0 0; 1 1 1; 1 -1 1; 0 0 1], GD = (1, 1/2, 1/2, 1) */
#define GI_1D(g, o, s)                                                 \
    do {                                                               \
        const G_T a_ = g[0 * (s)] + g[2 * (s)];                        \
        o[0 * (s)] = g[0 * (s)];                                       \
        o[1 * (s)] = a_ + g[1 * (s)];                                  \
        o[2 * (s)] = a_ - g[1 * (s)];                                  \
        o[3 * (s)] = g[2 * (s)];                                       \
    } while (0)
#define GD_(a) ((a) == 1 || (a) == 2 ? (GACC)0.5 : (GACC)1)
#else
/* G' = [1 0 0; 1 1 1; 1 -1 1; 1 2 4; 1 -2 4; 0 0 1], GD = (1/4, -1/6, -1/6, 1/24, 1/24, 1) */
#define GI_1D(g, o, s)                                                              \
    do {                                                                            \
        const G_T a_ = g[0 * (s)] + g[2 * (s)];                                     \
        const G_T b_ = (GACC)4 * g[2 * (s)] + g[0 * (s)];                           \
        const G_T c_ = g[1 * (s)] + g[1 * (s)];                                     \
        o[0 * (s)] = g[0 * (s)];                                                    \
        o[1 * (s)] = a_ + g[1 * (s)];                                               \
        o[2 * (s)] = a_ - g[1 * (s)];                                               \
        o[3 * (s)] = b_ + c_;                                                       \
        o[4 * (s)] = b_ - c_;                                                       \
        o[5 * (s)] = g[2 * (s)];                                                    \
    } while (0)
#define GD_(a) ((a) == 0 ? (GACC)0.25 : (a) <= 2 ? (GACC)(-1.0 / 6.0) : (a) <= 4 ? (GACC)(1.0 / 24.0) : (GACC)1)
#endif

/* ---------------------------------------------------------------- filter transform
 * One work-item per (g, channel block cb, ci), ci fastest: U(g, xi, co, ci) = (G g G^T)[xi] for
 * the 3x3 filters w[g*cog + co][ci] of the TN channels co of block cb, computed as NV vectors of
 * VW channels (zeros for the padding channels co >= cog) and stored as TN contiguous values per
 * xi: consecutive work-items fill U in order. */
/* The 3x3 filters w[g*cog + co][ci] of the VW channels co from co0 (zeros past cog) as nine vectors
 * f[kh*3 + kw], lane e holding channel co0 + e. */
inline void load_filters(__global const T* w, const int w_off, const int g, const int co0, const int ci,
                         const int cig, const int cog, VACC f[9])
{
#pragma unroll
    for (int k = 0; k < 9; ++k) f[k] = (VACC)(0);
    for (int e = 0; e < VW; ++e) {
        const int co = co0 + e;
        if (co < cog) {
            const int base = w_off + ((g * cog + co) * cig + ci) * 9;
#pragma unroll
            for (int k = 0; k < 9; ++k) f[k][e] = LOAD(w, base + k);
        }
    }
}

/* U = G f G^T of nine filter vectors into A2 vectors uu[xi] (filter_transform's and
 * wino_gemm_out_inline's arithmetic: the same operations in the same order). */
inline void transform_filters(const VACC f[9], VACC uu[A2])
{
#define VTMP VACC
#define G_T VACC
    VACC tmp[ALPHA * 3];
#pragma unroll
    for (int c = 0; c < 3; ++c) G_1D((f + c), (tmp + c), 3);                 /* G g: columns */
#pragma unroll
    for (int i = 0; i < ALPHA; ++i) G_1D((tmp + 3 * i), (uu + ALPHA * i), 1); /* (G g) G^T: rows */
#undef G_T
#undef VTMP
}

/* Work-item gid of filter_transform and filter_pack: filters ci of channel block cb of group g. */
#define FILTER_ITEM                                                                                \
    const int gid = get_global_id(0);                                                              \
    if (gid >= total) return;                                                                      \
    const int NCB = CPg / TN;                                                                      \
    const int r = gid / cig, ci = gid - r * cig;                                                   \
    const int g = r / NCB, cb = r - g * NCB

__kernel void filter_transform(
    __global const T* restrict w, const int w_off,
    __global GACC* restrict u,
    const int cig, const int cog, const int CPg, const int total)
{
    FILTER_ITEM;
    __global VACC* out = (__global VACC*)u + ((g * A2 * NCB + cb) * cig + ci) * NV;
    const int xi_stride = NCB * cig * NV; /* in vectors */
#pragma unroll
    for (int j = 0; j < NV; ++j) {
        VACC f[9], uu[A2];
        load_filters(w, w_off, g, cb * TN + j * VW, ci, cig, cog, f);
        transform_filters(f, uu);
#pragma unroll
        for (int xi = 0; xi < A2; ++xi) out[xi * xi_stride + j] = uu[xi];
    }
}

/* ---------------------------------------------------------------- filter packing (INLINE_U)
 * The weight as wino_gemm_out_inline reads it, untransformed (the size of the weight, a quarter of
 * U for F(4x4)): P[((g*NCB + cb)*cig + ci)*9 + k][TN], tap k of the TN channels of block cb
 * (zeros for the padding channels). One work-item per (g, cb, ci), as filter_transform. */
__kernel void filter_pack(
    __global const T* restrict w, const int w_off,
    __global GACC* restrict pk,
    const int cig, const int cog, const int CPg, const int total)
{
    FILTER_ITEM;
    __global VACC* out = (__global VACC*)pk + ((g * NCB + cb) * cig + ci) * 9 * NV;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
        VACC f[9];
        load_filters(w, w_off, g, cb * TN + j * VW, ci, cig, cog, f);
#pragma unroll
        for (int k = 0; k < 9; ++k) out[k * NV + j] = f[k];
    }
}

/* ---------------------------------------------------------------- zero-padded input copy
 * The input transform reads a zero-padded copy of the chunk's input rows, so that it needs no
 * bounds checks and can load whole row segments as vectors. xp[nl][ci][pr][j] (nl < nimg images
 * from n0, XPH padded rows from padded row r0, XPW columns) = x[n0 + nl][ci][r0 + pr - PH][j - PW],
 * or 0 outside the input. One work-item per padded row; get_global_id(0) = (nl*C_in + ci)*XPH + pr. */
__kernel void pad_input(
    __global const T* restrict x, const int x_off,
    __global GACC* restrict xp, const int xp_off,
    const int C_in, const int IH, const int IW, const int PH, const int PW,
    const int n0, const int r0, const int XPH, const int XPW, const int rows)
{
    const int row = get_global_id(0);
    if (row >= rows) return;
    const int q = row / XPH, pr = row - q * XPH;
    const int nl = q / C_in, ci = q - nl * C_in;
    const int ih = r0 + pr - PH;
    __global GACC* dst = xp + xp_off + row * XPW;
    if (ih < 0 || ih >= IH) {
        for (int j = 0; j < XPW; ++j) dst[j] = (GACC)0;
        return;
    }
    const __global T* src = x + x_off + (((n0 + nl) * C_in + ci) * IH + ih) * IW;
    for (int j = 0; j < PW; ++j) dst[j] = (GACC)0;
    __global GACC* mid = dst + PW;
    for (int j = 0; j < IW; ++j) mid[j] = LOAD(src, j);
    for (int j = PW + IW; j < XPW; ++j) dst[j] = (GACC)0;
}

/* ---------------------------------------------------------------- phase gather (space-to-batch)
 * For dilated convolutions and padding modes other than zeros, in place of pad_input: xp row
 * (nl*C_in + ci)*XPH + pr holds row r0 + pr of phase image q = n0 + nl, i.e. padded-input row
 * pa + DH*(r0 + pr) and columns pb + DW*c (c = j - LM), read through the padding mode; zero where
 * that lies past the padded input (HP x WP: rows and columns that feed only dropped outputs) and
 * in the LM margin columns. One work-item per xp row; get_global_id(0) = row. */
__kernel void gather_phases(
    __global const T* restrict x, const int x_off,
    __global GACC* restrict xp, const int xp_off,
    const int C_in, const int IH, const int IW, const int PH, const int PW, const int HP, const int WP,
    const int DH, const int DW, const int LM,
    const int n0, const int r0, const int XPH, const int XPW, const int rows)
{
    const int row = get_global_id(0);
    if (row >= rows) return;
    const int q = row / XPH, pr = row - q * XPH;
    const int nl = q / C_in, ci = q - nl * C_in;
    const int P = DH * DW;
    const int img = n0 + nl;
    const int n = img / P, ab = img - n * P;
    const int pa = ab / DW, pb = ab - pa * DW;
    const int hp = pa + DH * (r0 + pr); /* row of the padded input */
    __global GACC* dst = xp + xp_off + row * XPW;
    const int ih = hp < HP ? clconv_pad_index(hp - PH, IH, PADDING_MODE) : -1;
    if (ih < 0) {
        for (int j = 0; j < XPW; ++j) dst[j] = (GACC)0;
        return;
    }
    const __global T* src = x + x_off + ((n * C_in + ci) * IH + ih) * IW;
    for (int j = 0; j < LM; ++j) dst[j] = (GACC)0;
    dst += LM;
    const int width = XPW - LM;
    /* phase columns inside the padded input: pb + DW*c < WP; inside the input: PW <= pb + DW*c < PW + IW */
    const int ncols = min(width, (WP - pb + DW - 1) / DW);
    const int lo = min(ncols, max(0, (PW - pb + DW - 1) / DW));
    const int hi = max(lo, min(ncols, (PW + IW - pb + DW - 1) / DW));
    for (int c = 0; c < lo; ++c) {
        const int iw = clconv_pad_index(pb + DW * c - PW, IW, PADDING_MODE);
        dst[c] = iw < 0 ? (GACC)0 : (GACC)LOAD(src, iw);
    }
    for (int c = lo; c < hi; ++c) dst[c] = LOAD(src, pb + DW * c - PW);
    for (int c = hi; c < ncols; ++c) {
        const int iw = clconv_pad_index(pb + DW * c - PW, IW, PADDING_MODE);
        dst[c] = iw < 0 ? (GACC)0 : (GACC)LOAD(src, iw);
    }
    for (int c = ncols; c < width; ++c) dst[c] = (GACC)0;
}

/* ---------------------------------------------------------------- input transform
 * One work-item per (input channel, block of TM consecutive tiles of the chunk): get_global_id(0)
 * = channel, (1) = tile block tb. It takes the block's tiles SEG at a time (SEG = TM: 4 or 8; TM
 * 16 in two segments of 8), as the lanes of VS vectors. A segment is one or more runs of
 * consecutive tiles of one tile row; for each run, every padded input row
 * of the run (SEG*MT + 2 values) is read as two or four unaligned vectors and dealt to the lanes
 * by swizzles (two-vector ones through __builtin_shufflevector: one shuffle instruction, where a
 * vector literal of two swizzles crashes Oclgrind 21.10's uninitialized-value checker), lanes
 * outside the run blended away. xp rows carry a left margin of LM = SEG*MT zero
 * columns, so that a run that starts at lane l > 0 can start its loads l tiles left of its first
 * tile. Lanes past the chunk's last tile stay zero.
 * V[((tb*groups + g)*cig + ci)*A2 + xi][TM]: one work-item writes one contiguous block (scattered
 * stores, one page apart per xi, cost ten times more on PoCL; TM 16 with one work-item per segment,
 * two cores writing halves of the same lines, cost 0.06 ms against 0.05 at 14x14). */
#if ALPHA == 4 && SEG == 8
#define ROWLEN 18 /* values a LOAD_ROW reads */
#define LOAD_ROW_WITH(LD, AS, p, d)                                         \
    do {                                                       \
        const V16 s0_ = LD(AS, 16, p, 0);            \
        const V16 s1_ = LD(AS, 16, p, 2);      \
        (d)[0] = s0_.even;                                     \
        (d)[1] = s0_.odd;                                      \
        (d)[2] = s1_.even;                                     \
        (d)[3] = s1_.odd;                                      \
    } while (0)
#elif ALPHA == 4 && SEG == 4
#define ROWLEN 10
#define LOAD_ROW_WITH(LD, AS, p, d)                                         \
    do {                                                       \
        const V8 s0_ = LD(AS, 8, p, 0);              \
        const V8 s1_ = LD(AS, 8, p, 2);        \
        (d)[0] = s0_.even;                                     \
        (d)[1] = s0_.odd;                                      \
        (d)[2] = s1_.even;                                     \
        (d)[3] = s1_.odd;                                      \
    } while (0)
#elif ALPHA == 6 && SEG == 8
#define ROWLEN 34
#define LOAD_ROW_WITH(LD, AS, p, d)                                         \
    do {                                                       \
        const V16 s0_ = LD(AS, 16, p, 0);            \
        const V16 s1_ = LD(AS, 16, p, 16);     \
        const V16 s2_ = LD(AS, 16, p, 2);      \
        const V16 s3_ = LD(AS, 16, p, 18);     \
        (d)[0] = __builtin_shufflevector(s0_, s1_, 0, 4, 8, 12, 16, 20, 24, 28);  \
        (d)[1] = __builtin_shufflevector(s0_, s1_, 1, 5, 9, 13, 17, 21, 25, 29);  \
        (d)[2] = __builtin_shufflevector(s0_, s1_, 2, 6, 10, 14, 18, 22, 26, 30); \
        (d)[3] = __builtin_shufflevector(s0_, s1_, 3, 7, 11, 15, 19, 23, 27, 31); \
        (d)[4] = __builtin_shufflevector(s2_, s3_, 2, 6, 10, 14, 18, 22, 26, 30); \
        (d)[5] = __builtin_shufflevector(s2_, s3_, 3, 7, 11, 15, 19, 23, 27, 31); \
    } while (0)
#elif ALPHA == 6 && SEG == 4
#define ROWLEN 18
#define LOAD_ROW_WITH(LD, AS, p, d)                                         \
    do {                                                       \
        const V16 s0_ = LD(AS, 16, p, 0);            \
        const V16 s2_ = LD(AS, 16, p, 2);      \
        (d)[0] = s0_.s048c;                                    \
        (d)[1] = s0_.s159d;                                    \
        (d)[2] = s0_.s26ae;                                    \
        (d)[3] = s0_.s37bf;                                    \
        (d)[4] = s2_.s26ae;                                    \
        (d)[5] = s2_.s37bf;                                    \
    } while (0)
#else
#error "SEG must be 4 or 8"
#endif
/* a row's unaligned vector at p + off: plainly, or with the lanes outside the input row
 * (columns col0 + off + lane outside [0, IW)) zeroed, the load itself staying inside x */
#define LD_PLAIN(AS, n, p, off) (*(const AS WCAT(UV, n)*)((p) + (off)))
#define LD_MASKED(AS, n, p, off) \
    CLCONV_SELECT((WCAT(GACC, n))(0), LD_PLAIN(AS, n, p, off), WCAT(COL_IN, n)(col0 + (off)))
#define LOAD_ROW_AS(AS, p, d) LOAD_ROW_WITH(LD_PLAIN, AS, p, d)
#define LOAD_ROW(p, d) LOAD_ROW_AS(__global, p, d)

#if DIRECT_X
#if CLCONV_DTYPE == 64
#define COL_IDX16 ((long16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define COL_IDX8 ((long8)(0, 1, 2, 3, 4, 5, 6, 7))
#else
#define COL_IDX16 ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define COL_IDX8 ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#endif
/* lanes of a vector whose first value is column c that lie inside the input row */
#define COL_IN16(c) (((c) + COL_IDX16 >= 0) & ((c) + COL_IDX16 < IW))
#define COL_IN8(c) (((c) + COL_IDX8 >= 0) & ((c) + COL_IDX8 < IW))
/* Row r of the patch rows of a run, read from x itself. Rows outside the input are zeros; a row
 * whose ROWLEN columns lie inside the input is loaded as it is; one that crosses the input's left
 * or right edge is loaded as the same vectors with the lanes outside the row zeroed (the loads
 * read the neighbouring rows' values there, inside x: at = its first value's index, within
 * [x_off, x_end)); only the first and last rows of x, whose loads would leave it, go through a
 * private row of ROWLEN scalars (reading every edge row so made the whole kernel 1.6-1.7x slower
 * at 56x56 and 28x28, where every run touches an edge). */
#define GET_ROW(r, dst)                                                                    \
    do {                                                                                   \
        const int ih_ = ih0 + (r);                                                         \
        if (ih_ < 0 || ih_ >= IH) {                                                        \
            _Pragma("unroll")                                                              \
            for (int c_ = 0; c_ < ALPHA; ++c_) (dst)[c_] = (VS)(0);                        \
        } else {                                                                           \
            const int at_ = xc + ih_ * IW + col0;                                          \
            if (cols_inside) {                                                             \
                LOAD_ROW(x + at_, dst);                                                    \
            } else if (at_ >= x_off && at_ <= x_end - ROWLEN) {                            \
                LOAD_ROW_WITH(LD_MASKED, __global, x + at_, dst);                          \
            } else {                                                                       \
                GACC st_[ROWLEN];                                                          \
                _Pragma("unroll")                                                          \
                for (int j_ = 0; j_ < ROWLEN; ++j_) {                                      \
                    const int iw_ = col0 + j_;                                             \
                    st_[j_] = iw_ >= 0 && iw_ < IW ? x[at_ + j_] : (GACC)0;                \
                }                                                                          \
                LOAD_ROW_AS(__private, st_, dst);                                          \
            }                                                                              \
        }                                                                                  \
    } while (0)
#else
#define GET_ROW(r, dst) LOAD_ROW(p + (r) * XPW, dst)
#endif

__kernel void input_transform(
#if DIRECT_X /* x itself (T == GACC), no padded copy: x_off, the input size, padding, chunk */
    __global const GACC* restrict x, const int x_off, const int x_end,
    const int IH, const int IW, const int PH, const int PW, const int n0, const int r0,
#else
    __global const GACC* restrict xp, const int xp_off,
#endif
    __global GACC* restrict v, const int v_off,
    const int C_in, const int cig, const int TW, const int nth, const int count, const int NTB,
    const int XPH, const int XPW)
{
    const int ci = get_global_id(0);
    const int tb = get_global_id(1);
    if (ci >= C_in || tb >= NTB) return;
    const int g = ci / cig, cil = ci - g * cig;
    __global GACC* o = v + v_off + ((tb * (C_in / cig) + g) * cig + cil) * A2 * TM;
    for (int sg = 0; sg < TM / SEG; ++sg) { /* the block's SEG tiles at a time (TM 16: two) */
    VS d[A2];
#pragma unroll
    for (int k = 0; k < A2; ++k) d[k] = (VS)(0);
    int lane = 0, t = tb * TM + sg * SEG;
    while (lane < SEG && t < count) {
        const int rr = t / TW, tw = t - rr * TW;
        const int len = min(min(SEG - lane, TW - tw), count - t);
        const int nl = rr / nth, thl = rr - nl * nth;
#if DIRECT_X
        /* the run's rows start at input row ih0 and column col0 (lane l's tile at col0 + l*MT) */
        const int ih0 = r0 + thl * MT - PH;
        const int col0 = (tw - lane) * MT - PW;
        const bool cols_inside = col0 >= 0 && col0 + ROWLEN <= IW;
        const int xc = x_off + ((n0 + nl) * C_in + ci) * IH * IW; /* the channel's plane */
#else
        const __global GACC* p =
            xp + xp_off + ((nl * C_in + ci) * XPH + thl * MT) * XPW + (SEG + tw - lane) * MT;
#endif
        if (len == SEG) { /* the whole block in one tile row */
#pragma unroll
            for (int r = 0; r < ALPHA; ++r) GET_ROW(r, d + r * ALPHA);
        } else {
            const VSI id = LANE_IDS;
            const VSI in_run = (id >= (VSI)(lane)) & (id < (VSI)(lane + len));
            VS e[ALPHA];
#pragma unroll
            for (int r = 0; r < ALPHA; ++r) {
                GET_ROW(r, e);
#pragma unroll
                for (int c = 0; c < ALPHA; ++c) d[r * ALPHA + c] = CLCONV_SELECT(d[r * ALPHA + c], e[c], in_run);
            }
        }
        lane += len;
        t += len;
    }
#define VTMP VS
    VS tmp[A2];
#pragma unroll
    for (int c = 0; c < ALPHA; ++c) BT_1D((d + c), (tmp + c), ALPHA);             /* B^T d: columns */
#pragma unroll
    for (int r = 0; r < ALPHA; ++r) BT_1D((tmp + ALPHA * r), (d + ALPHA * r), 1);  /* (B^T d) B: rows */
#undef VTMP
#pragma unroll
    for (int xi = 0; xi < A2; ++xi) *(__global VS*)(o + xi * TM + sg * SEG) = d[xi];
    }
}

/* ---------------------------------------------------------------- batched GEMM
 * M(xi, t, g*CPg + co) = sum_ci V(g, xi, t, ci) * U(g, xi, co, ci) for a TM x TN block:
 * get_global_id(0) = tile block tb, (1) = channel block cb, (2) = g * A2 + xi. The host groups
 * tile blocks into a work-group, so they share the U panel (cig x TN) in cache. */
/* The block's sums over ci: acc[i][j] = sum_ci V(tile i, ci) * U(ci, vector j), up and vp at
 * ci = 0 (wino_gemm's and wino_gemm_out's loop). */
inline void gemm_block(const __global VACC* up, const __global GACC* vp, const int cig, VACC acc[TM][NV])
{
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < NV; ++j) acc[i][j] = (VACC)(0);
    for (int k = 0; k < cig; ++k) {
#if WPF
        __builtin_prefetch(vp + WPF * A2 * TM);
#pragma unroll
        for (int j = 0; j < NV; ++j) __builtin_prefetch(up + WPF * NV + j);
#endif
        VACC b[NV];
#pragma unroll
        for (int j = 0; j < NV; ++j) b[j] = up[j];
        up += NV;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const GACC a = vp[i];
#pragma unroll
            for (int j = 0; j < NV; ++j) acc[i][j] = a * b[j] + acc[i][j];
        }
        vp += A2 * TM;
    }
}

__kernel void wino_gemm(
    __global const GACC* restrict u, __global const GACC* restrict v, const int v_off,
    __global GACC* restrict m, const int m_off,
    const int cig, const int NCB, const int NTB, const int CPg, const int CPT)
{
    const int tb = get_global_id(0);
    const int cb = get_global_id(1);
    const int gx = get_global_id(2);
    if (tb >= NTB || cb >= NCB) return;
    const int g = gx / A2, xi = gx - g * A2;
    const __global VACC* up = (const __global VACC*)(u + (gx * NCB + cb) * cig * TN);
    const __global GACC* vp = v + v_off + ((tb * (CPT / CPg) + g) * cig * A2 + xi) * TM;
    VACC acc[TM][NV];
    gemm_block(up, vp, cig, acc);
    __global GACC* mp = m + m_off + (tb * A2 + xi) * TM * CPT + g * CPg + cb * TN;
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < NV; ++j) *(__global VACC*)(mp + i * CPT + j * VW) = acc[i][j];
}

/* ---------------------------------------------------------------- output transform
 * STORE_ROW(y, e, p): store lane e of the MT vectors y[0..MT-1] as MT consecutive outputs at p. */
#define LANE(v, e) ((v)[e]) /* a vector subscript: no address taken, the vector stays in registers */
#if MT == 2
#define ROWVEC(y, e) ((V2)(LANE((y)[0], e), LANE((y)[1], e)))
#else
#define ROWVEC(y, e) ((V4)(LANE((y)[0], e), LANE((y)[1], e), LANE((y)[2], e), LANE((y)[3], e)))
#endif
#if CLCONV_DTYPE == 16
#define STORE_ROW(y, e, p) WCAT(WCAT(vstore_half, MT), _rte)(ROWVEC(y, e), 0, (p))
#else
#define STORE_ROW(y, e, p) (*(__global WCAT(UV, MT)*)(p) = ROWVEC(y, e))
#endif

/* OUT_STREAM == 1 (the host sets it for float32 outputs far larger than the caches, with 8 or 16
 * channels per vector): a work-item stages the outputs of its block's full tiles in private
 * memory, and then writes them channel by channel, row by row, tile fastest, with
 * non-temporal (streaming) stores where aligned. Stored tile by tile, a work-item keeps VW * MT
 * output rows (64 for F(4x4)) of partly written cache lines open at once, each read from memory
 * before it is written: VGG's 3x3 layer spent 1.0-1.7 of its output transform's 2.4-2.8 ms on
 * those stores, where one sequential pass writes the same 6.4 MB in 0.27 ms (PoCL, AVX-512
 * Xeon). The staged rows are built by interleaving whole vectors (ZIP: constant two-source
 * shuffles) rather than lane by lane. */
#ifndef OUT_STREAM
#define OUT_STREAM 0
#endif
#if OUT_STREAM
#if CLCONV_DTYPE != 32 || !(VW == 16 || VW == 8)
#error "OUT_STREAM needs float32 and VW 8 or 16"
#endif
#define VMT WCAT(float, MT)
#if VW == 16
#define ZIP_LO(V, a, b) ((V)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3, \
                             (a).s4, (b).s4, (a).s5, (b).s5, (a).s6, (b).s6, (a).s7, (b).s7))
#define ZIP_HI(V, a, b) ((V)((a).s8, (b).s8, (a).s9, (b).s9, (a).sa, (b).sa, (a).sb, (b).sb, \
                             (a).sc, (b).sc, (a).sd, (b).sd, (a).se, (b).se, (a).sf, (b).sf))
#define AS_U64 as_ulong8
#define ZIP64_LO(a, b) ((ulong8)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3))
#define ZIP64_HI(a, b) ((ulong8)((a).s4, (b).s4, (a).s5, (b).s5, (a).s6, (b).s6, (a).s7, (b).s7))
#else
#define ZIP_LO(V, a, b) ((V)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3))
#define ZIP_HI(V, a, b) ((V)((a).s4, (b).s4, (a).s5, (b).s5, (a).s6, (b).s6, (a).s7, (b).s7))
#define AS_U64 as_ulong4
#define ZIP64_LO(a, b) ((ulong4)((a).s0, (b).s0, (a).s1, (b).s1))
#define ZIP64_HI(a, b) ((ulong4)((a).s2, (b).s2, (a).s3, (b).s3))
#endif
/* LANES_MT(v, q): lanes MT*q .. MT*q + MT-1 of v */
#if MT == 2
#define LANES_MT(v, q) ((float2)((v)[2 * (q)], (v)[2 * (q) + 1]))
#else
#define LANES_MT(v, q) ((float4)((v)[4 * (q)], (v)[4 * (q) + 1], (v)[4 * (q) + 2], (v)[4 * (q) + 3]))
#endif

/* The MT x MT outputs of one tile (yy: VW channels per vector) as rows of MT outputs per
 * channel: st[e * MT + r] = output row r of channel e. */
inline void stage_tile(const VACC* yy, VMT* st)
{
#pragma unroll
    for (int r = 0; r < MT; ++r) {
        const VACC* y = yy + r * MT;
        VACC t[MT]; /* channel k * (VW / MT) + q at lanes MT*q .. MT*q + MT-1 of t[k] */
#if MT == 2
        t[0] = ZIP_LO(VACC, y[0], y[1]);
        t[1] = ZIP_HI(VACC, y[0], y[1]);
#else
        const VACC p0 = ZIP_LO(VACC, y[0], y[1]), p1 = ZIP_HI(VACC, y[0], y[1]);
        const VACC q0 = ZIP_LO(VACC, y[2], y[3]), q1 = ZIP_HI(VACC, y[2], y[3]);
        t[0] = WCAT(as_float, VW)(ZIP64_LO(AS_U64(p0), AS_U64(q0)));
        t[1] = WCAT(as_float, VW)(ZIP64_HI(AS_U64(p0), AS_U64(q0)));
        t[2] = WCAT(as_float, VW)(ZIP64_LO(AS_U64(p1), AS_U64(q1)));
        t[3] = WCAT(as_float, VW)(ZIP64_HI(AS_U64(p1), AS_U64(q1)));
#endif
#pragma unroll
        for (int k = 0; k < MT; ++k)
#pragma unroll
            for (int q = 0; q < VW / MT; ++q) st[(k * (VW / MT) + q) * MT + r] = LANES_MT(t[k], q);
    }
}

/* One staged row of MT outputs at p: a streaming store where p is aligned to its size (a
 * hint: the same value is stored either way), a plain one elsewhere. */
inline void stream_row(const VMT v, __global float* p)
{
#if defined(__clang__)
    if (((size_t)p & (sizeof(VMT) - 1)) == 0) {
        __builtin_nontemporal_store(v, (__global VMT*)p);
        return;
    }
#endif
    *(__global WCAT(UV, MT)*)p = v;
}
#endif

/* The arguments that place outputs and recompute non-finite tiles (output_transform and the fused
 * wino_gemm_out): x and w for the direct fallback, bias, y, shapes, the chunk (n0, th0, nth, count
 * tiles), dilation. */
#define OUT_PARAMS_R(R)                                                                             \
    __global const T* R x, const int x_off, __global const T* R w, const int w_off,                 \
    __global const T* R bias, const int b_off, __global T* R y, const int y_off,                    \
    const int C_in, const int C_out, const int cig, const int cog, const int CPg, const int CPT,     \
    const int IH, const int IW, const int OH, const int OW, const int PH, const int PW,              \
    const int n0, const int th0, const int nth, const int TW, const int count, const int DH,        \
    const int DW
/* kernels take them restrict; the helpers (out_tile, out_block, inline_epilogue) plain: see
 * CLCONV_INLINE in common.h (inlined, a restrict parameter breaks Oclgrind) */
#define OUT_PARAMS OUT_PARAMS_R(restrict)
#define OUT_HPARAMS OUT_PARAMS_R()
#define OUT_ARGS x, x_off, w, w_off, bias, b_off, y, y_off, C_in, C_out, cig, cog, CPg, CPT, IH, IW, \
    OH, OW, PH, PW, n0, th0, nth, TW, count, DH, DW
#if OUT_STREAM
#define STAGE_PARAMS , VMT* stage, int* stage_at
#define STAGE_ARGS , stage, stage_at
#else
#define STAGE_PARAMS
#define STAGE_ARGS
#endif

/* Tile t (the i-th of its block) of the VW output channels from cl0 (lanes of them valid) of
 * group g, from its A2 transform values mm: Y = A^T M A plus bias bv, stored into y (or staged:
 * OUT_STREAM), a non-finite tile recomputed directly. Image n0 + nl of the chunk is phase image q:
 * output (i, j) of its tiles goes to y[n][co][pa + DH*i][pb + DW*j] (DH = DW = 1: the image
 * itself), and only where that is inside the OH x OW output (batch-to-space, cropped). */
inline void out_tile(const VACC* mm, const int t, const int i, const int g, const int cl0, const int lanes,
                     const VACC bv, OUT_HPARAMS STAGE_PARAMS)
{
#define VTMP VACC
    VACC tmp[MT * ALPHA], yy[MT * MT];
#pragma unroll
    for (int c = 0; c < ALPHA; ++c) AT_1D((mm + c), (tmp + c), ALPHA);       /* A^T M: columns */
#pragma unroll
    for (int r = 0; r < MT; ++r) AT_1D((tmp + ALPHA * r), (yy + MT * r), 1);  /* (A^T M) A: rows */
#undef VTMP
    /* any NaN or Inf in M or Y: recompute these outputs directly (see the file comment).
     * Y alone is probed: every entry of M reaches some output of the tile with a nonzero
     * coefficient (every column of A^T has one), and sums and products with nonzero finite
     * constants keep a NaN or an Inf non-finite, so a non-finite M shows in Y (probing M
     * as well cost 5-10% of this kernel). */
    VACC probe = (VACC)(0);
#pragma unroll
    for (int k = 0; k < MT * MT; ++k) probe += yy[k] - yy[k];
    const bool direct = any(isnan(probe));

    const int rr = t / TW, tw = t - rr * TW;
    const int nl = rr / nth;
    const int img = n0 + nl, th = th0 + rr - nl * nth;
    const int n = img / (DH * DW), ab = img - n * (DH * DW);
    const int pa = ab / DW, pb = ab - pa * DW;
    const int oh0 = th * MT, ow0 = tw * MT; /* in the phase image */
    /* outputs of this phase: (OH - pa) / DH rows rounded up, likewise columns */
    const int rows = min(MT, (OH - pa + DH - 1) / DH - oh0);
    const int cols = min(MT, (OW - pb + DW - 1) / DW - ow0);
    if (rows <= 0 || cols <= 0) return; /* a tile past the output's end (a phase's last) */
    const int co0 = g * cog + cl0;
    const int rs = DH * OW; /* output row stride of one phase row */
    const int yo = y_off + ((n * C_out + co0) * OH + pa + DH * oh0) * OW + pb + DW * ow0;
    __global T* yp = y + yo;
    const int plane = OH * OW;
#if HAS_BIAS
#pragma unroll
    for (int k = 0; k < MT * MT; ++k) yy[k] += bv;
#endif
    if (!direct && lanes == VW && rows == MT && cols == MT) {
        /* the common case: every lane and every output of the tile; each output row of each
         * channel is one short vector store (DW = 1) or MT scalars DW apart, built with
         * constant lane indices */
        if (DW == 1) {
#if OUT_STREAM
            stage_tile(yy, stage + i * VW * MT);
            stage_at[i] = yo;
#else
#pragma unroll
            for (int e = 0; e < VW; ++e)
#pragma unroll
                for (int r = 0; r < MT; ++r) STORE_ROW(yy + r * MT, e, yp + e * plane + r * rs);
#endif
        } else {
#pragma unroll
            for (int e = 0; e < VW; ++e)
#pragma unroll
                for (int r = 0; r < MT; ++r)
#pragma unroll
                    for (int c = 0; c < MT; ++c)
                        STORE(LANE(yy[r * MT + c], e), yp, e * plane + r * rs + c * DW);
        }
        return;
    }
    for (int e = 0; e < lanes; ++e) {
        const int co = co0 + e;
        if (!direct) {
            for (int r = 0; r < rows; ++r)
                for (int c = 0; c < cols; ++c)
                    STORE(yy[r * MT + c][e], yp, e * plane + r * rs + c * DW);
            continue;
        }
#if HAS_BIAS
        const GACC b = LOAD(bias, b_off + co);
#else
        const GACC b = (GACC)0;
#endif
        for (int r = 0; r < rows; ++r) {
            const int oy = pa + DH * (oh0 + r);
            for (int c = 0; c < cols; ++c) {
                const int ox = pb + DW * (ow0 + c);
                GACC acc = (GACC)0;
                for (int ci = 0; ci < cig; ++ci) {
                    const int xc = x_off + (n * C_in + g * cig + ci) * IH * IW;
                    const int wc = w_off + (co * cig + ci) * 9;
                    for (int kh = 0; kh < 3; ++kh) {
                        const int ih = clconv_pad_index(oy - PH + DH * kh, IH, PADDING_MODE);
                        if (ih < 0) continue;
                        for (int kw = 0; kw < 3; ++kw) {
                            const int iw = clconv_pad_index(ox - PW + DW * kw, IW, PADDING_MODE);
                            if (iw < 0) continue;
                            acc += LOAD(x, xc + ih * IW + iw) * LOAD(w, wc + kh * 3 + kw);
                        }
                    }
                }
                STORE(acc + b, yp, e * plane + r * rs + c * DW);
            }
        }
    }
}

/* The channel vector cv (over all groups' padded channels): its group g, first channel cl0 within
 * the group and valid lanes (CPg % VW == 0: a vector never straddles groups), and its bias. */
#if HAS_BIAS
#define OUT_BIAS_VECTOR(bv)                                                                       \
    VACC bv = (VACC)(0);                                                                          \
    for (int e = 0; e < lanes; ++e) bv[e] = LOAD(bias, b_off + g * cog + cl0 + e)
#else
#define OUT_BIAS_VECTOR(bv) const VACC bv = (VACC)(0)
#endif
#if OUT_STREAM
#define OUT_STAGE_DECL                                                                            \
    VMT stage[TM * VW * MT];                                                                      \
    int stage_at[TM]; /* a staged tile's first output (an index into y), or -1 */                \
    _Pragma("unroll") for (int i_ = 0; i_ < TM; ++i_) stage_at[i_] = -1
/* the staged rows, channel by channel, row by row, tile fastest */
inline void out_flush(const VMT* stage, const int* stage_at, __global float* y, const int OH, const int OW,
                      const int DH)
{
    const int plane = OH * OW, rs = DH * OW;
    for (int e = 0; e < VW; ++e)
        for (int r = 0; r < MT; ++r)
#pragma unroll
            for (int i = 0; i < TM; ++i)
                if (stage_at[i] >= 0) stream_row(stage[(i * VW + e) * MT + r], y + stage_at[i] + e * plane + r * rs);
}
#define OUT_FLUSH out_flush(stage, stage_at, y, OH, OW, DH)
#else
#define OUT_STAGE_DECL
#define OUT_FLUSH
#endif

/* One work-item per (vector of VW output channels, tile block): get_global_id(0) = channel vector
 * (over all groups' padded channels), get_global_id(1) = tile block tb; it walks the TM tiles of
 * the block (their M rows are CPT apart). */
__kernel void output_transform(__global const GACC* restrict m, const int m_off, OUT_PARAMS)
{
    const int cv = get_global_id(0);
    const int tb = get_global_id(1);
    if (cv * VW >= CPT || tb * TM >= count) return;
    const int g = (cv * VW) / CPg, cl0 = cv * VW - g * CPg;
    const int lanes = min(VW, cog - cl0); /* valid channels of this vector */
    if (lanes <= 0) return;
    OUT_BIAS_VECTOR(bv);
    OUT_STAGE_DECL;
    for (int i = 0; i < TM; ++i) { /* the tiles of block tb, one after another */
        const int t = tb * TM + i;
        if (t >= count) break;
        VACC mm[A2];
        const __global GACC* mp = m + m_off + (tb * A2 * TM + i) * CPT + cv * VW;
#pragma unroll
        for (int xi = 0; xi < A2; ++xi) mm[xi] = *(const __global VACC*)(mp + xi * TM * CPT);
#if WPF /* the next tile's M (2 KiB strides): VGG's 3x3 layer 0.83 -> 0.69 ms, 56/28 unchanged */
        if (i + 1 < TM) {
#pragma unroll
            for (int xi = 0; xi < A2; ++xi) __builtin_prefetch(mp + CPT + xi * TM * CPT);
        }
#endif
        out_tile(mm, t, i, g, cl0, lanes, bv, OUT_ARGS STAGE_ARGS);
    }
    OUT_FLUSH;
}

/* ---------------------------------------------------------------- fused GEMM + output transform
 * CPU devices (FUSED = 1): one work-item per (tile block tb, channel block cb, group g) computes
 * the TM x TN block of M for every transform position xi in turn (wino_gemm's loop, the same k
 * order: the same bits), keeps the block's A2 x TM x NV vectors in private memory (36 KiB for
 * F(4x4), TM 8, two float16 vectors: within L1) and transforms them into the outputs itself, one
 * channel vector after another, as output_transform does. M never goes to global memory and the
 * output transform's launch goes away. get_global_id(0) = tb, (1) = cb, (2) = g; work-groups of
 * tile blocks share U's panels of one cb (A2 * cig * TN values) in cache. */
/* The outputs of the block of M that a fused work-item holds (mb[xi][tile][vector]): channel vector
 * after channel vector, tile after tile, as output_transform does. */
inline void out_block(VACC mb[A2][TM][NV], const int tb, const int cb, const int g, OUT_HPARAMS)
{
    for (int j = 0; j < NV; ++j) {
        const int cl0 = cb * TN + j * VW; /* within group g */
        const int lanes = min(VW, cog - cl0);
        if (lanes <= 0) return; /* padding channels (and so are the later vectors) */
        OUT_BIAS_VECTOR(bv);
        OUT_STAGE_DECL;
        for (int i = 0; i < TM; ++i) {
            const int t = tb * TM + i;
            if (t >= count) break;
            VACC mm[A2];
#pragma unroll
            for (int xi = 0; xi < A2; ++xi) mm[xi] = mb[xi][i][j];
            out_tile(mm, t, i, g, cl0, lanes, bv, OUT_ARGS STAGE_ARGS);
        }
        OUT_FLUSH;
    }
}

__kernel void wino_gemm_out(
    __global const GACC* restrict u, __global const GACC* restrict v, const int v_off,
    const int NCB, const int NTB, OUT_PARAMS)
{
    const int tb = get_global_id(0);
    const int cb = get_global_id(1);
    const int g = get_global_id(2);
    if (tb >= NTB || cb >= NCB) return;
    VACC mb[A2][TM][NV];
    for (int xi = 0; xi < A2; ++xi) {
        const __global VACC* up = (const __global VACC*)(u + ((g * A2 + xi) * NCB + cb) * cig * TN);
        const __global GACC* vp = v + v_off + ((tb * (CPT / CPg) + g) * cig * A2 + xi) * TM;
        VACC acc[TM][NV];
        gemm_block(up, vp, cig, acc);
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < NV; ++j) mb[xi][i][j] = acc[i][j];
    }
    out_block(mb, tb, cb, g, OUT_ARGS);
}

#ifndef INLINE
#define INLINE 0
#endif
#if INLINE /* (the host's: 1 the packed weight, 2 also NumPy weights in place; their local arrays
            * count against the device's local memory for every kernel of the program) */
/* ---------------------------------------------------------------- fused, filters transformed inline
 * INLINE_U (the host's choice where U, 4x the weight for F(4x4), would stream from memory every
 * call while all the batch's tiles fit one GEMM block: late layers with many channels): as
 * wino_gemm_out, but transforming the filters in the work-item, KC input channels at a time,
 * into local memory (us: PoCL's CPU driver keeps a work-group's local memory per thread and
 * reuses it, so it stays in L1), before the A2 GEMMs of those channels. G = diag(GD) G' with
 * integer G' (GI_1D: fewer operations than G_1D); M is scaled by GD[a] * GD[b] at the end.
 * wino_gemm_out_inline reads filter_pack's packed weight (cached per weight by the host);
 * wino_gemm_out_raw reads the caller's weight itself, RC input channels at a time: float32 with
 * 16-channel vectors loads each channel's RC x 9 contiguous values as 9 float16 rows and
 * transposes 16 x 16 blocks with shuffles, the rest gathers them (load_filters). */
#ifndef KC
#define KC 8
#endif
#define RC 16 /* input channels of raw filters transposed at a time */
#define KR (KC < 4 ? KC : 4) /* wino_gemm_out_raw's chunks: with RC's 16 x 9 vectors in L1 too, 8 spilled */

/* One chunk of kn <= KCH input channels from k0: their filters' nine vectors per channel and
 * channel vector at FP (an lvalue expression of c, k, j), transformed into us, then the A2
 * GEMMs into mb. PF(xi): prefetches spread over the GEMMs. */
#define CHUNK_GEMM(KCH, FP, PF)                                                                       \
    do {                                                                                           \
        for (int c = 0; c < kn; ++c) {                                                             \
            _Pragma("unroll") for (int j = 0; j < NV; ++j) {                                       \
                VACC f[9], uu[A2], tmp[ALPHA * 3];                                                 \
                _Pragma("unroll") for (int k = 0; k < 9; ++k) f[k] = FP;                           \
                _Pragma("unroll") for (int q = 0; q < 3; ++q) GI_1D((f + q), (tmp + q), 3);        \
                _Pragma("unroll") for (int i = 0; i < ALPHA; ++i) GI_1D((tmp + 3 * i), (uu + ALPHA * i), 1); \
                _Pragma("unroll") for (int xi = 0; xi < A2; ++xi) us[(xi * (KCH) + c) * NV + j] = uu[xi]; \
            }                                                                                      \
        }                                                                                          \
        for (int xi = 0; xi < A2; ++xi) {                                                          \
            PF(xi);                                                                                \
            VACC acc[TM][NV];                                                                      \
            _Pragma("unroll") for (int i = 0; i < TM; ++i)                                         \
                _Pragma("unroll") for (int j = 0; j < NV; ++j) acc[i][j] = mb[xi][i][j];           \
            const __global GACC* vp = vb + (k0 * A2 + xi) * TM;                                    \
            const __local VACC* up = us + xi * (KCH) * NV;                                         \
            for (int c = 0; c < kn; ++c) {                                                         \
                GEMM_PREFETCH_V(vp);                                                               \
                VACC bq[NV];                                                                       \
                _Pragma("unroll") for (int j = 0; j < NV; ++j) bq[j] = up[j];                      \
                up += NV;                                                                          \
                _Pragma("unroll") for (int i = 0; i < TM; ++i) {                                   \
                    const GACC a = vp[i];                                                          \
                    _Pragma("unroll") for (int j = 0; j < NV; ++j) acc[i][j] = a * bq[j] + acc[i][j]; \
                }                                                                                  \
                vp += A2 * TM;                                                                     \
            }                                                                                      \
            _Pragma("unroll") for (int i = 0; i < TM; ++i)                                         \
                _Pragma("unroll") for (int j = 0; j < NV; ++j) mb[xi][i][j] = acc[i][j];           \
        }                                                                                          \
    } while (0)
#if WPF
#define GEMM_PREFETCH_V(vp) __builtin_prefetch((vp) + WPF * A2 * TM)
#else
#define GEMM_PREFETCH_V(vp)
#endif
#define G_T VACC

/* the start of both kernels: the work-item's block, its zeroed M and its V */
#define INLINE_PROLOGUE                                                                            \
    const int tb = get_global_id(0);                                                               \
    const int cb = get_global_id(1);                                                               \
    const int g = get_global_id(2);                                                                \
    if (tb >= NTB || cb >= NCB) return;                                                            \
    __local VACC us[KC * A2 * NV];                                                                 \
    VACC mb[A2][TM][NV];                                                                           \
    _Pragma("unroll") for (int xi = 0; xi < A2; ++xi)                                              \
        _Pragma("unroll") for (int i = 0; i < TM; ++i)                                             \
            _Pragma("unroll") for (int j = 0; j < NV; ++j) mb[xi][i][j] = (VACC)(0);               \
    const __global GACC* vb = v + v_off + (tb * (CPT / CPg) + g) * cig * A2 * TM

/* the end of both: M scaled by G's row factors, transformed into outputs */
inline void inline_epilogue(VACC mb[A2][TM][NV], const int tb, const int cb, const int g, OUT_HPARAMS)
{
#pragma unroll
    for (int xi = 0; xi < A2; ++xi) {
        const GACC d = GD_(xi / ALPHA) * GD_(xi - (xi / ALPHA) * ALPHA);
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < NV; ++j) mb[xi][i][j] *= d;
    }
    out_block(mb, tb, cb, g, OUT_ARGS);
}

__kernel void wino_gemm_out_inline(
    __global const GACC* restrict pk, __global const GACC* restrict v, const int v_off,
    const int NCB, const int NTB, OUT_PARAMS)
{
    INLINE_PROLOGUE;
    const __global VACC* gp = (const __global VACC*)pk + (g * NCB + cb) * cig * 9 * NV;
    for (int k0 = 0; k0 < cig; k0 += KC) {
        const int kn = min(KC, cig - k0);
        const __global VACC* fp = gp + k0 * 9 * NV;
        /* the next chunk's filters, spread over the A2 GEMMs (the weight streams from memory) */
#if WPF
#define PF_PACKED(xi)                                                                              \
    for (int q = (xi); q < min(KC, cig - k0 - KC) * 9 * NV; q += A2) __builtin_prefetch(fp + KC * 9 * NV + q)
#else
#define PF_PACKED(xi)
#endif
        CHUNK_GEMM(KC, fp[(c * 9 + k) * NV + j], PF_PACKED);
    }
    inline_epilogue(mb, tb, cb, g, OUT_ARGS);
}

#if INLINE == 2
#if VW == 16 && CLCONV_DTYPE == 32 && CLCONV_SHUFFLE
#define RAW_SHUFFLE 1
#else
#define RAW_SHUFFLE 0
#endif

__kernel void wino_gemm_out_raw(
    __global const GACC* restrict v, const int v_off, const int NCB, const int NTB, OUT_PARAMS)
{
    INLINE_PROLOGUE;
    __local VACC gr[RC * 9 * NV]; /* the raw chunk's filters, vectors along the channels */
    for (int r0 = 0; r0 < cig; r0 += RC) {
        const int rn = min(RC, cig - r0);
#pragma unroll
        for (int j = 0; j < NV; ++j) {
            const int co0 = cb * TN + j * VW;
#if RAW_SHUFFLE
            if (rn == RC && co0 + VW <= cog) { /* 16 channels' RC x 9 values: 9 rows of 16 each */
                const __global T* base = w + w_off + ((g * cog + co0) * cig + r0) * 9;
                for (int q = 0; q < 9; ++q) {
                    float16 rows[16];
#pragma unroll
                    for (int e = 0; e < 16; ++e) rows[e] = *(const __global UV16*)(base + e * cig * 9 + q * 16);
                    clconv_transpose16(rows);
#pragma unroll
                    for (int c = 0; c < 16; ++c) gr[(q * 16 + c) * NV + j] = rows[c];
                }
                continue;
            }
#endif
            for (int c = 0; c < rn; ++c) {
                VACC f[9];
                load_filters(w, w_off, g, co0, r0 + c, cig, cog, f);
#pragma unroll
                for (int k = 0; k < 9; ++k) gr[(c * 9 + k) * NV + j] = f[k];
            }
        }
        for (int k1 = 0; k1 < rn; k1 += KR) {
            const int k0 = r0 + k1, kn = min(KR, rn - k1);
#if WPF && RAW_SHUFFLE
            /* the next chunk's rows (16 channels x 9 lines per vector of channels), spread over the
             * chunk's GEMMs: 16 streams the hardware prefetcher does not follow */
            const __global T* next = w + w_off + ((g * cog + cb * TN) * cig + r0 + RC) * 9;
            const bool more = r0 + 2 * RC <= cig;
#define PF_RAW(xi)                                                                                 \
    if (more && (k1 / KR) * A2 + (xi) < TN)                                                        \
        _Pragma("unroll") for (int l = 0; l < 9; ++l)                                              \
            __builtin_prefetch(next + ((k1 / KR) * A2 + (xi)) * cig * 9 + l * 16)
#else
#define PF_RAW(xi)
#endif
            CHUNK_GEMM(KR, gr[((k1 + c) * 9 + k) * NV + j], PF_RAW);
        }
    }
    inline_epilogue(mb, tb, cb, g, OUT_ARGS);
}
#endif /* INLINE == 2 */
#undef G_T
#endif /* INLINE */
