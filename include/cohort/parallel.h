/* Data-parallel strategies. DDP: parameters replicated, gradients summed across the
 * data-parallel group in buckets. Buckets are contiguous ranges of the flat gradient buffer in
 * backward order (last unit first): whole units packed under a cap relative to the model, a
 * unit above the cap split into pieces, the first bucket small so that communication starts
 * early, and unit 0 (final last) in buckets of its own (docs/parallel.md, "Buckets"). With
 * overlap on, a bucket's non-blocking allreduce starts the moment backward finishes its last
 * unit, and runs while backward computes earlier units. */
#pragma once
#include <stddef.h>
#include "cohort/comm.h"
#include "cohort/optim.h"
#include "cohort/model.h"
#include "cohort/tensor.h"

typedef enum ch_strategy {
  CH_STRATEGY_DDP = 0,
  CH_STRATEGY_ZERO1,
  CH_STRATEGY_ZERO2,
  CH_STRATEGY_ZERO3,
} ch_strategy;

/* "ddp", "zero1", "zero2", "zero3" ("?" for another value). */
CH_API const char *ch_strategy_name(int strategy);

/* The data-parallel settings (the parallel.* keys of the training config). */
typedef struct ch_parallel_cfg {
  int strategy;           /* ch_strategy */
  double bucket_mb;       /* DDP gradient bucket size */
  double first_bucket_mb; /* smaller first bucket so communication starts early */
  int overlap;            /* start bucket allreduces during backward (else after it) */
  int reshard_after_forward; /* zero3: gather units again for backward */
  int prefetch;           /* zero3: prefetch the next unit's parameters */
  double eval_keep_mb;    /* zero3: gathered parameters kept across evaluation batches, MiB */
} ch_parallel_cfg;

typedef struct ch_ddp ch_ddp;

typedef struct ch_ddp_stats {
  int nbuckets;
  double wait_seconds;     /* time blocked in ch_ddp_finish: communication not hidden */
  double launch_seconds;   /* time spent starting and polling collectives during backward */
  size_t bytes_reduced;    /* per step, per rank */
} ch_ddp_stats;

/* Sets up buckets over `grads` (layout->numel floats, owned by the caller). Caps in MiB: the
 * first bucket holds at most first_bucket_mb, the others at most
 * min(bucket_mb, max(first_bucket_mb, model / 8)); a unit larger than its cap is split.
 * Errors: CH_ERR_INVALID, CH_ERR_NOMEM. Free with ch_ddp_destroy. */
CH_API ch_status ch_ddp_create(const ch_group *g, const ch_layout *layout, float *grads, double bucket_mb,
                        double first_bucket_mb, int overlap, ch_ddp **out);
CH_API void ch_ddp_destroy(ch_ddp *d);

/* The hook to pass to ch_model_train_step on the LAST micro-step of an optimizer step (earlier
 * micro-steps pass NULL: accumulation needs no communication). */
CH_API const ch_unit_hook *ch_ddp_hook(ch_ddp *d);

/* Starts every bucket not yet started (all of them when overlap is off) and waits for all:
 * afterwards `grads` holds the sum over the group. Call once per optimizer step, after the
 * last micro-step's backward. */
CH_API ch_status ch_ddp_finish(ch_ddp *d);

/* Bucket boundaries and timing of the last step. */
CH_API ch_ddp_stats ch_ddp_get_stats(const ch_ddp *d);
/* Bucket b's range in the flat buffer (for tests and logging). */
CH_API void ch_ddp_bucket_range(const ch_ddp *d, int b, size_t *offset, size_t *numel);

/* ---- Data-parallel strategies (src/parallel/dp.c) ---------------------------------------
 * One front for ddp, zero1, zero2 and zero3 (parallel.strategy): it owns the parameters,
 * gradients and optimizer, and the trainer drives a step as
 *   for each micro-step: ch_dp_begin_micro, ch_model_train_step(ch_dp_params, ch_dp_grads, hook)
 *   ch_dp_reduce; ch_dp_clip; ch_dp_update.
 * Every strategy gives the same parameters as ddp up to rounding. */
typedef struct ch_dp ch_dp;

/* Per-rank bytes. params, grads and optim are what the strategy keeps between steps (the
 * ZeRO formulas); comm is the peak of its transient buffers over the first two steps, measured
 * (resident pages of gathered units and whole unit gradients, reduce-scatter outputs). */
typedef struct ch_dp_memory {
  size_t params, grads, optim, comm;
} ch_dp_memory;

typedef struct ch_dp_stats {
  double exposed_seconds;    /* last step: blocked waiting for communication */
  double launch_seconds;     /* last step: starting and polling collectives in backward */
  size_t bytes_communicated; /* last step, per rank, as a ring sends them */
  size_t eval_bytes;         /* the last evaluation (zero3 gathers), per rank, as a ring sends */
} ch_dp_stats;

/* Buffers on backend `be` and an optimizer (oc) for `l` under pc->strategy, reduced over `g`,
 * whose collectives must take be's memory (ch_device_group). be, g and l are borrowed. Errors:
 * CH_ERR_NOMEM, CH_ERR_INVALID. On failure *out still needs ch_dp_destroy. */
CH_API ch_status ch_dp_create(const ch_parallel_cfg *pc, const ch_optim_cfg *oc,
                              const ch_backend *be, const ch_group *g, const ch_layout *l,
                              ch_dp **out);
CH_API void ch_dp_destroy(ch_dp *d);
/* The seeded initial parameters (ch_layout_init_params), each rank writing what it keeps.
 * Collective. */
CH_API ch_status ch_dp_init_params(ch_dp *d, uint64_t seed);

/* Whole-layout parameter and gradient buffers to hand the model. Under zero3 only units
 * between the hook's fetch and release hold parameters. */
CH_API float *ch_dp_params(ch_dp *d);
CH_API float *ch_dp_grads(ch_dp *d);
CH_API ch_optim *ch_dp_optim(ch_dp *d);
CH_API int ch_dp_strategy(const ch_dp *d);

/* Starts micro-step `micro` of `nmicro` of an optimizer step (the first zeroes the gradients)
 * and gives the hook to pass to ch_model_train_step (may be NULL). Collective under zero2/3. */
CH_API ch_status ch_dp_begin_micro(ch_dp *d, int micro, int nmicro, const ch_unit_hook **hook);
/* After the last micro-step: completes the gradient reduction (each rank's owned part now
 * holds the sum over the group). */
CH_API ch_status ch_dp_reduce(ch_dp *d);
/* Clips by the global norm across shards (ch_clip_grad_norm); *norm gets it. Collective. */
CH_API ch_status ch_dp_clip(ch_dp *d, double max_norm, double *norm);
/* The optimizer update of the owned part, then zero1/2 allgather the parameters. */
CH_API ch_status ch_dp_update(ch_dp *d, double lr);
/* The hook for ch_model_eval (NULL unless zero3); call it once per evaluation, before its first
 * batch. Under zero3 the first batch gathers each unit once and units stay gathered across the
 * evaluation's batches up to parallel.eval_keep_mb in all (the rest are gathered per batch);
 * they are dropped when training resumes or the parameters change. */
CH_API const ch_unit_hook *ch_dp_eval_hook(ch_dp *d);

/* What a checkpoint holds of this rank, in HOST memory: buffer 0 the parameters, then the
 * optimizer states (ch_optim_state_name), each with its addressing, and the shard it writes and
 * reads; *nbufs gets the count (at most 3). On a device backend the buffers are host copies
 * made now (valid until the next call). Errors: CH_ERR_NOMEM, a failed download. */
CH_API ch_status ch_dp_state_buffers(ch_dp *d, float **data, ch_addr *addr, const ch_shard **own,
                                     int *nbufs);
/* After reading a checkpoint into those buffers: makes the replicas whole again (uploading the
 * host copies first on a device). Collective. */
CH_API ch_status ch_dp_loaded(ch_dp *d);
/* The whole parameters into host `out` (layout numel floats). Collective under zero3. */
CH_API ch_status ch_dp_full_params(ch_dp *d, float *out);

CH_API ch_dp_stats ch_dp_get_stats(const ch_dp *d);
CH_API ch_dp_memory ch_dp_get_memory(const ch_dp *d);

/* ---- Estimates without running (src/parallel/estimate.c) ---------------------------------
 * What ch_dp would hold and send for layout `l` under `strategy` on `ranks` ranks with
 * `accum` micro-steps per optimizer step, with oc's optimizer (its state count) and pc's
 * settings (pc->strategy is not read). memory.params/grads/optim are exact for rank 0 (the largest shard); memory.comm is
 * an upper bound of the measured peak; bytes_per_step is per rank as a ring sends it, an upper
 * bound for zero3 (it assumes every unit is gathered again for backward). */
typedef struct ch_dp_estimate {
  ch_dp_memory memory;
  size_t bytes_per_step;
} ch_dp_estimate;
CH_API ch_status ch_dp_estimate_of(const ch_parallel_cfg *pc, const ch_optim_cfg *oc, const ch_layout *l,
                            int strategy, int ranks, int accum, ch_dp_estimate *out);

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
CH_API ch_status ch_tp_slice_of(const ch_param_spec *p, int size, int rank, ch_tp_slice *out);

/* The local spec table of a rank as a flat layout (*local), with each parameter's slice
 * (*slices, malloc'ed, local->nparams entries). Free with ch_layout_destroy and free. */
CH_API ch_status ch_tp_layout(const ch_layout *full, int size, int rank, ch_layout *local,
                       ch_tp_slice **slices);

/* Copies each parameter's slice from the full flat buffer into the local one (serving the
 * weights a training run holds in memory). */
CH_API void ch_tp_extract(const ch_layout *full, const float *full_params, const ch_layout *local,
                   const ch_tp_slice *slices, float *local_params);
