/* Data-parallel strategies. DDP: parameters replicated, gradients summed across the
 * data-parallel group in buckets. Buckets are contiguous ranges of the flat gradient buffer made
 * of whole units in backward order (last unit first); the first bucket is small so that
 * communication starts early. With overlap on, a bucket's non-blocking allreduce starts the
 * moment backward finishes its last unit, and runs while backward computes earlier units. */
#pragma once
#include <stddef.h>
#include "cohort/comm.h"
#include "cohort/model.h"
#include "cohort/tensor.h"

typedef struct ch_ddp ch_ddp;

typedef struct ch_ddp_stats {
  int nbuckets;
  double wait_seconds;     /* time blocked in ch_ddp_finish: communication not hidden */
  double launch_seconds;   /* time spent starting and polling collectives during backward */
  size_t bytes_reduced;    /* per step, per rank */
} ch_ddp_stats;

/* Sets up buckets over `grads` (layout->numel floats, owned by the caller). bucket_mb and
 * first_bucket_mb are caps in MiB; a unit larger than a cap gets a bucket of its own.
 * Errors: CH_ERR_INVALID, CH_ERR_NOMEM. Free with ch_ddp_destroy. */
ch_status ch_ddp_create(const ch_group *g, const ch_layout *layout, float *grads, double bucket_mb,
                        double first_bucket_mb, int overlap, ch_ddp **out);
void ch_ddp_destroy(ch_ddp *d);

/* The hook to pass to ch_model_train_step on the LAST micro-step of an optimizer step (earlier
 * micro-steps pass NULL: accumulation needs no communication). */
const ch_grad_hook *ch_ddp_hook(ch_ddp *d);

/* Starts every bucket not yet started (all of them when overlap is off) and waits for all:
 * afterwards `grads` holds the sum over the group. Call once per optimizer step, after the
 * last micro-step's backward. */
ch_status ch_ddp_finish(ch_ddp *d);

/* Bucket boundaries and timing of the last step. */
ch_ddp_stats ch_ddp_get_stats(const ch_ddp *d);
/* Bucket b's range in the flat buffer (for tests and logging). */
void ch_ddp_bucket_range(const ch_ddp *d, int b, size_t *offset, size_t *numel);
