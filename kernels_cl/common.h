/* clconv common definitions, included by every kernel file.
 *
 * -D CLCONV_DTYPE=16|32|64 selects the storage type and the accumulator:
 *   64: double storage, double accumulation (needs cl_khr_fp64; the runtime enables it)
 *   32: float storage, float accumulation
 *   16: half storage through vload_half/vstore_half_rte (core OpenCL, no cl_khr_fp16),
 *       float accumulation, one rounding to half at the store.
 * LOAD(p, i) reads element i of a __global T* as ACC; STORE(v, p, i) writes ACC v.
 */
#ifndef CLCONV_COMMON_H
#define CLCONV_COMMON_H

/* The helpers of common.h, gemm.h, im2col.cl and depthwise.cl (and any the direct kernels get)
 * are CLCONV_INLINE (tests/host/test_opencl_runtime.py: FORCED_INLINE). pip's PoCL 3.0
 * (LLVM 14) keeps large `inline` functions as calls: its im2col GEMM called gemm_tile_range with
 * the accumulators in memory (256-bit halves, spilled) and ran at half the speed of PoCL 3.1's
 * build, which inlines it (benchmarks/RESULTS.md, "pip's PoCL 3.0"). winograd.cl's and fft.cl's
 * stay plain `inline`, the compiler's choice: forcing them made their programs 15-40% slower to
 * build (CI 25 -> 30 min) for no measured speed (their calls left are once per tile or output).
 * No helper's pointer parameters are `restrict` (the kernels' are): inlining a function with
 * restrict parameters makes LLVM emit
 * llvm.experimental.noalias.scope.decl, which Oclgrind cannot run ("Undefined external
 * function"); the kernel's own restrict arguments give the inlined code the same facts. */
#define CLCONV_INLINE inline __attribute__((always_inline))
/* select(a, b, c) for vectors, written as the conditional operator (the same choice per lane, by
 * the sign bit of c's lane: OpenCL C 6.3): pip's PoCL 3.0 compiles the builtin to a call per
 * use, which cost its Winograd input transform ~0.04 ms a call (benchmarks/RESULTS.md). */
#define CLCONV_SELECT(a, b, c) ((c) ? (b) : (a))

#if CLCONV_DTYPE == 64
typedef double T;
typedef double ACC;
#define LOAD(p, i) ((ACC)(p)[i])
#define STORE(v, p, i) ((p)[i] = (T)(v))
#elif CLCONV_DTYPE == 32
typedef float T;
typedef float ACC;
#define LOAD(p, i) ((p)[i])
#define STORE(v, p, i) ((p)[i] = (v))
#elif CLCONV_DTYPE == 16
#define T half
typedef float ACC;
#define LOAD(p, i) vload_half((i), (p))
#define STORE(v, p, i) vstore_half_rte((v), (i), (p))
#else
#error "CLCONV_DTYPE must be 16, 32 or 64"
#endif

/* Padding modes (-D PADDING_MODE): where a padded input index reads from. */
#define PAD_ZEROS 0
#define PAD_REFLECT 1
#define PAD_REPLICATE 2
#define PAD_CIRCULAR 3

/* Map index i of a padded axis of length n to the input index it reads,
 * or -1 for a zero. The spec guarantees reflect pads < n and circular pads <= n,
 * so one reflection or one wrap is enough. */
CLCONV_INLINE int clconv_pad_index(int i, int n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == PAD_ZEROS) return -1;
    if (mode == PAD_REFLECT) return i < 0 ? -i : 2 * (n - 1) - i;
    if (mode == PAD_REPLICATE) return i < 0 ? 0 : n - 1;
    return i < 0 ? i + n : i - n; /* circular */
}

/* Transposed conv along one axis: output o + pad_before = i * stride + k * dilation. For
 * t = o + pad_before - k * dilation, the input index i whose tap k reaches o, or -1 when none
 * does (t negative, not a multiple of the stride, or past the input's n elements). */
CLCONV_INLINE int clconv_gather_index(int t, int stride, int n) {
    if (t < 0 || t % stride) return -1;
    const int i = t / stride;
    return i < n ? i : -1;
}

/* clconv_transpose16 (clang's __builtin_shufflevector: PoCL, Oclgrind): CLCONV_SHUFFLE 1. */
#if defined(__clang__)
#define CLCONV_SHUFFLE 1
/* r[i][j] -> r[j][i] for a 16 x 16 block (32-bit, then 64-bit interleaves within 128-bit lanes,
 * then a 4 x 4 transpose of the lanes: 64 two-source shuffles, one instruction each on AVX-512) */
CLCONV_INLINE void clconv_transpose16(float16 r[16])
{
    float16 a[16], b[16];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        a[2 * i] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29);
        a[2 * i + 1] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31);
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        b[4 * k + 0] = __builtin_shufflevector(a[4 * k], a[4 * k + 2], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
        b[4 * k + 1] = __builtin_shufflevector(a[4 * k], a[4 * k + 2], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
        b[4 * k + 2] = __builtin_shufflevector(a[4 * k + 1], a[4 * k + 3], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
        b[4 * k + 3] = __builtin_shufflevector(a[4 * k + 1], a[4 * k + 3], 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
    /* b[4k + m], 128-bit lane L = column 4L + m of rows 4k .. 4k + 3 */
#pragma unroll
    for (int m = 0; m < 4; ++m) {
        const float16 p = __builtin_shufflevector(b[m], b[4 + m], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
        const float16 q = __builtin_shufflevector(b[m], b[4 + m], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
        const float16 s = __builtin_shufflevector(b[8 + m], b[12 + m], 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
        const float16 t = __builtin_shufflevector(b[8 + m], b[12 + m], 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
        r[m] = __builtin_shufflevector(p, s, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        r[8 + m] = __builtin_shufflevector(p, s, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
        r[4 + m] = __builtin_shufflevector(q, t, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        r[12 + m] = __builtin_shufflevector(q, t, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
}
#else
#define CLCONV_SHUFFLE 0
#endif

#endif
