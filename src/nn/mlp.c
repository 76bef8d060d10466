/* MLP classifier: depth hidden layers of `hidden` units with relu or gelu, then a linear head.
 *   a_0 = x;  z_i = a_i W_i^T + b_i;  a_{i+1} = act(z_i)  (i < depth);  logits = z_depth
 * Each layer (weight + bias) is one unit: the grain of DDP buckets and, later, ZeRO shards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_internal.h"

typedef struct mlp {
  int nlayers;      /* depth + 1 linears */
  int *dims;        /* dims[0] = in, dims[i+1] = out of layer i */
  int activation;   /* ch_activation */
  float *arena;     /* backend memory: z_i for every layer, a_i for hidden layers, two gradient
                     * buffers */
  float **z, **a;   /* views into the arena; a[0] is the input (not stored) */
  float *dbuf[2];   /* ping-pong gradient buffers of the widest layer */
} mlp;

static ch_status build_specs(const mlp *m, ch_param_spec **out) {
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
     * rows, odd layers by input columns, one allreduce per pair; an even last layer, which
     * would have no partner, stays whole (replicated). */
    int paired = i % 2 == 1 || i + 1 < m->nlayers;
    w->split = !paired ? CH_TP_NONE : (i % 2 == 0) ? CH_TP_ROWS : CH_TP_COLS;
    w->unit = i;
    snprintf(b->name, sizeof b->name, "layers.%d.bias", i);
    b->ndim = 1;
    b->shape[0] = m->dims[i + 1];
    b->init = CH_INIT_UNIFORM;
    b->init_scale = bound;
    b->split = w->split == CH_TP_ROWS ? CH_TP_ROWS : CH_TP_NONE;
    b->unit = i;
    b->no_decay = 1;
  }
  *out = s;
  return CH_OK;
}

static const model_ops mlp_ops;

ch_status mlp_init(ch_model *model, const ch_model_cfg *cfg, int64_t in_features, int64_t classes) {
  int max_batch = model->max_batch;
  if (in_features < 1 || in_features > INT32_MAX || classes < 2 || classes > INT32_MAX)
    return CH_FAIL(CH_ERR_INVALID, "MLP needs >= 1 feature and >= 2 classes (got %lld, %lld)",
                   (long long)in_features, (long long)classes);
  mlp *m = calloc(1, sizeof *m);
  if (!m) return CH_FAIL(CH_ERR_NOMEM, "MLP");
  model->impl = m;
  model->ops = &mlp_ops;
  ch_status st = CH_OK;
  ch_param_spec *specs = NULL;
  m->nlayers = cfg->depth + 1;
  m->activation = cfg->activation;
  m->dims = calloc((size_t)m->nlayers + 1, sizeof *m->dims);
  m->z = calloc((size_t)m->nlayers, sizeof *m->z);
  m->a = calloc((size_t)m->nlayers, sizeof *m->a);
  if (!m->dims || !m->z || !m->a) {
    st = CH_FAIL(CH_ERR_NOMEM, "MLP");
    goto done;
  }
  m->dims[0] = (int)in_features;
  for (int i = 1; i < m->nlayers; i++) m->dims[i] = cfg->hidden;
  m->dims[m->nlayers] = (int)classes;
  CH_CHECK_GOTO(build_specs(m, &specs), st, done);
  CH_CHECK_GOTO(ch_layout_create(specs, m->nlayers * 2, &model->layout), st, done);
  model->sample_floats = in_features;
  model->sample_ints = 1;
  model->targets = 1;

  int widest = 0;
  size_t floats = 0;
  for (int i = 0; i <= m->nlayers; i++) widest = m->dims[i] > widest ? m->dims[i] : widest;
  for (int i = 0; i < m->nlayers; i++) {
    floats += (size_t)max_batch * m->dims[i + 1];              /* z_i */
    if (i + 1 < m->nlayers) floats += (size_t)max_batch * m->dims[i + 1]; /* a_{i+1} */
  }
  floats += 2 * (size_t)max_batch * widest;
  if (max_batch == 0) goto done; /* layout only */
  void *arena = NULL;
  CH_CHECK_GOTO(ch_op_alloc(model->be, floats * sizeof(float), &arena), st, done);
  m->arena = arena;
  model->arena_bytes = floats * sizeof(float);
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
done: /* on failure ch_model_create destroys the model */
  free(specs);
  return st;
}

static void mlp_destroy(ch_model *model) {
  mlp *m = model->impl;
  if (!m) return;
  ch_op_free(model->be, m->arena);
  free(m->dims);
  free(m->z);
  free(m->a);
  free(m);
}

static const float *param(const ch_model *model, const float *flat, int layer, int which) {
  return flat + model->layout.offsets[2 * layer + which];
}

/* act(z) forward, or its backward dx = dy * act'(z), with the model's activation. */
static ch_status act_fwd(const ch_model *model, float *y, const float *z, int64_t n) {
  const mlp *m = model->impl;
  return m->activation == CH_ACT_GELU ? ch_op_gelu_fwd(model->be, y, z, n)
                                      : ch_op_relu_fwd(model->be, y, z, n);
}

static ch_status act_bwd(const ch_model *model, float *dx, const float *dy, const float *z,
                         int64_t n) {
  const mlp *m = model->impl;
  return m->activation == CH_ACT_GELU ? ch_op_gelu_bwd(model->be, dx, dy, z, n)
                                      : ch_op_relu_bwd(model->be, dx, dy, z, n);
}

/* Logits [batch, classes] into the arena. Each layer's unit is fetched around its use and
 * released, for good when `last` (no backward follows). */
static ch_status forward(ch_model *model, const float *params, const float *x, int batch,
                         const ch_unit_hook *hook, int last, const float **logits) {
  mlp *m = model->impl;
  m->a[0] = (float *)x; /* read only */
  for (int i = 0; i < m->nlayers; i++) {
    CH_CHECK(ch_hook_fetch(hook, i));
    CH_CHECK(ch_op_linear_fwd(model->be, m->z[i], m->a[i], param(model, params, i, 0),
                              param(model, params, i, 1), batch, m->dims[i], m->dims[i + 1]));
    CH_CHECK(ch_hook_release(hook, i, last));
    if (i + 1 < m->nlayers)
      CH_CHECK(act_fwd(model, m->a[i + 1], m->z[i], (int64_t)batch * m->dims[i + 1]));
  }
  *logits = m->z[m->nlayers - 1];
  return CH_OK;
}

static ch_status mlp_forward(ch_model *model, const float *params, const float *x,
                             const int32_t *y, int batch, const float **logits) {
  (void)y;
  return forward(model, params, x, batch, NULL, 1, logits);
}

static ch_status mlp_eval(ch_model *model, const float *params, const float *x, const int32_t *y,
                          int batch, const ch_unit_hook *hook, double *loss, int64_t *correct) {
  mlp *m = model->impl;
  const float *logits;
  CH_CHECK(forward(model, params, x, batch, hook, 1, &logits));
  return ch_op_xent_fwd(model->be, logits, y, 1, batch, 1, m->dims[m->nlayers], loss, correct);
}

static ch_status mlp_train_step(ch_model *model, const float *params, float *grads,
                                const float *x, const int32_t *y, int batch, float loss_scale,
                                const ch_unit_hook *hook, double *loss) {
  mlp *m = model->impl;
  const ch_layout *l = &model->layout;
  /* batch == 0 runs the same passes on no rows (the kernels do nothing): every hook fires as
   * on the other ranks, which a strategy's collectives need. */
  const float *logits;
  CH_CHECK(forward(model, params, x, batch, hook, 0, &logits));
  int classes = m->dims[m->nlayers];
  CH_CHECK(ch_op_xent_fused(model->be, m->dbuf[0], logits, y, 1, batch, 1, classes, loss_scale,
                            loss));
  /* dbuf[cur] holds dL/dz_i on entry to layer i's backward. */
  int cur = 0;
  for (int i = m->nlayers - 1; i >= 0; i--) {
    float *dx = i > 0 ? m->dbuf[1 - cur] : NULL;
    /* The first layer's backward needs no weights (no dx): nothing to fetch. */
    if (dx) CH_CHECK(ch_hook_fetch(hook, i));
    CH_CHECK(ch_op_linear_bwd(model->be, dx, grads + l->offsets[2 * i],
                              grads + l->offsets[2 * i + 1], m->dbuf[cur], m->a[i],
                              param(model, params, i, 0), batch, m->dims[i], m->dims[i + 1]));
    if (dx) CH_CHECK(ch_hook_release(hook, i, 1));
    if (i > 0) { /* through the activation: dL/dz_{i-1} = dL/da_i * act'(z_{i-1}) */
      CH_CHECK(act_bwd(model, dx, dx, m->z[i - 1], (int64_t)batch * m->dims[i]));
      cur = 1 - cur;
    }
    CH_CHECK(ch_hook_grad_ready(hook, i));
  }
  return CH_OK;
}

int mlp_activation(const ch_model *m) {
  return m->ops == &mlp_ops ? ((const mlp *)m->impl)->activation : -1;
}

int mlp_layers(const ch_model *m) { return m->ops == &mlp_ops ? ((const mlp *)m->impl)->nlayers : 0; }

ch_status mlp_view_slice(const ch_model *model, const ch_layout *local, const float *p,
                         mlp_layer_view *out) {
  int n = mlp_layers(model);
  if (n == 0) return CH_FAIL(CH_ERR_INVALID, "tensor-parallel MLP: not an MLP");
  if (local->nparams != 2 * n)
    return CH_FAIL(CH_ERR_INVALID, "tensor-parallel MLP: %d tensors, expected %d",
                   local->nparams, 2 * n);
  const mlp *m = model->impl;
  for (int i = 0; i < n; i++) { /* build_specs: layer i is rows 2i (weight) and 2i+1 (bias) */
    const ch_param_spec *w = &local->params[2 * i];
    if (w->ndim != 2) return CH_FAIL(CH_ERR_INVALID, "tensor-parallel MLP: %s is not 2-D", w->name);
    if (i > 0 && w->split != CH_TP_COLS && w->shape[1] != local->params[2 * i - 2].shape[0])
      return CH_FAIL(CH_ERR_INVALID, "tensor-parallel MLP: %s does not follow the layer before",
                     w->name);
    out[i] = (mlp_layer_view){.w = p + local->offsets[2 * i], .b = p + local->offsets[2 * i + 1],
                              .in = (int)w->shape[1], .out = (int)w->shape[0],
                              .out_full = m->dims[i + 1],
                              .partial = param_after_reduce(local, 2 * i + 1)};
  }
  return CH_OK;
}

static const model_ops mlp_ops = {
  .name = "mlp", .destroy = mlp_destroy, .forward = mlp_forward, .eval = mlp_eval, .train_step = mlp_train_step,
};
