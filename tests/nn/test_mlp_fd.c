/* MLP backward against central finite differences of the forward loss, for relu and gelu
 * models, plus the gradient contract of ch_model_train_step: gradients accumulate (+=) and are
 * scaled by loss_scale; the hook fires once per unit, in reverse order, when that unit's
 * gradient is final; batch 0 computes nothing but still fires every hook.
 *
 * Finite differences. The analytic gradient is of the summed loss L(p) (loss_scale 1, 6 rows,
 * L ~ 10, |dL/dp| up to ~1). The forward runs in fp32 (ch_model_eval only sums the row losses in
 * double), so L(p) carries rounding noise of about eps32 * |logits| * rows ~ 1e-7 that does not
 * vary smoothly with p. A central difference D(h) = (L(p+h) - L(p-h)) / 2h then has
 *   truncation error  h^2/6 * L'''  and  rounding error  ~ 1e-7 / h.
 * The step actually taken is (float)(p+h) - (float)(p-h), computed exactly in double, so the
 * fp32 rounding of p +- h itself adds no error.
 *  - gelu (smooth): Richardson extrapolation (4 D(h/2) - D(h)) / 3 cancels the h^2 term, so a
 *    large h = 0.1 keeps the rounding error near 1e-6 while truncation is O(h^4).
 *    Measured worst error 7e-5 relative (plain h = 1e-2: 5e-4, noise-dominated); TOL 5e-4.
 *  - relu: a large h would cross kinks, so plain central differences with h = 1e-2 (rounding
 *    ~1e-5 absolute); measured worst 2.7e-4 relative; TOL 2e-3.
 * Errors are |g - fd| / max(|fd|, FLOOR) with FLOOR = 1e-2: below that the rounding noise of the
 * difference quotient (~1e-5 absolute) dominates, so small entries are held to an absolute error
 * of TOL * 1e-2. Any real bug (a dropped, transposed or mis-scaled gradient, a wrong activation
 * derivative) gives errors of order 1 on many entries; the printed table shows the margins.
 *
 * ReLU kinks. Perturbing a parameter of layer i moves every pre-activation of layer i affinely;
 * if the relu on/off pattern of all layers is the same at p-h and p+h (checked in double), then
 * by induction over layers every pre-activation stays affine and sign-constant on the whole
 * segment, so L is smooth there and the difference quotient is valid. Points where the pattern
 * changes, or where some pre-activation is within 1e-4 of 0 (fp32 and double could disagree on
 * its sign), are skipped; the test asserts that most points were checked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/config.h"
#include "cohort/kernels.h"
#include "cohort/model.h"
#include "cohort/rng.h"
#include "testlib.h"

#define IN 7
#define HIDDEN 9
#define DEPTH 2
#define CLASSES 5
#define BATCH 6
#define GELU_H 0.1
#define GELU_TOL 5e-4
#define RELU_H 1e-2
#define RELU_TOL 2e-3
#define FD_FLOOR 1e-2
#define RELU_MARGIN 1e-4

typedef struct net {
  ch_model *m;
  const ch_layout *l;
  float *x;
  int32_t *y;
} net;

static void net_create(net *n, int activation, uint64_t seed) {
  ch_config cfg;
  ch_config_defaults(&cfg);
  cfg.model.type = CH_MODEL_MLP;
  cfg.model.depth = DEPTH;
  cfg.model.hidden = HIDDEN;
  cfg.model.activation = activation;
  CHT_OK(ch_model_create(ch_backend_cpu(), &cfg.model, IN, CLASSES, BATCH, &n->m));
  n->l = ch_model_layout(n->m);
  CHT_ASSERT(n->l->nparams == 2 * (DEPTH + 1) && n->l->nunits == DEPTH + 1,
             "MLP depth %d: %d params in %d units", DEPTH, n->l->nparams, n->l->nunits);
  n->x = malloc(sizeof *n->x * BATCH * IN);
  n->y = malloc(sizeof *n->y * BATCH);
  /* x ~ U(-2, 2): wide enough that gelu is exercised well away from its linear region. */
  cht_fill_uniform(n->x, (size_t)BATCH * IN, seed, 100);
  for (int i = 0; i < BATCH * IN; i++) n->x[i] *= 2.0f;
  /* Labels cover every class and are not in row order. */
  for (int i = 0; i < BATCH; i++) n->y[i] = (int32_t)((3 * i + 1) % CLASSES);
}

static void net_destroy(net *n) {
  ch_model_destroy(n->m);
  free(n->x);
  free(n->y);
}

static float *params_new(const ch_layout *l, uint64_t seed) {
  float *p = ch_alloc_aligned(l->numel * sizeof(float));
  CHT_ASSERT(p, "alloc");
  ch_layout_init_params(l, p, seed);
  /* The default init is U(-1/sqrt(in), 1/sqrt(in)); no value may be exactly zero. */
  for (int t = 0; t < l->nparams; t++) {
    int64_t numel = ch_param_numel(&l->params[t]);
    for (int64_t j = 0; j < numel; j++)
      CHT_ASSERT(p[l->offsets[t] + (size_t)j] != 0.0f, "%s[%lld] initialised to 0",
                 l->params[t].name, (long long)j);
  }
  return p;
}

static double loss_at(net *n, const float *params) {
  double loss;
  int64_t correct = 0;
  CHT_OK(ch_model_eval(n->m, params, n->x, n->y, BATCH, NULL, &loss, &correct));
  return loss;
}

/* Relu on/off pattern of every hidden pre-activation, computed in double; returns the smallest
 * |pre-activation| seen. pattern has BATCH * HIDDEN * DEPTH bytes. */
static double relu_pattern(const net *n, const float *p, unsigned char *pattern) {
  double a[BATCH][HIDDEN > IN ? HIDDEN : IN], z[BATCH][HIDDEN];
  double closest = INFINITY;
  int in = IN;
  for (int r = 0; r < BATCH; r++)
    for (int k = 0; k < IN; k++) a[r][k] = n->x[r * IN + k];
  for (int layer = 0; layer < DEPTH; layer++) {
    const float *w = p + n->l->offsets[2 * layer], *b = p + n->l->offsets[2 * layer + 1];
    for (int r = 0; r < BATCH; r++)
      for (int o = 0; o < HIDDEN; o++) {
        double s = b[o];
        for (int k = 0; k < in; k++) s += (double)w[o * in + k] * a[r][k];
        z[r][o] = s;
        closest = fmin(closest, fabs(s));
        *pattern++ = s > 0.0;
      }
    for (int r = 0; r < BATCH; r++)
      for (int o = 0; o < HIDDEN; o++) a[r][o] = z[r][o] > 0.0 ? z[r][o] : 0.0;
    in = HIDDEN;
  }
  return closest;
}

/* Central difference of L in parameter element `idx` with step h. */
static double central_diff(net *n, float *p, size_t idx, double h) {
  float orig = p[idx];
  float plus = (float)(orig + h), minus = (float)(orig - h);
  p[idx] = plus;
  double lp = loss_at(n, p);
  p[idx] = minus;
  double lm = loss_at(n, p);
  p[idx] = orig;
  return (lp - lm) / ((double)plus - (double)minus);
}

static void test_fd(int activation) {
  const int gelu = activation == CH_ACT_GELU;
  const char *act = gelu ? "gelu" : "relu";
  const double h = gelu ? GELU_H : RELU_H, tol = gelu ? GELU_TOL : RELU_TOL;
  net n;
  net_create(&n, activation, gelu ? 11 : 12);
  float *p = params_new(n.l, gelu ? 21 : 22);
  float *g = ch_alloc_aligned(n.l->numel * sizeof(float));
  double loss_sum;
  CHT_OK(ch_model_train_step(n.m, p, g, n.x, n.y, BATCH, 1.0f, NULL));
  CHT_OK(ch_model_take_loss(n.m, &loss_sum));
  double ref_loss = loss_at(&n, p);
  /* train_step's loss comes from the fused cross-entropy (fp32 exp, 2e-7 relative), eval's from
   * the double-precision one: equal to 1e-6. */
  CHT_ASSERT(fabs(loss_sum - ref_loss) <= 1e-6 * ref_loss,
             "%s: train_step loss %.17g != eval loss %.17g", act, loss_sum, ref_loss);
  /* Labels cycle and the head is random: the summed loss is near BATCH * log(CLASSES). */
  CHT_ASSERT(loss_sum > 0.3 * BATCH * log(CLASSES) && loss_sum < 3.0 * BATCH * log(CLASSES),
             "%s: implausible loss %g", act, loss_sum);

  size_t npat = (size_t)BATCH * HIDDEN * DEPTH;
  unsigned char *pat0 = malloc(npat), *pat1 = malloc(npat), *pat2 = malloc(npat);
  int checked_total = 0, skipped_total = 0;
  printf("%s (h %g, tol %g)\n%s  %-16s %8s %8s %12s %12s\n", act, h, tol, act, "tensor", "checked",
         "skipped", "max |g|", "max relerr");
  for (int t = 0; t < n.l->nparams; t++) {
    const ch_param_spec *s = &n.l->params[t];
    int64_t numel = ch_param_numel(s);
    int checked = 0, skipped = 0;
    double worst = 0, gmax = 0;
    size_t worst_j = 0;
    for (int64_t j = 0; j < numel; j++) {
      size_t idx = n.l->offsets[t] + (size_t)j;
      if (!gelu) {
        float orig = p[idx];
        double c0 = relu_pattern(&n, p, pat0);
        p[idx] = (float)(orig + h);
        double c1 = relu_pattern(&n, p, pat1);
        p[idx] = (float)(orig - h);
        double c2 = relu_pattern(&n, p, pat2);
        p[idx] = orig;
        if (fmin(c0, fmin(c1, c2)) < RELU_MARGIN || memcmp(pat0, pat1, npat) ||
            memcmp(pat0, pat2, npat)) {
          skipped++;
          continue;
        }
      }
      double fd = central_diff(&n, p, idx, h);
      if (gelu) fd = (4.0 * central_diff(&n, p, idx, h / 2) - fd) / 3.0; /* Richardson */
      double err = fabs((double)g[idx] - fd) / fmax(fabs(fd), FD_FLOOR);
      if (!(err <= worst)) worst = err, worst_j = (size_t)j;
      gmax = fmax(gmax, fabs(fd));
      checked++;
    }
    printf("%s  %-16s %8d %8d %12.4g %12.3g\n", act, s->name, checked, skipped, gmax, worst);
    CHT_ASSERT(worst <= tol, "%s: %s[%zu]: analytic %.8g vs finite difference: rel err %g > %g",
               act, s->name, worst_j, g[n.l->offsets[t] + worst_j], worst, tol);
    /* A test that skips everything proves nothing: each tensor must be mostly checked. */
    CHT_ASSERT(checked >= (3 * numel) / 4, "%s: %s: only %d of %lld entries checked", act,
               s->name, checked, (long long)numel);
    /* Gradients this small everywhere would make the relative check vacuous. */
    CHT_ASSERT(gmax > 5 * FD_FLOOR, "%s: %s: gradients implausibly small (%g)", act, s->name, gmax);
    checked_total += checked;
    skipped_total += skipped;
  }
  printf("%s: %d entries checked, %d skipped at relu kinks\n", act, checked_total, skipped_total);
  free(pat0), free(pat1), free(pat2);
  ch_free_aligned(p);
  ch_free_aligned(g);
  net_destroy(&n);
}

/* Hook that records the order of units and snapshots each unit's gradient when it fires. */
typedef struct hook_log {
  int calls, order[16];
  const ch_layout *l;
  const float *grads;
  float *snap;
} hook_log;

static ch_status record_unit(void *ctx, int unit) {
  hook_log *h = ctx;
  CHT_ASSERT(h->calls < 16, "hook fired more than 16 times");
  h->order[h->calls++] = unit;
  const ch_unit *u = &h->l->units[unit];
  memcpy(h->snap + u->offset, h->grads + u->offset, u->numel * sizeof(float));
  return CH_OK;
}

static void check_reverse_order(const hook_log *h, int nunits, const char *what) {
  CHT_ASSERT(h->calls == nunits, "%s: hook fired %d times for %d units", what, h->calls, nunits);
  for (int i = 0; i < nunits; i++)
    CHT_ASSERT(h->order[i] == nunits - 1 - i, "%s: hook call %d was unit %d, expected %d", what, i,
               h->order[i], nunits - 1 - i);
}

/* Accumulation, loss_scale, and hooks. Every result here comes from the same fp32 kernels run
 * on the same inputs; the only difference is where the GEMM adds the existing gradient, so
 * results agree to an ulp or so of the largest entry (measured 1.2e-7 absolute on |g| <= 1.4).
 * Tolerance 1e-5 relative with floor 0.1 * max|ref| (absolute 1e-6 * max|ref|, ~8 ulps, for
 * small entries, whose relative error cancellation makes meaningless); a bug is an O(1) error. */
static double max_abs(const float *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
  return m;
}

static void test_contract(int activation) {
  const char *act = activation == CH_ACT_GELU ? "gelu" : "relu";
  net n;
  net_create(&n, activation, 31);
  const ch_layout *l = n.l;
  size_t numel = l->numel;
  float *p = params_new(l, 32);
  float *g1 = ch_alloc_aligned(numel * sizeof(float)), *g2 = ch_alloc_aligned(numel * sizeof(float));
  float *ref = ch_alloc_aligned(numel * sizeof(float)), *base = ch_alloc_aligned(numel * sizeof(float));
  float *snap = ch_alloc_aligned(numel * sizeof(float));
  double loss1, loss2;

  /* One call from zero, with the hook: reverse order, each unit final when announced. */
  hook_log h = {.l = l, .grads = g1, .snap = snap};
  ch_unit_hook hook = {.grad_ready = record_unit, .ctx = &h};
  CHT_OK(ch_model_train_step(n.m, p, g1, n.x, n.y, BATCH, 1.0f, &hook));
  CHT_OK(ch_model_take_loss(n.m, &loss1));
  check_reverse_order(&h, l->nunits, act);
  for (int u = 0; u < l->nunits; u++) {
    const ch_unit *un = &l->units[u];
    CHT_ASSERT(!memcmp(snap + un->offset, g1 + un->offset, un->numel * sizeof(float)),
               "%s: unit %d's gradient changed after its hook fired", act, u);
  }
  double nonzero = 0;
  for (int t = 0; t < l->nparams; t++)
    for (int64_t j = 0; j < ch_param_numel(&l->params[t]); j++)
      nonzero += g1[l->offsets[t] + (size_t)j] != 0.0f;
  CHT_ASSERT(nonzero > 0.5 * numel, "%s: gradient mostly zero", act);

  /* Two calls add up: g2 = g1 + g1. */
  memcpy(g2, g1, numel * sizeof(float));
  CHT_OK(ch_model_train_step(n.m, p, g2, n.x, n.y, BATCH, 1.0f, NULL));
  CHT_OK(ch_model_take_loss(n.m, &loss2));
  CHT_ASSERT(loss2 == loss1, "%s: loss changed between identical calls", act);
  for (size_t i = 0; i < numel; i++) ref[i] = 2.0f * g1[i];
  double e = cht_max_rel_err(g2, ref, numel, 0.1 * max_abs(ref, numel));
  CHT_ASSERT(e <= 1e-5, "%s: two calls != 2x one call (rel err %g)", act, e);

  /* Accumulating onto random (non-zero) gradients, with loss_scale 0.25: base + g1 / 4. */
  cht_fill_uniform(base, numel, 33, 0);
  memcpy(g2, base, numel * sizeof(float));
  CHT_OK(ch_model_train_step(n.m, p, g2, n.x, n.y, BATCH, 0.25f, NULL));
  CHT_OK(ch_model_take_loss(n.m, &loss2));
  CHT_ASSERT(loss2 == loss1, "%s: loss_sum must be unscaled (%g vs %g)", act, loss2, loss1);
  for (size_t i = 0; i < numel; i++) ref[i] = base[i] + 0.25f * g1[i];
  e = cht_max_rel_err(g2, ref, numel, 0.1 * max_abs(ref, numel));
  CHT_ASSERT(e <= 1e-5, "%s: scaled accumulation onto random grads: rel err %g", act, e);

  /* batch 0: no compute, gradients untouched, but every unit's hook fires, in reverse. */
  memcpy(g2, base, numel * sizeof(float));
  h = (hook_log){.l = l, .grads = g2, .snap = snap};
  double loss0 = -1;
  CHT_OK(ch_model_train_step(n.m, p, g2, n.x, n.y, 0, 1.0f, &hook));
  CHT_OK(ch_model_take_loss(n.m, &loss0));
  check_reverse_order(&h, l->nunits, "batch 0");
  CHT_ASSERT(loss0 == 0.0, "batch 0: loss_sum %g", loss0);
  CHT_ASSERT(!memcmp(g2, base, numel * sizeof(float)), "batch 0 changed the gradients");

  ch_free_aligned(p), ch_free_aligned(g1), ch_free_aligned(g2);
  ch_free_aligned(ref), ch_free_aligned(base), ch_free_aligned(snap);
  net_destroy(&n);
  printf("%s: accumulation, loss_scale and hook order ok\n", act);
}

int main(void) {
  CHT_OK(ch_blas_init(1));
  test_fd(CH_ACT_GELU);
  test_fd(CH_ACT_RELU);
  test_contract(CH_ACT_GELU);
  test_contract(CH_ACT_RELU);
  printf("test_mlp_fd: ok\n");
  return 0;
}
