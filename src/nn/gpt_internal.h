/* Shared by the GPT's training path (gpt.c), its incremental decoder (gpt_decode.c) and the
 * tensor-parallel server, which runs the same blocks on its slice of the weights. */
#pragma once
#include "nn/model_internal.h"

/* CH_GPT_LN_EPS: cohort/model.h (the Hugging Face export states it). */

/* The shape of the weights one rank holds: the whole model (training; NH = n_head, F = 4 C), or
 * a tensor-parallel slice with NH of the heads (attention width NH * HS) and F of the 4 C MLP
 * columns. C, T, V are the model's. */
typedef struct gpt_shape {
  int L, C, NH, HS, F, T, V;
} gpt_shape;

/* One block's weights in that shape (GPT-2 Conv1D layouts [in, out]): qkv_w [C, 3 NH HS] as
 * [q | k | v] of this rank's heads, attn_w [NH HS, C], fc_w [C, F], proj_w [F, C]. attn_b and
 * proj_b, added after the tensor-parallel sum, are NULL on every rank but one. */
typedef struct gpt_block_w {
  const float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *attn_w, *attn_b, *ln2_w, *ln2_b, *fc_w, *fc_b,
      *proj_w, *proj_b;
} gpt_block_w;

/* A model as one rank holds it: the backend its weights live on, shape, replicated embeddings
 * and ln_f, the blocks [L]. */
typedef struct gpt_view {
  const ch_backend *be;
  gpt_shape s;
  const float *wte, *wpe, *lnf_w, *lnf_b;
  const gpt_block_w *blk;
} gpt_view;

/* One block's activations (views into an arena): what backward needs, or decode scratch. */
typedef struct gpt_act {
  float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *saved, *res2, *ln2, *ln2_mean, *ln2_rstd, *fch,
      *fch_gelu, *res3;
} gpt_act;

/* Fills a->atty from a->qkv for block l (one backend op): the only step where training and
 * decoding differ. */
typedef ch_status (*gpt_attend_fn)(void *ctx, int l, gpt_act *a);
/* Sums x[0..n) over the tensor-parallel ranks in place (NULL: one rank holds everything). */
typedef ch_status (*gpt_reduce_fn)(void *ctx, float *x, int64_t n);

/* Block l over N rows, keeping every intermediate in `a`. The residual adds are fused into the
 * LayerNorm that follows each (add_layernorm_fwd), so a block's output is left as two terms:
 * a->res3 holds the MLP branch and a->res2 the residual it adds to; the next block's ln_1 (or
 * ln_f) sums them. Its input is x alone (x_add NULL: the embeddings), or x + x_add (the previous
 * block's res3 and res2), summed in place into x in ln_1's pass, so that x then holds the
 * block input as the backward reads it. With a reduce, the two row-parallel projections are
 * summed over the ranks before their bias and residual. */
ch_status gpt_block_forward(const gpt_view *v, int l, gpt_act *a, float *x, const float *x_add,
                            int64_t N, gpt_attend_fn attend, void *actx, gpt_reduce_fn reduce,
                            void *rctx);

/* ln_f's input, the last block's output res3 + res2 (a NULL: L == 0, x alone), summed in place
 * into x (a->res3) in the pass of the LayerNorm: y = ln_f(x) over `rows` rows. */
ch_status gpt_final_norm(const gpt_view *v, float *x, const float *x_add, float *y, float *mean,
                         float *rstd, int64_t rows);

/* The shape of a GPT model (the whole model), or NULL when `m` is not a GPT. */
const gpt_shape *gpt_shape_of(const ch_model *m);

/* The view of a whole (single-rank) GPT over the flat buffer `p`, blocks written to blk [L]; NULL
 * when `m` is not a GPT. */
const gpt_view *gpt_view_of(const ch_model *m, const float *p, gpt_view *v, gpt_block_w *blk);

/* The view of one rank's tensor-parallel slice: `local` is a slice of m's layout (same table
 * order, ch_tp_layout) over `p`. The local heads and MLP width come from the local shapes; a
 * bias added after the tensor-parallel sum (param_after_reduce) is kept only when
 * `owns_bias`. Errors: CH_ERR_INVALID (not a GPT, or not a slice of its table). */
ch_status gpt_view_slice(const ch_model *m, const ch_layout *local, const float *p,
                         int owns_bias, gpt_view *v, gpt_block_w *blk);

/* Incremental decoding on any view: one step of nseq sequences, as ch_model_decode_batch;
 * reduce as for the blocks. The cache lives on backend `be`. */
ch_status gpt_kv_create(const ch_backend *be, const gpt_shape *s, int slots, ch_kv_cache **out);
ch_status gpt_decode_batch(const gpt_view *v, ch_kv_cache *kv, int nseq, const int *slots,
                           const int *counts, const int32_t *tokens, float *logits,
                           gpt_reduce_fn reduce, void *rctx);
