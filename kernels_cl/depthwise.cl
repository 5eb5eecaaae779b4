/* depthwise: convolution with groups == C_in, each input channel feeding MULT
 * output channels (C_out = MULT * C_in). Non-transposed; 1D and 2D run as 3D
 * with leading size-1 dims.
 *
 * Algorithm: each work-item computes a register tile of MB output channels
 *   (that share one input channel) x RH output rows x VW adjacent outputs along W,
 *   at one output depth od. It walks the union of the input rows that tile
 *   needs, (RH - 1) * SH + (KH - 1) * DH + 1 of them per kernel depth tap, loads
 *   each row's span of (VW - 1) * SW + (KW - 1) * DW + 1 inputs once and adds
 *   every product that row takes part in. Kernel size, stride, dilation,
 *   padding and the tile are compile-time constants, so every loop unrolls and
 *   the weights live in registers. Each output is one sum in a fixed tap order
 *   (kd, kh, kw) plus the bias: deterministic, no atomics.
 * Work-items adjacent in dimension 0 own adjacent strips of W, so their loads
 *   are consecutive (coalesced on GPUs; CPU drivers such as PoCL vectorize
 *   across dimension 0). Zero padding is a select on the load (a masked load),
 *   never a branch; the other modes map indices through clconv_pad_index once
 *   per row and per strip column.
 * Layout: x (N, C_in, ID, IH, IW), w (C_out, 1, KD, KH, KW), y (N, C_out, OD, OH, OW),
 *   all C-contiguous. Output channel co reads input channel co / MULT.
 * Launch: global (ceil(OW / VW) rounded up, OD * ceil(OH / RH) rounded up,
 *   N * C_in * MULT / MB); work-items past the edges compute nothing and store nothing.
 * Macros: CLCONV_DTYPE (common.h), PADDING_MODE (0..3), HAS_BIAS (0/1), MULT, MB
 *   (divides MULT), KD KH KW, SD SH SW, DD DH DW, PD PH PW (padding before), VW, RH.
 */
#include "common.h"

/* Rows of input one tile spans per depth tap, and inputs one strip spans per row. */
#define JR ((RH - 1) * SH + (KH - 1) * DH + 1)
#define TS ((VW - 1) * SW + (KW - 1) * DW + 1)
#define KK (KD * KH * KW)

__kernel void conv_depthwise(
    __global const T* restrict x, const int x_off,
    __global const T* restrict w, const int w_off,
    __global const T* restrict bias, const int b_off,
    __global T* restrict y, const int y_off,
    const int C_in,
    const int ID, const int IH, const int IW,
    const int OD, const int OH, const int OW,
    const int HB)                    /* ceil(OH / RH): row blocks per output depth */
{
    const int ow0 = get_global_id(0) * VW;
    const int hb = get_global_id(1);
    const int plane = get_global_id(2);   /* (n * C_in + ci) * (MULT / MB) + mb */
    const int od = hb / HB;
    const int oh0 = (hb - od * HB) * RH;
    if (od >= OD) return;   /* uniform along dimension 0 */

    const int mb = plane % (MULT / MB);
    const int nc = plane / (MULT / MB);   /* n * C_in + ci */
    const int ci = nc % C_in;
    const int n = nc / C_in;
    const int co0 = ci * MULT + mb * MB;
    const int C_out = C_in * MULT;

    /* The weights of the MB output channels, in registers. */
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

    /* Strip columns: which are inside the input (zeros) or where they read (other modes). */
    const int iw0 = ow0 * SW - PW;
#if PADDING_MODE == PAD_ZEROS
    bool colok[TS];
#pragma unroll
    for (int t = 0; t < TS; ++t) colok[t] = iw0 + t >= 0 && iw0 + t < IW;
#else
    int col[TS];
#pragma unroll
    for (int t = 0; t < TS; ++t) col[t] = clconv_pad_index(iw0 + t, IW, PADDING_MODE);
#endif

    const int xc = nc * ID;   /* first depth slice of this input channel */
#pragma unroll
    for (int kd = 0; kd < KD; ++kd) {
        int id = od * SD - PD + kd * DD;
#if PADDING_MODE == PAD_ZEROS
        if (id < 0 || id >= ID) continue;
#else
        id = clconv_pad_index(id, ID, PADDING_MODE);
#endif
        const int xd = (xc + id) * IH;
#pragma unroll
        for (int j = 0; j < JR; ++j) {
            int ih = oh0 * SH - PH + j;
#if PADDING_MODE == PAD_ZEROS
            const bool rowok = ih >= 0 && ih < IH;
            const int xrow = x_off + (xd + ih) * IW + iw0;
            ACC in[TS];
#pragma unroll
            for (int t = 0; t < TS; ++t) in[t] = (rowok && colok[t]) ? LOAD(x, xrow + t) : (ACC)0;
#else
            ih = clconv_pad_index(ih, IH, PADDING_MODE);
            const int xrow = x_off + (xd + ih) * IW;
            ACC in[TS];
#pragma unroll
            for (int t = 0; t < TS; ++t) in[t] = LOAD(x, xrow + col[t]);
#endif
            /* Every (row r of the tile, tap kh) that reads input row j: r * SH + kh * DH == j. */
#pragma unroll
            for (int r = 0; r < RH; ++r) {
#pragma unroll
                for (int kh = 0; kh < KH; ++kh) {
                    if (r * SH + kh * DH != j) continue;   /* compile-time after unrolling */
#pragma unroll
                    for (int m = 0; m < MB; ++m) {
#pragma unroll
                        for (int kw = 0; kw < KW; ++kw) {
                            const ACC wv = wk[m][(kd * KH + kh) * KW + kw];
#pragma unroll
                            for (int v = 0; v < VW; ++v) acc[m][r][v] = acc[m][r][v] + in[v * SW + kw * DW] * wv;
                        }
                    }
                }
            }
        }
    }

#pragma unroll
    for (int m = 0; m < MB; ++m) {
        const int co = co0 + m;
#if HAS_BIAS
        const ACC bv = LOAD(bias, b_off + co);
#endif
        const int ybase = y_off + (((n * C_out + co) * OD + od) * OH + oh0) * OW + ow0;
#pragma unroll
        for (int r = 0; r < RH; ++r) {
            if (oh0 + r >= OH) break;
#pragma unroll
            for (int v = 0; v < VW; ++v) {
                if (ow0 + v >= OW) break;
#if HAS_BIAS
                STORE(acc[m][r][v] + bv, y, ybase + r * OW + v);
#else
                STORE(acc[m][r][v], y, ybase + r * OW + v);
#endif
            }
        }
    }
}
