/* im2col: convolution as column building + a tiled GEMM per group (col2im gather for transposed).
 *
 * Layout: NC(D)(H)W, C-contiguous; 1D and 2D run as 3D with leading size-1 dims.
 *   weight (C_out, C_in/g, KD, KH, KW) for conv, (C_in, C_out/g, KD, KH, KW) transposed.
 *   K = KD*KH*KW taps; O = OD*OH*OW output positions; I = ID*IH*IW input positions.
 *
 * conv:   im2col() writes the columns of a chunk of the flattened batch: column c stands for
 *         q = q0 + c (image q / O, position q % O); row cin*K + tap holds the input element
 *         that tap reads (through the padding mode). The rows of group g form its B matrix
 *         (cig*K x P). gemm_conv() then computes W_g (cog x cig*K) @ B_g and writes each
 *         column straight into the output (plus bias).
 * transposed: im2col() with a 1x1x1 kernel packs a chunk of whole images of x as B
 *         (C_in x nb*I); gemm_cols() computes W_g^T (rows c0*K.. of cog*K) @ B_g into a
 *         column workspace; col2im() gathers: output o of channel co sums, over the taps k with
 *         o + pad_before = i*stride + k*dilation, the column entry of (co, k) at input i.
 *         No atomics, no zero insertion, fixed order: the same bits every run.
 *
 * Workspace (B, columns) is GACC (float for float16 storage, float32; double for float64),
 * with rows of ldb elements, ldb a multiple of the GEMM tile width; padding columns hold zeros.
 *
 * Macros: CLCONV_DTYPE (common.h), PADDING_MODE (0..3), HAS_BIAS (0/1), and the GEMM tile
 * macros of gemm.h: VW, NV, TM, A_TRANS.
 */
#include "common.h"

#if CLCONV_DTYPE == 64
#define GACC double
#else
#define GACC float
#endif

#include "gemm.h"

/* Columns q0 .. q0+P-1 of the flattened batch (ldb columns written; P..ldb-1 get zeros).
 * One work-item per (column, input channel); it writes that channel's K rows. */
__kernel void im2col(
    __global const T* restrict x, const int x_off,
    __global GACC* restrict cols, const int cols_off, const int ldb,
    const int q0, const int P, const int C_in,
    const int ID, const int IH, const int IW,
    const int OD, const int OH, const int OW,
    const int KD, const int KH, const int KW,
    const int SD, const int SH, const int SW,
    const int DD, const int DH, const int DW,
    const int PD, const int PH, const int PW)
{
    const int c = get_global_id(0);
    const int cin = get_global_id(1);
    if (c >= ldb || cin >= C_in) return;
    const int KK = KD * KH * KW;
    __global GACC* out = cols + cols_off + cin * KK * ldb + c;
    if (c >= P) {
        for (int t = 0; t < KK; ++t) out[t * ldb] = (GACC)0;
        return;
    }
    int r = q0 + c;
    const int ow = r % OW; r /= OW;
    const int oh = r % OH; r /= OH;
    const int od = r % OD;
    const int n = r / OD;
    const int xc = (n * C_in + cin) * ID;
    int t = 0;
    for (int kd = 0; kd < KD; ++kd) {
        const int id = clconv_pad_index(od * SD - PD + kd * DD, ID, PADDING_MODE);
        for (int kh = 0; kh < KH; ++kh) {
            const int ih = clconv_pad_index(oh * SH - PH + kh * DH, IH, PADDING_MODE);
            const int xrow = ((xc + id) * IH + ih) * IW;
            for (int kw = 0; kw < KW; ++kw, ++t) {
                const int iw = clconv_pad_index(ow * SW - PW + kw * DW, IW, PADDING_MODE);
                GACC v = (GACC)0;
                if ((id | ih | iw) >= 0) v = LOAD(x, x_off + xrow + iw);
                out[t * ldb] = v;
            }
        }
    }
}

/* n elements of T to GACC (the float copy of a float16 weight). */
__kernel void to_acc(__global const T* restrict src, const int src_off,
                     __global GACC* restrict dst, const int dst_off, const int n)
{
    const int i = get_global_id(0);
    if (i < n) dst[dst_off + i] = LOAD(src, src_off + i);
}

/* conv: y[q0 + column] of every row of group g = W_g @ B_g, plus bias. */
__kernel void gemm_conv(
    __global const GACC* restrict a, const int a_off, const int lda, const int a_gstride,
    __global const GACC* restrict b, const int b_off, const int ldb, const int b_gstride,
    const int M, const int N, const int K,
    __global const T* restrict bias, const int bias_off,
    __global T* restrict y, const int y_off,
    const int q0, const int O, const int C_out)
{
    const int n0 = get_global_id(0) * TN;
    const int m0 = get_global_id(1) * TM;
    const int g = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    VACC acc[TM][NV];
    gemm_tile(a + a_off + g * a_gstride, lda, b + b_off + g * b_gstride + n0, ldb, M, K, m0, acc);

    /* where each column of the tile goes in y (relative to output channel 0) */
    int col_at[TN];
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int q = q0 + min(n0 + j, N - 1);
        const int img = q / O;
        col_at[j] = img * C_out * O + (q - img * O);
    }
    const int ncols = min(TN, N - n0);
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + i;
        if (m >= M) break;
        const int co = g * M + m;
        const int base = y_off + co * O;
#if HAS_BIAS
        const GACC bv = LOAD(bias, bias_off + co);
#else
        const GACC bv = (GACC)0;
#endif
#pragma unroll
        for (int v = 0; v < NV; ++v) {
            GACC t[VW];
            *(VACC*)t = acc[i][v];
#pragma unroll
            for (int e = 0; e < VW; ++e) {
                const int j = v * VW + e;
                if (j < ncols) STORE(t[e] + bv, y, base + col_at[j]);
            }
        }
    }
}

/* transposed: C_g = A_g^T @ B_g into the column workspace (rows of ldb elements). */
__kernel void gemm_cols(
    __global const GACC* restrict a, const int a_off, const int lda, const int a_gstride,
    __global const GACC* restrict b, const int b_off, const int ldb, const int b_gstride,
    const int M, const int N, const int K,
    __global GACC* restrict c, const int c_off, const int c_gstride)
{
    const int n0 = get_global_id(0) * TN;
    const int m0 = get_global_id(1) * TM;
    const int g = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    VACC acc[TM][NV];
    gemm_tile(a + a_off + g * a_gstride, lda, b + b_off + g * b_gstride + n0, ldb, M, K, m0, acc);
    __global GACC* out = c + c_off + g * c_gstride + n0;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        if (m0 + i >= M) break;
#pragma unroll
        for (int v = 0; v < NV; ++v)
            *(__global VACC*)(out + (m0 + i) * ldb + v * VW) = acc[i][v];
    }
}

/* transposed: output channels c0 .. c0+cc-1 of every group, images n0 .. n0+nb-1.
 * cols row (co - c0)*K + tap, column (n - n0)*I + i of group g holds W(.., co, tap) . x(n, .., i). */
__kernel void col2im(
    __global const GACC* restrict cols, const int cols_off, const int ldb, const int c_gstride,
    __global const T* restrict bias, const int bias_off,
    __global T* restrict y, const int y_off,
    const int total,                /* nb * groups * cc * O */
    const int n0, const int c0, const int cc, const int groups, const int cog,
    const int ID, const int IH, const int IW,
    const int OD, const int OH, const int OW,
    const int KD, const int KH, const int KW,
    const int SD, const int SH, const int SW,
    const int DD, const int DH, const int DW,
    const int PD, const int PH, const int PW)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    int r = gid;
    const int ow = r % OW; r /= OW;
    const int oh = r % OH; r /= OH;
    const int od = r % OD; r /= OD;
    const int cl = r % cc; r /= cc;
    const int g = r % groups;
    const int nl = r / groups;
    const int KK = KD * KH * KW;
    const int I = ID * IH * IW;
    const __global GACC* src = cols + cols_off + g * c_gstride + cl * KK * ldb + nl * I;
    GACC acc = (GACC)0;
    for (int kd = 0; kd < KD; ++kd) {
        const int td = od + PD - kd * DD;
        if (td < 0 || td % SD) continue;
        const int id = td / SD;
        if (id >= ID) continue;
        for (int kh = 0; kh < KH; ++kh) {
            const int th = oh + PH - kh * DH;
            if (th < 0 || th % SH) continue;
            const int ih = th / SH;
            if (ih >= IH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                const int tw = ow + PW - kw * DW;
                if (tw < 0 || tw % SW) continue;
                const int iw = tw / SW;
                if (iw >= IW) continue;
                const int tap = (kd * KH + kh) * KW + kw;
                acc += src[tap * ldb + (id * IH + ih) * IW + iw];
            }
        }
    }
    const int co = g * cog + c0 + cl;
#if HAS_BIAS
    acc += LOAD(bias, bias_off + co);
#endif
    const int O = OD * OH * OW;
    STORE(acc, y, y_off + ((n0 + nl) * groups * cog + co) * O + (gid % O));
}
