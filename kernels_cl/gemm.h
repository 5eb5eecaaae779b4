/* gemm.h: the register-blocked, vectorized GEMM tile of the im2col algorithm (im2col.cl).
 *
 * gemm_tile() computes one TM x TN tile (TN = VW * NV) of C = A (M x K) @ B (K x N)
 * into TM * NV vector accumulators:
 *   A(m, k) = a[m * lda + k]     (A_TRANS == 0: a row-major weight)
 *           = a[k * lda + m]     (A_TRANS == 1: a transposed weight, for conv_transpose)
 *   B(k, n) = b[k * ldb + n]     (the workspace, or the input of a pointwise conv at any
 *                                 element offset: unaligned vector loads; columns past N
 *                                 readable)
 * The caller's epilogue stores the tile.
 *
 * The reduction over k runs in one fixed order per output element: the same bits every
 * run. Edge tiles: rows past M read row M-1 (valid memory; the caller does not store
 * them); columns past N read B's padding (zeros in the workspace) and are not stored.
 *
 * Plain a*b+c on purpose (not fma()/mad()), and B vectors are loaded through cast
 * pointers: on PoCL's CPU driver vloadN compiles to a function call.
 *
 * No explicit K-blocking: a work-item streams its whole K once, keeping its tile in
 * registers. Cache blocking comes from the launch instead: a work-group is one column tile
 * by several row tiles (local size (1, L)), and PoCL's CPU driver runs a work-group's items
 * one after another on one core, so the K x TN panel of B they share stays in L1/L2.
 *
 * Macros: GACC (float or double: the compute type), VW (vector width: 2, 4, 8 or 16),
 *   NV (vectors per tile row), TM (rows per tile), A_TRANS (0/1), BPF (prefetch B's row
 *   this many k ahead; 0: none), XPF (gemm_tile_full's prefetch of A, likewise).
 */
#ifndef CLCONV_GEMM_H
#define CLCONV_GEMM_H
#ifndef BPF
#define BPF 0
#endif

#define CLCONV_CAT2(a, b) a##b
#define CLCONV_CAT(a, b) CLCONV_CAT2(a, b)
#define VACC CLCONV_CAT(GACC, VW)
#define TN (VW * NV)
/* The same vector aligned to one element: B may start at any element offset (a pointwise
 * conv reads the caller's input, which NumPy places 16 or 64 bytes past a 128-byte boundary);
 * the loads compile to unaligned vector moves, as fast as aligned ones on aligned data. */
typedef VACC __attribute__((aligned(sizeof(GACC)))) VACC_U;

/* Adds the products of k in [k0, k1) into acc (the caller zeroes it or carries it over from
 * the previous k block: the sum runs in the same order either way). */
CLCONV_INLINE void gemm_tile_range(
    const __global GACC* a, const int lda,
    const __global GACC* b, const int ldb,
    const int M, const int k0, const int k1, const int m0,
    VACC acc[TM][NV])
{
#if A_TRANS
    int a_col[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) a_col[i] = min(m0 + i, M - 1);
#else
    const __global GACC* a_row[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) a_row[i] = a + min(m0 + i, M - 1) * lda;
#endif
    b += k0 * ldb;
    for (int k = k0; k < k1; ++k) {
        VACC bv[NV];
#pragma unroll
        for (int v = 0; v < NV; ++v) bv[v] = *(const __global VACC_U*)(b + v * VW);
#if BPF
#pragma unroll
        for (int v = 0; v < TN; v += 64 / (int)sizeof(GACC)) /* one per 64-byte line */
            __builtin_prefetch(b + BPF * ldb + v);
#endif
        b += ldb;
#if A_TRANS
        const __global GACC* ak = a + k * lda;
#endif
#pragma unroll
        for (int i = 0; i < TM; ++i) {
#if A_TRANS
            const GACC s = ak[a_col[i]];
#else
            const GACC s = a_row[i][k];
#endif
#pragma unroll
            for (int v = 0; v < NV; ++v) acc[i][v] = s * bv[v] + acc[i][v];
        }
    }
}

#if A_TRANS
#ifndef XPF
#define XPF 0
#endif
/* gemm_tile_range for A_TRANS tiles whose TM rows all exist: A(i, k) = a[k * lda + i],
 * i < TM. The loads are constant offsets from one pointer that moves by lda per k (the
 * clamped form keeps a pointer per row: TM more integer additions per k). XPF > 0: prefetch
 * the row XPF k ahead (rows lda apart; on PoCL's CPU driver the hardware prefetcher does not
 * follow strides past 2 KiB, such as a 28x28 image's 3 KiB). */
#if XPF
#define GEMM_XPF(a, lda) __builtin_prefetch((a) + XPF * (lda))
#else
#define GEMM_XPF(a, lda)
#endif
/* gemm_tile_full reads b from global memory, gemm_tile_full_local from local memory (a panel
 * block that gemm_pointwise_raw builds itself); one body. */
#define GEMM_TILE_FULL(NAME, BAS)                                                                  \
    CLCONV_INLINE void NAME(const __global GACC* a, const int lda, const BAS GACC* b,                     \
                     const int ldb, const int k0, const int k1, VACC acc[TM][NV])                  \
    {                                                                                              \
        a += k0 * lda;                                                                             \
        b += k0 * ldb;                                                                             \
        for (int k = k0; k < k1; ++k) {                                                            \
            VACC bv[NV];                                                                           \
            _Pragma("unroll") for (int v = 0; v < NV; ++v) bv[v] = *(const BAS VACC_U*)(b + v * VW); \
            b += ldb;                                                                              \
            GEMM_XPF(a, lda);                                                                      \
            _Pragma("unroll") for (int i = 0; i < TM; ++i) {                                       \
                const GACC s = a[i];                                                               \
                _Pragma("unroll") for (int v = 0; v < NV; ++v) acc[i][v] = s * bv[v] + acc[i][v];  \
            }                                                                                      \
            a += lda;                                                                              \
        }                                                                                          \
    }
GEMM_TILE_FULL(gemm_tile_full, __global)
GEMM_TILE_FULL(gemm_tile_full_local, __local)
#endif

CLCONV_INLINE void gemm_tile(
    const __global GACC* a, const int lda,
    const __global GACC* b, const int ldb,
    const int M, const int K, const int m0,
    VACC acc[TM][NV])
{
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int v = 0; v < NV; ++v) acc[i][v] = (VACC)(0);
    gemm_tile_range(a, lda, b, ldb, M, 0, K, m0, acc);
}

#endif
