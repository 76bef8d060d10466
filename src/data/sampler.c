/* Distributed sampler: global position -> (epoch, permutation of that epoch) -> sample.
 * The permutation of epoch e is a Fisher-Yates shuffle whose swap choices are counters of the
 * stream (seed, e), so it depends only on (n, seed, e): every rank computes the same one
 * without communication, and a run resumed on another number of ranks continues it exactly. */
#include <stdlib.h>
#include <string.h>

#include "cohort/data.h"
#include "cohort/rng.h"
#include "cohort/tensor.h"

ch_status ch_sampler_create(int64_t n, uint64_t seed, ch_sampler *out) {
  memset(out, 0, sizeof *out);
  out->epoch = -1;
  if (n <= 0) return CH_FAIL(CH_ERR_INVALID, "sampler over %lld samples (need at least 1)", (long long)n);
  out->perm = malloc((size_t)n * sizeof *out->perm);
  if (!out->perm) return CH_FAIL(CH_ERR_NOMEM, "sampler permutation of %lld samples", (long long)n);
  out->n = n;
  out->seed = seed;
  return CH_OK;
}

void ch_sampler_destroy(ch_sampler *s) {
  if (!s) return;
  free(s->perm);
  memset(s, 0, sizeof *s);
  s->epoch = -1;
}

/* Fills the cache with the permutation of epoch e (a no-op when it is already there). */
static void sampler_load_epoch(ch_sampler *s, int64_t e) {
  if (s->epoch == e) return;
  int64_t *p = s->perm;
  for (int64_t i = 0; i < s->n; i++) p[i] = i;
  /* Fisher-Yates from the top: position i swaps with a uniform j in [0, i]. */
  for (int64_t i = s->n - 1; i > 0; i--) {
    int64_t j = (int64_t)ch_rng_below(s->seed, (uint64_t)e, (uint64_t)i, (uint64_t)i + 1);
    int64_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  s->epoch = e;
}

int64_t ch_sampler_at(ch_sampler *s, int64_t pos) {
  if (!s || !s->perm || pos < 0) return -1;
  sampler_load_epoch(s, pos / s->n);
  return s->perm[pos % s->n];
}

int64_t ch_sampler_batch(ch_sampler *s, int64_t pos, int64_t batch, int nranks, int rank,
                         int64_t *rows) {
  if (!s || !s->perm || pos < 0 || batch < 0 || nranks <= 0 || rank < 0 || rank >= nranks) return -1;
  int64_t off = (int64_t)ch_part_offset((size_t)batch, nranks, rank);
  int64_t cnt = (int64_t)ch_part_count((size_t)batch, nranks, rank);
  /* Positions only increase, so a part that crosses an epoch end reloads the cache once. */
  for (int64_t i = 0; i < cnt; i++) rows[i] = ch_sampler_at(s, pos + off + i);
  return cnt;
}
