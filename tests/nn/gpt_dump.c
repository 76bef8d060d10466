/* gpt_dump DIR N_LAYER N_HEAD N_EMBD CONTEXT VOCAB BATCH SEED STEPS
 *
 * Everything tests/python/test_gpt_torch.py needs to check the GPT against PyTorch:
 *   DIR/ckpt/step-00000000.h5  the initial parameters, written by cohort's own checkpoint code
 *                              (ch_ckpt_save): the reference loads them from there with h5py;
 *   DIR/dump.h5:
 *     /tokens [STEPS + 1, BATCH, CONTEXT + 1] int32  windows of skewed draws from [0, VOCAB); batch 0 is
 *                                                     the one of the gradient check
 *     /logits [BATCH * CONTEXT, VOCAB] float32        forward of batch 0
 *     /loss   scalar double                           mean cross-entropy over its tokens
 *     /grads/<name>                                   gradients of that mean loss
 *     /losses [STEPS] double                          AdamW on batches 1..STEPS: mean loss
 *                                                     before each step
 *     /final_params/<name>
 *   with the optimizer's hyper-parameters as root attributes. Runs as one MPI rank. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/ckpt.h"
#include "cohort/comm.h"
#include "cohort/config.h"
#include "cohort/kernels.h"
#include "cohort/model.h"
#include "cohort/optim.h"
#include "cohort/rng.h"
#include "cohort/runtime.h"
#include "testlib.h"
#include "h5_dump.h"

static int arg_int(const char *s, const char *what, long lo) {
  char *end;
  long v = strtol(s, &end, 10);
  CHT_ASSERT(*s && !*end && v >= lo, "%s: expected an integer >= %ld, got '%s'", what, lo, s);
  return (int)v;
}

int main(int argc, char **argv) {
  ch_runtime *rt = NULL;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  CHT_OK(ch_blas_init(rt->ncores)); /* BLAS threads are the caller's, not runtime's */
  if (argc != 10) {
    fprintf(stderr, "usage: %s DIR N_LAYER N_HEAD N_EMBD CONTEXT VOCAB BATCH SEED STEPS\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  ch_config cfg;
  ch_config_defaults(&cfg);
  cht_gpt(&cfg.model, arg_int(argv[2], "N_LAYER", 1), arg_int(argv[3], "N_HEAD", 1),
          arg_int(argv[4], "N_EMBD", 1), arg_int(argv[5], "CONTEXT", 1));
  int V = arg_int(argv[6], "VOCAB", 2), B = arg_int(argv[7], "BATCH", 1);
  uint64_t seed = (uint64_t)arg_int(argv[8], "SEED", 0);
  int steps = arg_int(argv[9], "STEPS", 1), T = cfg.model.context;
  cfg.model.vocab_size = V;
  cfg.train.seed = (int64_t)seed;
  /* Not torch's defaults, and a decay large enough that decaying the wrong tensors shows. */
  cfg.optim.type = CH_OPTIM_ADAMW;
  cfg.optim.lr = 3e-3;
  cfg.optim.weight_decay = 0.1;
  cfg.optim.beta1 = 0.85;
  cfg.optim.beta2 = 0.99;
  cfg.optim.eps = 1e-8;

  ch_model *m;
  CHT_OK(ch_model_create(ch_backend_cpu(), &cfg.model, 0, V, B, &m));
  const ch_layout *l = ch_model_layout(m);
  size_t n = l->numel;
  float *params = ch_alloc_aligned(n * sizeof(float)), *grads = ch_alloc_aligned(n * sizeof(float));
  size_t per_batch = (size_t)B * (T + 1);
  int32_t *tokens = malloc(sizeof *tokens * per_batch * (size_t)(steps + 1));
  double *losses = malloc(sizeof *losses * (size_t)steps);
  CHT_ASSERT(params && grads && tokens && losses, "out of memory");
  ch_layout_init_params(l, params, seed);
  /* Skewed unigram draws (token = V u^3): a distribution the model can learn in a few steps,
   * so the AdamW losses fall and their match means something. */
  for (size_t i = 0; i < per_batch * (size_t)(steps + 1); i++) {
    float u = ch_rng_uniform(seed, 7, i);
    int32_t t = (int32_t)((float)V * u * u * u);
    tokens[i] = t < V ? t : V - 1;
  }

  /* The initial parameters as a committed cohort checkpoint. */
  ch_group g;
  CHT_OK(ch_group_world(&g));
  char ckdir[1024], path[1200];
  snprintf(ckdir, sizeof ckdir, "%s/ckpt", dir);
  ch_ckpt_buffer buf = {.kind = NULL, .data = params, .addr = CH_ADDR_FLAT};
  ch_segment all;
  ch_shard whole = ch_shard_range(&all, 0, n);
  ch_ckpt_meta meta = {.seed = (int64_t)seed, .world_size = 1};
  snprintf(meta.strategy, sizeof meta.strategy, "ddp");
  snprintf(meta.version, sizeof meta.version, "test");
  snprintf(meta.created, sizeof meta.created, "1970-01-01T00:00:00Z");
  meta.config = ch_config_to_yaml(&cfg);
  meta.model = (ch_ckpt_model_info){.model = cfg.model, .classes = V, .tokenizer = "byte"};
  ch_ckpt_policy keep = {1, 0};
  CHT_OK(ch_ckpt_save(&g, ckdir, &keep, l, &buf, 1, &whole, &meta, path, sizeof path));
  free(meta.config);

  const float *logits;
  CHT_OK(ch_model_forward(m, params, NULL, tokens, B, &logits));
  snprintf(path, sizeof path, "%s/dump.h5", dir);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  CHT_ASSERT(f >= 0, "cannot create %s", path);
  hsize_t ld[2] = {(hsize_t)B * T, (hsize_t)V};
  h5d_write_array(f, "logits", H5T_NATIVE_FLOAT, 2, ld, logits);

  float scale = (float)(1.0 / ((double)B * T));
  double loss_sum;
  memset(grads, 0, n * sizeof(float));
  CHT_OK(ch_model_train_step(m, params, grads, NULL, tokens, B, scale, NULL));
  CHT_OK(ch_model_take_loss(m, &loss_sum));
  double loss = loss_sum / ((double)B * T);
  h5d_write_array(f, "loss", H5T_NATIVE_DOUBLE, 0, NULL, &loss);
  h5d_write_tensors(f, "grads", l, grads);

  ch_optim *o;
  CHT_OK(ch_optim_create(ch_backend_cpu(), &cfg.optim, l, &whole, &o));
  for (int s = 0; s < steps; s++) {
    memset(grads, 0, n * sizeof(float));
    CHT_OK(ch_model_train_step(m, params, grads, NULL, tokens + per_batch * (size_t)(s + 1), B,
                               scale, NULL));
    CHT_OK(ch_model_take_loss(m, &loss_sum));
    losses[s] = loss_sum / ((double)B * T);
    ch_optim_step(o, params, CH_ADDR_FLAT, grads, CH_ADDR_FLAT, cfg.optim.lr);
  }
  hsize_t td[3] = {(hsize_t)steps + 1, (hsize_t)B, (hsize_t)T + 1}, sd[1] = {(hsize_t)steps};
  h5d_write_array(f, "tokens", H5T_NATIVE_INT32, 3, td, tokens);
  h5d_write_array(f, "losses", H5T_NATIVE_DOUBLE, 1, sd, losses);
  h5d_write_tensors(f, "final_params", l, params);
  h5d_attr_double(f, "lr", cfg.optim.lr);
  h5d_attr_double(f, "weight_decay", cfg.optim.weight_decay);
  h5d_attr_double(f, "beta1", cfg.optim.beta1);
  h5d_attr_double(f, "beta2", cfg.optim.beta2);
  h5d_attr_double(f, "eps", cfg.optim.eps);
  CHT_ASSERT(H5Fclose(f) >= 0, "closing %s", path);

  ch_optim_destroy(o);
  ch_group_destroy(&g);
  ch_model_destroy(m);
  ch_free_aligned(params);
  ch_free_aligned(grads);
  free(tokens);
  free(losses);
  ch_runtime_finalize();
  return 0;
}
