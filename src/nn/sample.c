/* Next-token sampling from logits: greedy, temperature, top-k and nucleus (top-p). */
#include <math.h>
#include <stdlib.h>

#include "cohort/model.h"

typedef struct cand {
  float p;
  int32_t id;
} cand;

static int by_prob_desc(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->p != y->p) return x->p < y->p ? 1 : -1;
  return x->id < y->id ? -1 : x->id > y->id; /* ties: lower id first, so draws are stable */
}

int32_t ch_sample_token(const float *logits, int64_t vocab, const ch_sampling *s, float u) {
  /* Ids past the tokenizer's (a padded model.vocab_size) have logits but no text: never draw
   * them, in any mode. */
  if (s->vocab_real > 0 && s->vocab_real < vocab) vocab = s->vocab_real;
  int32_t best = 0;
  for (int64_t i = 1; i < vocab; i++)
    if (logits[i] > logits[best]) best = (int32_t)i;
  if (!(s->temperature > 0.0f) || s->top_k == 1 || vocab == 1) return best;
  cand *c = malloc(sizeof *c * (size_t)vocab);
  if (!c) return best; /* no memory for the sort: fall back to greedy rather than fail */
  /* p_i proportional to exp((z_i - z_max) / T) */
  for (int64_t i = 0; i < vocab; i++) {
    c[i].p = expf((logits[i] - logits[best]) / s->temperature);
    c[i].id = (int32_t)i;
  }
  qsort(c, (size_t)vocab, sizeof *c, by_prob_desc);
  int64_t keep = s->top_k > 0 && s->top_k < vocab ? s->top_k : vocab;
  double kept = 0.0;
  for (int64_t i = 0; i < keep; i++) kept += c[i].p;
  if (s->top_p > 0.0f && s->top_p < 1.0f) { /* the smallest prefix whose mass reaches top_p */
    double cum = 0.0, need = s->top_p * kept;
    int64_t i = 0;
    while (i < keep && cum < need) cum += c[i++].p;
    keep = i > 0 ? i : 1;
    kept = cum > 0.0 ? cum : c[0].p;
  }
  double target = (double)u * kept, cum = 0.0;
  int32_t id = c[keep - 1].id;
  for (int64_t i = 0; i < keep; i++) {
    cum += c[i].p;
    if (target < cum) {
      id = c[i].id;
      break;
    }
  }
  free(c);
  return id;
}
