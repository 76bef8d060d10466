/* Validation: loss and accuracy over the whole validation split. */
#include <math.h>
#include <stdlib.h>

#include "cohort/tensor.h"
#include "train/train_internal.h"

ch_status train_evaluate(ch_model *m, const float *params, const ch_unit_hook *hook,
                         source *val, const ch_group *g, float *xbuf, int32_t *ybuf,
                         double *loss, double *acc) {
  int64_t n = source_samples(val);
  int64_t first = (int64_t)ch_part_offset((size_t)n, g->size, g->rank);
  int64_t mine = (int64_t)ch_part_count((size_t)n, g->size, g->rank);
  int64_t most = (int64_t)ch_part_count((size_t)n, g->size, 0); /* rank 0 has the largest part */
  int chunk = ch_model_max_batch(m);
  int64_t rounds = (most + chunk - 1) / chunk; /* equal on every rank: reads are collective */
  int64_t *rows = malloc(sizeof *rows * (size_t)chunk);
  if (!rows) return CH_FAIL(CH_ERR_NOMEM, "validation rows");
  double sums[2] = {0.0, 0.0}; /* loss sum, correct count */
  ch_status st = CH_OK;
  for (int64_t r = 0; r < rounds; r++) {
    int64_t lo = r * chunk, cnt = mine - lo;
    cnt = cnt < 0 ? 0 : (cnt > chunk ? chunk : cnt);
    for (int64_t i = 0; i < cnt; i++) rows[i] = first + lo + i;
    CH_CHECK_GOTO(source_read(val, rows, cnt, xbuf, ybuf), st, done);
    double l;
    int64_t correct = 0;
    CH_CHECK_GOTO(ch_model_eval(m, params, xbuf, ybuf, (int)cnt, hook, &l, &correct), st, done);
    sums[0] += l;
    sums[1] += (double)correct;
  }
  CH_CHECK_GOTO(ch_comm_allreduce(g, sums, 2, CH_F64, CH_SUM, NULL), st, done);
  double targets = (double)n * (double)ch_model_targets(m);
  *loss = n > 0 ? sums[0] / targets : NAN;
  *acc = n > 0 ? sums[1] / targets : NAN;
done:
  free(rows);
  return st;
}
