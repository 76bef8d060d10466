/* What every model family implements behind include/cohort/model.h. A model owns its spec
 * table layout and activation arena; src/nn/model.c dispatches on cfg->type. */
#pragma once
#include "cohort/model.h"

typedef struct ch_model_ops {
  const char *name;
  void (*destroy)(ch_model *m);
  /* Logits of the batch in the arena. */
  ch_status (*forward)(ch_model *m, const float *params, const float *x, const int32_t *y,
                       int batch, const float **logits);
  /* Loss summed over the batch's targets; `correct` (may be NULL) counts argmax hits. */
  ch_status (*eval)(ch_model *m, const float *params, const float *x, const int32_t *y, int batch,
                    const ch_unit_hook *hook, double *loss_sum, int64_t *correct);
  ch_status (*train_step)(ch_model *m, const float *params, float *grads, const float *x,
                          const int32_t *y, int batch, float loss_scale, const ch_unit_hook *hook,
                          double *loss_sum);
} ch_model_ops;

struct ch_model {
  const ch_model_ops *ops;
  ch_layout layout;
  int max_batch;
  int64_t sample_floats, sample_ints, targets; /* per sample, see model.h */
  size_t arena_bytes;
  void *impl; /* the family's own state */
};

/* Family constructors: fill m->layout, sample shape, arena_bytes, impl and ops. */
ch_status mlp_init(ch_model *m, const ch_model_cfg *cfg, int64_t in_features, int64_t classes);
ch_status gpt_init(ch_model *m, const ch_model_cfg *cfg, int64_t vocab);

/* Rejects a batch outside [0, max_batch]. */
ch_status ch_model_check_batch(const ch_model *m, int batch);

/* The MLP's hidden activation (ch_activation); -1 when `m` is not an MLP. */
int ch_mlp_activation(const ch_model *m);
