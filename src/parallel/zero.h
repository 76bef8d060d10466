/* The ZeRO stages' state beside DDP's (ch_ddp): a `zero` object owns the whole-layout views the
 * model addresses, the packed shards, the in-flight gathers and reduce-scatters and the unit
 * hook; the ch_dp front (dp.c) owns the optimizer and checkpoint shards and only calls this
 * interface. Internal to src/parallel. */
#pragma once
#include "cohort/parallel.h"

typedef struct zero zero;

/* Buffers on backend `be` for ZeRO stage `strategy` (CH_STRATEGY_ZERO1..3) of `l` over g; `own`
 * is this rank's shard (borrowed, as are be, g and l). zero3 evaluations keep up to `eval_keep`
 * gathered elements across batches. Errors: CH_ERR_NOMEM. On failure *out still needs
 * zero_destroy. */
ch_status zero_create(const ch_backend *be, const ch_group *g, const ch_layout *l,
                      const ch_shard *own, int strategy, int reshard_after_forward, int prefetch,
                      size_t eval_keep, zero **out);
/* Waits for what is in flight and frees everything. NULL is a no-op. */
void zero_destroy(zero *z);

/* Whole-layout views for the model (zero3 parameters hold only fetched units). */
float *zero_params(zero *z);
float *zero_grads(zero *z);
/* The packed shards: reduced gradients, and under zero3 the parameters at rest (else NULL). */
float *zero_shard_grads(zero *z);
float *zero_shard_params(zero *z);

/* The seeded initial parameters of what this rank keeps (ch_layout_init_*; made on the host and
 * uploaded on a device). Local. */
ch_status zero_init_params(zero *z, uint64_t seed);
/* Starts a micro-step (first: the gradients start from zero and statistics restart; a later
 * one first completes the previous micro-step's reduce-scatters) and gives the hook. */
ch_status zero_begin_micro(zero *z, int first, int last, const ch_unit_hook **hook);
/* Completes the step's reduce-scatters; zero3 drops every gathered unit. */
ch_status zero_reduce(zero *z);
/* After the owned parameters changed: zero1/2 allgather every unit (zero3 keeps its shard). */
ch_status zero_publish(zero *z);
/* One optimizer step is over (the first two steps are measured). */
void zero_step_done(zero *z);
/* The hook for an evaluation's forward-only passes (NULL unless zero3): called once per
 * evaluation (its gathered bytes restart); units stay gathered across its batches up to the
 * eval_keep bound and are dropped by the next training micro-step or zero_publish. */
const ch_unit_hook *zero_eval_hook(zero *z);
/* The whole parameters into host `out`. Collective under zero3. */
ch_status zero_full_params(zero *z, float *out);

/* Statistics of the last step and evaluation (payload bytes as sent to the collectives) and the
 * transient memory peak of the training steps (ch_dp_memory.comm). */
ch_dp_stats zero_stats(const zero *z);
size_t zero_comm_peak(const zero *z);
