/* A model's forward on one rank's tensor-parallel slice (include/cohort/model.h).
 * MLP (Megatron pairs): layer 2j is split by output rows -- this rank computes its features
 * z = x W_l^T + b_l and their activation; layer 2j+1 by input columns -- its partial
 * sum a_l W_l^T is added up over the ranks, then the bias (once) and the activation. A layer
 * left whole runs replicated. GPT: the blocks of gpt.c on a view of this rank's heads and MLP
 * columns (gpt_block_forward with the reduce), the KV cache holding only those heads; a decode
 * step stacks every sequence's rows into one batch (gpt_decode.c).
 * Which tensors are partial sums and which biases one rank adds come from the spec table
 * (param_after_reduce); each family's table order stays in its own file (mlp_view_slice,
 * gpt_view_slice), so this file knows no parameter by position. Runs on the backend of the
 * model it was created from. */
#include <stdlib.h>

#include "nn/gpt_internal.h"

struct ch_tp_model {
  const ch_model *m;
  const ch_backend *be;
  const ch_layout *local;
  const float *p;
  int owns_bias, max_batch;
  ch_reduce_fn reduce;
  void *rctx;
  /* MLP */
  int nlayers, act;
  mlp_layer_view *layers;  /* mlp.c's view of this rank's slice */
  float *buf[2];           /* backend: ping-pong activations of the widest layer */
  float *x_stage;          /* backend staging for the host input rows */
  /* GPT */
  gpt_view view;
  gpt_block_w *blk;
  ch_kv_cache *kv;
};

/* The local layers (mlp.c reads its table) and buffers for the widest of them. */
static ch_status mlp_setup(ch_tp_model *t) {
  t->nlayers = mlp_layers(t->m);
  t->act = mlp_activation(t->m);
  t->layers = calloc((size_t)(t->nlayers > 0 ? t->nlayers : 1), sizeof *t->layers);
  if (!t->layers) return CH_FAIL(CH_ERR_NOMEM, "tensor-parallel MLP");
  CH_CHECK(mlp_view_slice(t->m, t->local, t->p, t->layers));
  int64_t widest = 0;
  for (int i = 0; i < t->nlayers; i++) {
    /* A column-parallel layer consumes the full output of the row-parallel one after the sum. */
    widest = t->layers[i].out > widest ? t->layers[i].out : widest;
    widest = t->layers[i].out_full > widest ? t->layers[i].out_full : widest;
  }
  size_t n = (size_t)t->max_batch * (size_t)widest;
  size_t xn = (size_t)t->max_batch * (size_t)(t->nlayers > 0 ? t->layers[0].in : 0);
  void *b0 = NULL, *b1 = NULL, *xs = NULL;
  CH_CHECK(ch_op_alloc(t->be, sizeof(float) * (n + 1), &b0));
  t->buf[0] = b0;
  CH_CHECK(ch_op_alloc(t->be, sizeof(float) * (n + 1), &b1));
  t->buf[1] = b1;
  CH_CHECK(ch_op_alloc(t->be, sizeof(float) * (xn + 1), &xs));
  t->x_stage = xs;
  return CH_OK;
}

/* The local view of the GPT (gpt.c reads its own table) and a KV cache of its heads. */
static ch_status gpt_setup(ch_tp_model *t, int kv_slots) {
  const gpt_shape *full = gpt_shape_of(t->m);
  t->blk = malloc(sizeof *t->blk * (size_t)(full->L > 0 ? full->L : 1));
  if (!t->blk) return CH_FAIL(CH_ERR_NOMEM, "tensor-parallel GPT");
  CH_CHECK(gpt_view_slice(t->m, t->local, t->p, t->owns_bias, &t->view, t->blk));
  return gpt_kv_create(t->be, &t->view.s, kv_slots, &t->kv);
}

ch_status ch_tp_model_create(const ch_model *m, const ch_layout *local, const float *params,
                             int owns_bias, int max_batch, int kv_slots, ch_reduce_fn reduce,
                             void *rctx, ch_tp_model **out) {
  ch_tp_model *t = calloc(1, sizeof *t);
  if (!t) return CH_FAIL(CH_ERR_NOMEM, "tensor-parallel model");
  *t = (ch_tp_model){.m = m, .be = ch_model_backend(m), .local = local, .p = params,
                     .owns_bias = owns_bias,
                     .max_batch = max_batch > 0 ? max_batch : 1, .reduce = reduce, .rctx = rctx};
  ch_status st = gpt_shape_of(m) ? gpt_setup(t, kv_slots > 0 ? kv_slots : 1) : mlp_setup(t);
  if (st == CH_OK) *out = t;
  else ch_tp_model_destroy(t);
  return st;
}

void ch_tp_model_destroy(ch_tp_model *t) {
  if (!t) return;
  ch_op_free(t->be, t->buf[0]);
  ch_op_free(t->be, t->buf[1]);
  ch_op_free(t->be, t->x_stage);
  free(t->blk);
  free(t->layers);
  ch_kv_cache_destroy(t->kv);
  free(t);
}

ch_status ch_tp_model_logits(ch_tp_model *t, const float *x, int batch, const float **logits) {
  if (gpt_shape_of(t->m)) return CH_FAIL(CH_ERR_INVALID, "ch_tp_model_logits: not an MLP");
  if (batch < 0 || batch > t->max_batch)
    return CH_FAIL(CH_ERR_INVALID, "batch of %d rows exceeds %d", batch, t->max_batch);
  const void *staged = NULL;
  if (t->nlayers > 0)
    CH_CHECK(ch_op_stage(t->be, t->x_stage, x,
                         sizeof(float) * (size_t)batch * (size_t)t->layers[0].in, &staged));
  const float *in = staged;
  for (int i = 0; i < t->nlayers; i++) {
    const mlp_layer_view *v = &t->layers[i];
    int rows_out = v->out;
    float *z = t->buf[i % 2];
    /* A layer split by its inputs gives a partial sum; its bias is added once, after it. */
    int partial = v->partial && t->reduce;
    CH_CHECK(ch_op_linear_fwd(t->be, z, in, v->w, partial && !t->owns_bias ? NULL : v->b, batch,
                              v->in, rows_out));
    if (partial) CH_CHECK(t->reduce(t->rctx, z, (int64_t)batch * rows_out));
    if (i + 1 < t->nlayers) {
      int64_t n = (int64_t)batch * rows_out;
      CH_CHECK(t->act == CH_ACT_GELU ? ch_op_gelu_fwd(t->be, z, z, n)
                                     : ch_op_relu_fwd(t->be, z, z, n));
    }
    in = z;
  }
  *logits = in;
  return CH_OK;
}

ch_status ch_tp_model_decode_batch(ch_tp_model *t, int nseq, const int *slots,
                                   const int *counts, const int32_t *tokens, float *logits) {
  if (!t->kv) return CH_FAIL(CH_ERR_INVALID, "ch_tp_model_decode_batch: not a GPT");
  return gpt_decode_batch(&t->view, t->kv, nseq, slots, counts, tokens, logits, t->reduce,
                          t->rctx);
}

ch_status ch_tp_model_decode(ch_tp_model *t, int slot, const int32_t *tokens, int n,
                             float *logits) {
  return ch_tp_model_decode_batch(t, 1, &slot, &n, tokens, logits);
}

int ch_tp_model_max_rows(const ch_tp_model *t) { return t->kv ? ch_kv_cache_max_rows(t->kv) : 0; }

void ch_tp_model_reset(ch_tp_model *t, int slot) {
  if (t->kv) ch_kv_cache_reset(t->kv, slot);
}

int ch_tp_model_length(const ch_tp_model *t, int slot) {
  return t->kv ? ch_kv_cache_length(t->kv, slot) : 0;
}

int ch_tp_model_max_batch(const ch_tp_model *t) { return t->max_batch; }
