/* Non-finite numbers in training (a NaN in the data, a diverging run): a step whose loss or
 * gradient norm is not finite is skipped on every rank alike, with a warning naming the step;
 * train.max_nonfinite_steps of them in a row stop the run with an error; and no checkpoint is
 * written of a state that holds a non-finite number. Without this, one NaN row turned every
 * weight into NaN, the run exited 0 and the checkpoints passed their checksums. */
#include <math.h>
#include <stdio.h>

#include "cohort/log.h"
#include "train/train_internal.h"

ch_status trainer_loss_vote(trainer *t, double loss, int32_t *bad, ch_request *req) {
  *bad = !isfinite(loss);
  return ch_comm_allreduce(t->g, bad, 1, CH_I32, CH_MAX, req);
}

ch_status trainer_skip_step(trainer *t, int32_t bad_loss, double norm) {
  int64_t step = t->step + 1, limit = t->cfg->train.max_nonfinite_steps;
  t->nonfinite_run++;
  t->n_skipped++;
  char why[96];
  if (bad_loss) snprintf(why, sizeof why, "the loss is not finite");
  else snprintf(why, sizeof why, "the gradient norm is %s", isnan(norm) ? "NaN" : "Inf");
  if (t->nonfinite_run >= limit)
    return CH_FAIL(CH_ERR_INVALID, "step %lld: %s: %lld step%s in a row with a loss or "
                   "gradient norm that is not finite (train.max_nonfinite_steps = %lld); "
                   "stopping with the parameters of step %lld, all finite. Look for NaN or Inf "
                   "in the data (%s), or lower optim.lr", (long long)step, why,
                   (long long)t->nonfinite_run, t->nonfinite_run == 1 ? "" : "s",
                   (long long)limit, (long long)(step - t->nonfinite_run), t->cfg->data.path);
  if (t->g->rank == 0)
    CH_WARN("step %lld: %s; the update is skipped (%lld in a row; %lld in a row stop the run, "
            "train.max_nonfinite_steps)", (long long)step, why, (long long)t->nonfinite_run,
            (long long)limit);
  return CH_OK;
}

/* Index of the first non-finite element of x[0..n), or n. */
static size_t first_nonfinite(const float *x, size_t n) {
  size_t i = 0;
  while (i < n && isfinite(x[i])) i++;
  return i;
}

ch_status trainer_check_finite(trainer *t) {
  float *data[3];
  ch_addr addr[3];
  const ch_shard *own;
  int nbufs = 0;
  CH_CHECK(ch_dp_state_buffers(t->dp, data, addr, &own, &nbufs));
  /* Local: the buffer and flat position of the first non-finite element this rank writes. */
  int64_t where[2] = {-1, -1};
  for (int b = 0; b < nbufs && where[0] < 0; b++)
    for (int s = 0; s < own->nsegs && where[0] < 0; s++) {
      const ch_segment *sg = &own->segs[s];
      size_t i = first_nonfinite(data[b] + ch_shard_at(sg, addr[b]), sg->numel);
      if (i < sg->numel) where[0] = b, where[1] = (int64_t)(sg->offset + i);
    }
  int64_t any = where[0];
  CH_CHECK(ch_comm_allreduce(t->g, &any, 1, CH_I64, CH_MAX, NULL));
  if (any < 0) return CH_OK;
  const char *name = "?";
  for (int p = 0; where[0] >= 0 && p < t->layout->nparams; p++)
    if ((size_t)where[1] >= t->layout->offsets[p]) name = t->layout->params[p].name;
  if (where[0] >= 0)
    return CH_FAIL(CH_ERR_INVALID, "step %lld: refusing to write a checkpoint: %s %s holds a "
                   "value that is not finite (element %lld of the flat layout)", (long long)t->step,
                   where[0] == 0 ? "parameter" : "the optimizer state of", name,
                   (long long)where[1]);
  return CH_FAIL(CH_ERR_INVALID, "step %lld: refusing to write a checkpoint: another rank holds "
                 "a non-finite parameter or optimizer state", (long long)t->step);
}
