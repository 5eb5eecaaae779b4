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
inline int clconv_pad_index(int i, int n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == PAD_ZEROS) return -1;
    if (mode == PAD_REFLECT) return i < 0 ? -i : 2 * (n - 1) - i;
    if (mode == PAD_REPLICATE) return i < 0 ? 0 : n - 1;
    return i < 0 ? i + n : i - n; /* circular */
}

/* Transposed conv along one axis: output o + pad_before = i * stride + k * dilation. For
 * t = o + pad_before - k * dilation, the input index i whose tap k reaches o, or -1 when none
 * does (t negative, not a multiple of the stride, or past the input's n elements). */
inline int clconv_gather_index(int t, int stride, int n) {
    if (t < 0 || t % stride) return -1;
    const int i = t / stride;
    return i < n ? i : -1;
}

#endif
