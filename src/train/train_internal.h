/* Pieces of the training loop shared between src/train files. */
#pragma once
#include <stdio.h>
#include "cohort/comm.h"
#include "cohort/data.h"
#include "cohort/model.h"

/* Validation over the whole split: each rank evaluates its contiguous part in chunks of the
 * model's max batch; results are summed over the group. */
ch_status ch_train_evaluate(ch_model *m, const float *params, ch_dataset *val, const ch_group *g,
                            float *xbuf, int32_t *ybuf, double *loss, double *acc);

/* One logged step, as printed and as written to metrics.jsonl. val_* are NaN when not
 * evaluated at this step. */
typedef struct ch_progress {
  int64_t step, total_steps;
  double epoch;            /* fractional epochs of the training split consumed */
  double loss, lr, grad_norm, samples_per_s, eta_seconds;
  double val_loss, val_acc;
} ch_progress;

/* Prints the progress line (rank 0's stdout via the logger). */
void ch_progress_print(const ch_progress *p);
/* Appends one JSON object line to `f` and flushes it. */
void ch_progress_write_json(FILE *f, const ch_progress *p);
