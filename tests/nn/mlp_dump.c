/* mlp_dump OUT.h5 ACT DEPTH HIDDEN IN CLASSES BATCH SEED [OPTIM STEPS]
 *
 * Writes everything a PyTorch reference needs to check the MLP (tests/python/test_mlp_torch.py):
 *   /x [BATCH, IN] float32       inputs, U(-2, 2) from (SEED, stream 1)
 *   /y [BATCH] int32             labels, uniform in [0, CLASSES) from (SEED, stream 2)
 *   /loss  scalar double         mean cross-entropy over the batch at the initial parameters
 *   /params/<name>, /grads/<name> (logical shapes, spec table names = PyTorch state_dict names)
 *     grads are of the MEAN loss (loss_scale = 1 / BATCH), as F.cross_entropy's default.
 * With OPTIM (sgd | adamw), it then takes STEPS optimizer steps on the same batch:
 *   /losses [STEPS] double       mean loss before each step
 *   /final_params/<name>
 * and records the hyper-parameters as attributes of the root group (optim, lr, momentum,
 * weight_decay, beta1, beta2, eps, steps), next to the model's (activation, depth, hidden,
 * in_features, classes, batch, seed). Serial HDF5 with the default file access properties. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/config.h"
#include "cohort/kernels.h"
#include "cohort/model.h"
#include "cohort/optim.h"
#include "cohort/rng.h"
#include "testlib.h"
#include "h5_dump.h"

static long parse_int(const char *s, const char *what, long lo) {
  char *end;
  long v = strtol(s, &end, 10);
  CHT_ASSERT(*s && !*end && v >= lo, "%s: expected an integer >= %ld, got '%s'", what, lo, s);
  return v;
}

int main(int argc, char **argv) {
  if (argc != 9 && argc != 11) {
    fprintf(stderr, "usage: %s OUT.h5 relu|gelu DEPTH HIDDEN IN CLASSES BATCH SEED "
                    "[sgd|adamw STEPS]\n", argv[0]);
    return 2;
  }
  const char *out = argv[1], *act = argv[2];
  CHT_ASSERT(!strcmp(act, "relu") || !strcmp(act, "gelu"), "ACT must be relu or gelu: '%s'", act);
  int depth = (int)parse_int(argv[3], "DEPTH", 0), hidden = (int)parse_int(argv[4], "HIDDEN", 1);
  int in = (int)parse_int(argv[5], "IN", 1), classes = (int)parse_int(argv[6], "CLASSES", 2);
  int batch = (int)parse_int(argv[7], "BATCH", 1);
  uint64_t seed = (uint64_t)parse_int(argv[8], "SEED", 0);
  const char *optim = argc == 11 ? argv[9] : NULL;
  int steps = optim ? (int)parse_int(argv[10], "STEPS", 1) : 0;
  CHT_ASSERT(!optim || !strcmp(optim, "sgd") || !strcmp(optim, "adamw"),
             "OPTIM must be sgd or adamw: '%s'", optim);

  CHT_OK(ch_blas_init(1));
  ch_config cfg;
  ch_config_defaults(&cfg);
  cfg.model.type = CH_MODEL_MLP;
  cfg.model.depth = depth;
  cfg.model.hidden = hidden;
  cfg.model.activation = !strcmp(act, "gelu") ? CH_ACT_GELU : CH_ACT_RELU;
  /* Hyper-parameters are set here, not taken from the defaults, so the reference can rebuild
   * the optimizer from the file alone. Weight decay is large enough that applying it to biases
   * (or not at all) moves the trajectory far beyond the tolerance; betas are not torch's
   * defaults, so an optimizer that ignores them is caught too. */
  if (optim && !strcmp(optim, "adamw")) {
    cfg.optim.type = CH_OPTIM_ADAMW;
    cfg.optim.lr = 1e-2;
    cfg.optim.weight_decay = 0.1;
    cfg.optim.beta1 = 0.85;
    cfg.optim.beta2 = 0.995;
    cfg.optim.eps = 1e-8;
    cfg.optim.momentum = 0.0;
  } else {
    cfg.optim.type = CH_OPTIM_SGD;
    cfg.optim.lr = 0.1;
    cfg.optim.momentum = 0.9;
    cfg.optim.weight_decay = 0.05;
  }

  ch_model *m;
  CHT_OK(ch_model_create(ch_backend_cpu(), &cfg.model, in, classes, batch, &m));
  const ch_layout *l = ch_model_layout(m);
  float *params = ch_alloc_aligned(l->numel * sizeof(float));
  float *grads = ch_alloc_aligned(l->numel * sizeof(float));
  float *x = malloc(sizeof *x * (size_t)batch * in);
  int32_t *y = malloc(sizeof *y * (size_t)batch);
  CHT_ASSERT(params && grads && x && y, "out of memory");
  ch_layout_init_params(l, params, seed);
  cht_fill_uniform(x, (size_t)batch * in, seed, 1);
  for (size_t i = 0; i < (size_t)batch * in; i++) x[i] *= 2.0f;
  for (int i = 0; i < batch; i++) y[i] = (int32_t)ch_rng_below(seed, 2, (uint64_t)i, (uint64_t)classes);

  /* Mean loss: gradients of (1/B) * sum of row losses. */
  float scale = 1.0f / (float)batch;
  double loss_sum;
  CHT_OK(ch_model_train_step(m, params, grads, x, y, batch, scale, NULL));
  CHT_OK(ch_model_take_loss(m, &loss_sum));
  double loss = loss_sum / batch;

  hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(f);
  hsize_t xd[2] = {(hsize_t)batch, (hsize_t)in}, yd[1] = {(hsize_t)batch};
  h5d_write_array(f, "x", H5T_NATIVE_FLOAT, 2, xd, x);
  h5d_write_array(f, "y", H5T_NATIVE_INT32, 1, yd, y);
  h5d_write_array(f, "loss", H5T_NATIVE_DOUBLE, 0, NULL, &loss);
  h5d_write_tensors(f, "params", l, params);
  h5d_write_tensors(f, "grads", l, grads);
  h5d_attr_string(f, "activation", act);
  h5d_attr_int(f, "depth", depth);
  h5d_attr_int(f, "hidden", hidden);
  h5d_attr_int(f, "in_features", in);
  h5d_attr_int(f, "classes", classes);
  h5d_attr_int(f, "batch", batch);
  h5d_attr_int(f, "seed", (long long)seed);

  if (optim) {
    ch_optim *o;
    ch_segment all;
    ch_shard whole = ch_shard_range(&all, 0, l->numel);
    CHT_OK(ch_optim_create(ch_backend_cpu(), &cfg.optim, l, &whole, &o));
    double *losses = malloc(sizeof *losses * (size_t)steps);
    CHT_ASSERT(losses, "out of memory");
    for (int s = 0; s < steps; s++) {
      memset(grads, 0, l->numel * sizeof(float));
      CHT_OK(ch_model_train_step(m, params, grads, x, y, batch, scale, NULL));
      CHT_OK(ch_model_take_loss(m, &loss_sum));
      losses[s] = loss_sum / batch;
      ch_optim_step(o, params, CH_ADDR_FLAT, grads, CH_ADDR_FLAT, cfg.optim.lr);
    }
    CHT_ASSERT(ch_optim_steps(o) == steps, "optimizer counted %lld steps, took %d",
               (long long)ch_optim_steps(o), steps);
    hsize_t sd[1] = {(hsize_t)steps};
    h5d_write_array(f, "losses", H5T_NATIVE_DOUBLE, 1, sd, losses);
    h5d_write_tensors(f, "final_params", l, params);
    h5d_attr_string(f, "optim", optim);
    h5d_attr_double(f, "lr", cfg.optim.lr);
    h5d_attr_double(f, "momentum", cfg.optim.momentum);
    h5d_attr_double(f, "weight_decay", cfg.optim.weight_decay);
    h5d_attr_double(f, "beta1", cfg.optim.beta1);
    h5d_attr_double(f, "beta2", cfg.optim.beta2);
    h5d_attr_double(f, "eps", cfg.optim.eps);
    h5d_attr_int(f, "steps", steps);
    free(losses);
    ch_optim_destroy(o);
  }
  H5CK(H5Fclose(f));
  printf("mlp_dump: %s: %s depth %d hidden %d in %d classes %d batch %d seed %llu: loss %.9g%s%s\n",
         out, act, depth, hidden, in, classes, batch, (unsigned long long)seed, loss,
         optim ? ", then " : "", optim ? optim : "");
  ch_free_aligned(params);
  ch_free_aligned(grads);
  free(x);
  free(y);
  ch_model_destroy(m);
  return 0;
}
