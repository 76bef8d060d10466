/* Incremental GPT decoding with a KV cache: the keys and values of every token already seen are
 * kept per layer, so appending n tokens costs the blocks over those n rows only; their queries
 * attend the cached keys (ch_attention_forward with Tq = n, Tk = length + n). A whole sequence
 * decoded at once from an empty slot is the uncached computation. */
#include <stdlib.h>
#include <string.h>

#include "cohort/kernels.h"
#include "nn/gpt_internal.h"

struct ch_kv_cache {
  const ch_model *model;
  gpt_dims d;
  int slots;
  int *len;       /* [slots] tokens held */
  float *k, *v;   /* [slots][L][T][C] */
  /* Scratch for up to T new rows, one block at a time. */
  float *mem;
  gpt_act a;
  float *x, *lnf, *scratch;
  int32_t *pos;
};

ch_status ch_kv_cache_create(const ch_model *m, int slots, ch_kv_cache **out) {
  const gpt_dims *d = ch_gpt_dims(m);
  if (!d) return CH_FAIL(CH_ERR_INVALID, "a KV cache needs a GPT model, not '%s'", ch_model_name(m));
  if (slots < 1) return CH_FAIL(CH_ERR_INVALID, "KV cache: slots must be >= 1 (got %d)", slots);
  ch_kv_cache *kv = calloc(1, sizeof *kv);
  if (!kv) return CH_FAIL(CH_ERR_NOMEM, "KV cache");
  kv->model = m;
  kv->d = *d;
  kv->slots = slots;
  size_t T = (size_t)d->T, C = (size_t)d->C, per_slot = (size_t)d->L * T * C;
  /* One block's rows (ln1, qkv, atty, res2, ln2, fch, fch_gelu, res3: 16 C per row, 4 norm
   * statistics), the block input x (C per row), one ln_f row and the attention scratch. */
  size_t scratch = T * (17 * C + 4) + C + T * T;
  kv->len = calloc((size_t)slots, sizeof *kv->len);
  kv->k = ch_alloc_aligned(sizeof(float) * per_slot * (size_t)slots);
  kv->v = ch_alloc_aligned(sizeof(float) * per_slot * (size_t)slots);
  kv->mem = ch_alloc_aligned(sizeof(float) * scratch);
  kv->pos = malloc(sizeof *kv->pos * T);
  if (!kv->len || !kv->k || !kv->v || !kv->mem || !kv->pos) {
    ch_kv_cache_destroy(kv);
    return CH_FAIL(CH_ERR_NOMEM, "KV cache of %d slots (%.1f MiB)", slots,
                   2.0 * (double)(per_slot * (size_t)slots) * 4.0 / 1048576.0);
  }
  float *p = kv->mem;
#define TAKE(ptr, n) ((ptr) = p, p += (n))
  TAKE(kv->a.ln1, T * C);
  TAKE(kv->a.ln1_mean, T);
  TAKE(kv->a.ln1_rstd, T);
  TAKE(kv->a.qkv, T * 3 * C);
  TAKE(kv->a.atty, T * C);
  TAKE(kv->a.res2, T * C);
  TAKE(kv->a.ln2, T * C);
  TAKE(kv->a.ln2_mean, T);
  TAKE(kv->a.ln2_rstd, T);
  TAKE(kv->a.fch, T * 4 * C);
  TAKE(kv->a.fch_gelu, T * 4 * C);
  TAKE(kv->a.res3, T * C);
  TAKE(kv->x, T * C);
  TAKE(kv->lnf, C);
  TAKE(kv->scratch, T * T);
#undef TAKE
  *out = kv;
  return CH_OK;
}

void ch_kv_cache_destroy(ch_kv_cache *kv) {
  if (!kv) return;
  free(kv->len);
  ch_free_aligned(kv->k);
  ch_free_aligned(kv->v);
  ch_free_aligned(kv->mem);
  free(kv->pos);
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
  const gpt_dims *d = &kv->d;
  size_t C = (size_t)d->C, layer = ((size_t)c->slot * d->L + (size_t)l) * d->T * C;
  int past = kv->len[c->slot];
  float *k = kv->k + layer, *v = kv->v + layer;
  for (int i = 0; i < c->n; i++) {
    const float *row = a->qkv + (size_t)i * 3 * C;
    memcpy(k + (size_t)(past + i) * C, row + C, sizeof(float) * C);
    memcpy(v + (size_t)(past + i) * C, row + 2 * C, sizeof(float) * C);
  }
  ch_attention_forward(a->atty, (int)C, NULL, kv->scratch, a->qkv, 3 * (int)C, k, v, (int)C, c->n,
                       past + c->n, d->NH, d->HS);
}

ch_status ch_model_decode(ch_model *m, const float *params, ch_kv_cache *kv, int slot,
                          const int32_t *tokens, int n, float *logits) {
  const gpt_dims *d = &kv->d;
  if (kv->model != m) return CH_FAIL(CH_ERR_INVALID, "KV cache belongs to another model");
  if (slot < 0 || slot >= kv->slots)
    return CH_FAIL(CH_ERR_INVALID, "KV cache slot %d outside [0, %d)", slot, kv->slots);
  int past = kv->len[slot];
  if (n < 1 || past + n > d->T)
    return CH_FAIL(CH_ERR_INVALID, "decoding %d token(s) after %d: the context is %d tokens", n,
                   past, d->T);
  for (int i = 0; i < n; i++) {
    if (tokens[i] < 0 || tokens[i] >= d->V)
      return CH_FAIL(CH_ERR_INVALID, "token %d is outside the vocabulary [0, %d)", tokens[i], d->V);
    kv->pos[i] = past + i;
  }
  size_t C = (size_t)d->C;
  const float *wte = ch_gpt_param(m, params, -1, 0), *wpe = ch_gpt_param(m, params, -1, 1);
  for (int i = 0; i < n; i++) /* x = wte[token] + wpe[position] */
    ch_add(kv->x + (size_t)i * C, wte + (size_t)tokens[i] * C, wpe + (size_t)kv->pos[i] * C,
           (int64_t)C);
  decode_ctx ctx = {kv, slot, n};
  const float *x = kv->x;
  for (int l = 0; l < d->L; l++) {
    ch_gpt_block_forward(m, params, l, &kv->a, x, n, decode_attend, &ctx);
    memcpy(kv->x, kv->a.res3, sizeof(float) * (size_t)n * C);
    x = kv->x;
  }
  kv->len[slot] = past + n;
  /* Only the last row's logits are needed: ln_f and the tied head on one row. */
  float mean, rstd;
  ch_layernorm_forward(kv->lnf, &mean, &rstd, kv->x + (size_t)(n - 1) * C,
                       ch_gpt_param(m, params, d->L, 0), ch_gpt_param(m, params, d->L, 1), 1,
                       (int)C, CH_GPT_LN_EPS);
  ch_linear_forward(logits, kv->lnf, wte, NULL, 1, (int)C, d->V);
  return CH_OK;
}

int64_t ch_model_vocab(const ch_model *m) {
  const gpt_dims *d = ch_gpt_dims(m);
  return d ? d->V : 0;
}

int ch_model_context(const ch_model *m) {
  const gpt_dims *d = ch_gpt_dims(m);
  return d ? d->T : 0;
}
