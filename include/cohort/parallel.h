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

/* ---- Tensor parallelism (src/parallel/tp.c) ------------------------------------------------
 * Which part of each parameter a tensor-parallel rank holds, from the spec table alone (split,
 * tp_groups, tp_grain): a parameter split along dimension d keeps, in each of its tp_groups
 * groups of the dimension, the rank's ch_part of the group's grains. The local tensors form a
 * spec table of their own (same names, local shapes) and so a flat layout. */
#define CH_TP_MAX_GROUPS 4

typedef struct ch_tp_slice {
  int dim;                           /* split dimension, -1 when replicated */
  int ngroups;
  int64_t start[CH_TP_MAX_GROUPS];   /* along dim, in the full tensor */
  int64_t count;                     /* per group */
} ch_tp_slice;

/* The slice of `p` that rank `rank` of `size` holds. Errors: CH_ERR_INVALID (a split dimension
 * that is not a whole number of groups and grains, or too many groups). */
ch_status ch_tp_slice_of(const ch_param_spec *p, int size, int rank, ch_tp_slice *out);

/* The local spec table of a rank as a flat layout (*local), with each parameter's slice
 * (*slices, malloc'ed, local->nparams entries). Free with ch_layout_destroy and free. */
ch_status ch_tp_layout(const ch_layout *full, int size, int rank, ch_layout *local,
                       ch_tp_slice **slices);

/* Copies each parameter's slice from the full flat buffer into the local one (serving the
 * weights a training run holds in memory). */
void ch_tp_extract(const ch_layout *full, const float *full_params, const ch_layout *local,
                   const ch_tp_slice *slices, float *local_params);
