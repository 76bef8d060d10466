/* Models built from the config: a parameter spec table plus hand-written forward/backward over
 * flat buffers. The model owns its activation arena; parameters and gradients are passed in
 * (flat buffers laid out by ch_model_layout), so strategies decide where they live. */
#pragma once
#include <stdint.h>
#include "cohort/config.h"
#include "cohort/status.h"
#include "cohort/tensor.h"

/* Called during backward as soon as every gradient of `unit` is final for this micro-batch;
 * units complete in reverse order. DDP starts bucket allreduces from here. */
typedef struct ch_grad_hook {
  ch_status (*unit_ready)(void *ctx, int unit);
  void *ctx;
} ch_grad_hook;

typedef struct ch_model ch_model;

/* Builds the model described by cfg->model for inputs of `in_features` and `num_classes`
 * outputs, with activations for micro-batches of up to `max_batch` rows. Errors:
 * CH_ERR_CONFIG (unsupported model), CH_ERR_NOMEM. Free with ch_model_destroy. */
ch_status ch_model_create(const ch_config *cfg, int64_t in_features, int num_classes,
                          int max_batch, ch_model **out);
void ch_model_destroy(ch_model *m);

/* The parameter spec table and its flat layout (owned by the model). */
const ch_layout *ch_model_layout(const ch_model *m);
/* Bytes of the activation arena. */
size_t ch_model_activation_bytes(const ch_model *m);
int ch_model_max_batch(const ch_model *m);

/* Forward only: returns the logits [batch, classes] in a model-owned buffer valid until the
 * next call. batch <= max_batch. */
ch_status ch_model_forward(ch_model *m, const float *params, const float *x, int batch,
                           const float **logits);

/* Summed loss and number of correct argmax predictions over `batch` rows (no backward). */
ch_status ch_model_eval(ch_model *m, const float *params, const float *x, const int32_t *y,
                        int batch, double *loss_sum, int64_t *correct);

/* Forward + backward of loss_scale * (sum of per-row losses). Gradients are ADDED into `grads`
 * (same layout as params), so micro-batches accumulate. `hook` (may be NULL) is told when each
 * unit's gradient is final; with batch == 0 no compute happens but the hook still fires for
 * every unit (a rank with no rows still takes part in gradient communication). `loss_sum` gets
 * the unscaled summed loss. */
ch_status ch_model_train_step(ch_model *m, const float *params, float *grads, const float *x,
                              const int32_t *y, int batch, float loss_scale,
                              const ch_grad_hook *hook, double *loss_sum);
