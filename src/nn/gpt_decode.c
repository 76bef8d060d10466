/* Incremental GPT decoding with a KV cache: the keys and values of every token already seen are
 * kept per layer, so appending n tokens costs the blocks over those n rows only; their queries
 * attend the cached keys (ch_attention_forward with Tq = n, Tk = length + n). A whole sequence
 * decoded at once from an empty slot is the uncached computation. The same code runs a
 * tensor-parallel slice of the model (a view with some of the heads and MLP columns, and a
 * reduce across ranks): its cache then holds only this rank's heads. */
#include <stdlib.h>
#include <string.h>

#include "cohort/kernels.h"
#include "nn/gpt_internal.h"

struct ch_kv_cache {
  gpt_shape s;
  int slots;
  int *len;       /* [slots] tokens held */
  float *k, *v;   /* [slots][L][T][A], A = NH * HS of this rank */
  /* Scratch for up to T new rows, one block at a time. */
  float *mem;
  gpt_act a;
  float *x, *lnf, *scratch;
};

ch_status ch_gpt_kv_create(const gpt_shape *s, int slots, ch_kv_cache **out) {
  if (slots < 1) return CH_FAIL(CH_ERR_INVALID, "KV cache: slots must be >= 1 (got %d)", slots);
  ch_kv_cache *kv = calloc(1, sizeof *kv);
  if (!kv) return CH_FAIL(CH_ERR_NOMEM, "KV cache");
  kv->s = *s;
  kv->slots = slots;
  size_t T = (size_t)s->T, C = (size_t)s->C, A = (size_t)s->NH * s->HS, F = (size_t)s->F;
  size_t per_slot = (size_t)s->L * T * A;
  /* One block's rows (ln1, res2, ln2, res3: C each; qkv 3A, atty A; fch, fch_gelu F each; four
   * norm statistics), the block input x (C per row), one ln_f row and the attention scratch. */
  size_t scratch = T * (4 * C + 4 * A + 2 * F + 4) + T * C + C + T * T;
  kv->len = calloc((size_t)slots, sizeof *kv->len);
  kv->k = ch_alloc_aligned(sizeof(float) * (per_slot * (size_t)slots + 1));
  kv->v = ch_alloc_aligned(sizeof(float) * (per_slot * (size_t)slots + 1));
  kv->mem = ch_alloc_aligned(sizeof(float) * scratch);
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
  TAKE(kv->scratch, T * T);
#undef TAKE
  *out = kv;
  return CH_OK;
}

ch_status ch_kv_cache_create(const ch_model *m, int slots, ch_kv_cache **out) {
  const gpt_shape *s = ch_gpt_shape(m);
  if (!s) return CH_FAIL(CH_ERR_INVALID, "a KV cache needs a GPT model, not '%s'", ch_model_name(m));
  return ch_gpt_kv_create(s, slots, out);
}

void ch_kv_cache_destroy(ch_kv_cache *kv) {
  if (!kv) return;
  free(kv->len);
  ch_free_aligned(kv->k);
  ch_free_aligned(kv->v);
  ch_free_aligned(kv->mem);
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

/* Appends the new rows' keys and values to the cache, then lets the new queries attend every
 * cached position up to their own. */
static void decode_attend(void *ctx, int l, gpt_act *a) {
  decode_ctx *c = ctx;
  ch_kv_cache *kv = c->kv;
  const gpt_shape *s = &kv->s;
  size_t A = (size_t)s->NH * s->HS, layer = ((size_t)c->slot * s->L + (size_t)l) * s->T * A;
  int past = kv->len[c->slot];
  float *k = kv->k + layer, *v = kv->v + layer;
  for (int i = 0; i < c->n; i++) {
    const float *row = a->qkv + (size_t)i * 3 * A;
    memcpy(k + (size_t)(past + i) * A, row + A, sizeof(float) * A);
    memcpy(v + (size_t)(past + i) * A, row + 2 * A, sizeof(float) * A);
  }
  if (A > 0)
    ch_attention_forward(a->atty, (int)A, NULL, kv->scratch, a->qkv, 3 * (int)A, k, v, (int)A, c->n,
                         past + c->n, s->NH, s->HS);
}

ch_status ch_gpt_decode(const gpt_view *v, ch_kv_cache *kv, int slot, const int32_t *tokens, int n,
                        float *logits, ch_gpt_reduce reduce, void *rctx) {
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
  size_t C = (size_t)s->C;
  for (int i = 0; i < n; i++) /* x = wte[token] + wpe[position] */
    ch_add(kv->x + (size_t)i * C, v->wte + (size_t)tokens[i] * C, v->wpe + (size_t)(past + i) * C,
           (int64_t)C);
  decode_ctx ctx = {kv, slot, n};
  for (int l = 0; l < s->L; l++) {
    CH_CHECK(ch_gpt_block_forward(v, l, &kv->a, kv->x, n, decode_attend, &ctx, reduce, rctx));
    memcpy(kv->x, kv->a.res3, sizeof(float) * (size_t)n * C);
  }
  kv->len[slot] = past + n;
  /* Only the last row's logits are needed: ln_f and the tied head on one row. */
  ch_layernorm_forward(kv->lnf, NULL, NULL, kv->x + (size_t)(n - 1) * C, v->lnf_w, v->lnf_b, 1,
                       (int)C, CH_GPT_LN_EPS);
  ch_linear_forward(logits, kv->lnf, v->wte, NULL, 1, (int)C, s->V);
  return CH_OK;
}

ch_status ch_model_decode(ch_model *m, const float *params, ch_kv_cache *kv, int slot,
                          const int32_t *tokens, int n, float *logits) {
  const gpt_shape *s = ch_gpt_shape(m);
  if (!s) return CH_FAIL(CH_ERR_INVALID, "decoding needs a GPT model, not '%s'", ch_model_name(m));
  gpt_block_w *blk = malloc(sizeof *blk * (size_t)s->L);
  if (!blk) return CH_FAIL(CH_ERR_NOMEM, "GPT view");
  gpt_view v;
  ch_gpt_view(m, params, &v, blk);
  ch_status st = ch_gpt_decode(&v, kv, slot, tokens, n, logits, NULL, NULL);
  free(blk);
  return st;
}

int64_t ch_model_vocab(const ch_model *m) {
  const gpt_shape *s = ch_gpt_shape(m);
  return s ? s->V : 0;
}

int ch_model_context(const ch_model *m) {
  const gpt_shape *s = ch_gpt_shape(m);
  return s ? s->T : 0;
}
