/* direct: the general convolution kernel, one work-item per output element.
 *
 * Algorithm: for each output (n, co, od, oh, ow), sum over the input channels of
 *   co's group and the kernel taps, in a fixed order (deterministic), plus bias.
 *   conv:            input index = o * stride - pad_before + k * dilation,
 *                    mapped through the padding mode (clconv_pad_index).
 *   conv_transpose:  gather form: full = o + pad_before; an input i reaches it
 *                    through tap k when full - k * dilation = i * stride (no zero
 *                    insertion, no atomics).
 * Layout: NC(D)(H)W, C-contiguous; 1D and 2D run as 3D with leading size-1 dims.
 *   weight (C_out, C_in/g, KD, KH, KW) for conv, (C_in, C_out/g, KD, KH, KW) transposed.
 * Macros: CLCONV_DTYPE (common.h), PADDING_MODE (0..3), TRANSPOSED (0/1), HAS_BIAS (0/1).
 * Shapes arrive as arguments, so one build serves every shape.
 */
#include "common.h"

__kernel void conv_direct(
    __global const T* restrict x, const int x_off,
    __global const T* restrict w, const int w_off,
    __global const T* restrict bias, const int b_off,
    __global T* restrict y, const int y_off,
    const int total,                 /* N * C_out * OD * OH * OW */
    const int C_in, const int C_out, const int groups,
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
    const int co = r % C_out;
    const int n = r / C_out;
    const int cig = C_in / groups;
    const int cog = C_out / groups;
    const int g = co / cog;
    const int KK = KD * KH * KW;
    ACC acc = 0;
#if !TRANSPOSED
    for (int ci = 0; ci < cig; ++ci) {
        const int xc = (n * C_in + g * cig + ci) * ID;
        const int wc = (co * cig + ci) * KK;
        for (int kd = 0; kd < KD; ++kd) {
            const int id = clconv_pad_index(od * SD - PD + kd * DD, ID, PADDING_MODE);
            if (id < 0) continue;
            for (int kh = 0; kh < KH; ++kh) {
                const int ih = clconv_pad_index(oh * SH - PH + kh * DH, IH, PADDING_MODE);
                if (ih < 0) continue;
                const int xrow = ((xc + id) * IH + ih) * IW;
                const int wrow = wc + (kd * KH + kh) * KW;
                for (int kw = 0; kw < KW; ++kw) {
                    const int iw = clconv_pad_index(ow * SW - PW + kw * DW, IW, PADDING_MODE);
                    if (iw < 0) continue;
                    acc += LOAD(x, x_off + xrow + iw) * LOAD(w, w_off + wrow + kw);
                }
            }
        }
    }
#else
    const int cog_in = co - g * cog; /* output channel within its group */
    for (int ci = 0; ci < cig; ++ci) {
        const int cin = g * cig + ci;
        const int xc = (n * C_in + cin) * ID;
        const int wc = (cin * cog + cog_in) * KK;
        for (int kd = 0; kd < KD; ++kd) {
            const int id = clconv_gather_index(od + PD - kd * DD, SD, ID);
            if (id < 0) continue;
            for (int kh = 0; kh < KH; ++kh) {
                const int ih = clconv_gather_index(oh + PH - kh * DH, SH, IH);
                if (ih < 0) continue;
                const int xrow = ((xc + id) * IH + ih) * IW;
                const int wrow = wc + (kd * KH + kh) * KW;
                for (int kw = 0; kw < KW; ++kw) {
                    const int iw = clconv_gather_index(ow + PW - kw * DW, SW, IW);
                    if (iw < 0) continue;
                    acc += LOAD(x, x_off + xrow + iw) * LOAD(w, w_off + wrow + kw);
                }
            }
        }
    }
#endif
#if HAS_BIAS
    acc += LOAD(bias, b_off + co);
#endif
    STORE(acc, y, y_off + gid);
}
