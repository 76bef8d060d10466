/* Model dispatch: one ch_model front for every family (src/nn/model_internal.h). */
#include <stdlib.h>

#include "nn/model_internal.h"

ch_status ch_model_create(const ch_model_cfg *cfg, int64_t in_features, int64_t classes,
                          int max_batch, ch_model **out) {
  if (max_batch < 0) return CH_FAIL(CH_ERR_INVALID, "max_batch must be >= 0 (got %d)", max_batch);
  ch_model *m = calloc(1, sizeof *m);
  if (!m) return CH_FAIL(CH_ERR_NOMEM, "model");
  m->max_batch = max_batch;
  ch_status st;
  switch (cfg->type) {
    case CH_MODEL_MLP: st = mlp_init(m, cfg, in_features, classes); break;
    case CH_MODEL_GPT: st = gpt_init(m, cfg, classes); break;
    default: st = CH_FAIL(CH_ERR_CONFIG, "model.type: unknown model family %d", cfg->type);
  }
  if (st != CH_OK) {
    ch_model_destroy(m);
    return st;
  }
  *out = m;
  return CH_OK;
}

void ch_model_destroy(ch_model *m) {
  if (!m) return;
  if (m->ops) m->ops->destroy(m);
  ch_layout_destroy(&m->layout);
  free(m);
}

const ch_layout *ch_model_layout(const ch_model *m) { return &m->layout; }
size_t ch_model_activation_bytes(const ch_model *m) { return m->arena_bytes; }
int ch_model_max_batch(const ch_model *m) { return m->max_batch; }
const char *ch_model_name(const ch_model *m) { return m->ops->name; }
int64_t ch_model_sample_floats(const ch_model *m) { return m->sample_floats; }
int64_t ch_model_sample_ints(const ch_model *m) { return m->sample_ints; }
int64_t ch_model_targets(const ch_model *m) { return m->targets; }

ch_status ch_model_check_batch(const ch_model *m, int batch) {
  if (batch < 0 || batch > m->max_batch)
    return CH_FAIL(CH_ERR_INVALID, "batch of %d samples exceeds the model's max_batch %d", batch,
                   m->max_batch);
  return CH_OK;
}

ch_status ch_model_forward(ch_model *m, const float *params, const float *x, const int32_t *y,
                           int batch, const float **logits) {
  CH_CHECK(ch_model_check_batch(m, batch));
  return m->ops->forward(m, params, x, y, batch, logits);
}

ch_status ch_model_eval(ch_model *m, const float *params, const float *x, const int32_t *y,
                        int batch, const ch_unit_hook *hook, double *loss_sum, int64_t *correct) {
  CH_CHECK(ch_model_check_batch(m, batch));
  return m->ops->eval(m, params, x, y, batch, hook, loss_sum, correct);
}

ch_status ch_model_train_step(ch_model *m, const float *params, float *grads, const float *x,
                              const int32_t *y, int batch, float loss_scale,
                              const ch_unit_hook *hook, double *loss_sum) {
  CH_CHECK(ch_model_check_batch(m, batch));
  return m->ops->train_step(m, params, grads, x, y, batch, loss_scale, hook, loss_sum);
}

ch_status ch_hook_fetch(const ch_unit_hook *h, int unit) {
  return h && h->fetch ? h->fetch(h->ctx, unit) : CH_OK;
}

ch_status ch_hook_release(const ch_unit_hook *h, int unit, int last) {
  return h && h->release ? h->release(h->ctx, unit, last) : CH_OK;
}

ch_status ch_hook_grad_ready(const ch_unit_hook *h, int unit) {
  return h && h->grad_ready ? h->grad_ready(h->ctx, unit) : CH_OK;
}
