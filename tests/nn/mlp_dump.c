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

/* HDF5 calls return a negative value on failure (and print their own error stack). */
#define H5CK(expr) CHT_ASSERT((expr) >= 0, "HDF5 call failed: %s", #expr)

static void write_array(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                        const void *data) {
  hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
  H5CK(space);
  hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(d);
  H5CK(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  H5CK(H5Dclose(d));
  H5CK(H5Sclose(space));
}

static void attr_double(hid_t loc, const char *name, double v) {
  hid_t space = H5Screate(H5S_SCALAR);
  H5CK(space);
  hid_t a = H5Acreate2(loc, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(a);
  H5CK(H5Awrite(a, H5T_NATIVE_DOUBLE, &v));
  H5CK(H5Aclose(a));
  H5CK(H5Sclose(space));
}

static void attr_int(hid_t loc, const char *name, long long v) {
  hid_t space = H5Screate(H5S_SCALAR);
  H5CK(space);
  hid_t a = H5Acreate2(loc, name, H5T_NATIVE_LLONG, space, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(a);
  H5CK(H5Awrite(a, H5T_NATIVE_LLONG, &v));
  H5CK(H5Aclose(a));
  H5CK(H5Sclose(space));
}

static void attr_string(hid_t loc, const char *name, const char *v) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5CK(type);
  H5CK(H5Tset_size(type, strlen(v)));
  hid_t space = H5Screate(H5S_SCALAR);
  H5CK(space);
  hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(a);
  H5CK(H5Awrite(a, type, v));
  H5CK(H5Aclose(a));
  H5CK(H5Sclose(space));
  H5CK(H5Tclose(type));
}

/* One group holding every parameter of `flat` as a dataset of its logical shape. */
static void write_tensors(hid_t file, const char *group, const ch_layout *l, const float *flat) {
  hid_t g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(g);
  for (int t = 0; t < l->nparams; t++) {
    const ch_param_spec *s = &l->params[t];
    hsize_t dims[CH_MAX_DIMS];
    for (int d = 0; d < s->ndim; d++) dims[d] = (hsize_t)s->shape[d];
    write_array(g, s->name, H5T_NATIVE_FLOAT, s->ndim, dims, flat + l->offsets[t]);
  }
  H5CK(H5Gclose(g));
}

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
  CHT_OK(ch_model_create(&cfg, in, classes, batch, &m));
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
  CHT_OK(ch_model_train_step(m, params, grads, x, y, batch, scale, NULL, &loss_sum));
  double loss = loss_sum / batch;

  hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5CK(f);
  hsize_t xd[2] = {(hsize_t)batch, (hsize_t)in}, yd[1] = {(hsize_t)batch};
  write_array(f, "x", H5T_NATIVE_FLOAT, 2, xd, x);
  write_array(f, "y", H5T_NATIVE_INT32, 1, yd, y);
  write_array(f, "loss", H5T_NATIVE_DOUBLE, 0, NULL, &loss);
  write_tensors(f, "params", l, params);
  write_tensors(f, "grads", l, grads);
  attr_string(f, "activation", act);
  attr_int(f, "depth", depth);
  attr_int(f, "hidden", hidden);
  attr_int(f, "in_features", in);
  attr_int(f, "classes", classes);
  attr_int(f, "batch", batch);
  attr_int(f, "seed", (long long)seed);

  if (optim) {
    ch_optim *o;
    CHT_OK(ch_optim_create(&cfg, l, 0, l->numel, &o));
    double *losses = malloc(sizeof *losses * (size_t)steps);
    CHT_ASSERT(losses, "out of memory");
    for (int s = 0; s < steps; s++) {
      memset(grads, 0, l->numel * sizeof(float));
      CHT_OK(ch_model_train_step(m, params, grads, x, y, batch, scale, NULL, &loss_sum));
      losses[s] = loss_sum / batch;
      ch_optim_step(o, params, grads, cfg.optim.lr);
    }
    CHT_ASSERT(ch_optim_steps(o) == steps, "optimizer counted %lld steps, took %d",
               (long long)ch_optim_steps(o), steps);
    hsize_t sd[1] = {(hsize_t)steps};
    write_array(f, "losses", H5T_NATIVE_DOUBLE, 1, sd, losses);
    write_tensors(f, "final_params", l, params);
    attr_string(f, "optim", optim);
    attr_double(f, "lr", cfg.optim.lr);
    attr_double(f, "momentum", cfg.optim.momentum);
    attr_double(f, "weight_decay", cfg.optim.weight_decay);
    attr_double(f, "beta1", cfg.optim.beta1);
    attr_double(f, "beta2", cfg.optim.beta2);
    attr_double(f, "eps", cfg.optim.eps);
    attr_int(f, "steps", steps);
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
