/* GPT-2 architecture, fp32, forward and backward side by side over the backend seam.
 *   x_0 = wte[tok] + wpe[pos]
 *   block l:  a = x + c_proj(attn(c_attn(ln_1(x))));  x' = a + mlp.c_proj(gelu(c_fc(ln_2(a))))
 *   logits = ln_f(x_L) wte^T  (LM head tied to the token embedding);  loss = cross-entropy
 * Parameter names and shapes are those of Hugging Face's GPT2Model: projections are Conv1D
 * weights [in, out] (y = x W + b), the fused c_attn output is [q | k | v], head h of each at
 * columns h*HS. Dropout is not supported (GPT-2 trains with 0.1; cohort runs it as 0).
 * Units: 0 = embeddings, 1..L = the blocks, L+1 = ln_f; backward finishes them in reverse. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gpt_internal.h"

enum { P_LN1_W, P_LN1_B, P_QKV_W, P_QKV_B, P_ATTN_W, P_ATTN_B, P_LN2_W, P_LN2_B, P_FC_W, P_FC_B,
       P_PROJ_W, P_PROJ_B, P_PER_BLOCK };

typedef struct gpt {
  gpt_shape d;              /* the whole model */
  int B;                    /* sequences the arena holds */
  float *arena;             /* backend memory */
  const int32_t *tok;       /* the staged windows [B, T+1] of the current pass */
  float *enc, *lnf, *lnf_mean, *lnf_rstd, *logits;
  gpt_act *acts;            /* [L] */
  gpt_block_w *blk;         /* [L] views of the current parameters, for the forward */
  float *dres, *dbuf, *dqkv, *dfch; /* backward */
  size_t saved;             /* floats of one layer's attention `saved` (attention_saved) */
} gpt;

/* ---- spec table ------------------------------------------------------------------------ */

static void spec(ch_param_spec *p, const char *name, int unit, int ndim, int64_t d0, int64_t d1,
                 ch_init init, float scale, ch_tp_split split, int groups, int64_t grain) {
  *p = (ch_param_spec){.ndim = ndim, .shape = {d0, d1}, .init = init, .init_scale = scale,
                       .dtype = CH_F32, .split = split, .tp_groups = groups, .tp_grain = grain,
                       .unit = unit, .no_decay = ndim == 1 /* biases and LayerNorm parameters */};
  snprintf(p->name, sizeof p->name, "%s", name);
}

/* GPT-2's initialisation: N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 L)), zero
 * biases, unit LayerNorm gains. Tensor-parallel split (Megatron): c_attn by output columns in
 * whole heads, taken alike from q, k and v (3 groups); attn.c_proj by the matching input rows;
 * c_fc by output columns and mlp.c_proj by the matching rows. The rest is replicated. */
static ch_status build_specs(const gpt_shape *d, ch_param_spec **out, int *n) {
  int64_t C = d->C, L = d->L;
  *n = 2 + P_PER_BLOCK * d->L + 2;
  ch_param_spec *s = calloc((size_t)*n, sizeof *s);
  if (!s) return CH_FAIL(CH_ERR_NOMEM, "GPT spec table");
  float proj_std = 0.02f / sqrtf(2.0f * (float)L);
  int64_t HS = d->HS;
  spec(&s[0], "wte.weight", 0, 2, d->V, C, CH_INIT_NORMAL, 0.02f, CH_TP_NONE, 0, 0);
  spec(&s[1], "wpe.weight", 0, 2, d->T, C, CH_INIT_NORMAL, 0.02f, CH_TP_NONE, 0, 0);
  for (int l = 0; l < d->L; l++) {
    ch_param_spec *b = &s[2 + P_PER_BLOCK * l];
    char nm[CH_NAME_MAX];
#define BLOCK(i, suffix, nd, d0, d1, init, sc, split, groups, grain) \
  snprintf(nm, sizeof nm, "h.%d.%s", l, suffix);                     \
  spec(&b[i], nm, 1 + l, nd, d0, d1, init, sc, split, groups, grain)
    BLOCK(P_LN1_W, "ln_1.weight", 1, C, 0, CH_INIT_ONES, 0, CH_TP_NONE, 0, 0);
    BLOCK(P_LN1_B, "ln_1.bias", 1, C, 0, CH_INIT_ZEROS, 0, CH_TP_NONE, 0, 0);
    BLOCK(P_QKV_W, "attn.c_attn.weight", 2, C, 3 * C, CH_INIT_NORMAL, 0.02f, CH_TP_COLS, 3, HS);
    BLOCK(P_QKV_B, "attn.c_attn.bias", 1, 3 * C, 0, CH_INIT_ZEROS, 0, CH_TP_ROWS, 3, HS);
    BLOCK(P_ATTN_W, "attn.c_proj.weight", 2, C, C, CH_INIT_NORMAL, proj_std, CH_TP_ROWS, 1, HS);
    BLOCK(P_ATTN_B, "attn.c_proj.bias", 1, C, 0, CH_INIT_ZEROS, 0, CH_TP_NONE, 0, 0);
    BLOCK(P_LN2_W, "ln_2.weight", 1, C, 0, CH_INIT_ONES, 0, CH_TP_NONE, 0, 0);
    BLOCK(P_LN2_B, "ln_2.bias", 1, C, 0, CH_INIT_ZEROS, 0, CH_TP_NONE, 0, 0);
    BLOCK(P_FC_W, "mlp.c_fc.weight", 2, C, 4 * C, CH_INIT_NORMAL, 0.02f, CH_TP_COLS, 1, 1);
    BLOCK(P_FC_B, "mlp.c_fc.bias", 1, 4 * C, 0, CH_INIT_ZEROS, 0, CH_TP_ROWS, 1, 1);
    BLOCK(P_PROJ_W, "mlp.c_proj.weight", 2, 4 * C, C, CH_INIT_NORMAL, proj_std, CH_TP_ROWS, 1, 1);
    BLOCK(P_PROJ_B, "mlp.c_proj.bias", 1, C, 0, CH_INIT_ZEROS, 0, CH_TP_NONE, 0, 0);
#undef BLOCK
  }
  spec(&s[*n - 2], "ln_f.weight", d->L + 1, 1, C, 0, CH_INIT_ONES, 0, CH_TP_NONE, 0, 0);
  spec(&s[*n - 1], "ln_f.bias", d->L + 1, 1, C, 0, CH_INIT_ZEROS, 0, CH_TP_NONE, 0, 0);
  *out = s;
  return CH_OK;
}

/* Parameter `which` (P_* order) of block `layer` in the flat buffer; layer -1: wte (0) / wpe (1);
 * layer L: ln_f weight (0) / bias (1). */
static float *param(const ch_model *m, const float *flat, int layer, int which) {
  int idx = layer < 0 ? which : layer >= ((gpt *)m->impl)->d.L ? m->layout.nparams - 2 + which
                                                                : 2 + P_PER_BLOCK * layer + which;
  return (float *)flat + m->layout.offsets[idx];
}
#define PARAM(m, flat, l, w) param(m, flat, l, w)

static const model_ops gpt_ops;

const gpt_shape *gpt_shape_of(const ch_model *m) {
  return m->ops == &gpt_ops ? &((const gpt *)m->impl)->d : NULL;
}

/* The view over the flat buffer `p` laid out by `l` (m's table or a tensor-parallel slice of
 * it): the P_* order is known here only. */
static void fill_view(const ch_model *m, const ch_layout *l, const float *p, int owns_bias,
                      gpt_view *v, gpt_block_w *blk) {
  const gpt *g = m->impl;
  const size_t *o = l->offsets;
  *v = (gpt_view){.be = m->be, .s = g->d, .wte = p + o[0], .wpe = p + o[1],
                  .lnf_w = p + o[l->nparams - 2], .lnf_b = p + o[l->nparams - 1], .blk = blk};
  for (int b = 0; b < g->d.L; b++) {
    int first = 2 + P_PER_BLOCK * b;
    const float *w[P_PER_BLOCK];
    for (int i = 0; i < P_PER_BLOCK; i++)
      w[i] = !owns_bias && param_after_reduce(l, first + i) ? NULL : p + o[first + i];
    blk[b] = (gpt_block_w){w[P_LN1_W], w[P_LN1_B], w[P_QKV_W], w[P_QKV_B], w[P_ATTN_W],
                           w[P_ATTN_B], w[P_LN2_W], w[P_LN2_B], w[P_FC_W], w[P_FC_B],
                           w[P_PROJ_W], w[P_PROJ_B]};
  }
  if (g->d.L > 0) { /* this rank's heads and MLP columns */
    v->s.NH = (int)(l->params[2 + P_QKV_W].shape[1] / 3 / g->d.HS);
    v->s.F = (int)l->params[2 + P_FC_W].shape[1];
  }
}

const gpt_view *gpt_view_of(const ch_model *m, const float *p, gpt_view *v, gpt_block_w *blk) {
  if (m->ops != &gpt_ops) return NULL;
  fill_view(m, &m->layout, p, 1, v, blk);
  return v;
}

ch_status gpt_view_slice(const ch_model *m, const ch_layout *local, const float *p,
                         int owns_bias, gpt_view *v, gpt_block_w *blk) {
  if (m->ops != &gpt_ops)
    return CH_FAIL(CH_ERR_INVALID, "a GPT view of a '%s' model", m->ops->name);
  if (local->nparams != m->layout.nparams)
    return CH_FAIL(CH_ERR_INVALID, "tensor-parallel GPT: %d local tensors, the model has %d",
                   local->nparams, m->layout.nparams);
  fill_view(m, local, p, owns_bias, v, blk);
  return CH_OK;
}

/* ---- construction ---------------------------------------------------------------------- */

/* Carves the arena (floats) for B sequences; with arena NULL only counts. */
static size_t carve(gpt *g, float *arena) {
  const gpt_shape *d = &g->d;
  size_t N = (size_t)g->B * (size_t)d->T, C = (size_t)d->C, used = 0;
#define TAKE(ptr, count)                      \
  do {                                        \
    if (arena) (ptr) = arena + used;          \
    used += ((size_t)(count) + 15) & ~(size_t)15; \
  } while (0)
  TAKE(g->enc, N * C);
  for (int l = 0; l < d->L; l++) {
    gpt_act *a = &g->acts[l];
    TAKE(a->ln1, N * C);
    TAKE(a->ln1_mean, N);
    TAKE(a->ln1_rstd, N);
    TAKE(a->qkv, N * 3 * C);
    TAKE(a->atty, N * C);
    TAKE(a->saved, g->saved);
    TAKE(a->res2, N * C);
    TAKE(a->ln2, N * C);
    TAKE(a->ln2_mean, N);
    TAKE(a->ln2_rstd, N);
    TAKE(a->fch, N * 4 * C);
    TAKE(a->fch_gelu, N * 4 * C);
    TAKE(a->res3, N * C);
  }
  TAKE(g->lnf, N * C);
  TAKE(g->lnf_mean, N);
  TAKE(g->lnf_rstd, N);
  TAKE(g->logits, N * (size_t)d->V);
  TAKE(g->dres, N * C);
  TAKE(g->dbuf, N * C);
  TAKE(g->dqkv, N * 3 * C);
  TAKE(g->dfch, N * 4 * C);
#undef TAKE
  return used;
}

ch_status gpt_init(ch_model *m, const ch_model_cfg *cfg, int64_t vocab) {
  const int64_t n_layer = cfg->n_layer, n_head = cfg->n_head, C = cfg->n_embd;
  int64_t V = cfg->vocab_size ? cfg->vocab_size : vocab;
  if (vocab < 1) return CH_FAIL(CH_ERR_INVALID, "GPT: the dataset has no vocabulary size");
  if (V < vocab)
    return CH_FAIL(CH_ERR_CONFIG, "model.vocab_size: %lld is smaller than the dataset's "
                   "vocabulary of %lld tokens", (long long)V, (long long)vocab);
  if (C % n_head != 0)
    return CH_FAIL(CH_ERR_CONFIG, "model.n_embd (%lld) must be divisible by model.n_head (%lld)",
                   (long long)C, (long long)n_head);
  if (V > INT32_MAX || C > (1 << 20) || cfg->context > (1 << 20))
    return CH_FAIL(CH_ERR_CONFIG, "model: vocabulary, width or context too large");
  gpt *g = calloc(1, sizeof *g);
  if (!g) return CH_FAIL(CH_ERR_NOMEM, "GPT");
  m->impl = g;
  m->ops = &gpt_ops;
  g->d = (gpt_shape){.L = (int)n_layer, .NH = (int)n_head, .C = (int)C, .HS = (int)(C / n_head),
                     .F = 4 * (int)C, .T = cfg->context, .V = (int)V};
  g->B = m->max_batch;
  g->blk = calloc((size_t)g->d.L, sizeof *g->blk);
  if (!g->blk) return CH_FAIL(CH_ERR_NOMEM, "GPT");
  ch_param_spec *specs = NULL;
  int nspecs = 0;
  CH_CHECK(build_specs(&g->d, &specs, &nspecs));
  ch_status st = ch_layout_create(specs, nspecs, &m->layout);
  free(specs);
  CH_CHECK(st);
  m->sample_floats = 0;
  m->sample_ints = g->d.T + 1;
  m->targets = g->d.T;
  if (g->B == 0) return CH_OK; /* layout only */
  g->acts = calloc((size_t)g->d.L, sizeof *g->acts);
  if (!g->acts) return CH_FAIL(CH_ERR_NOMEM, "GPT");
  /* What the backend keeps of each layer's attention for backward (P, or less) */
  CH_CHECK(ch_op_attention_saved(m->be, g->B, g->d.T, g->d.NH, g->d.HS, &g->saved));
  size_t floats = carve(g, NULL);
  void *arena = NULL;
  if (ch_op_alloc(m->be, floats * sizeof(float), &arena) != CH_OK)
    return CH_FAIL(CH_ERR_NOMEM, "GPT activations (%.1f MiB for %d sequences of %d tokens)",
                   (double)floats * 4.0 / 1048576.0, g->B, g->d.T);
  g->arena = arena;
  carve(g, g->arena);
  m->arena_bytes = floats * sizeof(float);
  return CH_OK;
}

static void gpt_destroy(ch_model *m) {
  gpt *g = m->impl;
  if (!g) return;
  ch_op_free(m->be, g->arena);
  free(g->acts);
  free(g->blk);
  free(g);
}

/* ---- forward / backward ---------------------------------------------------------------- */

/* Windows [B, T+1] are read in place: inputs are tokens 0..T-1 of each, targets 1..T (row
 * stride T+1). The token range is checked here, on the host, before the batch is staged. */
static ch_status gpt_check(const ch_model *m, const int32_t *y, int B) {
  const gpt *g = m->impl;
  int T = g->d.T;
  for (int b = 0; b < B; b++) {
    const int32_t *w = y + (size_t)b * (T + 1);
    for (int t = 0; t <= T; t++)
      if (w[t] < 0 || w[t] >= g->d.V)
        return CH_FAIL(CH_ERR_INVALID, "token %d at position %d of sequence %d is outside the "
                       "vocabulary [0, %d)", w[t], t, b, g->d.V);
  }
  return CH_OK;
}

/* Block input x (+ x_add) normalised by ln-weights w, b: the fused residual add when there is
 * one. */
static ch_status add_norm(const ch_backend *be, float *x, const float *x_add, float *y,
                          float *mean, float *rstd, const float *w, const float *b, int64_t N,
                          int C) {
  if (!x_add) return ch_op_layernorm_fwd(be, y, mean, rstd, x, w, b, N, C, CH_GPT_LN_EPS);
  return ch_op_add_layernorm_fwd(be, x, y, mean, rstd, x, x_add, w, b, N, C, CH_GPT_LN_EPS);
}

ch_status gpt_block_forward(const gpt_view *v, int l, gpt_act *a, float *x, const float *x_add,
                            int64_t N, gpt_attend_fn attend, void *actx, gpt_reduce_fn reduce,
                            void *rctx) {
  const ch_backend *be = v->be;
  const gpt_block_w *w = &v->blk[l];
  int C = v->s.C, A = v->s.NH * v->s.HS, F = v->s.F;
  /* x is last read by the residual add into res2, so it may alias a->res3 (decoding runs the
   * blocks in place that way, x_add then aliasing a->res2, which is read before res2 is
   * written). */
  CH_CHECK(add_norm(be, x, x_add, a->ln1, a->ln1_mean, a->ln1_rstd, w->ln1_w, w->ln1_b, N, C));
  CH_CHECK(ch_op_matmul_fwd(be, a->qkv, a->ln1, w->qkv_w, w->qkv_b, N, C, 3 * A));
  CH_CHECK(attend(actx, l, a));
  CH_CHECK(ch_op_matmul_fwd(be, a->res2, a->atty, w->attn_w, w->attn_b, N, A, C));
  /* the tensor-parallel sum of the projection comes before the residual is added to it */
  if (reduce) CH_CHECK(reduce(rctx, a->res2, N * C));
  CH_CHECK(ch_op_add_layernorm_fwd(be, a->res2, a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, x,
                                   w->ln2_w, w->ln2_b, N, C, CH_GPT_LN_EPS));
  CH_CHECK(ch_op_matmul_gelu_fwd(be, a->fch, a->fch_gelu, a->ln2, w->fc_w, w->fc_b, N, C, F));
  CH_CHECK(ch_op_matmul_fwd(be, a->res3, a->fch_gelu, w->proj_w, w->proj_b, N, F, C));
  /* the MLP branch, summed; its residual add is the next LayerNorm's (gpt_internal.h) */
  return reduce ? reduce(rctx, a->res3, N * C) : CH_OK;
}

ch_status gpt_final_norm(const gpt_view *v, float *x, const float *x_add, float *y, float *mean,
                         float *rstd, int64_t rows) {
  return add_norm(v->be, x, x_add, y, mean, rstd, v->lnf_w, v->lnf_b, rows, v->s.C);
}

typedef struct train_attend_ctx {
  const gpt_view *v;
  int B;
} train_attend_ctx;

/* Training attention: each of the B sequences attends within itself (one batched op); what
 * backward needs of it is kept in a->saved. */
static ch_status train_attend(void *ctx, int l, gpt_act *a) {
  (void)l;
  const train_attend_ctx *c = ctx;
  const gpt_shape *d = &c->v->s;
  return ch_op_attention_fwd(c->v->be, a->atty, a->saved, a->qkv, c->B, d->T, d->NH, d->HS);
}

/* Logits [B*T, V] of the inputs in g->tok. Units are fetched around their use: the embeddings
 * (unit 0, held through the forward: the tied head needs them again), each block, the final
 * LayerNorm (unit L + 1). With `last` (forward only) everything is released at the end; else
 * units 0 and L + 1 stay fetched for the backward that follows, which releases them. */
static ch_status forward(ch_model *m, const float *p, int B, const ch_unit_hook *hook, int last) {
  gpt *g = m->impl;
  const gpt_shape *d = &g->d;
  int64_t N = (int64_t)B * d->T;
  int C = d->C;
  gpt_view v;
  gpt_view_of(m, p, &v, g->blk);
  train_attend_ctx ctx = {&v, B};
  CH_CHECK(ch_hook_fetch(hook, 0));
  CH_CHECK(ch_op_embedding_fwd(m->be, g->enc, g->tok, d->T + 1, 0, v.wte, v.wpe, B, d->T, C));
  /* Block l's input: the embeddings, or block l - 1's two output terms (res3 += res2 in the
   * pass of ln_1, which leaves res3 holding the sum the backward reads). */
  for (int l = 0; l < d->L; l++) {
    CH_CHECK(ch_hook_fetch(hook, 1 + l));
    CH_CHECK(gpt_block_forward(&v, l, &g->acts[l], l == 0 ? g->enc : g->acts[l - 1].res3,
                               l == 0 ? NULL : g->acts[l - 1].res2, N, train_attend, &ctx, NULL,
                               NULL));
    CH_CHECK(ch_hook_release(hook, 1 + l, last));
  }
  CH_CHECK(ch_hook_fetch(hook, d->L + 1));
  CH_CHECK(gpt_final_norm(&v, d->L > 0 ? g->acts[d->L - 1].res3 : g->enc,
                          d->L > 0 ? g->acts[d->L - 1].res2 : NULL, g->lnf, g->lnf_mean,
                          g->lnf_rstd, N));
  CH_CHECK(ch_op_linear_fwd(m->be, g->logits, g->lnf, PARAM(m, p, -1, 0), NULL, N, C, d->V));
  if (last) {
    CH_CHECK(ch_hook_release(hook, d->L + 1, 1));
    CH_CHECK(ch_hook_release(hook, 0, 1));
  }
  return CH_OK;
}

/* The targets of windows y: each window shifted by one token (y may be NULL with no rows). */
static const int32_t *targets(const int32_t *y) { return y ? y + 1 : NULL; }

static ch_status gpt_forward(ch_model *m, const float *p, const float *x, const int32_t *y,
                             int B, const float **logits) {
  (void)x;
  gpt *g = m->impl;
  g->tok = y;
  if (B > 0) CH_CHECK(forward(m, p, B, NULL, 1));
  *logits = g->logits;
  return CH_OK;
}

static ch_status gpt_eval(ch_model *m, const float *p, const float *x, const int32_t *y, int B,
                          const ch_unit_hook *hook, double *loss, int64_t *correct) {
  (void)x;
  gpt *g = m->impl;
  g->tok = y;
  CH_CHECK(forward(m, p, B, hook, 1)); /* B == 0 too: the hook sees the same passes */
  return ch_op_xent_fwd(m->be, g->logits, targets(y), g->d.T + 1, B, g->d.T, g->d.V, loss, correct);
}

static ch_status gpt_train_step(ch_model *m, const float *p, float *grads, const float *x,
                                const int32_t *y, int B, float loss_scale,
                                const ch_unit_hook *hook, double *loss) {
  (void)x;
  const ch_backend *be = m->be;
  gpt *g = m->impl;
  const gpt_shape *d = &g->d;
  int64_t N = (int64_t)B * d->T;
  int C = d->C;
  /* B == 0 runs the same passes on no rows: every hook fires as on the other ranks. */
  g->tok = y;
  CH_CHECK(forward(m, p, B, hook, 0));
  float *dlogits = g->logits; /* in place: each row is read before it is overwritten */
  CH_CHECK(ch_op_xent_fused(be, dlogits, g->logits, targets(y), d->T + 1, B, d->T, d->V, loss_scale,
                            loss));
  CH_CHECK(ch_op_linear_bwd(be, g->dbuf, PARAM(m, grads, -1, 0), NULL, dlogits, g->lnf,
                            PARAM(m, p, -1, 0), N, C, d->V));
  CH_CHECK(ch_hook_release(hook, 0, 1)); /* the embedding backward needs no weights */
  CH_CHECK(ch_op_memset(be, g->dres, 0, sizeof(float) * (size_t)N * C));
  const float *xl = d->L > 0 ? g->acts[d->L - 1].res3 : g->enc;
  CH_CHECK(ch_op_layernorm_bwd(be, g->dres, PARAM(m, grads, d->L, 0), PARAM(m, grads, d->L, 1),
                               g->dbuf, xl, g->lnf_mean, g->lnf_rstd, PARAM(m, p, d->L, 0), N, C));
  CH_CHECK(ch_hook_release(hook, d->L + 1, 1));
  CH_CHECK(ch_hook_grad_ready(hook, d->L + 1));
  for (int l = d->L - 1; l >= 0; l--) {
    gpt_act *a = &g->acts[l];
    const float *xin = l == 0 ? g->enc : g->acts[l - 1].res3;
    CH_CHECK(ch_hook_fetch(hook, 1 + l));
    /* dres holds dL/d res3; the residual passes it to res2 unchanged, the MLP adds to it. */
    CH_CHECK(ch_op_matmul_bwd(be, g->dfch, PARAM(m, grads, l, P_PROJ_W),
                              PARAM(m, grads, l, P_PROJ_B), g->dres, a->fch_gelu,
                              PARAM(m, p, l, P_PROJ_W), N, 4 * C, C));
    /* dfch becomes the gradient of fch (GELU's input), its bias sum in the same pass */
    CH_CHECK(ch_op_matmul_gelu_bwd(be, g->dbuf, PARAM(m, grads, l, P_FC_W),
                                   PARAM(m, grads, l, P_FC_B), g->dfch, a->fch, a->ln2,
                                   PARAM(m, p, l, P_FC_W), N, C, 4 * C));
    CH_CHECK(ch_op_layernorm_bwd(be, g->dres, PARAM(m, grads, l, P_LN2_W),
                                 PARAM(m, grads, l, P_LN2_B), g->dbuf, a->res2, a->ln2_mean,
                                 a->ln2_rstd, PARAM(m, p, l, P_LN2_W), N, C));
    /* now dres = dL/d res2, which the attention residual passes on to the block input. */
    CH_CHECK(ch_op_matmul_bwd(be, g->dbuf, PARAM(m, grads, l, P_ATTN_W),
                              PARAM(m, grads, l, P_ATTN_B), g->dres, a->atty,
                              PARAM(m, p, l, P_ATTN_W), N, C, C));
    CH_CHECK(ch_op_attention_bwd(be, g->dqkv, g->dbuf, a->qkv, a->atty, a->saved, B, d->T,
                                 d->NH, d->HS));
    CH_CHECK(ch_op_matmul_bwd(be, g->dbuf, PARAM(m, grads, l, P_QKV_W),
                              PARAM(m, grads, l, P_QKV_B), g->dqkv, a->ln1,
                              PARAM(m, p, l, P_QKV_W), N, C, 3 * C));
    CH_CHECK(ch_op_layernorm_bwd(be, g->dres, PARAM(m, grads, l, P_LN1_W),
                                 PARAM(m, grads, l, P_LN1_B), g->dbuf, xin, a->ln1_mean,
                                 a->ln1_rstd, PARAM(m, p, l, P_LN1_W), N, C));
    CH_CHECK(ch_hook_release(hook, 1 + l, 1));
    CH_CHECK(ch_hook_grad_ready(hook, 1 + l));
  }
  CH_CHECK(ch_op_embedding_bwd(be, PARAM(m, grads, -1, 0), PARAM(m, grads, -1, 1), g->dres, g->tok,
                               d->T + 1, B, d->T, C));
  return ch_hook_grad_ready(hook, 0);
}

static const model_ops gpt_ops = {
  .name = "gpt", .destroy = gpt_destroy, .check = gpt_check, .forward = gpt_forward,
  .eval = gpt_eval, .train_step = gpt_train_step,
};
