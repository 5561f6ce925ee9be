/*
 * ldm_bf16.c — see ldm_bf16.h. The functions that use AVX-512 carry their own target attribute, so
 * the rest of the program is built for any x86-64 CPU and these run only where
 * ldm_bf16_supported() says so.
 */
#include "ldm_bf16.h"

#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define LDM_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define LDM_INLINE static inline __attribute__((always_inline))

int ldm_bf16_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

/* A float's bf16 bits, rounded to nearest even; NaN stays a (quiet) NaN. */
static inline uint32_t bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* Elements 2p and 2p + 1 of a row of d floats as one bf16 pair (the first in the low half; zero
 * past d), or zero for a padding row (row == NULL). */
static inline uint32_t pair_bits(const float *row, long p, long d) {
    if (!row) return 0;
    uint32_t lo = bf16_bits(row[2 * p]), hi = 2 * p + 1 < d ? bf16_bits(row[2 * p + 1]) : 0;
    return lo | hi << 16;
}

void ldm_bf16_pack_keys(const float *k, long lk, long d, long ldk, long lkp, uint32_t *kp) {
    long dp = (d + 1) / 2;
    for (long j = 0; j < lkp; j++) {
        const float *row = j < lk ? k + j * ldk : NULL;
        for (long p = 0; p < dp; p++) kp[p * lkp + j] = pair_bits(row, p, d);
    }
}

void ldm_bf16_pack_values(const float *v, long lk, long dv, long ldv, long lkp, long dvp, uint32_t *vp) {
    for (long q = 0; q < lkp / 2; q++) {
        const float *r0 = 2 * q < lk ? v + 2 * q * ldv : v, *r1 = 2 * q + 1 < lk ? r0 + ldv : v;
        for (long c = 0; c < dvp; c++) {
            uint32_t lo = 0, hi = 0;
            if (c < dv) {
                if (2 * q < lk) lo = bf16_bits(r0[c]);
                if (2 * q + 1 < lk) hi = bf16_bits(r1[c]);
            }
            vp[q * dvp + c] = lo | hi << 16;
        }
    }
}

enum { R = LDM_BF16_QUERY_ROWS };

/* e^x for x ≤ 0 (larger x is not needed: scores are shifted by their maximum), relative error
 * about 2e-7; below −87 it returns about 1e-38 rather than 0. */
LDM_AVX512_BF16 LDM_INLINE __m512 exp_nonpositive(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    /* e^r on |r| ≤ ln2/2 by its Taylor series to r⁶ */
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* scores[i][j0 ..< j0 + 64] = alpha · Σ_p qb[i][p] · kp[p][j0 + …] for the R query rows. */
LDM_AVX512_BF16 LDM_INLINE void score_block(const uint32_t *qb, long dp, const uint32_t *kp, long lkp, long j0,
                                             float alpha, float *scores) {
    __m512 acc[R][4];
    for (int i = 0; i < R; i++)
        for (int c = 0; c < 4; c++) acc[i][c] = _mm512_setzero_ps();
    for (long p = 0; p < dp; p++) {
        const uint32_t *kr = kp + p * lkp + j0;
        __m512bh k0 = (__m512bh)_mm512_loadu_si512(kr), k1 = (__m512bh)_mm512_loadu_si512(kr + 16);
        __m512bh k2 = (__m512bh)_mm512_loadu_si512(kr + 32), k3 = (__m512bh)_mm512_loadu_si512(kr + 48);
        for (int i = 0; i < R; i++) {
            __m512bh qv = (__m512bh)_mm512_set1_epi32((int)qb[i * dp + p]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], qv, k0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], qv, k1);
            acc[i][2] = _mm512_dpbf16_ps(acc[i][2], qv, k2);
            acc[i][3] = _mm512_dpbf16_ps(acc[i][3], qv, k3);
        }
    }
    __m512 a = _mm512_set1_ps(alpha);
    for (int i = 0; i < R; i++)
        for (int c = 0; c < 4; c++) _mm512_storeu_ps(scores + i * lkp + j0 + 16 * c, _mm512_mul_ps(acc[i][c], a));
}

/* out[i][c0 + …] = inv[i] · Σ_q probs[i][q] · vp[q][c0 + …] for `rows` of the R rows and the
 * channels c0 ..< min(c0 + 16·NV, dv). */
LDM_AVX512_BF16 LDM_INLINE void value_block(const uint16_t *probs, long lkp, const uint32_t *vp, long dvp, long c0,
                                             const int NV, long rows, const float *inv, long dv, float *out, long ldo) {
    __m512 acc[R][4];
    for (int i = 0; i < R; i++)
        for (int c = 0; c < NV; c++) acc[i][c] = _mm512_setzero_ps();
    const uint32_t *pr = (const uint32_t *)probs;
    long half = lkp / 2;
    for (long q = 0; q < half; q++) {
        const uint32_t *vr = vp + q * dvp + c0;
        __m512bh v[4];
        for (int c = 0; c < NV; c++) v[c] = (__m512bh)_mm512_loadu_si512(vr + 16 * c);
        for (int i = 0; i < R; i++) {
            __m512bh pv = (__m512bh)_mm512_set1_epi32((int)pr[i * half + q]);
            for (int c = 0; c < NV; c++) acc[i][c] = _mm512_dpbf16_ps(acc[i][c], pv, v[c]);
        }
    }
    for (long i = 0; i < rows; i++) {
        __m512 s = _mm512_set1_ps(inv[i]);
        for (int c = 0; c < NV; c++) {
            long at = c0 + 16 * c;
            if (at >= dv) break;
            long n = dv - at < 16 ? dv - at : 16;
            __mmask16 m = (__mmask16)((1u << n) - 1u);
            _mm512_mask_storeu_ps(out + i * ldo + at, m, _mm512_mul_ps(acc[i][c], s));
        }
    }
}

/* Softmax numerators of one row of lk scores (of lkp): exp(s − max) as bf16 into probs (zero past
 * lk); returns 1 / their sum. */
LDM_AVX512_BF16 static float softmax_row(const float *s, long lk, long lkp, uint16_t *probs) {
    __m512 mx = _mm512_set1_ps(-__builtin_inff());
    long j = 0;
    for (; j + 16 <= lk; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + j));
    if (j < lk) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, (__mmask16)((1u << (lk - j)) - 1u), s + j));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (j = 0; j < lkp; j += 16) {
        long n = lk - j;
        __mmask16 live = n >= 16 ? (__mmask16)0xffff : n > 0 ? (__mmask16)((1u << n) - 1u) : (__mmask16)0;
        __m512 e = _mm512_maskz_mov_ps(live, exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, s + j), m)));
        __m256bh b = _mm512_cvtneps_pbh(e);
        _mm256_storeu_si256((__m256i *)(probs + j), (__m256i)b);
        /* the sum of the rounded values, so the weights given to V sum to one */
        sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)b), 16)));
    }
    return 1.0f / _mm512_reduce_add_ps(sum);
}

LDM_AVX512_BF16 void ldm_bf16_attention(const float *q, long rows, long d, long ldq,
                                         const uint32_t *kp, long lk, long lkp, const uint32_t *vp, long dv, long dvp,
                                         float alpha, float *out, long ldo, float *scores, uint16_t *probs) {
    long dp = (d + 1) / 2;
    uint32_t qb[R * (LDM_BF16_MAX_HEAD_WIDTH / 2)];
    float inv[R];
    for (long i0 = 0; i0 < rows; i0 += R) {
        long r = rows - i0 < R ? rows - i0 : R;
        for (long i = 0; i < R; i++) {
            const float *qi = i < r ? q + (i0 + i) * ldq : NULL;
            for (long p = 0; p < dp; p++) qb[i * dp + p] = pair_bits(qi, p, d);
        }
        for (long j0 = 0; j0 < lkp; j0 += 64) score_block(qb, dp, kp, lkp, j0, alpha, scores);
        for (long i = 0; i < r; i++) inv[i] = softmax_row(scores + i * lkp, lk, lkp, probs + i * lkp);
        if (r < R) memset(probs + r * lkp, 0, (size_t)(R - r) * (size_t)lkp * sizeof *probs);
        float *o = out + i0 * ldo;
        for (long c0 = 0; c0 < dvp; c0 += 64) {
            switch ((dvp - c0) / 16) {
            case 1: value_block(probs, lkp, vp, dvp, c0, 1, r, inv, dv, o, ldo); break;
            case 2: value_block(probs, lkp, vp, dvp, c0, 2, r, inv, dv, o, ldo); break;
            case 3: value_block(probs, lkp, vp, dvp, c0, 3, r, inv, dv, o, ldo); break;
            default: value_block(probs, lkp, vp, dvp, c0, 4, r, inv, dv, o, ldo); break;
            }
        }
    }
}

#else

int ldm_bf16_supported(void) { return 0; }
void ldm_bf16_pack_keys(const float *k, long lk, long d, long ldk, long lkp, uint32_t *kp) {
    (void)k; (void)lk; (void)d; (void)ldk; (void)lkp; (void)kp;
}
void ldm_bf16_pack_values(const float *v, long lk, long dv, long ldv, long lkp, long dvp, uint32_t *vp) {
    (void)v; (void)lk; (void)dv; (void)ldv; (void)lkp; (void)dvp; (void)vp;
}
void ldm_bf16_attention(const float *q, long rows, long d, long ldq, const uint32_t *kp, long lk, long lkp,
                        const uint32_t *vp, long dv, long dvp, float alpha, float *out, long ldo, float *scores,
                        uint16_t *probs) {
    (void)q; (void)rows; (void)d; (void)ldq; (void)kp; (void)lk; (void)lkp; (void)vp; (void)dv; (void)dvp;
    (void)alpha; (void)out; (void)ldo; (void)scores; (void)probs;
}

#endif
