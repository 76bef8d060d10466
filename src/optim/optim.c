/* SGD (momentum, L2 decay) and AdamW on a shard of the flat buffer: the state, the spans with
 * their decay mask, the schedule and clipping; the update loops are backend ops (adamw, sgd). */
#include <math.h>
#include <stdlib.h>

#include "cohort/optim.h"

struct ch_optim {
  const ch_backend *be;
  int type;
  double weight_decay, momentum, beta1, beta2, eps;
  size_t numel;
  float *m, *v;       /* backend memory. SGD: m = momentum buffer; AdamW: first and second
                       * moments (packed) */
  ch_span *spans;     /* the shard's elements, parameter by parameter (with their padding);
                       * runs of one decay setting, so the update loops have no per-element
                       * branches and vectorise */
  int nspans;
  int64_t steps;
};

ch_status ch_optim_create(const ch_backend *be, const ch_optim_cfg *cfg, const ch_layout *layout,
                          const ch_shard *own, ch_optim **out) {
  ch_optim *o = calloc(1, sizeof *o);
  if (!o) return CH_FAIL(CH_ERR_NOMEM, "optimizer");
  o->be = be;
  o->type = cfg->type;
  o->weight_decay = cfg->weight_decay;
  o->momentum = cfg->momentum;
  o->beta1 = cfg->beta1;
  o->beta2 = cfg->beta2;
  o->eps = cfg->eps;
  o->numel = own->numel;
  size_t bytes = (o->numel ? o->numel : 1) * sizeof(float);
  void *m = NULL, *v = NULL;
  if (ch_op_alloc(be, bytes, &m) == CH_OK) o->m = m;
  if (o->type == CH_OPTIM_ADAMW && ch_op_alloc(be, bytes, &v) == CH_OK) o->v = v;
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
          (ch_span){lo, g->local + (lo - g->offset), hi - lo, !layout->params[i].no_decay};
    }
  }
  ch_status st = ch_op_memset(be, o->m, 0, bytes);
  if (st == CH_OK && o->v) st = ch_op_memset(be, o->v, 0, bytes);
  if (st == CH_OK) *out = o;
  else ch_optim_destroy(o);
  return st;
}

void ch_optim_destroy(ch_optim *o) {
  if (!o) return;
  ch_op_free(o->be, o->m);
  ch_op_free(o->be, o->v);
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

const ch_backend *ch_optim_backend(const ch_optim *o) { return o->be; }

ch_status ch_optim_step(ch_optim *o, float *params, ch_addr pa, const float *grads, ch_addr ga,
                        double lr) {
  float flr = (float)lr;
  double t = (double)(o->steps + 1);
  int pf = pa == CH_ADDR_FLAT, gf = ga == CH_ADDR_FLAT;
  if (o->type == CH_OPTIM_ADAMW) {
    /* Bias corrections bc_k = 1 - b_k^t in double, then rounded once to float. */
    ch_adamw_args a = {.lr = flr, .weight_decay = (float)o->weight_decay,
                       .beta1 = (float)o->beta1, .beta2 = (float)o->beta2,
                       .bc1 = (float)(1.0 - pow(o->beta1, t)),
                       .sqrt_bc2 = (float)sqrt(1.0 - pow(o->beta2, t)), .eps = (float)o->eps};
    CH_CHECK(ch_op_adamw(o->be, o->spans, o->nspans, params, pf, grads, gf, o->m, o->v, &a));
  } else {
    ch_sgd_args a = {.lr = flr, .weight_decay = (float)o->weight_decay,
                     .momentum = (float)o->momentum, .first = o->steps == 0};
    CH_CHECK(ch_op_sgd(o->be, o->spans, o->nspans, params, pf, grads, gf, o->m, &a));
  }
  o->steps++;
  return CH_OK;
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

ch_status ch_clip_grad_norm(const ch_backend *be, float *grads, size_t n, double max_norm,
                            const ch_group *g, double *norm) {
  /* The sum of squares lands in a backend double, read once. */
  void *dev = NULL;
  CH_CHECK(ch_op_alloc(be, sizeof(double), &dev));
  double ss = 0.0;
  ch_status st = ch_op_sumsq(be, grads, (int64_t)n, dev);
  if (st == CH_OK) st = ch_op_download(be, &ss, dev, sizeof ss);
  ch_op_free(be, dev);
  CH_CHECK(st);
  if (g && g->size > 1) CH_CHECK(ch_comm_allreduce(g, &ss, 1, CH_F64, CH_SUM, NULL));
  *norm = sqrt(ss);
  if (max_norm > 0.0 && *norm > max_norm)
    CH_CHECK(ch_op_scale(be, grads, (float)(max_norm / (*norm + 1e-6)), (int64_t)n));
  return CH_OK;
}
