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
#include "cohort/config.h"
#include "cohort/tensor.h"

typedef struct ch_optim ch_optim;

/* Zeroed state, on backend `be`, for shard `own` (borrowed only during the call) of `layout`'s
 * flat buffer, hyper-parameters from cfg->optim. Errors: CH_ERR_NOMEM. Free with
 * ch_optim_destroy. */
ch_status ch_optim_create(const ch_backend *be, const ch_config *cfg, const ch_layout *layout,
                          const ch_shard *own, ch_optim **out);
void ch_optim_destroy(ch_optim *o);

/* The backend the state lives on (params and grads passed to ch_optim_step too). */
const ch_backend *ch_optim_backend(const ch_optim *o);

/* One update (backend ops) of the shard's elements of params from grads with learning rate lr;
 * each buffer holds them at their flat positions or packed (pa, ga). Errors: the backend's.
 * Semantics follow torch.optim.SGD (L2 weight decay added to the gradient, momentum buffer
 * seeded with the first gradient) and torch.optim.AdamW (decoupled decay, bias correction). */
ch_status ch_optim_step(ch_optim *o, float *params, ch_addr pa, const float *grads, ch_addr ga,
                        double lr);

/* Number of steps taken; set when state is restored from a checkpoint. */
int64_t ch_optim_steps(const ch_optim *o);
void ch_optim_set_steps(ch_optim *o, int64_t steps);

/* The state buffers a checkpoint holds, under torch's state_dict names: AdamW "exp_avg" and
 * "exp_avg_sq", SGD "momentum_buffer" (none when momentum is 0). Each buffer holds the shard's
 * elements packed. */
int ch_optim_nstates(const ch_optim *o);
const char *ch_optim_state_name(const ch_optim *o, int i);
float *ch_optim_state(ch_optim *o, int i);

/* Learning rate for 0-based `step`: linear warmup over optim.warmup_steps, then constant or
 * cosine decay from optim.lr to optim.min_lr at train.steps. */
double ch_lr_at(const ch_config *cfg, int64_t step);

/* Global L2 norm of the gradient (backend ops on `be`'s grads): sqrt of the sum over ranks of `g` (NULL = unsharded) of the
 * local sums of squares of grads[0..n). If max_norm > 0 and the norm exceeds it, scales grads
 * by max_norm / (norm + 1e-6) as torch.nn.utils.clip_grad_norm_ does. Returns the norm before
 * clipping in *norm. */
ch_status ch_clip_grad_norm(const ch_backend *be, float *grads, size_t n, double max_norm,
                            const ch_group *g, double *norm);
