/* Model dispatch: one ch_model front for every family (src/nn/model_internal.h): batch checks,
 * staging of host batches onto the backend, and the loss accumulators read once per step. */
#include <stdlib.h>

#include "nn/model_internal.h"

ch_status ch_model_create(const ch_backend *be, const ch_model_cfg *cfg, int64_t in_features,
                          int64_t classes, int max_batch, ch_model **out) {
  if (max_batch < 0) return CH_FAIL(CH_ERR_INVALID, "max_batch must be >= 0 (got %d)", max_batch);
  ch_model *m = calloc(1, sizeof *m);
  if (!m) return CH_FAIL(CH_ERR_NOMEM, "model");
  m->be = be;
  m->max_batch = max_batch;
  ch_status st;
  switch (cfg->type) {
    case CH_MODEL_MLP: st = mlp_init(m, cfg, in_features, classes); break;
    case CH_MODEL_GPT: st = gpt_init(m, cfg, classes); break;
    default: st = CH_FAIL(CH_ERR_CONFIG, "model.type: unknown model family %d", cfg->type);
  }
  if (st == CH_OK && max_batch > 0) {
    size_t xb = sizeof(float) * (size_t)max_batch * (size_t)m->sample_floats;
    size_t yb = sizeof(int32_t) * (size_t)max_batch * (size_t)m->sample_ints;
    void *stats = NULL, *xs = NULL, *ys = NULL;
    st = ch_op_alloc(be, sizeof(model_stats), &stats);
    m->stats = stats;
    if (st == CH_OK) st = ch_op_memset(be, m->stats, 0, sizeof(model_stats));
    if (st == CH_OK) st = ch_op_alloc(be, xb, &xs);
    m->x_stage = xs;
    if (st == CH_OK) st = ch_op_alloc(be, yb, &ys);
    m->y_stage = ys;
    m->arena_bytes += xb + yb;
  }
  if (st == CH_OK) *out = m;
  else ch_model_destroy(m);
  return st;
}

void ch_model_destroy(ch_model *m) {
  if (!m) return;
  if (m->ops) m->ops->destroy(m);
  ch_op_free(m->be, m->stats);
  ch_op_free(m->be, m->x_stage);
  ch_op_free(m->be, m->y_stage);
  ch_layout_destroy(&m->layout);
  free(m);
}

const ch_layout *ch_model_layout(const ch_model *m) { return &m->layout; }
const ch_backend *ch_model_backend(const ch_model *m) { return m->be; }
size_t ch_model_activation_bytes(const ch_model *m) { return m->arena_bytes; }
int ch_model_max_batch(const ch_model *m) { return m->max_batch; }
const char *ch_model_name(const ch_model *m) { return m->ops->name; }
int64_t ch_model_sample_floats(const ch_model *m) { return m->sample_floats; }
int64_t ch_model_sample_ints(const ch_model *m) { return m->sample_ints; }
int64_t ch_model_targets(const ch_model *m) { return m->targets; }

ch_status model_check_batch(const ch_model *m, int batch) {
  if (batch < 0 || batch > m->max_batch)
    return CH_FAIL(CH_ERR_INVALID, "batch of %d samples exceeds the model's max_batch %d", batch,
                   m->max_batch);
  return CH_OK;
}

int param_after_reduce(const ch_layout *l, int i) {
  return i > 0 && l->params[i].ndim == 1 && l->params[i].split == CH_TP_NONE &&
         l->params[i - 1].ndim == 2 && l->params[i - 1].split != CH_TP_NONE;
}

/* Checks the host batch and makes it readable by the backend's ops (dx, dy: NULL when the
 * batch has no such part). */
static ch_status stage(ch_model *m, const float *x, const int32_t *y, int batch, const float **dx,
                       const int32_t **dy) {
  CH_CHECK(model_check_batch(m, batch));
  if (y && m->ops->check) CH_CHECK(m->ops->check(m, y, batch));
  const void *px = NULL, *py = NULL;
  if (x && m->sample_floats > 0)
    CH_CHECK(ch_op_stage(m->be, m->x_stage, x,
                         sizeof(float) * (size_t)batch * (size_t)m->sample_floats, &px));
  if (y)
    CH_CHECK(ch_op_stage(m->be, m->y_stage, y,
                         sizeof(int32_t) * (size_t)batch * (size_t)m->sample_ints, &py));
  *dx = px;
  *dy = py;
  return CH_OK;
}

ch_status ch_model_forward(ch_model *m, const float *params, const float *x, const int32_t *y,
                           int batch, const float **logits) {
  const float *dx;
  const int32_t *dy;
  CH_CHECK(stage(m, x, y, batch, &dx, &dy));
  return m->ops->forward(m, params, dx, dy, batch, logits);
}

ch_status ch_model_eval(ch_model *m, const float *params, const float *x, const int32_t *y,
                        int batch, const ch_unit_hook *hook, double *loss_sum, int64_t *correct) {
  const float *dx;
  const int32_t *dy;
  CH_CHECK(stage(m, x, y, batch, &dx, &dy));
  model_stats *s = m->stats;
  CH_CHECK(ch_op_memset(m->be, &s->eval_loss, 0, sizeof(double) + sizeof(int64_t)));
  CH_CHECK(m->ops->eval(m, params, dx, dy, batch, hook, &s->eval_loss, &s->eval_correct));
  model_stats h;
  CH_CHECK(ch_op_download(m->be, &h.eval_loss, &s->eval_loss, sizeof(double) + sizeof(int64_t)));
  *loss_sum = h.eval_loss;
  if (correct) *correct += h.eval_correct;
  return CH_OK;
}

ch_status ch_model_train_step(ch_model *m, const float *params, float *grads, const float *x,
                              const int32_t *y, int batch, float loss_scale,
                              const ch_unit_hook *hook) {
  const float *dx;
  const int32_t *dy;
  CH_CHECK(stage(m, x, y, batch, &dx, &dy));
  return m->ops->train_step(m, params, grads, dx, dy, batch, loss_scale, hook,
                            &m->stats->train_loss);
}

ch_status ch_model_take_loss(ch_model *m, double *loss_sum) {
  if (!m->stats) return CH_FAIL(CH_ERR_INVALID, "a layout-only model has no loss");
  CH_CHECK(ch_op_download(m->be, loss_sum, &m->stats->train_loss, sizeof(double)));
  return ch_op_memset(m->be, &m->stats->train_loss, 0, sizeof(double));
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
