/* calibrate: micro-kernels that measure a device for the cost model.
 *
 * peak_fma:  independent float16 multiply-add chains (written as a*b+c, which
 *            PoCL vectorizes; its fma() builtin is a slow call), ITERS per
 *            work-item, 8 chains of 16 lanes (enough to fill AVX-512 FMA pipes,
 *            and plain registers on GPUs), 2 FLOP each.
 * copy:      y = x in float4s, for memory bandwidth.
 * empty:     nothing, for the launch overhead.
 * Macros: ITERS.
 */

__kernel void peak_fma(__global float* out, const float s) {
    float16 a0 = (float16)(get_global_id(0)) * 1e-7f, a1 = a0 + 1.0f, a2 = a0 + 2.0f, a3 = a0 + 3.0f;
    float16 a4 = a0 + 4.0f, a5 = a0 + 5.0f, a6 = a0 + 6.0f, a7 = a0 + 7.0f;
    const float16 m = (float16)(s);
    const float16 c = (float16)(1e-3f);
    for (int i = 0; i < ITERS; ++i) {
        a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c;
        a4 = a4 * m + c; a5 = a5 * m + c; a6 = a6 * m + c; a7 = a7 * m + c;
    }
    float16 t = (a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7);
    float8 h = t.lo + t.hi;
    out[get_global_id(0)] = h.s0 + h.s1 + h.s2 + h.s3 + h.s4 + h.s5 + h.s6 + h.s7;
}

__kernel void copy(__global const float4* restrict x, __global float4* restrict y) {
    const size_t i = get_global_id(0);
    y[i] = x[i];
}

__kernel void empty(__global float* out) {
}
