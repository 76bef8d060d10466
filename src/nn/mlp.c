/* MLP classifier: depth hidden layers of `hidden` units with relu or gelu, then a linear head.
 *   a_0 = x;  z_i = a_i W_i^T + b_i;  a_{i+1} = act(z_i)  (i < depth);  logits = z_depth
 * Each layer (weight + bias) is one unit: the grain of DDP buckets and, later, ZeRO shards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/kernels.h"
#include "cohort/model.h"

struct ch_model {
  ch_layout layout;
  int nlayers;      /* depth + 1 linears */
  int *dims;        /* dims[0] = in, dims[i+1] = out of layer i */
  int activation;   /* ch_activation */
  int max_batch;
  float *arena;     /* z_i for every layer, a_i for hidden layers, two gradient buffers */
  size_t arena_floats;
  float **z, **a;   /* views into the arena; a[0] is the input (not stored) */
  float *dbuf[2];   /* ping-pong gradient buffers of the widest layer */
};

static ch_status build_specs(const ch_model *m, ch_param_spec **out) {
  ch_param_spec *s = calloc((size_t)m->nlayers * 2, sizeof *s);
  if (!s) return CH_FAIL(CH_ERR_NOMEM, "MLP spec table");
  for (int i = 0; i < m->nlayers; i++) {
    /* PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. */
    float bound = 1.0f / sqrtf((float)m->dims[i]);
    ch_param_spec *w = &s[2 * i], *b = &s[2 * i + 1];
    snprintf(w->name, sizeof w->name, "layers.%d.weight", i);
    w->ndim = 2;
    w->shape[0] = m->dims[i + 1];
    w->shape[1] = m->dims[i];
    w->init = CH_INIT_UNIFORM;
    w->init_scale = bound;
    /* Megatron-style alternation for tensor parallel serving: even layers split by output
     * rows, odd layers by input columns (the head is left whole when it ends a column pair). */
    w->split = (i % 2 == 0) ? CH_TP_ROWS : CH_TP_COLS;
    w->unit = i;
    snprintf(b->name, sizeof b->name, "layers.%d.bias", i);
    b->ndim = 1;
    b->shape[0] = m->dims[i + 1];
    b->init = CH_INIT_UNIFORM;
    b->init_scale = bound;
    b->split = (i % 2 == 0) ? CH_TP_ROWS : CH_TP_NONE;
    b->unit = i;
    b->no_decay = 1;
  }
  *out = s;
  return CH_OK;
}

ch_status ch_model_create(const ch_config *cfg, int64_t in_features, int num_classes,
                          int max_batch, ch_model **out) {
  /* The MLP is the only model so far; the GPT (model.type=gpt) arrives with its own file and
   * this becomes a dispatch on the type. */
  if (cfg->model.type != CH_MODEL_MLP)
    return CH_FAIL(CH_ERR_CONFIG, "model.type: this build trains only 'mlp' so far");
  if (in_features < 1 || num_classes < 2 || max_batch < 1)
    return CH_FAIL(CH_ERR_INVALID, "MLP needs >= 1 feature, >= 2 classes, max_batch >= 1 "
                   "(got %lld, %d, %d)", (long long)in_features, num_classes, max_batch);
  ch_model *m = calloc(1, sizeof *m);
  if (!m) return CH_FAIL(CH_ERR_NOMEM, "MLP");
  ch_status st = CH_OK;
  ch_param_spec *specs = NULL;
  m->nlayers = cfg->model.depth + 1;
  m->activation = cfg->model.activation;
  m->max_batch = max_batch;
  m->dims = calloc((size_t)m->nlayers + 1, sizeof *m->dims);
  m->z = calloc((size_t)m->nlayers, sizeof *m->z);
  m->a = calloc((size_t)m->nlayers, sizeof *m->a);
  if (!m->dims || !m->z || !m->a) {
    st = CH_FAIL(CH_ERR_NOMEM, "MLP");
    goto fail;
  }
  m->dims[0] = (int)in_features;
  for (int i = 1; i < m->nlayers; i++) m->dims[i] = cfg->model.hidden;
  m->dims[m->nlayers] = num_classes;
  CH_CHECK_GOTO(build_specs(m, &specs), st, fail);
  CH_CHECK_GOTO(ch_layout_create(specs, m->nlayers * 2, &m->layout), st, fail);

  int widest = 0;
  size_t floats = 0;
  for (int i = 0; i <= m->nlayers; i++) widest = m->dims[i] > widest ? m->dims[i] : widest;
  for (int i = 0; i < m->nlayers; i++) {
    floats += (size_t)max_batch * m->dims[i + 1];              /* z_i */
    if (i + 1 < m->nlayers) floats += (size_t)max_batch * m->dims[i + 1]; /* a_{i+1} */
  }
  floats += 2 * (size_t)max_batch * widest;
  m->arena = ch_alloc_aligned(floats * sizeof(float));
  if (!m->arena) {
    st = CH_FAIL(CH_ERR_NOMEM, "MLP activations (%zu bytes)", floats * sizeof(float));
    goto fail;
  }
  m->arena_floats = floats;
  float *p = m->arena;
  for (int i = 0; i < m->nlayers; i++) {
    m->z[i] = p;
    p += (size_t)max_batch * m->dims[i + 1];
    if (i + 1 < m->nlayers) {
      m->a[i + 1] = p;
      p += (size_t)max_batch * m->dims[i + 1];
    }
  }
  m->dbuf[0] = p;
  m->dbuf[1] = p + (size_t)max_batch * widest;
  free(specs);
  *out = m;
  return CH_OK;
fail:
  free(specs);
  ch_model_destroy(m);
  return st;
}

void ch_model_destroy(ch_model *m) {
  if (!m) return;
  ch_layout_destroy(&m->layout);
  ch_free_aligned(m->arena);
  free(m->dims);
  free(m->z);
  free(m->a);
  free(m);
}

const ch_layout *ch_model_layout(const ch_model *m) { return &m->layout; }
size_t ch_model_activation_bytes(const ch_model *m) { return m->arena_floats * sizeof(float); }
int ch_model_max_batch(const ch_model *m) { return m->max_batch; }

static const float *param(const ch_model *m, const float *flat, int layer, int which) {
  return flat + m->layout.offsets[2 * layer + which];
}

static ch_status check_batch(const ch_model *m, int batch) {
  if (batch < 0 || batch > m->max_batch)
    return CH_FAIL(CH_ERR_INVALID, "batch of %d rows exceeds the model's max_batch %d", batch,
                   m->max_batch);
  return CH_OK;
}

ch_status ch_model_forward(ch_model *m, const float *params, const float *x, int batch,
                           const float **logits) {
  CH_CHECK(check_batch(m, batch));
  m->a[0] = (float *)x; /* read only */
  for (int i = 0; i < m->nlayers; i++) {
    ch_linear_forward(m->z[i], m->a[i], param(m, params, i, 0), param(m, params, i, 1), batch,
                      m->dims[i], m->dims[i + 1]);
    if (i + 1 < m->nlayers) {
      int64_t n = (int64_t)batch * m->dims[i + 1];
      if (m->activation == CH_ACT_GELU) ch_gelu_forward(m->a[i + 1], m->z[i], n);
      else ch_relu_forward(m->a[i + 1], m->z[i], n);
    }
  }
  *logits = m->z[m->nlayers - 1];
  return CH_OK;
}

ch_status ch_model_eval(ch_model *m, const float *params, const float *x, const int32_t *y,
                        int batch, double *loss_sum, int64_t *correct) {
  const float *logits;
  CH_CHECK(ch_model_forward(m, params, x, batch, &logits));
  *loss_sum = ch_xent_forward(logits, y, batch, m->dims[m->nlayers], correct);
  return CH_OK;
}

ch_status ch_model_train_step(ch_model *m, const float *params, float *grads, const float *x,
                              const int32_t *y, int batch, float loss_scale,
                              const ch_grad_hook *hook, double *loss_sum) {
  *loss_sum = 0.0;
  if (batch > 0) {
    const float *logits;
    CH_CHECK(ch_model_forward(m, params, x, batch, &logits));
    int classes = m->dims[m->nlayers];
    *loss_sum = ch_xent_forward(logits, y, batch, classes, NULL);
    ch_xent_backward(m->dbuf[0], logits, y, batch, classes, loss_scale);
  }
  /* dbuf[cur] holds dL/dz_i on entry to layer i's backward. */
  int cur = 0;
  for (int i = m->nlayers - 1; i >= 0; i--) {
    if (batch > 0) {
      float *dx = i > 0 ? m->dbuf[1 - cur] : NULL;
      ch_linear_backward(dx, grads + m->layout.offsets[2 * i], grads + m->layout.offsets[2 * i + 1],
                         m->dbuf[cur], m->a[i], param(m, params, i, 0), batch, m->dims[i],
                         m->dims[i + 1]);
      if (i > 0) { /* through the activation: dL/dz_{i-1} = dL/da_i * act'(z_{i-1}) */
        int64_t n = (int64_t)batch * m->dims[i];
        if (m->activation == CH_ACT_GELU) ch_gelu_backward(dx, dx, m->z[i - 1], n);
        else ch_relu_backward(dx, dx, m->z[i - 1], n);
        cur = 1 - cur;
      }
    }
    if (hook && hook->unit_ready) CH_CHECK(hook->unit_ready(hook->ctx, i));
  }
  return CH_OK;
}
