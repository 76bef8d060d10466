/* SGD (momentum, L2 decay) and AdamW on a range of the flat buffer. */
#include <math.h>
#include <stdlib.h>

#include "cohort/kernels.h"
#include "cohort/optim.h"

struct ch_optim {
  int type;
  double weight_decay, momentum, beta1, beta2, eps;
  size_t offset, numel;
  float *m, *v;       /* SGD: m = momentum buffer; AdamW: first and second moments */
  uint8_t *decay;     /* per element: 1 when weight decay applies */
  int64_t steps;
};

ch_status ch_optim_create(const ch_config *cfg, const ch_layout *layout, size_t offset,
                          size_t numel, ch_optim **out) {
  ch_optim *o = calloc(1, sizeof *o);
  if (!o) return CH_FAIL(CH_ERR_NOMEM, "optimizer");
  o->type = cfg->optim.type;
  o->weight_decay = cfg->optim.weight_decay;
  o->momentum = cfg->optim.momentum;
  o->beta1 = cfg->optim.beta1;
  o->beta2 = cfg->optim.beta2;
  o->eps = cfg->optim.eps;
  o->offset = offset;
  o->numel = numel;
  size_t bytes = (numel ? numel : 1) * sizeof(float);
  o->m = ch_alloc_aligned(bytes);
  o->v = o->type == CH_OPTIM_ADAMW ? ch_alloc_aligned(bytes) : NULL;
  o->decay = calloc(numel ? numel : 1, 1);
  if (!o->m || (o->type == CH_OPTIM_ADAMW && !o->v) || !o->decay) {
    ch_optim_destroy(o);
    return CH_FAIL(CH_ERR_NOMEM, "optimizer state for %zu elements", numel);
  }
  /* Mark the elements of decayed parameters that fall inside this range. */
  for (int i = 0; i < layout->nparams; i++) {
    if (layout->params[i].no_decay) continue;
    size_t lo = layout->offsets[i], hi = lo + (size_t)ch_param_numel(&layout->params[i]);
    if (lo < offset) lo = offset;
    if (hi > offset + numel) hi = offset + numel;
    for (size_t j = lo; j < hi; j++) o->decay[j - offset] = 1;
  }
  *out = o;
  return CH_OK;
}

void ch_optim_destroy(ch_optim *o) {
  if (!o) return;
  ch_free_aligned(o->m);
  ch_free_aligned(o->v);
  free(o->decay);
  free(o);
}

int64_t ch_optim_steps(const ch_optim *o) { return o->steps; }

size_t ch_optim_state_bytes(const ch_optim *o) {
  return o->numel * sizeof(float) * (o->v ? 2 : 1);
}

static void sgd_step(ch_optim *o, float *p, const float *g, float lr) {
  float wd = (float)o->weight_decay, mu = (float)o->momentum;
  for (size_t i = 0; i < o->numel; i++) {
    float d = g[i] + (o->decay[i] ? wd * p[i] : 0.0f);
    if (mu != 0.0f) {
      o->m[i] = o->steps == 0 ? d : mu * o->m[i] + d;
      d = o->m[i];
    }
    p[i] -= lr * d;
  }
}

static void adamw_step(ch_optim *o, float *p, const float *g, float lr) {
  float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
  double t = (double)(o->steps + 1);
  float bc1 = (float)(1.0 - pow(o->beta1, t));
  float sqrt_bc2 = (float)sqrt(1.0 - pow(o->beta2, t));
  float step_size = lr / bc1;
  float decay = 1.0f - lr * (float)o->weight_decay;
  for (size_t i = 0; i < o->numel; i++) {
    if (o->decay[i]) p[i] *= decay;
    o->m[i] = b1 * o->m[i] + (1.0f - b1) * g[i];
    o->v[i] = b2 * o->v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= step_size * o->m[i] / (sqrtf(o->v[i]) / sqrt_bc2 + eps);
  }
}

void ch_optim_step(ch_optim *o, float *params, const float *grads, double lr) {
  if (o->type == CH_OPTIM_ADAMW) adamw_step(o, params, grads, (float)lr);
  else sgd_step(o, params, grads, (float)lr);
  o->steps++;
}

double ch_lr_at(const ch_config *cfg, int64_t step) {
  double lr = cfg->optim.lr, min_lr = cfg->optim.min_lr;
  int64_t warm = cfg->optim.warmup_steps, total = cfg->train.steps;
  if (step < warm) return lr * (double)(step + 1) / (double)warm;
  if (cfg->optim.schedule == CH_SCHED_CONSTANT || total <= warm) return lr;
  double progress = (double)(step - warm) / (double)(total - warm);
  if (progress > 1.0) progress = 1.0;
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(M_PI * progress));
}

ch_status ch_clip_grad_norm(float *grads, size_t n, double max_norm, const ch_group *g, double *norm) {
  double ss = ch_sumsq(grads, (int64_t)n);
  if (g && g->size > 1) CH_CHECK(ch_comm_allreduce(g, &ss, 1, CH_F64, CH_SUM, NULL));
  *norm = sqrt(ss);
  if (max_norm > 0.0 && *norm > max_norm) ch_scale(grads, (float)(max_norm / (*norm + 1e-6)), (int64_t)n);
  return CH_OK;
}
