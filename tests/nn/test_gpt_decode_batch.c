/* Batched GPT decoding (ch_model_decode_batch, one forward for several sequences) against each
 * sequence decoded alone (ch_model_decode), on the CPU backend:
 *  - four sequences of different lengths in four KV slots (slot order unlike entry order)
 *    join at different steps, feed prompts whole or in chunks, then one token per step, some
 *    ending early; every entry's logits equal those of the same sequence decoded alone with
 *    the same chunks, to 1e-6 of the row's largest |logit|;
 *  - logits NULL runs the step without the head (the lengths advance, the next step agrees);
 *  - refused, and the cache left unchanged: a slot named twice, a count of 0, a sequence past
 *    the context, more rows than ch_kv_cache_max_rows, more sequences than slots.
 * Alone and batched run the same kernels; only the GEMMs' row counts differ (1 to 11 rows
 * against 1 to 9), so the logits agree to rounding: 1e-6 holds with a wide margin, while a row
 * attending another sequence's cache, a wrong position or a mixed-up head row gives 1e-2 or
 * more (checked: another position's logits). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/config.h"
#include "cohort/kernels.h"
#include "cohort/model.h"
#include "cohort/rng.h"
#include "testlib.h"

enum { L = 2, NH = 2, C = 32, T = 16, V = 53, NS = 4, MAXCH = T };

/* Sequence s: its KV slot, the step it joins at, and its chunks (0-terminated). */
static const int k_slot[NS] = {2, 0, 3, 1};
static const int k_join[NS] = {0, 0, 2, 4};
static const int k_chunks[NS][MAXCH + 1] = {
    {5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0},                    /* prompt 5, then to T */
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0},        /* token by token to T */
    {9, 3, 1, 1, 1, 1, 0},                                      /* prompt in 2 chunks */
    {4, 4, 1, 1, 1, 0},                                         /* ends at 11 tokens */
};

static double row_err(const float *a, const float *b, int n) {
  double mx = 0, err = 0;
  for (int i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
  for (int i = 0; i < n; i++) err = fmax(err, fabs(a[i] - b[i]));
  return err / (mx > 0 ? mx : 1);
}

static int nchunks(int s) {
  int k = 0;
  while (k_chunks[s][k]) k++;
  return k;
}

int main(void) {
  CHT_OK(ch_blas_init(1));
  ch_config cfg;
  ch_config_defaults(&cfg);
  cht_gpt(&cfg.model, L, NH, C, T);
  ch_model *m;
  CHT_OK(ch_model_create(ch_backend_cpu(), &cfg.model, 0, V, 1, &m));
  const ch_layout *l = ch_model_layout(m);
  float *p = ch_alloc_aligned(l->numel * sizeof(float));
  CHT_ASSERT(p, "oom");
  ch_layout_init_params(l, p, 5);
  /* Larger than GPT-2's init so attention is far from uniform and positions matter. */
  for (size_t i = 0; i < l->numel; i++) p[i] *= 4.0f;
  int32_t win[NS][T];
  for (int s = 0; s < NS; s++)
    for (int t = 0; t < T; t++) win[s][t] = (int32_t)ch_rng_below(21, (uint64_t)s, (uint64_t)t, V);

  /* Alone: each sequence in a cache of its own, chunk by chunk; ref[s][k] after chunk k. */
  static float ref[NS][MAXCH][V];
  for (int s = 0; s < NS; s++) {
    ch_kv_cache *one;
    CHT_OK(ch_kv_cache_create(m, 1, &one));
    for (int k = 0, at = 0; k < nchunks(s); at += k_chunks[s][k], k++)
      CHT_OK(ch_model_decode(m, p, one, 0, win[s] + at, k_chunks[s][k], ref[s][k]));
    ch_kv_cache_destroy(one);
  }

  /* Batched: every started sequence feeds its next chunk, all in one call per step. */
  ch_kv_cache *kv;
  CHT_OK(ch_kv_cache_create(m, NS, &kv));
  CHT_ASSERT(ch_kv_cache_max_rows(kv) == T + NS, "max rows %d", ch_kv_cache_max_rows(kv));
  int next[NS] = {0}, at[NS] = {0}, steps = 0, entries = 0, widest = 0;
  double worst = 0;
  for (int step = 0;; step++) {
    int slots[NS], counts[NS], who[NS], n = 0, rows = 0;
    int32_t tok[T + NS];
    float logits[NS][V];
    for (int s = 0; s < NS; s++) {
      if (step < k_join[s] || next[s] >= nchunks(s)) continue;
      int c = k_chunks[s][next[s]];
      memcpy(tok + rows, win[s] + at[s], sizeof(int32_t) * (size_t)c);
      slots[n] = k_slot[s];
      counts[n] = c;
      who[n++] = s;
      rows += c;
    }
    if (n == 0 && step > k_join[NS - 1]) break;
    if (n == 0) continue;
    CHT_OK(ch_model_decode_batch(m, p, kv, n, slots, counts, tok, &logits[0][0]));
    for (int e = 0; e < n; e++) {
      int s = who[e];
      worst = fmax(worst, row_err(logits[e], ref[s][next[s]], V));
      at[s] += counts[e];
      next[s]++;
    }
    steps++;
    entries += n;
    widest = rows > widest ? rows : widest;
  }
  printf("batched vs alone: max rel err %.3g over %d steps, %d entries, up to %d rows a step\n",
         worst, steps, entries, widest);
  CHT_ASSERT(worst <= 1e-6, "batched decoding differs from decoding alone: %g", worst);
  for (int s = 0; s < NS; s++)
    CHT_ASSERT(ch_kv_cache_length(kv, k_slot[s]) == at[s], "slot %d holds %d, fed %d", k_slot[s],
               ch_kv_cache_length(kv, k_slot[s]), at[s]);
  /* The check can tell positions apart: another position's logits are far off. */
  CHT_ASSERT(row_err(ref[1][3], ref[1][2], V) > 1e-2, "positions indistinguishable");

  /* Refusals leave every slot as it was: slots 0, 2, 3 are full, slot 1 emptied. */
  int lens[NS];
  for (int i = 0; i < NS; i++) lens[i] = ch_kv_cache_length(kv, i);
  float out[NS * V];
  int32_t toks[2 * T] = {0};
  ch_kv_cache_reset(kv, 1);
  lens[1] = 0;
  struct { int n, slots[NS + 1], counts[NS + 1]; const char *what; } bad[] = {
      {2, {1, 1}, {1, 1}, "a slot named twice"},
      {1, {1}, {0}, "a count of 0"},
      {1, {1}, {-1}, "a negative count"},
      {2, {1, 0}, {1, 1}, "a full slot"},
      {1, {1}, {T + 1}, "past the context"},
      {NS + 1, {1, 3, 0, 2, 1}, {1, 1, 1, 1, 1}, "more sequences than slots"},
      {1, {NS}, {1}, "a slot out of range"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHT_ASSERT(ch_model_decode_batch(m, p, kv, bad[i].n, bad[i].slots, bad[i].counts, toks, out) ==
                   CH_ERR_INVALID, "not refused: %s", bad[i].what);
    for (int s = 0; s < NS; s++)
      CHT_ASSERT(ch_kv_cache_length(kv, s) == lens[s], "%s changed slot %d", bad[i].what, s);
  }
  /* Rows: a fresh 16-token prompt beside one other of 5 exceeds T + NS = 20 rows. */
  ch_kv_cache_reset(kv, 3);
  CHT_ASSERT(ch_model_decode_batch(m, p, kv, 2, (int[]){1, 3}, (int[]){16, 5}, toks, out) ==
                 CH_ERR_INVALID, "more rows than the cache holds");
  /* logits NULL: the blocks only; the next step's logits still equal sequence 2 alone. */
  CHT_OK(ch_model_decode_batch(m, p, kv, 1, (int[]){3}, (int[]){9}, win[2], NULL));
  CHT_ASSERT(ch_kv_cache_length(kv, 3) == 9, "NULL logits: the length advances");
  CHT_OK(ch_model_decode_batch(m, p, kv, 1, (int[]){3}, (int[]){3}, win[2] + 9, out));
  CHT_ASSERT(row_err(out, ref[2][1], V) <= 1e-6, "after a step without logits");
  printf("refusals leave the cache unchanged; a step without logits advances it\n");
  ch_kv_cache_destroy(kv);
  ch_free_aligned(p);
  ch_model_destroy(m);
  return 0;
}
