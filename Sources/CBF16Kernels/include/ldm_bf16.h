/*
 * ldm_bf16.h — bfloat16 attention for CPUs with AVX512-BF16.
 *
 * One head's scaled-dot-product attention with bf16 operands and fp32 accumulation, the scores
 * and softmax in fp32: S = alpha · Q Kᵀ, P = exp(S − max) (rounded to bf16 for the second
 * product), O = P V / Σ exp(S − max). The products use VDPBF16PS, which multiplies pairs of bf16
 * values and adds both to an fp32 lane, so K and V are packed once per call into pairs along the
 * reduction dimension:
 *
 *   keys:   kp[p · lkp + j] = (K[j][2p], K[j][2p + 1])      p < ⌈d / 2⌉, j < lkp
 *   values: vp[q · dvp + c] = (V[2q][c], V[2q + 1][c])      q < lkp / 2, c < dvp
 *
 * each pair a 32-bit word with the first element in its low half; keys beyond lk, channels beyond
 * dv and the odd pair's missing half are zero. lkp is lk rounded up to 64, dvp is dv rounded up
 * to 16. Rounding to bf16 is to nearest, ties to even.
 *
 * Callers check ldm_bf16_supported() first: the kernels use instructions older CPUs lack.
 */
#ifndef LDM_BF16_H
#define LDM_BF16_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest head width the attention kernel takes. */
#define LDM_BF16_MAX_HEAD_WIDTH 512
/* Query rows the attention kernel works on at once (its scratch holds this many rows of scores). */
#define LDM_BF16_QUERY_ROWS 6

/* 1 when this CPU has AVX512-F, -BW, -VL and -BF16 (the kernels' instructions), else 0. */
int ldm_bf16_supported(void);

/* Packs keys K (lk rows of d floats, rows ldk floats apart) into kp (⌈d / 2⌉ · lkp words). */
void ldm_bf16_pack_keys(const float *k, long lk, long d, long ldk, long lkp, uint32_t *kp);

/* Packs values V (lk rows of dv floats, rows ldv floats apart) into vp (lkp / 2 · dvp words). */
void ldm_bf16_pack_values(const float *v, long lk, long dv, long ldv, long lkp, long dvp, uint32_t *vp);

/*
 * Attention of `rows` queries (d floats each, rows ldq floats apart) over lk keys packed in kp and
 * vp; writes dv floats per query to out (rows ldo floats apart). scores: LDM_BF16_QUERY_ROWS · lkp
 * floats, probs: LDM_BF16_QUERY_ROWS · lkp halves of scratch. d ≤ LDM_BF16_MAX_HEAD_WIDTH.
 */
void ldm_bf16_attention(const float *q, long rows, long d, long ldq,
                        const uint32_t *kp, long lk, long lkp, const uint32_t *vp, long dv, long dvp,
                        float alpha, float *out, long ldo, float *scores, uint16_t *probs);

#ifdef __cplusplus
}
#endif

#endif
