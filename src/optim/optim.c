/* SGD (momentum, L2 decay) and AdamW on a shard of the flat buffer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/kernels.h"
#include "cohort/optim.h"
#include "kernels/cpu/simd.h"

/* A run of n owned elements with one decay setting: flat element `flat`, packed element `local`
 * (where the state lives). Loops run per span so that the inner loops have no per-element
 * branches and vectorise. */
typedef struct span {
  size_t flat, local, n;
  int decay;
} span;

struct ch_optim {
  int type;
  double weight_decay, momentum, beta1, beta2, eps;
  size_t numel;
  float *m, *v;       /* SGD: m = momentum buffer; AdamW: first and second moments (packed) */
  span *spans;        /* the shard's elements, parameter by parameter (with their padding) */
  int nspans;
  int64_t steps;
};

ch_status ch_optim_create(const ch_optim_cfg *cfg, const ch_layout *layout, const ch_shard *own,
                          ch_optim **out) {
  ch_optim *o = calloc(1, sizeof *o);
  if (!o) return CH_FAIL(CH_ERR_NOMEM, "optimizer");
  o->type = cfg->type;
  o->weight_decay = cfg->weight_decay;
  o->momentum = cfg->momentum;
  o->beta1 = cfg->beta1;
  o->beta2 = cfg->beta2;
  o->eps = cfg->eps;
  o->numel = own->numel;
  size_t bytes = (o->numel ? o->numel : 1) * sizeof(float);
  o->m = ch_alloc_aligned(bytes);
  o->v = o->type == CH_OPTIM_ADAMW ? ch_alloc_aligned(bytes) : NULL;
  /* Each parameter's slot (its elements plus the alignment padding after it, which is zero
   * and stays zero) clipped to each segment. */
  o->spans = calloc((size_t)layout->nparams * (size_t)own->nsegs + 1, sizeof *o->spans);
  if (!o->m || (o->type == CH_OPTIM_ADAMW && !o->v) || !o->spans) {
    ch_optim_destroy(o);
    return CH_FAIL(CH_ERR_NOMEM, "optimizer state for %zu elements", o->numel);
  }
  for (int s = 0; s < own->nsegs; s++) {
    const ch_segment *g = &own->segs[s];
    for (int i = 0; i < layout->nparams; i++) {
      size_t lo = layout->offsets[i];
      size_t hi = i + 1 < layout->nparams ? layout->offsets[i + 1] : layout->numel;
      if (lo < g->offset) lo = g->offset;
      if (hi > g->offset + g->numel) hi = g->offset + g->numel;
      if (lo >= hi) continue;
      o->spans[o->nspans++] =
          (span){lo, g->local + (lo - g->offset), hi - lo, !layout->params[i].no_decay};
    }
  }
  memset(o->m, 0, bytes);
  if (o->v) memset(o->v, 0, bytes);
  *out = o;
  return CH_OK;
}

void ch_optim_destroy(ch_optim *o) {
  if (!o) return;
  ch_free_aligned(o->m);
  ch_free_aligned(o->v);
  free(o->spans);
  free(o);
}

int64_t ch_optim_steps(const ch_optim *o) { return o->steps; }
void ch_optim_set_steps(ch_optim *o, int64_t steps) { o->steps = steps; }

int ch_optim_nstates(const ch_optim *o) {
  if (o->type == CH_OPTIM_ADAMW) return 2;
  return o->momentum != 0.0 ? 1 : 0;
}

const char *ch_optim_state_name(const ch_optim *o, int i) {
  if (o->type == CH_OPTIM_ADAMW) return i == 0 ? "exp_avg" : "exp_avg_sq";
  return "momentum_buffer";
}

float *ch_optim_state(ch_optim *o, int i) { return i == 0 ? o->m : o->v; }

/* torch.optim.SGD: d = g + wd p; buf = mu buf + d (buf = d on the first step); p -= lr buf. */
CH_VECTORIZE static void sgd_span(float *restrict p, const float *restrict g, float *restrict m,
                                  size_t n, float lr, float wd, float mu, int first) {
  for (size_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    if (mu != 0.0f) {
      m[i] = first ? d : mu * m[i] + d;
      d = m[i];
    }
    p[i] -= lr * d;
  }
}

/* torch.optim.AdamW: p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), with bias corrections bc_k = 1 - b_k^t. */
CH_VECTORIZE static void adamw_span(float *restrict p, const float *restrict g, float *restrict m,
                                    float *restrict v, size_t n, float decay, float b1, float b2,
                                    float step_size, float sqrt_bc2, float eps) {
  for (size_t i = 0; i < n; i++) {
    p[i] *= decay;
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= step_size * m[i] / (sqrtf(v[i]) / sqrt_bc2 + eps);
  }
}

void ch_optim_step(ch_optim *o, float *params, ch_addr pa, const float *grads, ch_addr ga,
                   double lr) {
  float flr = (float)lr;
  double t = (double)(o->steps + 1);
  float bc1 = (float)(1.0 - pow(o->beta1, t));
  float sqrt_bc2 = (float)sqrt(1.0 - pow(o->beta2, t));
  for (int s = 0; s < o->nspans; s++) {
    const span *sp = &o->spans[s];
    float *p = params + (pa == CH_ADDR_FLAT ? sp->flat : sp->local), *m = o->m + sp->local;
    const float *g = grads + (ga == CH_ADDR_FLAT ? sp->flat : sp->local);
    float wd = sp->decay ? (float)o->weight_decay : 0.0f;
    if (o->type == CH_OPTIM_ADAMW)
      adamw_span(p, g, m, o->v + sp->local, sp->n, 1.0f - flr * wd, (float)o->beta1,
                 (float)o->beta2, flr / bc1, sqrt_bc2, (float)o->eps);
    else
      sgd_span(p, g, m, sp->n, flr, wd, (float)o->momentum, o->steps == 0);
  }
  o->steps++;
}

double ch_lr_at(const ch_optim_cfg *cfg, int64_t step) {
  double lr = cfg->lr, min_lr = cfg->min_lr;
  int64_t warm = cfg->warmup_steps, total = cfg->total_steps;
  if (step < warm) return lr * (double)(step + 1) / (double)warm;
  if (cfg->schedule == CH_SCHED_CONSTANT || total <= warm) return lr;
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
