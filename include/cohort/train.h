/* The training loop: sampler -> micro-batches -> forward/backward -> gradient reduction (the
 * data-parallel strategy) -> clip -> optimizer,
 * with progress lines, validation, <run.dir>/metrics.jsonl and <run.dir>/config.yaml. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/ckpt.h"
#include "cohort/comm.h"
#include "cohort/config.h"
#include "cohort/parallel.h"
#include "cohort/status.h"

typedef struct ch_train_result {
  int64_t steps;           /* optimizer steps taken by this call (after a resume: since it) */
  int preempted;           /* the signal (SIGTERM, SIGUSR1) that stopped the run early, or 0 */
  int64_t nonfinite_stop;  /* the step at which train.max_nonfinite_steps non-finite steps in a
                            * row stopped the run (its error is the same on every rank, which
                            * all return from ch_train_run: the job may end cleanly), or 0 */
  double train_loss;       /* mean loss over the last log interval (NaN when no step ran) */
  double val_loss, val_acc; /* final evaluation (NaN without a validation split) */
  double seconds;          /* wall time of the step loop */
  double samples_per_s;    /* global samples per second over the whole loop */
  double step_seconds_min; /* fastest step, a low-noise figure for benchmarks */
  ch_dp_stats comm;        /* of the last step */
  double comm_exposed_seconds; /* total exposed communication over the run */
  ch_dp_memory memory;     /* per-rank bytes of the strategy (parallel.h) */
  size_t activation_bytes; /* the model's activation arena */
  float *params;           /* final flat parameters when requested (malloc'ed), else NULL */
  size_t numel;
  int64_t step;            /* optimizer steps completed (the checkpoint step numbering) */
  ch_ckpt_model_info model; /* the model and data shape it was built for (ch_model_create) */
} ch_train_result;

/* How each rank takes its part of a global batch of train.batch_size samples on `ranks` ranks:
 * parts of at most local_max = ceil(batch / ranks) samples, in accum micro-batches of micro,
 * and the model's activation arena sized for max_batch samples (a micro-batch, or a validation
 * chunk when larger). Errors: CH_ERR_CONFIG naming the key (a batch smaller than the rank
 * count, a micro-batch that does not divide the part). */
typedef struct ch_batch_plan {
  int64_t local_max, micro, accum;
  int max_batch;
} ch_batch_plan;
CH_API ch_status ch_train_plan(const ch_config *cfg, int ranks, ch_batch_plan *out);

/* Trains cfg's model on cfg->data.path across the data-parallel group `dp` (every rank of the
 * group calls it). With keep_params, res->params receives a copy of the final parameters.
 * Rank 0 of `dp` writes run.dir/config.yaml and run.dir/metrics.jsonl and prints progress.
 * Errors: CH_ERR_CONFIG for settings inconsistent with the world size or data, CH_ERR_IO,
 * CH_ERR_MPI. A failure on one rank is reported by that rank; the caller should treat any
 * error as fatal for the job (other ranks may be blocked in a collective). */
CH_API ch_status ch_train_run(const ch_config *cfg, const ch_group *dp, int keep_params,
                       ch_train_result *res);
CH_API void ch_train_result_free(ch_train_result *res);
