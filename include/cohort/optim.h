/* Optimizers over flat buffers (SGD with momentum, AdamW), LR schedules, global-norm clipping.
 * An optimizer owns the state of a shard of the flat parameter buffer (ch_shard): the whole
 * buffer under DDP, a rank's part of every unit under ZeRO; the state is packed. Weight decay
 * skips parameters marked no_decay in the spec table. The state and the update loops live on
 * the backend the optimizer is created on. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "cohort/backend.h"
#include "cohort/comm.h"
#include "cohort/tensor.h"

typedef enum ch_optim_type { CH_OPTIM_SGD = 0, CH_OPTIM_ADAMW } ch_optim_type;
typedef enum ch_schedule { CH_SCHED_CONSTANT = 0, CH_SCHED_COSINE } ch_schedule;

/* Optimizer and learning-rate schedule (the optim.* keys of the training config). */
typedef struct ch_optim_cfg {
  int type;            /* ch_optim_type */
  double lr, weight_decay, momentum, beta1, beta2, eps;
  double grad_clip;    /* max global L2 norm; 0 disables */
  int schedule;        /* ch_schedule */
  int64_t warmup_steps;
  int64_t total_steps; /* where the cosine schedule ends (train.steps) */
  double min_lr;       /* cosine floor */
} ch_optim_cfg;

typedef struct ch_optim ch_optim;

/* Zeroed state, on backend `be`, for shard `own` (borrowed only during the call) of `layout`'s
 * flat buffer, hyper-parameters from cfg. Errors: CH_ERR_NOMEM. Free with ch_optim_destroy. */
CH_API ch_status ch_optim_create(const ch_backend *be, const ch_optim_cfg *cfg,
                                 const ch_layout *layout, const ch_shard *own, ch_optim **out);
CH_API void ch_optim_destroy(ch_optim *o);

/* The backend the state lives on (params and grads passed to ch_optim_step too). */
CH_API const ch_backend *ch_optim_backend(const ch_optim *o);

/* One update (backend ops) of the shard's elements of params from grads with learning rate lr;
 * each buffer holds them at their flat positions or packed (pa, ga). Errors: the backend's.
 * Semantics follow torch.optim.SGD (L2 weight decay added to the gradient, momentum buffer
 * seeded with the first gradient) and torch.optim.AdamW (decoupled decay, bias correction). */
CH_API ch_status ch_optim_step(ch_optim *o, float *params, ch_addr pa, const float *grads,
                               ch_addr ga, double lr);

/* Number of steps taken; set when state is restored from a checkpoint. */
CH_API int64_t ch_optim_steps(const ch_optim *o);
CH_API void ch_optim_set_steps(ch_optim *o, int64_t steps);

/* The state buffers a checkpoint holds, under torch's state_dict names: AdamW "exp_avg" and
 * "exp_avg_sq", SGD "momentum_buffer" (none when momentum is 0). Each buffer holds the shard's
 * elements packed. */
CH_API int ch_optim_nstates(const ch_optim *o);
CH_API const char *ch_optim_state_name(const ch_optim *o, int i);
CH_API float *ch_optim_state(ch_optim *o, int i);

/* Learning rate for 0-based `step`: linear warmup over cfg->warmup_steps, then constant or
 * cosine decay from cfg->lr to cfg->min_lr at cfg->total_steps. */
CH_API double ch_lr_at(const ch_optim_cfg *cfg, int64_t step);

/* Global L2 norm of the gradient (backend ops on `be`'s grads): sqrt of the sum over ranks of `g` (NULL = unsharded) of the
 * local sums of squares of grads[0..n). If max_norm > 0 and the norm exceeds it, scales grads
 * by max_norm / (norm + 1e-6) as torch.nn.utils.clip_grad_norm_ does. Returns the norm before
 * clipping in *norm. */
CH_API ch_status ch_clip_grad_norm(const ch_backend *be, float *grads, size_t n, double max_norm,
                                   const ch_group *g, double *norm);
