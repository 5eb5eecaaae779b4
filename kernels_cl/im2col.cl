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
 * Index arithmetic writes q - (q / d) * d rather than q % d: LLVM then emits no `freeze`,
 * which Oclgrind's uninitialized-value checker cannot interpret.
 *
 * Workspace (B, columns) is GACC (float for float16 storage, float32; double for float64),
 * with rows of ldb elements, ldb a multiple of the GEMM tile width; padding columns hold zeros.
 * B_PANEL == 1 (conv): the same columns stored in panels of TN: column c of row r at
 * ((c / TN) * R + r) * TN + c % TN, R = C_in * taps, so that a GEMM work-item streams its K x TN
 * panel contiguously (rows ldb apart cross a page every k, which the hardware prefetcher does
 * not follow: 216 -> 289 GFLOP/s for a 512 x 1600 x 1536 GEMM tile on PoCL, AVX-512 Xeon).
 *
 * Macros: CLCONV_DTYPE (common.h), PADDING_MODE (0..3), HAS_BIAS (0/1), and the GEMM tile
 * macros of gemm.h: VW, NV, TM, A_TRANS; B_DIRECT (0/1, see gemm_conv); B_PANEL (0/1, above);
 * COL2IM_SEG (outputs per col2im work-item).
 */
#include "common.h"

#if CLCONV_DTYPE == 64
#define GACC double
#else
#define GACC float
#endif

#include "gemm.h"

#ifndef B_PANEL
#define B_PANEL 0
#endif

/* Columns q0 .. q0+P-1 of the flattened batch (ldb columns written; P..ldb-1 get zeros).
 *
 * A work-item fills SEG consecutive columns of one workspace row (cin*K + tap):
 * get_global_id(0) = column segment, get_global_id(1) = workspace row. It decodes its first
 * column once, then walks output row by output row: the columns of one output row (n, od, oh)
 * read one input row at iw = ow*SW + kw*DW - PW, copied as the left padding, the interior (a
 * plain strided copy that the compiler vectorizes) and the right padding. */
__kernel void im2col(
    __global const T* restrict x, const int x_off,
    __global GACC* restrict cols, const int cols_off, const int ldb,
    const int q0, const int P, const int C_in, const int SEG,
    const int ID, const int IH, const int IW,
    const int OD, const int OH, const int OW,
    const int KD, const int KH, const int KW,
    const int SD, const int SH, const int SW,
    const int DD, const int DH, const int DW,
    const int PD, const int PH, const int PW)
{
    const int c_lo = get_global_id(0) * SEG;
    const int row = get_global_id(1);
    const int KK = KD * KH * KW;
    if (c_lo >= ldb || row >= C_in * KK) return;
    const int c_end = min(c_lo + SEG, ldb);
    const int c_valid = min(c_end, P);
#if B_PANEL
    /* column c at out[(c / TN) * PS + c % TN] */
    const int PS = C_in * KD * KH * KW * TN;
    __global GACC* out = cols + cols_off + row * TN;
#define COL_AT(c) out[((c) / TN) * PS + (c) - ((c) / TN) * TN]
#else
    __global GACC* out = cols + cols_off + row * ldb;
#define COL_AT(c) out[c]
#endif

    const int cin = row / KK, t = row - cin * KK;
    const int t1 = t / KW, kw = t - t1 * KW;
    const int kd = t1 / KH, kh = t1 - kd * KH;
    const int w_first = kw * DW - PW;
    /* ow in [a_all, b_all) reads inside the input row: iw = ow*SW + w_first in [0, IW) */
    const int a_all = w_first < 0 ? (-w_first + SW - 1) / SW : 0;
    const int b_all = IW > w_first ? (IW - w_first + SW - 1) / SW : 0;

    int c = c_lo;
    if (c < c_valid) {
        const int q = q0 + c;
        const int r1 = q / OW;
        int ow = q - r1 * OW;
        const int r2 = r1 / OH;
        int oh = r1 - r2 * OH;
        int n = r2 / OD;
        int od = r2 - n * OD;
        while (c < c_valid) {
            const int hi = min(OW, ow + c_valid - c);   /* this output row: ow in [ow, hi) */
            const int cw = c - ow;                         /* ow = j is column cw + j */
            const int id = clconv_pad_index(od * SD - PD + kd * DD, ID, PADDING_MODE);
            const int ih = clconv_pad_index(oh * SH - PH + kh * DH, IH, PADDING_MODE);
            if ((id | ih) < 0) {
                for (int j = ow; j < hi; ++j) COL_AT(cw + j) = (GACC)0;
            } else {
                const __global T* xr = x + x_off + (((n * C_in + cin) * ID + id) * IH + ih) * IW;
                const int a = clamp(a_all, ow, hi);
                const int b = clamp(b_all, a, hi);
                for (int j = ow; j < a; ++j) {
                    const int iw = clconv_pad_index(j * SW + w_first, IW, PADDING_MODE);
                    COL_AT(cw + j) = iw >= 0 ? LOAD(xr, iw) : (GACC)0;
                }
                /* the interior: runs of columns contiguous in the workspace (a whole row, or
                 * up to the end of a panel), each a plain strided copy */
                for (int j = a; j < b;) {
#if B_PANEL
                    const int pc = (cw + j) / TN;
                    const int e = min(b, (pc + 1) * TN - cw);
                    __global GACC* o = out + pc * PS - pc * TN + cw;
#else
                    const int e = b;
                    __global GACC* o = out + cw;
#endif
                    if (SW == 1) {
                        const __global T* xs = xr + w_first;
                        for (; j < e; ++j) o[j] = LOAD(xs, j);
                    } else {
                        for (; j < e; ++j) o[j] = LOAD(xr, j * SW + w_first);
                    }
                }
                for (int j = b; j < hi; ++j) {
                    const int iw = clconv_pad_index(j * SW + w_first, IW, PADDING_MODE);
                    COL_AT(cw + j) = iw >= 0 ? LOAD(xr, iw) : (GACC)0;
                }
            }
            c += hi - ow;
            ow = 0;
            if (++oh == OH) {
                oh = 0;
                if (++od == OD) { od = 0; ++n; }
            }
        }
    }
    for (; c < c_end; ++c) COL_AT(c) = (GACC)0;   /* the zero padding up to the tile width */
#undef COL_AT
}

/* n elements of T to GACC (the float copy of a float16 weight). */
__kernel void to_acc(__global const T* restrict src, const int src_off,
                     __global GACC* restrict dst, const int dst_off, const int n)
{
    const int i = get_global_id(0);
    if (i < n) dst[dst_off + i] = LOAD(src, src_off + i);
}

/* conv: y[q0 + column] of every row of group g = W_g @ B_g, plus bias.
 * B_DIRECT == 0: B_g is the workspace (b_gstride apart per group, rows of ldb; with B_PANEL,
 *   panels ldb apart, each holding every group's rows of TN columns).
 * B_DIRECT == 1 (pointwise conv, O % TN == 0): B_g is read straight from the input x: the
 *   tile's columns lie in one image, B_g(k, pos) = x[b_off + img*b_istride + g*b_gstride
 *   + k*ldb + pos] with ldb = O. */
__kernel void gemm_conv(
    __global const GACC* restrict a, const int a_off, const int lda, const int a_gstride,
    __global const GACC* restrict b, const int b_off, const int ldb, const int b_gstride,
    const int b_istride,
    const int M, const int N, const int K,
    __global const T* restrict bias, const int bias_off,
    __global T* restrict y, const int y_off,
    const int q0, const int O, const int C_out)
{
    const int n0 = get_global_id(0) * TN;
    const int m0 = get_global_id(1) * TM;
    const int g = get_global_id(2);
    if (n0 >= N || m0 >= M) return;
    /* the tile's first column: image and position */
    const int q = q0 + n0;
    int img = q / O;
    int pos = q - img * O;
#if B_DIRECT
    const __global GACC* bp = b + b_off + img * b_istride + g * b_gstride + pos;
    const int ldb_tile = ldb;
#elif B_PANEL /* ldb: the panel stride; b_gstride: a group's rows in a panel */
    const __global GACC* bp = b + b_off + g * b_gstride + (n0 / TN) * ldb;
    const int ldb_tile = TN;
#else
    const __global GACC* bp = b + b_off + g * b_gstride + n0;
    const int ldb_tile = ldb;
#endif
    VACC acc[TM][NV];
    gemm_tile(a + a_off + g * a_gstride, lda, bp, ldb_tile, M, K, m0, acc);

    const int ncols = min(TN, N - n0);
    const int co0 = g * M + m0;
    if (ncols == TN && pos + TN <= O) { /* the common case: TN contiguous outputs per row */
        __global T* yp = y + y_off + (img * C_out + co0) * O + pos;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            if (m0 + i < M) {
#if HAS_BIAS
                const GACC bv = LOAD(bias, bias_off + co0 + i);
#else
                const GACC bv = (GACC)0;
#endif
#pragma unroll
                for (int v = 0; v < NV; ++v) {
                    const VACC r = acc[i][v] + bv;
#if CLCONV_DTYPE == 16 /* one conversion call per vector, not per element */
                    CLCONV_CAT(CLCONV_CAT(vstore_half, VW), _rte)(r, 0, yp + i * O + v * VW);
#else
#pragma unroll
                    for (int e = 0; e < VW; ++e)
                        STORE(((const GACC*)&r)[e], yp, i * O + v * VW + e);
#endif
                }
            }
        }
        return;
    }
    /* edge tiles, and tiles that straddle two images: where each column goes */
    int col_at[TN];
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        col_at[j] = img * C_out * O + pos;
        if (++pos == O) { pos = 0; ++img; }
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        if (m0 + i < M) {
            const int co = co0 + i;
            const int base = y_off + co * O;
#if HAS_BIAS
            const GACC bv = LOAD(bias, bias_off + co);
#else
            const GACC bv = (GACC)0;
#endif
#pragma unroll
            for (int v = 0; v < NV; ++v) {
                const VACC r = acc[i][v] + bv;
#pragma unroll
                for (int e = 0; e < VW; ++e) {
                    const int j = v * VW + e;
                    if (j < ncols) STORE(((const GACC*)&r)[e], y, base + col_at[j]);
                }
            }
        }
    }
}

/* Pointwise conv as Y^T = X^T W^T (compiled with A_TRANS == 1; float32 and float64 only):
 * for images with few positions (ResNet-50's 1x1 layers at 28/14/7: 784, 196, 49), whose
 * columns make partial tiles and misaligned rows in gemm_conv, the tile runs the other way:
 * rows are output positions of one image (A(n, k) = x[k*O + n], read as scalars), columns
 * output channels, vectors along C_out read from the weight transposed into zero-padded K x TN
 * panels (transpose_weight, cached per weight). Columns past C_out/g read the zero padding
 * and are not stored.
 *
 * A work-item computes NP position tiles of one channel tile, KC values of k at a time, so
 * that the KC x TN block of the weight panel is read from L1 by all NP tiles (on a CPU; NP = 1
 * and KC >= K elsewhere); each tile's accumulators wait in private memory between blocks,
 * and the sum still runs over k in ascending order. A tile that would reach past O starts at
 * O - TM instead (its first rows are the previous tile's, computed again and not stored), so
 * that every row exists and the loads are constant offsets (gemm_tile_full); images of fewer
 * than TM positions clamp their rows to O - 1 (gemm_tile_range).
 * get_global_id: 0 = channel tile, 1 = group of NP position tiles, 2 = image * groups + group. */
#if CLCONV_DTYPE != 16 && A_TRANS
#ifndef NP
#define NP 1
#endif
#ifndef KC
#define KC 128
#endif
/* A work-item of gemm_pointwise_t / _raw: channel tile from c0, np <= NP position tiles from p0,
 * image img, group g. */
#define POINTWISE_ITEM                                                                             \
    const int c0 = get_global_id(0) * TN;                                                          \
    const int p0 = get_global_id(1) * NP * TM;                                                     \
    const int gi = get_global_id(2);                                                               \
    if (c0 >= M || p0 >= O) return;                                                                \
    const int img = gi / G;                                                                        \
    const int g = gi - img * G;                                                                    \
    const int np = min(NP, (O - p0 + TM - 1) / TM)

/* The NP position tiles' outputs in part into y (gemm_pointwise_t and gemm_pointwise_raw). */
CLCONV_INLINE void pointwise_store(VACC part[NP][TM][NV], const int np, const int p0, const int O, const int M,
                            const int G, const int img, const int g, const int c0,
                            __global const T* bias, const int bias_off, __global T* y,
                            const int y_off)
{
    const int C_out = G * M;
    for (int p = 0; p < np; ++p) {
        const int n0 = O >= TM ? min(p0 + p * TM, O - TM) : 0; /* row i is position n0 + i */
        const int i0 = p0 + p * TM - n0;                      /* rows below i0: not this tile's */
        __global T* yp = y + y_off + (img * C_out + g * M + c0) * O + n0;
#pragma unroll
        for (int v = 0; v < NV; ++v) {
#pragma unroll
            for (int e = 0; e < VW; ++e) {
                const int j = v * VW + e;
                if (c0 + j < M) {
#if HAS_BIAS
                    const GACC bv = LOAD(bias, bias_off + g * M + c0 + j);
#else
                    const GACC bv = (GACC)0;
#endif
#pragma unroll
                    for (int i = 0; i < TM; ++i)
                        if (i >= i0 && n0 + i < O) STORE(((const GACC*)&part[p][i][v])[e] + bv, yp, j * O + i);
                }
            }
        }
    }
}

/* A position tile's accumulators at the start of a k block: zero for the first, else the sums
 * saved at the end of the previous one (tile_save), so the sum runs in one order. */
CLCONV_INLINE void tile_resume(VACC acc[TM][NV], const VACC saved[TM][NV], const bool first)
{
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int v = 0; v < NV; ++v) acc[i][v] = first ? (VACC)(0) : saved[i][v];
}

CLCONV_INLINE void tile_save(VACC saved[TM][NV], const VACC acc[TM][NV])
{
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int v = 0; v < NV; ++v) saved[i][v] = acc[i][v];
}

__kernel void gemm_pointwise_t(
    __global const GACC* restrict x, const int x_off,
    __global const GACC* restrict wt,
    const int O, const int M, const int K, const int G,
    __global const T* restrict bias, const int bias_off,
    __global T* restrict y, const int y_off)
{
    POINTWISE_ITEM;
    const int P = (M + TN - 1) / TN;
    const __global GACC* xa = x + x_off + (img * G + g) * K * O;
    const __global GACC* wp = wt + (g * P + c0 / TN) * K * TN;
    VACC part[NP][TM][NV];
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int k1 = min(K, k0 + KC);
        for (int p = 0; p < np; ++p) {
            VACC acc[TM][NV];
            tile_resume(acc, part[p], k0 == 0);
            if (O >= TM)
                gemm_tile_full(xa + min(p0 + p * TM, O - TM), O, wp, TN, k0, k1, acc);
            else
                gemm_tile_range(xa, O, wp, TN, O, k0, k1, 0, acc);
            tile_save(part[p], acc);
        }
    }
    pointwise_store(part, np, p0, O, M, G, img, g, c0, bias, bias_off, y, y_off);
}

#if PW_RAW /* (the host's: its local panel block counts against the device's local memory) */
/* gemm_pointwise_t reading the caller's weight w (M x K per group, as it is) instead of the
 * cached transposed panels (the host's choice for float32 NumPy weights with 16-channel vectors
 * and images of at least TM positions): per KC values of k the work-item builds the panel block
 * itself in local memory (lp), each 16 channels' rows transposed in 16 x 16 blocks with
 * shuffles (gathered value by value for a partial channel tile or k block, and for other
 * widths and dtypes). Nothing is copied or cached per weight, so nothing is compared per call.
 * The same sums in the same order as gemm_pointwise_t: the same bits. */
__kernel void gemm_pointwise_raw(
    __global const GACC* restrict x, const int x_off,
    __global const T* restrict w, const int w_off,
    __global const T* restrict bias, const int bias_off,
    __global T* restrict y, const int y_off,
    const int O, const int M, const int K, const int G)
{
    POINTWISE_ITEM;
    const __global GACC* xa = x + x_off + (img * G + g) * K * O;
    __local VACC lp[KC * NV];
    VACC part[NP][TM][NV];
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kn = min(K, k0 + KC) - k0;
#pragma unroll
        for (int v = 0; v < NV; ++v) {
            const int cv = c0 + v * VW;
            const __global T* wr = w + w_off + (g * M + cv) * K + k0; /* channel cv's row at k0 */
#if VW == 16 && CLCONV_DTYPE == 32 && CLCONV_SHUFFLE
            if (cv + VW <= M && (kn & 15) == 0) {
                for (int kb = 0; kb < kn; kb += 16) {
                    float16 rows[16];
#pragma unroll
                    for (int e = 0; e < 16; ++e) rows[e] = *(const __global VACC_U*)(wr + e * K + kb);
                    clconv_transpose16(rows);
#pragma unroll
                    for (int c = 0; c < 16; ++c) lp[(kb + c) * NV + v] = rows[c];
                }
                continue;
            }
#endif
            for (int k = 0; k < kn; ++k) {
                VACC col = (VACC)(0);
                for (int e = 0; e < VW; ++e)
                    if (cv + e < M) col[e] = LOAD(wr, e * K + k);
                lp[k * NV + v] = col;
            }
        }
        for (int p = 0; p < np; ++p) {
            VACC acc[TM][NV];
            tile_resume(acc, part[p], k0 == 0);
            gemm_tile_full_local(xa + min(p0 + p * TM, O - TM) + k0 * O, O, (const __local GACC*)lp, TN, 0, kn,
                                 acc);
            tile_save(part[p], acc);
        }
    }
    pointwise_store(part, np, p0, O, M, G, img, g, c0, bias, bias_off, y, y_off);
}
#endif /* PW_RAW */
#endif

/* The weight of a pointwise conv (C_out, cig) transposed into panels: for group g and channel
 * tile p (TN channels from c = p*TN), a contiguous K x TN block, wt[((g*P + p)*K + k)*TN + j]
 * = w[(g*M + p*TN + j)*K + k], zero for channels past M (= C_out/G); P = ceil(M / TN). A
 * work-item of gemm_pointwise_t then streams its panel sequentially (TN elements per k), where
 * rows of a plain transpose lie C_out elements apart and defeat the prefetcher (the 2048x512
 * weight of ResNet-50's last 1x1: 2 KiB per k). One work-item per element. */
__kernel void transpose_weight(
    __global const T* restrict w, const int w_off,
    __global GACC* restrict wt, const int M, const int K, const int total)
{
    const int i = get_global_id(0);
    if (i >= total) return;
    const int r = i / TN;        /* (g*P + p)*K + k */
    const int j = i - r * TN;
    const int gp = r / K;
    const int k = r - gp * K;
    const int P = (M + TN - 1) / TN;
    const int g = gp / P;
    const int c = (gp - g * P) * TN + j;
    wt[i] = c < M ? LOAD(w, w_off + (g * M + c) * K + k) : (GACC)0;
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
        if (m0 + i < M) {
#pragma unroll
            for (int v = 0; v < NV; ++v)
                *(__global VACC*)(out + (m0 + i) * ldb + v * VW) = acc[i][v];
        }
    }
}

/* A transposed axis: output o reaches input i = (o + pad - k*dil) / stride through the taps k
 * where that division is exact. The first such tap is among the first `stride` ones; the
 * next ones follow every kstep = stride / gcd(stride, dil) taps, i falling by
 * istep = dil / gcd(stride, dil) each time. Sets *k0 (kn when no tap reaches) and *i0. */
CLCONV_INLINE void first_tap(const int t, const int s, const int dil, const int kn, int* k0, int* i0)
{
    *k0 = kn;
    *i0 = 0;
    const int n = min(kn, s);
    for (int k = 0; k < n; ++k) {
        const int u = t - k * dil;
        const int i = u / s;
        if (i * s == u) {
            *k0 = k;
            *i0 = i;
            return;
        }
    }
}

/* transposed: output channels c0 .. c0+cc-1 of every group, images n0 .. n0+nb-1.
 * cols row (co - c0)*K + tap, column (n - n0)*I + i of group g holds W(.., co, tap) . x(n, .., i).
 *
 * A work-item computes a segment [ow_lo, ow_lo + COL2IM_SEG) of one output row (n, co, od, oh):
 * get_global_id(0) = row * nseg + segment, rows ordered (n - n0, g, co - c0, od, oh). The d and
 * h taps are found once per row. Along w, the outputs with the same (ow + PW) % SW form a
 * residue class that shares its taps, and tap by tap reads consecutive column entries: for
 * each class and tap, one plain loop adds a run of column entries into the segment's private
 * accumulators. Every output still sums its taps in ascending (kd, kh, kw) order, then bias.
 * KSD..KSW, ISD..ISW: the per-axis kstep and istep of first_tap(), computed on the host. */
__kernel void col2im(
    __global const GACC* restrict cols, const int cols_off, const int ldb, const int c_gstride,
    __global const T* restrict bias, const int bias_off,
    __global T* restrict y, const int y_off,
    const int rows, const int nseg, /* rows = nb * groups * cc * OD * OH */
    const int n0, const int c0, const int cc, const int groups, const int cog,
    const int ID, const int IH, const int IW,
    const int OD, const int OH, const int OW,
    const int KD, const int KH, const int KW,
    const int SD, const int SH, const int SW,
    const int DD, const int DH, const int DW,
    const int PD, const int PH, const int PW,
    const int KSD, const int KSH, const int KSW,
    const int ISD, const int ISH, const int ISW)
{
    const int item = get_global_id(0);
    if (item >= rows * nseg) return;
    const int row = item / nseg, seg = item - row * nseg;
    const int r2 = row / OH, oh = row - r2 * OH;
    const int r3 = r2 / OD, od = r2 - r3 * OD;
    const int r4 = r3 / cc, cl = r3 - r4 * cc;
    const int nl = r4 / groups, g = r4 - nl * groups;
    const int ow_lo = seg * COL2IM_SEG;
    const int n = min(COL2IM_SEG, OW - ow_lo);
    const int KK = KD * KH * KW;
    const int I = ID * IH * IW;
    const __global GACC* src = cols + cols_off + g * c_gstride + cl * KK * ldb + nl * I;
    int kd0, id0, kh0, ih0;
    first_tap(od + PD, SD, DD, KD, &kd0, &id0);
    first_tap(oh + PH, SH, DH, KH, &kh0, &ih0);

    GACC acc[COL2IM_SEG];
    for (int j = 0; j < n; ++j) acc[j] = (GACC)0;
    const int t_lo = ow_lo + PW;
    const int q_lo = t_lo / SW, r_lo = t_lo - q_lo * SW;   /* t_lo = q_lo * SW + r_lo */
    for (int j = 0; j < min(SW, n); ++j) {                  /* outputs ow_lo + j + m*SW */
        const int cnt = (n - j + SW - 1) / SW;
        /* t = ow + PW = q * SW + r: the first w tap depends on r only */
        int r = r_lo + j, q = q_lo;
        if (r >= SW) { r -= SW; ++q; }
        int kw0, c;
        first_tap(r, SW, DW, KW, &kw0, &c);             /* c = (r - kw0*DW) / SW, exact */
        for (int kd = kd0, id = id0; kd < KD && id >= 0; kd += KSD, id -= ISD) {
            if (id >= ID) continue;
            for (int kh = kh0, ih = ih0; kh < KH && ih >= 0; kh += KSH, ih -= ISH) {
                if (ih >= IH) continue;
                const __global GACC* s_row = src + (kd * KH + kh) * KW * ldb + (id * IH + ih) * IW;
                for (int kw = kw0, iw = q + c; kw < KW; kw += KSW, iw -= ISW) {
                    /* output m of the class reads input iw + m, which must lie in [0, IW) */
                    const int m_lo = max(0, -iw), m_hi = min(cnt, IW - iw);
                    const __global GACC* sp = s_row + kw * ldb + iw;
                    for (int m = m_lo; m < m_hi; ++m) acc[j + m * SW] += sp[m];
                }
            }
        }
    }
    const int co = g * cog + c0 + cl;
#if HAS_BIAS
    const GACC bv = LOAD(bias, bias_off + co);
#else
    const GACC bv = (GACC)0;
#endif
    const int y_row =
        y_off + ((n0 + nl) * groups * cog + co) * (OD * OH * OW) + (od * OH + oh) * OW + ow_lo;
    for (int j = 0; j < n; ++j) STORE(acc[j] + bv, y, y_row + j);
}
