/* Incremental GPT decoding with a KV cache: the keys and values of every token already seen are
 * kept per layer, so appending n tokens costs the blocks over those n rows only; their queries
 * attend the cached keys (cpu_attention_forward with Tq = n, Tk = length + n). A whole sequence
 * decoded at once from an empty slot is the uncached computation. The same code runs a
 * tensor-parallel slice of the model (a view with some of the heads and MLP columns, and a
 * reduce across ranks): its cache then holds only this rank's heads. */
#include <stdlib.h>

#include "nn/gpt_internal.h"

struct ch_kv_cache {
  const ch_backend *be;
  gpt_shape s;
  int slots;
  int *len;       /* [slots] tokens held (host) */
  float *k, *v;   /* backend: [slots][L][T][A], A = NH * HS of this rank */
  /* Backend scratch for up to T new rows, one block at a time. */
  float *mem;
  gpt_act a;
  float *x, *lnf, *logits, *scratch;
  int32_t *tok;   /* staging for the new tokens [T] */
};

/* One backend allocation of `floats` floats (+1, so that an empty one is still a buffer). */
static float *kv_alloc(const ch_backend *be, size_t floats) {
  void *p = NULL;
  return ch_op_alloc(be, sizeof(float) * (floats + 1), &p) == CH_OK ? p : NULL;
}

ch_status gpt_kv_create(const ch_backend *be, const gpt_shape *s, int slots, ch_kv_cache **out) {
  if (slots < 1) return CH_FAIL(CH_ERR_INVALID, "KV cache: slots must be >= 1 (got %d)", slots);
  ch_kv_cache *kv = calloc(1, sizeof *kv);
  if (!kv) return CH_FAIL(CH_ERR_NOMEM, "KV cache");
  kv->be = be;
  kv->s = *s;
  kv->slots = slots;
  size_t T = (size_t)s->T, C = (size_t)s->C, A = (size_t)s->NH * s->HS, F = (size_t)s->F;
  size_t per_slot = (size_t)s->L * T * A;
  /* One block's rows (ln1, res2, ln2, res3: C each; qkv 3A, atty A; fch, fch_gelu F each; four
   * norm statistics), the block input x (C per row), one ln_f row, the logits [V], the
   * attention scratch and the staged tokens (T int32s in float-sized slots). */
  size_t scratch = T * (4 * C + 4 * A + 2 * F + 4) + T * C + C + (size_t)s->V + T * T + T;
  kv->len = calloc((size_t)slots, sizeof *kv->len);
  kv->k = kv_alloc(be, per_slot * (size_t)slots);
  kv->v = kv_alloc(be, per_slot * (size_t)slots);
  kv->mem = kv_alloc(be, scratch);
  if (!kv->len || !kv->k || !kv->v || !kv->mem) {
    ch_kv_cache_destroy(kv);
    return CH_FAIL(CH_ERR_NOMEM, "KV cache of %d slots (%.1f MiB)", slots,
                   2.0 * (double)(per_slot * (size_t)slots) * 4.0 / 1048576.0);
  }
  float *p = kv->mem;
#define TAKE(ptr, n) ((ptr) = p, p += (n))
  TAKE(kv->a.ln1, T * C);
  TAKE(kv->a.ln1_mean, T);
  TAKE(kv->a.ln1_rstd, T);
  TAKE(kv->a.qkv, T * 3 * A);
  TAKE(kv->a.atty, T * A);
  TAKE(kv->a.res2, T * C);
  TAKE(kv->a.ln2, T * C);
  TAKE(kv->a.ln2_mean, T);
  TAKE(kv->a.ln2_rstd, T);
  TAKE(kv->a.fch, T * F);
  TAKE(kv->a.fch_gelu, T * F);
  TAKE(kv->a.res3, T * C);
  TAKE(kv->x, T * C);
  TAKE(kv->lnf, C);
  TAKE(kv->logits, (size_t)s->V);
  TAKE(kv->scratch, T * T);
  kv->tok = (int32_t *)p;
#undef TAKE
  *out = kv;
  return CH_OK;
}

ch_status ch_kv_cache_create(const ch_model *m, int slots, ch_kv_cache **out) {
  const gpt_shape *s = gpt_shape_of(m);
  if (!s) return CH_FAIL(CH_ERR_INVALID, "a KV cache needs a GPT model, not '%s'", ch_model_name(m));
  return gpt_kv_create(m->be, s, slots, out);
}

void ch_kv_cache_destroy(ch_kv_cache *kv) {
  if (!kv) return;
  free(kv->len);
  ch_op_free(kv->be, kv->k);
  ch_op_free(kv->be, kv->v);
  ch_op_free(kv->be, kv->mem);
  free(kv);
}

void ch_kv_cache_reset(ch_kv_cache *kv, int slot) {
  if (slot >= 0 && slot < kv->slots) kv->len[slot] = 0;
}

int ch_kv_cache_length(const ch_kv_cache *kv, int slot) {
  return slot >= 0 && slot < kv->slots ? kv->len[slot] : 0;
}

typedef struct decode_ctx {
  ch_kv_cache *kv;
  int slot, n;
} decode_ctx;

/* Appends the new rows' keys and values to the cache and lets the new queries attend every
 * cached position up to their own (one op). */
static ch_status decode_attend(void *ctx, int l, gpt_act *a) {
  decode_ctx *c = ctx;
  ch_kv_cache *kv = c->kv;
  const gpt_shape *s = &kv->s;
  size_t A = (size_t)s->NH * s->HS, layer = ((size_t)c->slot * s->L + (size_t)l) * s->T * A;
  return ch_op_attention_decode(kv->be, a->atty, kv->scratch, a->qkv, kv->k + layer,
                                kv->v + layer, kv->len[c->slot], c->n, s->NH, s->HS);
}

ch_status gpt_decode(const gpt_view *v, ch_kv_cache *kv, int slot, const int32_t *tokens, int n,
                     float *logits, gpt_reduce_fn reduce, void *rctx) {
  const gpt_shape *s = &kv->s;
  if (v->s.L != s->L || v->s.C != s->C || v->s.NH != s->NH || v->s.F != s->F || v->s.T != s->T)
    return CH_FAIL(CH_ERR_INVALID, "KV cache made for another model shape");
  if (slot < 0 || slot >= kv->slots)
    return CH_FAIL(CH_ERR_INVALID, "KV cache slot %d outside [0, %d)", slot, kv->slots);
  int past = kv->len[slot];
  if (n < 1 || past + n > s->T)
    return CH_FAIL(CH_ERR_INVALID, "decoding %d token(s) after %d: the context is %d tokens", n,
                   past, s->T);
  for (int i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= s->V)
      return CH_FAIL(CH_ERR_INVALID, "token %d is outside the vocabulary [0, %d)", tokens[i], s->V);
  const ch_backend *be = kv->be;
  size_t C = (size_t)s->C;
  const void *tok;
  CH_CHECK(ch_op_stage(be, kv->tok, tokens, sizeof(int32_t) * (size_t)n, &tok));
  /* x = wte[token] + wpe[position]: one sequence of n tokens at positions past.. */
  CH_CHECK(ch_op_embedding_fwd(be, kv->x, tok, n, past, v->wte, v->wpe, 1, n, (int)C));
  decode_ctx ctx = {kv, slot, n};
  /* Block l > 0 reads its input from res3 and writes res3 again, in place (see
   * gpt_block_forward). */
  const float *x = kv->x;
  for (int l = 0; l < s->L; l++) {
    CH_CHECK(gpt_block_forward(v, l, &kv->a, x, n, decode_attend, &ctx, reduce, rctx));
    x = kv->a.res3;
  }
  kv->len[slot] = past + n;
  /* Only the last row's logits are needed: ln_f and the tied head on one row. */
  CH_CHECK(ch_op_layernorm_fwd(be, kv->lnf, NULL, NULL, x + (size_t)(n - 1) * C, v->lnf_w,
                               v->lnf_b, 1, (int)C, CH_GPT_LN_EPS));
  CH_CHECK(ch_op_linear_fwd(be, kv->logits, kv->lnf, v->wte, NULL, 1, (int)C, s->V));
  return ch_op_download(be, logits, kv->logits, sizeof(float) * (size_t)s->V);
}

ch_status ch_model_decode(ch_model *m, const float *params, ch_kv_cache *kv, int slot,
                          const int32_t *tokens, int n, float *logits) {
  const gpt_shape *s = gpt_shape_of(m);
  if (!s) return CH_FAIL(CH_ERR_INVALID, "decoding needs a GPT model, not '%s'", ch_model_name(m));
  gpt_block_w *blk = malloc(sizeof *blk * (size_t)s->L);
  if (!blk) return CH_FAIL(CH_ERR_NOMEM, "GPT view");
  gpt_view v;
  gpt_view_of(m, params, &v, blk);
  ch_status st = gpt_decode(&v, kv, slot, tokens, n, logits, NULL, NULL);
  free(blk);
  return st;
}

int64_t ch_model_vocab(const ch_model *m) {
  const gpt_shape *s = gpt_shape_of(m);
  return s ? s->V : 0;
}

int ch_model_context(const ch_model *m) {
  const gpt_shape *s = gpt_shape_of(m);
  return s ? s->T : 0;
}
