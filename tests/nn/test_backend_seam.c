/* The backend seam: models and optimizers reach kernels only through their backend.
 * A counting backend forwards every op to the CPU backend and counts it, but behaves like a
 * device in what it does not forward: its allocations come back filled with NaN bytes, and
 * staging COPIES host batches into backend buffers instead of passing the host pointer. The
 * MLP and the GPT (train step, eval, forward, KV-cache decode) and AdamW/SGD steps run on it
 * and on the CPU backend from the same parameters; results must be bit-identical, every op the
 * models need must have been called through the table, and every allocation freed through it.
 * Also: the bf16 casts round to nearest even. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/backend.h"
#include "cohort/config.h"
#include "cohort/model.h"
#include "cohort/optim.h"
#include "cohort/rng.h"
#include "testlib.h"

enum {
  OP_ALLOC, OP_FREE, OP_UPLOAD, OP_DOWNLOAD, OP_STAGE, OP_MEMSET, OP_SYNC, OP_LINEAR_FWD,
  OP_LINEAR_BWD, OP_MATMUL_FWD, OP_MATMUL_BWD, OP_LAYERNORM_FWD, OP_LAYERNORM_BWD, OP_GELU_FWD,
  OP_GELU_BWD, OP_RELU_FWD, OP_RELU_BWD, OP_ADD, OP_SCALE, OP_SUMSQ, OP_ATTENTION_FWD,
  OP_ATTENTION_BWD, OP_ATTENTION_DECODE, OP_EMBEDDING_FWD, OP_EMBEDDING_BWD, OP_XENT_FWD,
  OP_XENT_FUSED, OP_ADAMW, OP_SGD, OP_CAST_F32_BF16, OP_CAST_BF16_F32, OP_ATTENTION_SAVED,
  OP_MATMUL_GELU_FWD, OP_MATMUL_GELU_BWD, OP_ADD_LAYERNORM_FWD, NOPS
};
static const char *op_names[NOPS] = {
  "alloc", "free", "upload", "download", "stage", "memset", "sync", "linear_fwd", "linear_bwd",
  "matmul_fwd", "matmul_bwd", "layernorm_fwd", "layernorm_bwd", "gelu_fwd", "gelu_bwd",
  "relu_fwd", "relu_bwd", "add", "scale", "sumsq", "attention_fwd", "attention_bwd",
  "attention_decode", "embedding_fwd", "embedding_bwd", "xent_fwd", "xent_fused", "adamw", "sgd",
  "cast_f32_bf16", "cast_bf16_f32", "attention_saved", "matmul_gelu_fwd", "matmul_gelu_bwd",
  "add_layernorm_fwd"};

static long counts[NOPS];
static long live; /* allocations not yet freed */

#define CPU ch_backend_cpu()
/* A counted op: forwards to the CPU backend's entry of the same name. */
#define FWD(op, idx, params, args)             \
  static ch_status c_##op params {             \
    (void)be;                                  \
    counts[idx]++;                             \
    return CPU->ops->op args;                  \
  }

static ch_status c_alloc(const ch_backend *be, size_t bytes, void **out) {
  (void)be;
  counts[OP_ALLOC]++;
  CH_CHECK(CPU->ops->alloc(CPU, bytes, out));
  memset(*out, 0xff, bytes); /* NaN: a model reading memory it never wrote gets NaN */
  live++;
  return CH_OK;
}

static void c_free(const ch_backend *be, void *p) {
  (void)be;
  counts[OP_FREE]++;
  if (p) live--;
  CPU->ops->free(CPU, p);
}

/* A device's staging: the batch is copied, so a model that read the host pointer directly would
 * still pass, but one that read staging it never filled would not. */
static ch_status c_stage(const ch_backend *be, void *staging, const void *host, size_t bytes,
                         const void **dev) {
  (void)be;
  counts[OP_STAGE]++;
  if (bytes) memcpy(staging, host, bytes);
  *dev = staging;
  return CH_OK;
}

FWD(upload, OP_UPLOAD, (const ch_backend *be, void *d, const void *h, size_t n), (CPU, d, h, n))
FWD(download, OP_DOWNLOAD, (const ch_backend *be, void *h, const void *s, size_t n), (CPU, h, s, n))
FWD(memset, OP_MEMSET, (const ch_backend *be, void *d, int v, size_t n), (CPU, d, v, n))
FWD(sync, OP_SYNC, (const ch_backend *be), (CPU))
FWD(linear_fwd, OP_LINEAR_FWD,
    (const ch_backend *be, float *y, const float *x, const float *w, const float *b, int64_t B,
     int in, int out), (CPU, y, x, w, b, B, in, out))
FWD(linear_bwd, OP_LINEAR_BWD,
    (const ch_backend *be, float *dx, float *dw, float *db, const float *dy, const float *x,
     const float *w, int64_t B, int in, int out), (CPU, dx, dw, db, dy, x, w, B, in, out))
FWD(matmul_fwd, OP_MATMUL_FWD,
    (const ch_backend *be, float *y, const float *x, const float *w, const float *b, int64_t B,
     int in, int out), (CPU, y, x, w, b, B, in, out))
FWD(matmul_bwd, OP_MATMUL_BWD,
    (const ch_backend *be, float *dx, float *dw, float *db, const float *dy, const float *x,
     const float *w, int64_t B, int in, int out), (CPU, dx, dw, db, dy, x, w, B, in, out))
FWD(layernorm_fwd, OP_LAYERNORM_FWD,
    (const ch_backend *be, float *y, float *mean, float *rstd, const float *x, const float *w,
     const float *b, int64_t rows, int dim, float eps), (CPU, y, mean, rstd, x, w, b, rows, dim, eps))
FWD(layernorm_bwd, OP_LAYERNORM_BWD,
    (const ch_backend *be, float *dx, float *dw, float *db, const float *dy, const float *x,
     const float *mean, const float *rstd, const float *w, int64_t rows, int dim),
    (CPU, dx, dw, db, dy, x, mean, rstd, w, rows, dim))
FWD(gelu_fwd, OP_GELU_FWD, (const ch_backend *be, float *y, const float *x, int64_t n), (CPU, y, x, n))
FWD(gelu_bwd, OP_GELU_BWD, (const ch_backend *be, float *dx, const float *dy, const float *x, int64_t n),
    (CPU, dx, dy, x, n))
FWD(relu_fwd, OP_RELU_FWD, (const ch_backend *be, float *y, const float *x, int64_t n), (CPU, y, x, n))
FWD(relu_bwd, OP_RELU_BWD, (const ch_backend *be, float *dx, const float *dy, const float *x, int64_t n),
    (CPU, dx, dy, x, n))
FWD(add, OP_ADD, (const ch_backend *be, float *y, const float *a, const float *b, int64_t n),
    (CPU, y, a, b, n))
FWD(scale, OP_SCALE, (const ch_backend *be, float *x, float s, int64_t n), (CPU, x, s, n))
FWD(sumsq, OP_SUMSQ, (const ch_backend *be, const float *x, int64_t n, double *out), (CPU, x, n, out))
FWD(attention_fwd, OP_ATTENTION_FWD,
    (const ch_backend *be, float *out, float *saved, const float *qkv, int B, int T, int NH, int HS),
    (CPU, out, saved, qkv, B, T, NH, HS))
FWD(attention_bwd, OP_ATTENTION_BWD,
    (const ch_backend *be, float *dqkv, const float *dout, const float *qkv, const float *out,
     const float *saved, int B, int T, int NH, int HS), (CPU, dqkv, dout, qkv, out, saved, B, T, NH, HS))
FWD(attention_decode, OP_ATTENTION_DECODE,
    (const ch_backend *be, float *out, float *scratch, const float *qkv, float *k, float *v, int past,
     int n, int NH, int HS), (CPU, out, scratch, qkv, k, v, past, n, NH, HS))
FWD(embedding_fwd, OP_EMBEDDING_FWD,
    (const ch_backend *be, float *y, const int32_t *tok, int64_t ldt, int pos0, const float *wte,
     const float *wpe, int B, int T, int C), (CPU, y, tok, ldt, pos0, wte, wpe, B, T, C))
FWD(embedding_bwd, OP_EMBEDDING_BWD,
    (const ch_backend *be, float *dwte, float *dwpe, const float *dy, const int32_t *tok,
     int64_t ldt, int B, int T, int C), (CPU, dwte, dwpe, dy, tok, ldt, B, T, C))
FWD(xent_fwd, OP_XENT_FWD,
    (const ch_backend *be, const float *logits, const int32_t *labels, int64_t ldl, int B, int T,
     int classes, double *loss, int64_t *correct), (CPU, logits, labels, ldl, B, T, classes, loss, correct))
FWD(xent_fused, OP_XENT_FUSED,
    (const ch_backend *be, float *dl, const float *logits, const int32_t *labels, int64_t ldl, int B,
     int T, int classes, float scale, double *loss), (CPU, dl, logits, labels, ldl, B, T, classes, scale, loss))
FWD(adamw, OP_ADAMW,
    (const ch_backend *be, const ch_span *s, int ns, float *p, int pf, const float *g, int gf, float *m,
     float *v, const ch_adamw_args *a), (CPU, s, ns, p, pf, g, gf, m, v, a))
FWD(sgd, OP_SGD,
    (const ch_backend *be, const ch_span *s, int ns, float *p, int pf, const float *g, int gf, float *m,
     const ch_sgd_args *a), (CPU, s, ns, p, pf, g, gf, m, a))
FWD(cast_f32_bf16, OP_CAST_F32_BF16, (const ch_backend *be, uint16_t *y, const float *x, int64_t n),
    (CPU, y, x, n))
FWD(cast_bf16_f32, OP_CAST_BF16_F32, (const ch_backend *be, float *y, const uint16_t *x, int64_t n),
    (CPU, y, x, n))
FWD(attention_saved, OP_ATTENTION_SAVED,
    (const ch_backend *be, int B, int T, int NH, int HS, size_t *floats), (CPU, B, T, NH, HS, floats))
FWD(matmul_gelu_fwd, OP_MATMUL_GELU_FWD,
    (const ch_backend *be, float *pre, float *y, const float *x, const float *w, const float *b,
     int64_t B, int in, int out), (CPU, pre, y, x, w, b, B, in, out))
FWD(matmul_gelu_bwd, OP_MATMUL_GELU_BWD,
    (const ch_backend *be, float *dx, float *dw, float *db, float *dy, const float *pre,
     const float *x, const float *w, int64_t B, int in, int out),
    (CPU, dx, dw, db, dy, pre, x, w, B, in, out))
FWD(add_layernorm_fwd, OP_ADD_LAYERNORM_FWD,
    (const ch_backend *be, float *res, float *y, float *mean, float *rstd, const float *a,
     const float *b, const float *w, const float *bias, int64_t rows, int dim, float eps),
    (CPU, res, y, mean, rstd, a, b, w, bias, rows, dim, eps))

static const ch_backend_ops counting_ops = {
  .alloc = c_alloc, .free = c_free, .upload = c_upload, .download = c_download,
  .stage = c_stage, .memset = c_memset, .sync = c_sync, .linear_fwd = c_linear_fwd,
  .linear_bwd = c_linear_bwd, .matmul_fwd = c_matmul_fwd, .matmul_bwd = c_matmul_bwd,
  .layernorm_fwd = c_layernorm_fwd, .layernorm_bwd = c_layernorm_bwd, .gelu_fwd = c_gelu_fwd,
  .gelu_bwd = c_gelu_bwd, .relu_fwd = c_relu_fwd, .relu_bwd = c_relu_bwd, .add = c_add,
  .scale = c_scale, .sumsq = c_sumsq, .attention_fwd = c_attention_fwd,
  .attention_bwd = c_attention_bwd, .attention_decode = c_attention_decode,
  .embedding_fwd = c_embedding_fwd, .embedding_bwd = c_embedding_bwd, .xent_fwd = c_xent_fwd,
  .xent_fused = c_xent_fused, .adamw = c_adamw, .sgd = c_sgd, .cast_f32_bf16 = c_cast_f32_bf16,
  .cast_bf16_f32 = c_cast_bf16_f32, .attention_saved = c_attention_saved,
  .matmul_gelu_fwd = c_matmul_gelu_fwd, .matmul_gelu_bwd = c_matmul_gelu_bwd,
  .add_layernorm_fwd = c_add_layernorm_fwd,
};
static const ch_backend counting = {.name = "counting", .ops = &counting_ops, .ctx = NULL};

static void same(const void *a, const void *b, size_t bytes, const char *what) {
  CHT_ASSERT(memcmp(a, b, bytes) == 0, "%s differs between the CPU and the counting backend", what);
}

/* What one backend computed from the same inputs. */
typedef struct run {
  float *params, *grads, *logits;
  double loss, eval_loss;
  int64_t correct;
} run;

/* Train step (two accumulated micro-batches), eval, forward, then optimizer steps. */
static void run_model(const ch_backend *be, const ch_config *cfg, int64_t in, int64_t classes,
                      int batch, const float *x, const int32_t *y, uint64_t seed, run *r) {
  ch_model *m;
  CHT_OK(ch_model_create(be, &cfg->model, in, classes, batch, &m));
  CHT_ASSERT(ch_model_backend(m) == be, "model backend");
  const ch_layout *l = ch_model_layout(m);
  size_t n = l->numel;
  r->params = ch_alloc_aligned(n * sizeof(float));
  r->grads = ch_alloc_aligned(n * sizeof(float));
  int64_t rows = (int64_t)batch * ch_model_targets(m);
  r->logits = malloc(sizeof(float) * (size_t)rows * (size_t)(ch_model_vocab(m) ? ch_model_vocab(m) : classes));
  CHT_ASSERT(r->params && r->grads && r->logits, "oom");
  ch_layout_init_params(l, r->params, seed);
  memset(r->grads, 0, n * sizeof(float));
  float scale = 1.0f / (float)(2 * rows);
  CHT_OK(ch_model_train_step(m, r->params, r->grads, x, y, batch, scale, NULL));
  CHT_OK(ch_model_train_step(m, r->params, r->grads, x, y, batch, scale, NULL));
  CHT_OK(ch_model_take_loss(m, &r->loss));
  r->correct = 0;
  CHT_OK(ch_model_eval(m, r->params, x, y, batch, NULL, &r->eval_loss, &r->correct));
  const float *logits;
  CHT_OK(ch_model_forward(m, r->params, x, y, batch, &logits));
  size_t lb = sizeof(float) * (size_t)rows * (size_t)(ch_model_vocab(m) ? ch_model_vocab(m) : classes);
  CHT_OK(ch_op_download(be, r->logits, logits, lb));
  /* AdamW then SGD with momentum, two steps each, over the whole buffer. */
  ch_segment all;
  ch_shard whole = ch_shard_range(&all, 0, n);
  for (int type = 0; type < 2; type++) {
    ch_optim_cfg oc = ch_config_optim(cfg);
    oc.type = type == 0 ? CH_OPTIM_ADAMW : CH_OPTIM_SGD;
    oc.momentum = 0.9;
    oc.weight_decay = 0.1;
    ch_optim *o;
    CHT_OK(ch_optim_create(be, &oc, l, &whole, &o));
    CHT_ASSERT(ch_optim_backend(o) == be, "optimizer backend");
    for (int s = 0; s < 2; s++) CHT_OK(ch_optim_step(o, r->params, CH_ADDR_FLAT, r->grads, CH_ADDR_FLAT, 1e-2));
    ch_optim_destroy(o);
  }
  double norm;
  CHT_OK(ch_clip_grad_norm(be, r->grads, n, 1e-3, NULL, &norm));
  ch_model_destroy(m);
}

static void compare(const run *a, const run *b, size_t n, size_t logits, const char *model) {
  same(&a->loss, &b->loss, sizeof a->loss, "training loss");
  same(&a->eval_loss, &b->eval_loss, sizeof a->eval_loss, "eval loss");
  CHT_ASSERT(a->correct == b->correct, "correct count");
  same(a->logits, b->logits, logits * sizeof(float), "logits");
  same(a->grads, b->grads, n * sizeof(float), "gradients");
  same(a->params, b->params, n * sizeof(float), "parameters after the optimizer");
  CHT_ASSERT(isfinite(a->loss) && a->loss > 0, "%s loss %g", model, a->loss);
  printf("%s: loss %.9g, eval %.9g, %lld correct: identical on both backends\n", model, a->loss,
         a->eval_loss, (long long)a->correct);
}

static void free_run(run *r) {
  ch_free_aligned(r->params);
  ch_free_aligned(r->grads);
  free(r->logits);
}

static void check_mlp(void) {
  enum { IN = 7, CLASSES = 5, B = 6 };
  ch_config cfg;
  ch_config_defaults(&cfg);
  cfg.model.type = CH_MODEL_MLP;
  cfg.model.depth = 2;
  cfg.model.hidden = 16;
  float x[B * IN];
  int32_t y[B];
  cht_fill_uniform(x, B * IN, 3, 1);
  for (int i = 0; i < B; i++) y[i] = (int32_t)((3 * i + 1) % CLASSES);
  for (int act = 0; act < 2; act++) {
    cfg.model.activation = act == 0 ? CH_ACT_RELU : CH_ACT_GELU;
    run a, b;
    run_model(ch_backend_cpu(), &cfg, IN, CLASSES, B, x, y, 11, &a);
    run_model(&counting, &cfg, IN, CLASSES, B, x, y, 11, &b);
    ch_model *m;
    CHT_OK(ch_model_create(ch_backend_cpu(), &cfg.model, IN, CLASSES, 0, &m));
    compare(&a, &b, ch_model_layout(m)->numel, (size_t)B * CLASSES, act == 0 ? "mlp relu" : "mlp gelu");
    ch_model_destroy(m);
    free_run(&a);
    free_run(&b);
  }
}

static void check_gpt(void) {
  enum { T = 8, V = 29, B = 3 };
  ch_config cfg;
  ch_config_defaults(&cfg);
  cht_gpt(&cfg.model, 2, 2, 16, T);
  int32_t win[B * (T + 1)];
  for (int i = 0; i < B * (T + 1); i++) win[i] = (int32_t)ch_rng_below(7, 1, (uint64_t)i, V);
  run a, b;
  run_model(ch_backend_cpu(), &cfg, 0, V, B, NULL, win, 13, &a);
  run_model(&counting, &cfg, 0, V, B, NULL, win, 13, &b);
  ch_model *ma, *mb;
  CHT_OK(ch_model_create(ch_backend_cpu(), &cfg.model, 0, V, 1, &ma));
  CHT_OK(ch_model_create(&counting, &cfg.model, 0, V, 1, &mb));
  size_t n = ch_model_layout(ma)->numel;
  compare(&a, &b, n, (size_t)B * T * V, "gpt");
  /* KV-cache decoding: a prompt of 3 tokens, then one at a time. */
  ch_kv_cache *ka, *kb;
  CHT_OK(ch_kv_cache_create(ma, 1, &ka));
  CHT_OK(ch_kv_cache_create(mb, 1, &kb));
  float la[V], lb[V];
  for (int t = 0; t < T; t += t == 0 ? 3 : 1) {
    int len = t == 0 ? 3 : 1;
    CHT_OK(ch_model_decode(ma, a.params, ka, 0, win + t, len, la));
    CHT_OK(ch_model_decode(mb, a.params, kb, 0, win + t, len, lb));
    same(la, lb, sizeof la, "decoded logits");
  }
  ch_kv_cache_destroy(ka);
  ch_kv_cache_destroy(kb);
  ch_model_destroy(ma);
  ch_model_destroy(mb);
  free_run(&a);
  free_run(&b);
}

static void check_casts(void) {
  /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: to even (1); 1 + 3 * 2^-8 rounds up. */
  float x[5] = {1.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.5f, NAN};
  uint16_t h[5];
  float back[5];
  CHT_OK(ch_op_cast_f32_bf16(&counting, h, x, 5));
  CHT_OK(ch_op_cast_bf16_f32(&counting, back, h, 5));
  CHT_ASSERT(back[0] == 1.0f && back[1] == 1.0f && back[2] == 1.0f + 0x1p-6f && back[3] == -2.5f,
             "bf16 rounding: %g %g %g %g", back[0], back[1], back[2], back[3]);
  CHT_ASSERT(isnan(back[4]), "NaN survives");
}

int main(void) {
  check_mlp();
  check_gpt();
  check_casts();
  /* Every op the models and optimizers use went through the table. (add is not among them:
   * the GPT's residual adds are fused into its LayerNorms, add_layernorm_fwd; ZeRO-2's gradient
   * accumulation calls it, tests/parallel.) */
  const int used[] = {OP_ALLOC, OP_FREE, OP_DOWNLOAD, OP_STAGE, OP_MEMSET, OP_LINEAR_FWD,
                      OP_LINEAR_BWD, OP_MATMUL_FWD, OP_MATMUL_BWD, OP_LAYERNORM_FWD,
                      OP_LAYERNORM_BWD, OP_GELU_FWD, OP_GELU_BWD, OP_RELU_FWD, OP_RELU_BWD,
                      OP_SCALE, OP_SUMSQ, OP_ATTENTION_FWD, OP_ATTENTION_BWD,
                      OP_ATTENTION_DECODE, OP_EMBEDDING_FWD, OP_EMBEDDING_BWD, OP_XENT_FWD,
                      OP_XENT_FUSED, OP_ADAMW, OP_SGD, OP_CAST_F32_BF16, OP_CAST_BF16_F32,
                      OP_ATTENTION_SAVED, OP_MATMUL_GELU_FWD, OP_MATMUL_GELU_BWD,
                      OP_ADD_LAYERNORM_FWD};
  for (size_t i = 0; i < sizeof used / sizeof used[0]; i++) {
    printf("  %-16s %ld\n", op_names[used[i]], counts[used[i]]);
    CHT_ASSERT(counts[used[i]] > 0, "op %s was never called through the backend", op_names[used[i]]);
  }
  CHT_ASSERT(live == 0, "%ld backend allocations were not freed through the backend", live);
  printf("ok backend seam\n");
  return 0;
}
