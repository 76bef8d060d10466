/* Whole models on the CUDA backend against the CPU backend, from the same parameters and batch:
 * the MLP (ReLU and GELU) and a GPT, a training step of two accumulated micro-batches (the loss
 * and EVERY gradient), evaluation (loss, correct count), the forward's logits, two optimizer
 * steps (AdamW for the MLP in fp32; SGD otherwise: AdamW turns a gradient's noise into a step
 * of size lr wherever the gradient is near zero, the GPT's key bias (zero in exact arithmetic)
 * or a bf16-rounded MLP gradient, so no tolerance on parameters could bound it), clipping, and
 * the GPT's KV-cache decoding; in fp32 and in bf16 (GEMM operands rounded to
 * bf16, fp32 accumulation).
 *
 * Tolerances, as max |cuda - cpu| / max |cpu| over a tensor:
 *   fp32 1e-4: both sides compute in fp32 but sum in other orders (cuBLAS or the emulated GEMM
 *     vs OpenBLAS's blocked FMA loops, fp32 tree reductions vs the CPU's double accumulators);
 *     one reordered sum of k terms moves a result by ~k^0.5 2^-24 of its scale (~1e-6 at
 *     k = 64), and a two-block backward chains a few such steps;
 *   bf16 1e-2 (5 x 2^-9): each GEMM operand is rounded to 8 significant bits (relative error up
 *     to 2^-9 = 2e-3 per operand); summed over k products the errors partly cancel and grow a
 *     little with depth through the backward pass (measured: 2e-3 .. 4e-3); the loss, an average
 *     over many rows, is held to 1e-3.
 * The run prints every measured error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/backend.h"
#include "cohort/config.h"
#include "cohort/cuda.h"
#include "cohort/device.h"
#include "cohort/model.h"
#include "cohort/optim.h"
#include "cohort/rng.h"
#include "testlib.h"

/* max |a - b| / max |b|: the error relative to the tensor's scale. */
static double err(const float *a, const float *b, size_t n) {
  double d = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - (double)b[i]);
    if (!(e <= d)) d = e; /* NaN propagates */
    if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
  }
  return m > 0 ? d / m : d;
}

static void check(const char *model, const char *what, double e, double tol) {
  printf("| %-10s | %-22s | %.3e | %.0e |\n", model, what, e, tol);
  CHT_ASSERT(e <= tol, "%s %s: error %.3e above %.0e", model, what, e, tol);
}

/* What one backend computed, downloaded to the host. */
typedef struct run {
  float *grads, *params_after, *logits;
  double loss, eval_loss, norm;
  int64_t correct;
} run;

static void *dev_copy(const ch_backend *be, const void *h, size_t bytes) {
  void *d;
  CHT_OK(ch_op_alloc(be, bytes, &d));
  CHT_OK(ch_op_upload(be, d, h, bytes));
  return d;
}

static void run_model(const ch_backend *be, const ch_config *cfg, int64_t in, int64_t classes,
                      int batch, const float *x, const int32_t *y, const float *init, int adamw,
                      run *r) {
  ch_model *m;
  CHT_OK(ch_model_create(be, &cfg->model, in, classes, batch, &m));
  const ch_layout *l = ch_model_layout(m);
  size_t n = l->numel, bytes = n * sizeof(float);
  float *p = dev_copy(be, init, bytes), *g;
  CHT_OK(ch_op_alloc(be, bytes, (void **)&g));
  CHT_OK(ch_op_memset(be, g, 0, bytes));
  int64_t rows = (int64_t)batch * ch_model_targets(m), width = ch_model_vocab(m) ? ch_model_vocab(m) : classes;
  float scale = 1.0f / (float)(2 * rows);
  CHT_OK(ch_model_train_step(m, p, g, x, y, batch, scale, NULL));
  CHT_OK(ch_model_train_step(m, p, g, x, y, batch, scale, NULL));
  CHT_OK(ch_model_take_loss(m, &r->loss));
  r->grads = malloc(bytes);
  r->params_after = malloc(bytes);
  r->logits = malloc(sizeof(float) * (size_t)(rows * width));
  CHT_ASSERT(r->grads && r->params_after && r->logits, "oom");
  CHT_OK(ch_op_download(be, r->grads, g, bytes));
  r->correct = 0;
  CHT_OK(ch_model_eval(m, p, x, y, batch, NULL, &r->eval_loss, &r->correct));
  const float *logits;
  CHT_OK(ch_model_forward(m, p, x, y, batch, &logits));
  CHT_OK(ch_op_download(be, r->logits, logits, sizeof(float) * (size_t)(rows * width)));
  ch_segment all;
  ch_shard whole = ch_shard_range(&all, 0, n);
  ch_optim_cfg oc = ch_config_optim(cfg);
  oc.type = adamw ? CH_OPTIM_ADAMW : CH_OPTIM_SGD;
  oc.weight_decay = 0.1;
  ch_optim *o;
  CHT_OK(ch_optim_create(be, &oc, l, &whole, &o));
  for (int s = 0; s < 2; s++) CHT_OK(ch_optim_step(o, p, CH_ADDR_FLAT, g, CH_ADDR_FLAT, 1e-2));
  ch_optim_destroy(o);
  CHT_OK(ch_clip_grad_norm(be, g, n, 1e-3, NULL, &r->norm));
  CHT_OK(ch_op_download(be, r->params_after, p, bytes));
  ch_op_free(be, p);
  ch_op_free(be, g);
  ch_model_destroy(m);
}

static void compare(const char *model, const run *c, const run *ref, size_t n, size_t nlogits,
                    int bf16) {
  double tol = bf16 ? 1e-2 : 1e-4;
  check(model, "train loss", fabs(c->loss - ref->loss) / fabs(ref->loss), bf16 ? 1e-3 : 1e-5);
  check(model, "every gradient", err(c->grads, ref->grads, n), tol);
  check(model, "eval loss", fabs(c->eval_loss - ref->eval_loss) / fabs(ref->eval_loss),
        bf16 ? 1e-3 : 1e-5);
  check(model, "logits", err(c->logits, ref->logits, nlogits), tol);
  check(model, "grad norm", fabs(c->norm - ref->norm) / ref->norm, tol);
  check(model, "params after 2 updates", err(c->params_after, ref->params_after, n), tol);
  if (!bf16)
    CHT_ASSERT(c->correct == ref->correct, "%s: %lld correct on cuda, %lld on cpu", model,
               (long long)c->correct, (long long)ref->correct);
}

static void free_run(run *r) {
  free(r->grads);
  free(r->params_after);
  free(r->logits);
}

static void check_mlp(const ch_backend *cuda, int bf16) {
  int adamw = !bf16;
  enum { IN = 37, CLASSES = 11, B = 19 };
  ch_config cfg;
  ch_config_defaults(&cfg);
  cfg.model.type = CH_MODEL_MLP;
  cfg.model.depth = 2;
  cfg.model.hidden = 45;
  float x[B * IN];
  int32_t y[B];
  cht_fill_uniform(x, B * IN, 3, 1);
  for (int i = 0; i < B; i++) y[i] = (int32_t)((7 * i + 1) % CLASSES);
  for (int act = 0; act < 2; act++) {
    cfg.model.activation = act == 0 ? CH_ACT_RELU : CH_ACT_GELU;
    ch_model *m;
    CHT_OK(ch_model_create(ch_backend_cpu(), &cfg.model, IN, CLASSES, 0, &m));
    size_t n = ch_model_layout(m)->numel;
    float *init = malloc(n * sizeof(float));
    ch_layout_init_params(ch_model_layout(m), init, 11);
    run a, b;
    run_model(ch_backend_cpu(), &cfg, IN, CLASSES, B, x, y, init, adamw, &a);
    run_model(cuda, &cfg, IN, CLASSES, B, x, y, init, adamw, &b);
    compare(act == 0 ? "mlp relu" : "mlp gelu", &b, &a, n, (size_t)B * CLASSES, bf16);
    free(init);
    free_run(&a);
    free_run(&b);
    ch_model_destroy(m);
  }
}

static void check_gpt(const ch_backend *cuda, int bf16) {
  enum { T = 13, V = 53, B = 3 };
  ch_config cfg;
  ch_config_defaults(&cfg);
  cht_gpt(&cfg.model, 2, 3, 24, T); /* head size 8; C = 24 is not a multiple of 32 */
  int32_t win[B * (T + 1)];
  for (int i = 0; i < B * (T + 1); i++) win[i] = (int32_t)ch_rng_below(7, 1, (uint64_t)i, V);
  ch_model *ma, *mb;
  CHT_OK(ch_model_create(ch_backend_cpu(), &cfg.model, 0, V, 1, &ma));
  CHT_OK(ch_model_create(cuda, &cfg.model, 0, V, 1, &mb));
  size_t n = ch_model_layout(ma)->numel;
  float *init = malloc(n * sizeof(float));
  ch_layout_init_params(ch_model_layout(ma), init, 13);
  run a, b;
  run_model(ch_backend_cpu(), &cfg, 0, V, B, NULL, win, init, 0, &a);
  run_model(cuda, &cfg, 0, V, B, NULL, win, init, 0, &b);
  compare("gpt", &b, &a, n, (size_t)B * T * V, bf16);
  /* KV-cache decoding: a prompt of 4 tokens, then one at a time, the logits on the host. */
  float *pd = dev_copy(cuda, init, n * sizeof(float));
  ch_kv_cache *ka, *kb;
  CHT_OK(ch_kv_cache_create(ma, 1, &ka));
  CHT_OK(ch_kv_cache_create(mb, 1, &kb));
  float la[V], lb[V];
  double worst = 0;
  for (int t = 0; t < T; t += t == 0 ? 4 : 1) {
    int len = t == 0 ? 4 : 1;
    CHT_OK(ch_model_decode(ma, init, ka, 0, win + t, len, la));
    CHT_OK(ch_model_decode(mb, pd, kb, 0, win + t, len, lb));
    double e = err(lb, la, V);
    worst = e > worst ? e : worst;
  }
  check("gpt", "decoded logits", worst, bf16 ? 1e-2 : 1e-4);
  ch_kv_cache_destroy(ka);
  ch_kv_cache_destroy(kb);
  ch_op_free(cuda, pd);
  ch_model_destroy(ma);
  ch_model_destroy(mb);
  free(init);
  free_run(&a);
  free_run(&b);
}

int main(void) {
  const ch_cuda_plugin *plug = cohort_cuda_plugin();
  if (plug->device_count() < 1) {
    printf("no CUDA device: skipped\n");
    return 77;
  }
  printf("backend: %s\n| model      | check                  | error     | tol   |\n", plug->flavor);
  for (int bf16 = 0; bf16 < 2; bf16++) {
    ch_backend *cuda;
    CHT_OK(plug->backend_create(0, bf16 ? CH_PRECISION_BF16 : CH_PRECISION_FP32, &cuda));
    printf("-- %s\n", bf16 ? "bf16 GEMM operands vs the CPU in fp32" : "fp32 vs the CPU");
    check_mlp(cuda, bf16);
    check_gpt(cuda, bf16);
    plug->backend_destroy(cuda);
  }
  printf("ok cuda models\n");
  return 0;
}
