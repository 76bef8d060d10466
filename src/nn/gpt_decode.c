/* Incremental GPT decoding with a KV cache: the keys and values of every token already seen are
 * kept per layer, so appending n tokens costs the blocks over those n rows only; their queries
 * attend the cached keys (attention_decode with Tq = n, Tk = length + n). A whole sequence
 * decoded at once from an empty slot is the uncached computation.
 *
 * One step decodes several sequences at once (continuous batching): their new rows are stacked
 * into one [rows, C] batch, so the embedding sums, the LayerNorms, every GEMM of the blocks and
 * the LM head run once over all of them (one pass over the weights, whatever the number of
 * sequences); only attention runs per sequence, each over its own slot. The same code runs a
 * tensor-parallel slice of the model (a view with some of the heads and MLP columns, and a
 * reduce across ranks): its cache then holds only this rank's heads. */
#include <stdlib.h>

#include "nn/gpt_internal.h"

struct ch_kv_cache {
  const ch_backend *be;
  gpt_shape s;
  int slots;
  int rows;       /* new rows one step may hold, all sequences together: T + slots */
  int *len;       /* [slots] tokens held (host) */
  float *k, *v;   /* backend: [slots][L][T][A], A = NH * HS of this rank */
  /* Backend scratch for up to `rows` new rows, one block at a time. */
  float *mem;
  gpt_act a;
  float *x;               /* [rows, C] the block input */
  float *lnf, *logits;    /* [slots, C] and [slots, V]: the last row of each sequence */
  float *scratch;         /* [T, T] attention, one sequence at a time */
  int32_t *tok;           /* staging for the new tokens [rows] */
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
  /* A whole prompt of T tokens, or a prompt chunk beside one new token per other sequence. */
  kv->rows = s->T + slots;
  size_t T = (size_t)s->T, C = (size_t)s->C, A = (size_t)s->NH * s->HS, F = (size_t)s->F;
  size_t R = (size_t)kv->rows, S = (size_t)slots;
  size_t per_slot = (size_t)s->L * T * A;
  /* One block's rows (ln1, res2, ln2, res3: C each; qkv 3A, atty A; fch, fch_gelu F each; four
   * norm statistics), the block input x (C per row), one ln_f row and the logits [V] per
   * sequence, the attention scratch and the staged tokens (int32s in float-sized slots). */
  size_t scratch = R * (4 * C + 4 * A + 2 * F + 4) + R * C + S * (C + (size_t)s->V) + T * T + R;
  kv->len = calloc(S, sizeof *kv->len);
  kv->k = kv_alloc(be, per_slot * S);
  kv->v = kv_alloc(be, per_slot * S);
  kv->mem = kv_alloc(be, scratch);
  if (!kv->len || !kv->k || !kv->v || !kv->mem) {
    ch_kv_cache_destroy(kv);
    return CH_FAIL(CH_ERR_NOMEM, "KV cache of %d slots (%.1f MiB)", slots,
                   2.0 * (double)(per_slot * S) * 4.0 / 1048576.0);
  }
  float *p = kv->mem;
#define TAKE(ptr, n) ((ptr) = p, p += (n))
  TAKE(kv->a.ln1, R * C);
  TAKE(kv->a.ln1_mean, R);
  TAKE(kv->a.ln1_rstd, R);
  TAKE(kv->a.qkv, R * 3 * A);
  TAKE(kv->a.atty, R * A);
  TAKE(kv->a.res2, R * C);
  TAKE(kv->a.ln2, R * C);
  TAKE(kv->a.ln2_mean, R);
  TAKE(kv->a.ln2_rstd, R);
  TAKE(kv->a.fch, R * F);
  TAKE(kv->a.fch_gelu, R * F);
  TAKE(kv->a.res3, R * C);
  TAKE(kv->x, R * C);
  TAKE(kv->lnf, S * C);
  TAKE(kv->logits, S * (size_t)s->V);
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

int ch_kv_cache_max_rows(const ch_kv_cache *kv) { return kv->rows; }

/* The sequences of one step, as gpt_decode_batch takes them. */
typedef struct decode_ctx {
  ch_kv_cache *kv;
  int nseq;
  const int *slots, *counts;
} decode_ctx;

/* Each sequence's new rows append their keys and values to its slot, and its queries attend
 * every cached position of that slot up to their own (one op per sequence: the sequences'
 * lengths differ). Runs before the step's lengths are advanced. */
static ch_status decode_attend(void *ctx, int l, gpt_act *a) {
  decode_ctx *c = ctx;
  ch_kv_cache *kv = c->kv;
  const gpt_shape *s = &kv->s;
  size_t A = (size_t)s->NH * s->HS, row = 0;
  for (int e = 0; e < c->nseq; e++) {
    int slot = c->slots[e], n = c->counts[e];
    size_t layer = ((size_t)slot * s->L + (size_t)l) * s->T * A;
    CH_CHECK(ch_op_attention_decode(kv->be, a->atty + row * A, kv->scratch, a->qkv + row * 3 * A,
                                    kv->k + layer, kv->v + layer, kv->len[slot], n, s->NH,
                                    s->HS));
    row += (size_t)n;
  }
  return CH_OK;
}

/* Refuses a step that cannot run, before anything changes: a view of another shape, no
 * sequences or more than the slots, a slot out of range or named twice, a sequence without
 * tokens or past the context, more rows than the cache's scratch, a token outside the
 * vocabulary. *rows gets the step's rows. */
static ch_status check_step(const gpt_view *v, const ch_kv_cache *kv, int nseq, const int *slots,
                            const int *counts, const int32_t *tokens, int *rows) {
  const gpt_shape *s = &kv->s;
  if (v->s.L != s->L || v->s.C != s->C || v->s.NH != s->NH || v->s.F != s->F || v->s.T != s->T)
    return CH_FAIL(CH_ERR_INVALID, "KV cache made for another model shape");
  if (nseq < 1 || nseq > kv->slots)
    return CH_FAIL(CH_ERR_INVALID, "decoding %d sequence(s) with %d KV cache slot(s)", nseq,
                   kv->slots);
  int64_t total = 0;
  for (int e = 0; e < nseq; e++) {
    int slot = slots[e], n = counts[e];
    if (slot < 0 || slot >= kv->slots)
      return CH_FAIL(CH_ERR_INVALID, "KV cache slot %d outside [0, %d)", slot, kv->slots);
    for (int f = 0; f < e; f++)
      if (slots[f] == slot)
        return CH_FAIL(CH_ERR_INVALID, "KV cache slot %d named twice in one step", slot);
    int past = kv->len[slot];
    if (n < 1 || n > s->T - past)
      return CH_FAIL(CH_ERR_INVALID, "decoding %d token(s) after %d: the context is %d tokens",
                     n, past, s->T);
    total += n;
  }
  if (total > kv->rows)
    return CH_FAIL(CH_ERR_INVALID, "a decoding step of %lld rows exceeds the KV cache's %d",
                   (long long)total, kv->rows);
  for (int64_t i = 0; i < total; i++)
    if (tokens[i] < 0 || tokens[i] >= s->V)
      return CH_FAIL(CH_ERR_INVALID, "token %d is outside the vocabulary [0, %d)", tokens[i], s->V);
  *rows = (int)total;
  return CH_OK;
}

ch_status gpt_decode_batch(const gpt_view *v, ch_kv_cache *kv, int nseq, const int *slots,
                           const int *counts, const int32_t *tokens, float *logits,
                           gpt_reduce_fn reduce, void *rctx) {
  int rows = 0;
  CH_CHECK(check_step(v, kv, nseq, slots, counts, tokens, &rows));
  const gpt_shape *s = &kv->s;
  const ch_backend *be = kv->be;
  size_t C = (size_t)s->C;
  const void *staged;
  CH_CHECK(ch_op_stage(be, kv->tok, tokens, sizeof(int32_t) * (size_t)rows, &staged));
  const int32_t *tok = staged;
  /* x = wte[token] + wpe[position]: each sequence's rows at its own positions past.. */
  size_t row = 0;
  for (int e = 0; e < nseq; e++) {
    int n = counts[e];
    CH_CHECK(ch_op_embedding_fwd(be, kv->x + row * C, tok + row, n, kv->len[slots[e]], v->wte,
                                 v->wpe, 1, n, (int)C));
    row += (size_t)n;
  }
  decode_ctx ctx = {kv, nseq, slots, counts};
  /* Block l > 0 reads its input from res3 + res2 and writes both again, in place (see
   * gpt_block_forward). */
  float *x = kv->x;
  const float *x_add = NULL;
  for (int l = 0; l < s->L; l++) {
    CH_CHECK(gpt_block_forward(v, l, &kv->a, x, x_add, rows, decode_attend, &ctx, reduce, rctx));
    x = kv->a.res3;
    x_add = kv->a.res2;
  }
  for (int e = 0; e < nseq; e++) kv->len[slots[e]] += counts[e];
  if (!logits) return CH_OK;
  /* Only each sequence's last row is needed: ln_f of those rows side by side (the last block's
   * residual added for those rows only), then the tied head over them in one GEMM. */
  row = 0;
  for (int e = 0; e < nseq; e++) {
    row += (size_t)counts[e];
    size_t last = (row - 1) * C;
    CH_CHECK(gpt_final_norm(v, x + last, x_add ? x_add + last : NULL, kv->lnf + (size_t)e * C,
                            NULL, NULL, 1));
  }
  CH_CHECK(ch_op_linear_fwd(be, kv->logits, kv->lnf, v->wte, NULL, nseq, (int)C, s->V));
  return ch_op_download(be, logits, kv->logits, sizeof(float) * (size_t)nseq * (size_t)s->V);
}

ch_status ch_model_decode_batch(ch_model *m, const float *params, ch_kv_cache *kv, int nseq,
                                const int *slots, const int *counts, const int32_t *tokens,
                                float *logits) {
  const gpt_shape *s = gpt_shape_of(m);
  if (!s) return CH_FAIL(CH_ERR_INVALID, "decoding needs a GPT model, not '%s'", ch_model_name(m));
  gpt_block_w *blk = malloc(sizeof *blk * (size_t)(s->L > 0 ? s->L : 1));
  if (!blk) return CH_FAIL(CH_ERR_NOMEM, "GPT view");
  gpt_view v;
  gpt_view_of(m, params, &v, blk);
  ch_status st = gpt_decode_batch(&v, kv, nseq, slots, counts, tokens, logits, NULL, NULL);
  free(blk);
  return st;
}

ch_status ch_model_decode(ch_model *m, const float *params, ch_kv_cache *kv, int slot,
                          const int32_t *tokens, int n, float *logits) {
  return ch_model_decode_batch(m, params, kv, 1, &slot, &n, tokens, logits);
}

int64_t ch_model_vocab(const ch_model *m) {
  const gpt_shape *s = gpt_shape_of(m);
  return s ? s->V : 0;
}

int ch_model_context(const ch_model *m) {
  const gpt_shape *s = gpt_shape_of(m);
  return s ? s->T : 0;
}
