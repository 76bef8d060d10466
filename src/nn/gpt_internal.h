/* Shared between the GPT's training path (gpt.c) and its incremental decoder (gpt_decode.c). */
#pragma once
#include "nn/model_internal.h"

typedef struct gpt_dims {
  int L, NH, C, HS, T, V; /* blocks, heads, width, head size, context, vocabulary */
  int B;                  /* sequences the training arena holds */
} gpt_dims;

/* The GPT's dimensions, or NULL when `m` is not a GPT. */
const gpt_dims *ch_gpt_dims(const ch_model *m);

/* Parameter `which` of block `layer` (P_* order of gpt.c: ln_1.w, ln_1.b, c_attn.w, c_attn.b,
 * attn.c_proj.w, attn.c_proj.b, ln_2.w, ln_2.b, c_fc.w, c_fc.b, mlp.c_proj.w, mlp.c_proj.b) in
 * the flat buffer; layer -1: wte (0) / wpe (1); layer L: ln_f weight (0) / bias (1). */
const float *ch_gpt_param(const ch_model *m, const float *flat, int layer, int which);

#define CH_GPT_LN_EPS 1e-5f /* torch's LayerNorm default, as GPT-2 */

/* One block's activations (views into an arena): what backward needs, or decode scratch. */
typedef struct gpt_act {
  float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *probs, *res2, *ln2, *ln2_mean, *ln2_rstd, *fch,
      *fch_gelu, *res3;
} gpt_act;

/* Fills a->atty from a->qkv for block l: the only step where training and decoding differ. */
typedef void (*ch_gpt_attend)(void *ctx, int l, gpt_act *a);

/* Block l over N rows: x -> a->res3, keeping every intermediate in `a`. */
void ch_gpt_block_forward(const ch_model *m, const float *p, int l, gpt_act *a, const float *x,
                          int64_t N, ch_gpt_attend attend, void *ctx);
