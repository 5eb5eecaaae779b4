/* fft: convolution by FFT (clconv/backends/opencl/algorithms/fft.py).
 *
 * Algorithm, per chunk of images (1D and 2D run as 3D with leading size-1 dims):
 *   rfft_rows      the real input, loaded into an N0 x N1 x N2 grid (padding modes, zero
 *                  insertion for transposed strides, kernel flip and dilation are all index
 *                  maps of this load), real FFT along the last dim: an N2/2-point complex
 *                  Stockham FFT (radix 4, one radix-2 stage when needed) in local memory,
 *                  one work-group per row, then the split into N2/2 + 1 bins.
 *   fft_cols       complex FFT along dim 1 or 0, one work-item per VEC adjacent columns,
 *                  in place in global memory: forward is decimation in frequency (natural in,
 *                  digit-reversed out), inverse is the mirrored decimation in time
 *                  (digit-reversed in, natural out). The frequency-domain product is
 *                  pointwise, so the permutation never needs undoing.
 *   cgemm          Y[n, co, f] = sum over ci of X[n, ci, f] * W[co, ci, f] per frequency f,
 *                  register-blocked over BN images x BCO output channels x VEC frequencies.
 *   fft_cols       inverse, dims 0 then 1.
 *   irfft_rows_crop  inverse real FFT of each grid row an output row reads, then the crop
 *                  (and subsampling for stride), bias, and the store. An output the FFT made
 *                  non-finite (a NaN/Inf input or weight reaches every frequency) is recomputed
 *                  directly, so NaN/Inf land exactly where the direct sum puts them.
 * The weight spectra come from rfft_rows + fft_cols + w_block, once per weight, scaled by
 * 1/(4 N0 N1 N2) (the transforms are unnormalized and the real split skips its halves).
 *
 * Layout: spectra are split planes, one (re, im) pair of planes of S = N0*N1*P2 values per
 *   channel: re at c*2S + (i0*N1 + i1)*P2 + k, im S later; P2 = N2/2 + 1 rounded up to VEC.
 *   Blocked weight spectra: [g][S/VEC][ci][COGP][re/im][VEC].
 * Macros: CLCONV_DTYPE (common.h), FFT_H (N2/2, a power of 2), ROW_LS (work-items of the row
 *   kernels, a power of 2 dividing FFT_H/4, or 1), VEC (1, 2, 4, 8 or 16),
 *   BN, BCO (cgemm register block), PADDING_MODE, TRANSPOSED, HAS_BIAS (the direct fallback).
 * Twiddle tables: tw_n[k] = exp(-2 pi i k / n), k < n, computed on the host in float64.
 */
#include "common.h"

#if CLCONV_DTYPE == 64
#define R double
#define R2 double2
#else
#define R float
#define R2 float2
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#if VEC == 1
#define RV R
#else
#define RV CAT(R, VEC)
#endif
/* Aligned vector access: every index passed is a multiple of VEC, every region starts
 * at a multiple of VEC elements (no vloadn: plain vector loads). */
#define VLD(p, i) (*(__global const RV*)((p) + (i)))
#define VST(v, p, i) (*(__global RV*)((p) + (i)) = (v))

#define H FFT_H
#define N2 (2 * FFT_H)

inline R2 cmul(R2 a, R2 b) { return (R2)(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
/* a * conj(b) */
inline R2 cmulc(R2 a, R2 b) { return (R2)(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y); }

/* The source index along one dim of grid position p, or -1 for a zero.
 * t = flip ? off - p : p - off; zero unless t is a multiple of up; i = t / up through the
 * padding mode (PAD_ZEROS: zero outside [0, n)); positions >= lim are zero. */
inline int grid_src(int p, int flip, int off, int up, int lim, int n, int mode) {
    if (p >= lim) return -1;
    int t = flip ? off - p : p - off;
    if (up > 1) {
        if (t < 0 || t % up) return -1;
        t /= up;
    }
    return clconv_pad_index(t, n, mode);
}

/* One Stockham pass over H points in local memory (Govindaraju et al. 2008):
 * radix rr, Ns points already combined; dir = -1 forward, +1 inverse. ROW_LS work-items,
 * each a compile-time count of butterflies, so that every region between barriers is
 * straight-line code a CPU driver can vectorize across work-items. */
inline void stockham_pass(__local const R2* in, __local R2* out, int Ns, int rr,
                          __global const R2* tw, R dir, int lid) {
    if (rr == 4) {
        const int q = H / 4;
        const int step = N2 / (Ns * 4); /* twiddle table of N2 entries */
#pragma unroll
        for (int t = 0; t < H / (4 * ROW_LS); ++t) {
            const int j = lid + t * ROW_LS;
            const int k = j & (Ns - 1);
            const int d = (j - k) * 4 + k;
            R2 v0 = in[j], v1 = in[j + q], v2 = in[j + 2 * q], v3 = in[j + 3 * q];
            R2 w1 = tw[k * step], w2 = tw[2 * k * step], w3 = tw[3 * k * step];
            w1.y *= -dir; w2.y *= -dir; w3.y *= -dir;
            v1 = cmul(v1, w1); v2 = cmul(v2, w2); v3 = cmul(v3, w3);
            const R2 t0 = v0 + v2, t1 = v0 - v2, t2 = v1 + v3, t3 = v1 - v3;
            const R2 rot = (R2)(-dir * t3.y, dir * t3.x); /* dir * i * t3 */
            out[d] = t0 + t2;
            out[d + Ns] = t1 + rot;
            out[d + 2 * Ns] = t0 - t2;
            out[d + 3 * Ns] = t1 - rot;
        }
    } else {
        const int q = H / 2;
        const int step = N2 / (Ns * 2);
#pragma unroll
        for (int t = 0; t < H / (2 * ROW_LS); ++t) {
            const int j = lid + t * ROW_LS;
            const int k = j & (Ns - 1);
            const int d = (j - k) * 2 + k;
            R2 v0 = in[j], v1 = in[j + q];
            R2 w1 = tw[k * step];
            w1.y *= -dir;
            v1 = cmul(v1, w1);
            out[d] = v0 + v1;
            out[d + Ns] = v0 - v1;
        }
    }
}

/* The whole H-point FFT: data starts in buf[0..H), ends in the returned half of buf. */
inline __local R2* stockham(__local R2* buf, __global const R2* tw, R dir, int lid) {
    __local R2* in = buf;
    __local R2* out = buf + H;
    for (int Ns = 1; Ns < H;) {
        const int rr = (Ns * 4 <= H) ? 4 : 2;
        stockham_pass(in, out, Ns, rr, tw, dir, lid);
        barrier(CLK_LOCAL_MEM_FENCE);
        __local R2* t = in; in = out; out = t;
        Ns *= rr;
    }
    return in;
}

/* Forward real FFT along the last dim, one work-group per grid row (b, r0, r1).
 * Along dims 0 and 1 the load maps grid positions through grid_src (f, o, u, l); along
 * the last dim through src2, the same map tabulated on the host (N2 entries).
 * Channel b reads src + src_off + b * chan_stride, or (wmode 1, a transposed weight
 * (C_in, C_out/g, k) read as rows b + wfirst = co * cig + ci) its (g*cig + ci, co - g*cog)
 * slice.
 * Loaded values are multiplied by scale. Writes bins 0..H and zeros up to P2. */
__kernel void rfft_rows(
    __global const T* restrict src, const int src_off,
    __global R* restrict spec, const int spec_off,
    __global const R2* restrict tw,
    const int N0, const int N1, const int P2, const int S,
    const int wmode, const int wfirst, const int chan_stride, const int cig, const int cog,
    const int I0, const int I1, const int I2, const int mode,
    const int f0, const int o0, const int u0, const int l0,
    const int f1, const int o1, const int u1, const int l1,
    __global const int* restrict src2,
    const R scale)
{
    __local R2 buf[2 * H];
    const int lid = get_local_id(0), ls = get_local_size(0);
    int row = get_group_id(0);
    const int r1 = row % N1; row /= N1;
    const int r0 = row % N0;
    const int b = row / N0;
    __global R* ore = spec + spec_off + b * 2 * S + (r0 * N1 + r1) * P2;
    __global R* oim = ore + S;
    const int s0 = grid_src(r0, f0, o0, u0, l0, I0, mode);
    const int s1 = grid_src(r1, f1, o1, u1, l1, I1, mode);
    /* An all-zero row is transformed like any other (zeros in, zeros out): no early return
     * before the barriers, which PoCL 3.1 did not always honour (wrong rows, now and then,
     * on a kernel's first launch with 2+ threads). */
    const int valid = s0 >= 0 && s1 >= 0;
    int base = src_off;
    if (wmode) {
        const int co = (b + wfirst) / cig, ci = b + wfirst - co * cig, g = co / cog;
        base += ((g * cig + ci) * cog + (co - g * cog)) * chan_stride;
    } else {
        base += b * chan_stride;
    }
    base += valid ? (s0 * I1 + s1) * I2 : 0;
#pragma unroll
    for (int t = 0; t < H / ROW_LS; ++t) {
        const int m = lid + t * ROW_LS;
        const int ia = valid ? src2[2 * m] : -1, ib = valid ? src2[2 * m + 1] : -1;
        const R a = ia >= 0 ? (R)LOAD(src, base + ia) : (R)0;
        const R c = ib >= 0 ? (R)LOAD(src, base + ib) : (R)0;
        buf[m] = (R2)(a * scale, c * scale);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __local const R2* z = stockham(buf, tw, (R)-1, lid);
    /* 2 X[k] = (Z[k] + conj Z[H-k]) - i w^k (Z[k] - conj Z[H-k]), w = exp(-2 pi i / N2) */
#pragma unroll
    for (int t = 0; t <= H / ROW_LS; ++t) {
        const int k = lid + t * ROW_LS;
        if (k > H) break;
        const R2 a = z[k & (H - 1)], c = z[(H - k) & (H - 1)];
        const R2 e = (R2)(a.x + c.x, a.y - c.y);
        const R2 o = (R2)(a.y + c.y, c.x - a.x); /* -i (Z[k] - conj Z[H-k]) */
        const R2 x = e + cmul(tw[k], o);
        ore[k] = x.x;
        oim[k] = x.y;
    }
    for (int k = H + 1 + lid; k < P2; k += ls) { ore[k] = 0; oim[k] = 0; }
}

/* Complex FFT of length n along one dim, in place: one work-item per VEC adjacent columns.
 * Column gid = (b, outer, inner) starts at off + b*2S + outer*ostride + inner*VEC; its
 * elements are stride apart. inverse = 0: DIF (natural -> digit-reversed), 1: the mirrored
 * DIT with conjugate twiddles (digit-reversed -> natural), unnormalized. */
__kernel void fft_cols(
    __global R* restrict data, const int off, const int S,
    const int n, const int stride,
    const int inner, const int outer, const int ostride, const int total,
    __global const R2* restrict tw, const int inverse)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    const int ii = gid % inner;
    const int t = gid / inner;
    const int oo = t % outer;
    const int b = t / outer;
    __global R* re = data + off + b * 2 * S + oo * ostride + ii * VEC;
    __global R* im = re + S;
    int log2n = 0;
    while ((1 << log2n) < n) ++log2n;
    if (!inverse) {
        int len = n;
        for (; len >= 4; len >>= 2) {
            const int q = len >> 2, step = n / len;
            for (int blk = 0; blk < n; blk += len) {
                for (int j = 0; j < q; ++j) {
                    const int i0 = (blk + j) * stride, i1 = i0 + q * stride;
                    const int i2 = i1 + q * stride, i3 = i2 + q * stride;
                    const RV a0r = VLD(re, i0), a0i = VLD(im, i0), a1r = VLD(re, i1), a1i = VLD(im, i1);
                    const RV a2r = VLD(re, i2), a2i = VLD(im, i2), a3r = VLD(re, i3), a3i = VLD(im, i3);
                    const RV t0r = a0r + a2r, t0i = a0i + a2i, t1r = a0r - a2r, t1i = a0i - a2i;
                    const RV t2r = a1r + a3r, t2i = a1i + a3i, t3r = a1r - a3r, t3i = a1i - a3i;
                    /* y1 = t1 - i t3, y3 = t1 + i t3 */
                    RV y1r = t1r + t3i, y1i = t1i - t3r, y3r = t1r - t3i, y3i = t1i + t3r;
                    RV y2r = t0r - t2r, y2i = t0i - t2i;
                    VST(t0r + t2r, re, i0); VST(t0i + t2i, im, i0);
                    if (j) {
                        const R2 w1 = tw[j * step], w2 = tw[2 * j * step], w3 = tw[3 * j * step];
                        RV u;
                        u = y1r * w1.x - y1i * w1.y; y1i = y1r * w1.y + y1i * w1.x; y1r = u;
                        u = y2r * w2.x - y2i * w2.y; y2i = y2r * w2.y + y2i * w2.x; y2r = u;
                        u = y3r * w3.x - y3i * w3.y; y3i = y3r * w3.y + y3i * w3.x; y3r = u;
                    }
                    VST(y1r, re, i1); VST(y1i, im, i1);
                    VST(y2r, re, i2); VST(y2i, im, i2);
                    VST(y3r, re, i3); VST(y3i, im, i3);
                }
            }
        }
        if (len == 2) { /* the last stage: pairs, twiddle 1 */
            for (int blk = 0; blk < n; blk += 2) {
                const int i0 = blk * stride, i1 = i0 + stride;
                const RV ar = VLD(re, i0), ai = VLD(im, i0), br = VLD(re, i1), bi = VLD(im, i1);
                VST(ar + br, re, i0); VST(ai + bi, im, i0);
                VST(ar - br, re, i1); VST(ai - bi, im, i1);
            }
        }
    } else {
        int len = 4;
        if (log2n & 1) {
            for (int blk = 0; blk < n; blk += 2) {
                const int i0 = blk * stride, i1 = i0 + stride;
                const RV ar = VLD(re, i0), ai = VLD(im, i0), br = VLD(re, i1), bi = VLD(im, i1);
                VST(ar + br, re, i0); VST(ai + bi, im, i0);
                VST(ar - br, re, i1); VST(ai - bi, im, i1);
            }
            len = 8;
        }
        for (; len <= n; len <<= 2) {
            const int q = len >> 2, step = n / len;
            for (int blk = 0; blk < n; blk += len) {
                for (int j = 0; j < q; ++j) {
                    const int i0 = (blk + j) * stride, i1 = i0 + q * stride;
                    const int i2 = i1 + q * stride, i3 = i2 + q * stride;
                    const RV y0r = VLD(re, i0), y0i = VLD(im, i0);
                    RV y1r = VLD(re, i1), y1i = VLD(im, i1), y2r = VLD(re, i2), y2i = VLD(im, i2);
                    RV y3r = VLD(re, i3), y3i = VLD(im, i3);
                    if (j) { /* times conj(w) */
                        const R2 w1 = tw[j * step], w2 = tw[2 * j * step], w3 = tw[3 * j * step];
                        RV u;
                        u = y1r * w1.x + y1i * w1.y; y1i = y1i * w1.x - y1r * w1.y; y1r = u;
                        u = y2r * w2.x + y2i * w2.y; y2i = y2i * w2.x - y2r * w2.y; y2r = u;
                        u = y3r * w3.x + y3i * w3.y; y3i = y3i * w3.x - y3r * w3.y; y3r = u;
                    }
                    const RV t0r = y0r + y2r, t0i = y0i + y2i, t1r = y0r - y2r, t1i = y0i - y2i;
                    const RV t2r = y1r + y3r, t2i = y1i + y3i, t3r = y1r - y3r, t3i = y1i - y3i;
                    /* a1 = t1 + i t3, a3 = t1 - i t3 */
                    VST(t0r + t2r, re, i0); VST(t0i + t2i, im, i0);
                    VST(t1r - t3i, re, i1); VST(t1i + t3r, im, i1);
                    VST(t0r - t2r, re, i2); VST(t0i - t2i, im, i2);
                    VST(t1r + t3i, re, i3); VST(t1i - t3r, im, i3);
                }
            }
        }
    }
}

/* Weight spectra of output channels [c0, c1), natural layout [co - c0][ci][re/im][S], into
 * the blocked layout [g][S/VEC][ci][COGP][re/im][VEC] cgemm streams through. The padding
 * entries (col >= cog) are zeros, written with the group's last output channel. */
__kernel void w_block(
    __global const R* restrict wn, __global R* restrict wb,
    const int S, const int cig, const int cog, const int COGP, const int total,
    const int c0, const int c1)
{
    const int gid = get_global_id(0);
    if (gid >= total) return;
    const int SV = S / VEC;
    const int col = gid % COGP;
    int t = gid / COGP;
    const int ci = t % cig; t /= cig;
    const int sv = t % SV;
    const int g = t / SV;
    const int owner = g * cog + min(col, cog - 1);
    if (owner < c0 || owner >= c1) return;
    RV re = 0, im = 0;
    if (col < cog) {
        const int src = ((owner - c0) * cig + ci) * 2 * S + sv * VEC;
        re = VLD(wn, src);
        im = VLD(wn, src + S);
    }
    VST(re, wb, gid * 2 * VEC);
    VST(im, wb, gid * 2 * VEC + VEC);
}

/* Y[n, g*cog + co, f] = sum_ci X[n, g*cig + ci, f] * W[g*cog + co, ci, f]: a complex GEMM per
 * frequency. Work-item (frequency vector sv, output-channel block, image block). */
__kernel void cgemm(
    __global const R* restrict X, const int x_off,
    __global const R* restrict Wb,
    __global R* restrict Y, const int y_off,
    const int S, const int cig, const int cog, const int COGP,
    const int C_in, const int C_out, const int nimg)
{
    const int sv = get_global_id(0);
    const int SV = S / VEC;
    if (sv >= SV) return;
    const int nblk = COGP / BCO;
    const int g = get_global_id(1) / nblk;
    const int co0 = (get_global_id(1) - g * nblk) * BCO;
    const int n0 = get_global_id(2) * BN;
    RV accr[BN * BCO], acci[BN * BCO]; /* [i * BCO + j]: image i, output channel j */
#pragma unroll
    for (int a = 0; a < BN * BCO; ++a) { accr[a] = 0; acci[a] = 0; }
    int xb[BN];
#pragma unroll
    for (int i = 0; i < BN; ++i) xb[i] = x_off + (min(n0 + i, nimg - 1) * C_in + g * cig) * 2 * S + sv * VEC;
    __global const R* wp = Wb + ((g * SV + sv) * cig * COGP + co0) * 2 * VEC;
    for (int ci = 0; ci < cig; ++ci) {
        RV xr[BN], xi[BN];
#pragma unroll
        for (int i = 0; i < BN; ++i) {
            xr[i] = VLD(X, xb[i] + ci * 2 * S);
            xi[i] = VLD(X, xb[i] + ci * 2 * S + S);
        }
#pragma unroll
        for (int j = 0; j < BCO; ++j) {
            const RV wr = VLD(wp, 2 * j * VEC), wi = VLD(wp, (2 * j + 1) * VEC);
#pragma unroll
            for (int i = 0; i < BN; ++i) {
                accr[i * BCO + j] = accr[i * BCO + j] + xr[i] * wr - xi[i] * wi;
                acci[i * BCO + j] = acci[i * BCO + j] + xr[i] * wi + xi[i] * wr;
            }
        }
        wp += COGP * 2 * VEC;
    }
#pragma unroll
    for (int i = 0; i < BN; ++i) {
#pragma unroll
        for (int j = 0; j < BCO; ++j) {
            if (n0 + i < nimg && co0 + j < cog) {
                const int dst = y_off + ((n0 + i) * C_out + g * cog + co0 + j) * 2 * S + sv * VEC;
                VST(accr[i * BCO + j], Y, dst);
                VST(acci[i * BCO + j], Y, dst + S);
            }
        }
    }
}

/* The direct sum of one output (the fallback for outputs the FFT made non-finite);
 * direct.cl's loop, term for term. */
inline ACC direct_at(
    __global const T* x, const int x_off, __global const T* w, const int w_off,
    const int n, const int co, const int od, const int oh, const int ow,
    const int C_in, const int C_out, const int groups,
    const int ID, const int IH, const int IW, const int KD, const int KH, const int KW,
    const int SD, const int SH, const int SW, const int DD, const int DH, const int DW,
    const int PD, const int PH, const int PW)
{
    const int cig = C_in / groups, cog = C_out / groups, g = co / cog;
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
    const int col = co - g * cog;
    for (int ci = 0; ci < cig; ++ci) {
        const int cin = g * cig + ci;
        const int xc = (n * C_in + cin) * ID;
        const int wc = (cin * cog + col) * KK;
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
    return acc;
}

/* Inverse real FFT of the grid row output row (n, co, o0, o1) reads, then crop, subsample,
 * bias, store. Output o_d reads grid position o_d * rs_d + ro_d. hit (O0 + O1 + O2 flags)
 * says, per dim, whether any tap of o_d reaches the input: an output that misses it along
 * some dim (padding, dilation holes, inserted zeros) is exactly the bias (or 0), never the
 * FFT's rounding noise. */
__kernel void irfft_rows_crop(
    __global const R* restrict spec, const int spec_off,
    __global const R2* restrict tw,
    const int N1, const int P2, const int S,
    __global T* restrict y, const int y_off,
    __global const T* restrict bias, const int b_off,
    __global const T* restrict x, const int x_off,
    __global const T* restrict w, const int w_off,
    const int n_first, const int C_in, const int C_out, const int groups,
    const int O0, const int O1, const int O2,
    const int rs0, const int rs1, const int rs2,
    const int ro0, const int ro1, const int ro2,
    __global const uchar* restrict hit,
    const int ID, const int IH, const int IW, const int KD, const int KH, const int KW,
    const int SD, const int SH, const int SW, const int DD, const int DH, const int DW,
    const int PD, const int PH, const int PW)
{
    __local R2 buf[2 * H];
    const int lid = get_local_id(0), ls = get_local_size(0);
    int row = get_group_id(0);
    const int o1 = row % O1; row /= O1;
    const int o0 = row % O0; row /= O0;
    const int co = row % C_out;
    const int nl = row / C_out;
    const int n = n_first + nl;
    const int ybase = y_off + ((n * C_out + co) * O0 + o0) * O1 * O2 + o1 * O2;
#if HAS_BIAS
    const ACC bv = LOAD(bias, b_off + co);
#else
    const ACC bv = 0;
#endif
    /* A row that reads no input (hit 0) is the bias; it still runs the transform, on row 0,
     * so that every work-group reaches every barrier (see rfft_rows). */
    const int row_hit = hit[o0] && hit[O0 + o1];
    const int r0 = row_hit ? o0 * rs0 + ro0 : 0, r1 = row_hit ? o1 * rs1 + ro1 : 0;
    __global const R* xre = spec + spec_off + (nl * C_out + co) * 2 * S + (r0 * N1 + r1) * P2;
    __global const R* xim = xre + S;
    /* Z[k] = (X[k] + conj X[H-k]) + i w^-k (X[k] - conj X[H-k]): twice the packed spectrum */
#pragma unroll
    for (int t = 0; t < H / ROW_LS; ++t) {
        const int k = lid + t * ROW_LS;
        const R2 a = (R2)(xre[k], xim[k]), c = (R2)(xre[H - k], xim[H - k]);
        const R2 e = (R2)(a.x + c.x, a.y - c.y);
        const R2 d = (R2)(a.x - c.x, a.y + c.y);
        const R2 dw = cmulc(d, tw[k]);
        buf[k] = (R2)(e.x - dw.y, e.y + dw.x);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __local const R2* z = stockham(buf, tw, (R)1, lid);
    for (int o = lid; o < O2; o += ls) {
        const int r2 = o * rs2 + ro2;
        ACC v = 0;
        if (row_hit && hit[O0 + O1 + o]) {
            const R2 zz = z[r2 >> 1];
            v = (ACC)((r2 & 1) ? zz.y : zz.x);
            if (!isfinite(v))
                v = direct_at(x, x_off, w, w_off, n, co, o0, o1, o, C_in, C_out, groups,
                              ID, IH, IW, KD, KH, KW, SD, SH, SW, DD, DH, DW, PD, PH, PW);
        }
        STORE(v + bv, y, ybase + o);
    }
}
