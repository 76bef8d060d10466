/* `cohort estimate CONFIG.yaml [key.sub=value ...] --ranks N [--json]`: per-rank memory and
 * traffic of every data-parallel strategy before launching a run. Serial; does not initialise
 * MPI: the dataset's shape is read with serial HDF5 and the model is built but never run. */
#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort/config.h"
#include "cohort/model.h"
#include "cohort/parallel.h"
#include "cohort/train.h"

static void usage(void) {
  fprintf(stderr,
          "usage: cohort estimate CONFIG.yaml [key.sub=value ...] --ranks N [--json]\n"
          "  per-rank memory (params, grads, optimizer, communication buffers, activations) and\n"
          "  bytes sent per step under ddp, zero1, zero2 and zero3 on N ranks, without running\n"
          "  e.g. cohort estimate configs/gpt-tiny.yaml train.micro_batch_size=8 --ranks 4\n"
          "  --json  one JSON object, bytes as integers\n");
}

/* Integer scalar root attribute `name` of an open file. */
static int read_attr(hid_t file, const char *path, const char *name, int64_t *v) {
  hid_t a = H5Aexists(file, name) > 0 ? H5Aopen(file, name, H5P_DEFAULT) : -1;
  int ok = a >= 0 && H5Aread(a, H5T_NATIVE_INT64, v) >= 0;
  if (a >= 0) H5Aclose(a);
  if (!ok) fprintf(stderr, "cohort estimate: data.path %s: no integer root attribute '%s'\n", path, name);
  return ok ? 0 : 1;
}

/* The model's data dimensions, as the trainer takes them from the file: features and classes
 * (MLP) or the vocabulary (GPT). Only root attributes are read, so a dataset of any size costs
 * nothing; the collective readers (ch_dataset_open) would need MPI. */
static int dataset_dims(const ch_config *cfg, int64_t *features, int64_t *classes) {
  const char *path = cfg->data.path;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our own message names the file and key */
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    fprintf(stderr, "cohort estimate: data.path %s: cannot open it as HDF5 (make one with "
            "`cohort data`)\n", path);
    return 1;
  }
  int bad;
  *features = 0;
  if (cfg->model.type == CH_MODEL_GPT) bad = read_attr(file, path, "vocab_size", classes);
  else bad = read_attr(file, path, "num_features", features) || read_attr(file, path, "num_classes", classes);
  H5Fclose(file);
  return bad;
}

static int parse_ranks(const char *s, int *v) {
  char *end;
  errno = 0;
  long x = strtol(s, &end, 10);
  if (!*s || *end || errno || x < 1 || x > INT_MAX) return 1;
  *v = (int)x;
  return 0;
}

static const double MiB = 1048576.0;

static void print_json(int ranks, int64_t accum, size_t count, size_t act, const ch_dp_estimate *e) {
  printf("{\"ranks\":%d,\"accum\":%" PRId64 ",\"params_count\":%zu,\"strategies\":{", ranks,
         accum, count);
  for (int s = CH_STRATEGY_DDP; s <= CH_STRATEGY_ZERO3; s++) {
    const ch_dp_memory *m = &e[s].memory;
    printf("%s\"%s\":{\"params\":%zu,\"grads\":%zu,\"optim\":%zu,\"comm\":%zu,\"activations\":%zu,"
           "\"bytes_per_step\":%zu}", s ? "," : "", ch_strategy_name(s), m->params, m->grads,
           m->optim, m->comm, act, e[s].bytes_per_step);
  }
  printf("}}\n");
}

static void print_table(const ch_config *cfg, const ch_model *model, int ranks, int64_t micro,
                        int64_t accum, size_t count, const ch_dp_estimate *e) {
  const ch_layout *l = ch_model_layout(model);
  size_t act = ch_model_activation_bytes(model);
  double psi = (double)l->numel, n = ranks;
  printf("%s: %zu parameters (%zu elements with alignment padding) in %d units; %d rank%s, "
         "global batch %" PRId64 " = up to %" PRId64 " per rank x %" PRId64 " micro-step%s of %"
         PRId64 "; %s\n", ch_model_name(model), count, l->numel, l->nunits, ranks,
         ranks == 1 ? "" : "s", cfg->train.batch_size, accum * micro, accum,
         accum == 1 ? "" : "s", micro, cfg->optim.type == CH_OPTIM_ADAMW ? "adamw" : "sgd");
  printf("\nper rank, MiB (fp32, as cohort runs on CPU; comm is an upper bound of the peak):\n");
  printf("%-8s %10s %10s %10s %10s %12s %10s %12s\n", "strategy", "params", "grads", "optimizer",
         "comm", "activations", "total", "sent/step");
  for (int s = CH_STRATEGY_DDP; s <= CH_STRATEGY_ZERO3; s++) {
    const ch_dp_memory *m = &e[s].memory;
    size_t total = m->params + m->grads + m->optim + m->comm + act;
    printf("%-8s %10.2f %10.2f %10.2f %10.2f %12.2f %10.2f %12.2f\n", ch_strategy_name(s),
           m->params / MiB, m->grads / MiB, m->optim / MiB, m->comm / MiB, act / MiB, total / MiB,
           e[s].bytes_per_step / MiB);
  }
  /* The ZeRO paper's model-state accounting for mixed precision: 2-byte parameters and
   * gradients, K = 12 bytes of fp32 master weights and AdamW moments per parameter. cohort's
   * precision=bf16 (cpu or cuda) only rounds GEMM operands: its states are the fp32 table's. */
  printf("\nbf16 + fp32 master (the ZeRO paper's accounting; cohort's precision=bf16 keeps fp32 "
         "parameters and gradients, the table above), model states per rank, K = 12, "
         "Psi = %zu:\n", l->numel);
  printf("  ddp    (2 + 2 + K) Psi       %10.2f MiB\n", 16 * psi / MiB);
  printf("  zero1  (2 + 2) Psi + K Psi/N %10.2f MiB\n", (4 * psi + 12 * psi / n) / MiB);
  printf("  zero2  2 Psi + (2 + K) Psi/N %10.2f MiB\n", (2 * psi + 14 * psi / n) / MiB);
  printf("  zero3  (2 + 2 + K) Psi/N     %10.2f MiB\n", 16 * psi / n / MiB);
}

/* The command's own flags (the rest, CONFIG and overrides, as `cohort train` takes them). */
typedef struct estimate_flags {
  int ranks, json;
} estimate_flags;

static int estimate_flag(void *ctx, int argc, char **argv, int *i) {
  estimate_flags *f = ctx;
  const char *a = argv[*i];
  int bad = 0;
  if (!strcmp(a, "--json")) f->json = 1;
  else if (!strcmp(a, "--ranks") && *i + 1 < argc) bad = parse_ranks(argv[++*i], &f->ranks);
  else if (!strncmp(a, "--ranks=", 8)) bad = parse_ranks(a + 8, &f->ranks);
  else bad = 1;
  if (bad) fprintf(stderr, "cohort estimate: bad argument '%s'\n", argv[*i]);
  return bad;
}

int cli_estimate(int argc, char **argv) {
  estimate_flags fl = {0, 0};
  cli_args args;
  int rc = cli_parse_args("cohort estimate", argc, argv, estimate_flag, &fl, usage, &args);
  if (rc) return rc;
  if (fl.ranks < 1) {
    fprintf(stderr, "cohort estimate: --ranks N is required (N >= 1)\n");
    usage();
    cli_args_free(&args);
    return 2;
  }
  int ranks = fl.ranks, json = fl.json;
  ch_config cfg;
  if (cli_load_config("cohort estimate", &args, 1, &cfg)) return 2;
  int64_t features, classes;
  ch_batch_plan plan;
  if (ch_train_plan(&cfg, ranks, &plan) != CH_OK) {
    fprintf(stderr, "cohort estimate: %s\n", ch_error_message());
    return 2;
  }
  int64_t micro = plan.micro, accum = plan.accum;
  int arena = plan.max_batch;
  if (dataset_dims(&cfg, &features, &classes)) return 1;
  ch_model *model = NULL;
  ch_status st = ch_model_create(ch_backend_cpu(), &cfg.model, features, classes, arena, &model);
  if (st != CH_OK) {
    fprintf(stderr, "cohort estimate: %s\n", ch_error_message());
    return st == CH_ERR_CONFIG ? 2 : 1;
  }
  const ch_layout *l = ch_model_layout(model);
  size_t count = 0;
  for (int i = 0; i < l->nparams; i++) count += (size_t)ch_param_numel(&l->params[i]);
  ch_dp_estimate e[CH_STRATEGY_ZERO3 + 1];
  ch_optim_cfg oc = ch_config_optim(&cfg);
  for (int s = CH_STRATEGY_DDP; s <= CH_STRATEGY_ZERO3 && st == CH_OK; s++)
    st = ch_dp_estimate_of(&cfg.parallel, &oc, l, s, ranks, (int)accum, &e[s]);
  if (st != CH_OK) fprintf(stderr, "cohort estimate: %s\n", ch_error_message());
  else if (json) print_json(ranks, accum, count, ch_model_activation_bytes(model), e);
  else print_table(&cfg, model, ranks, micro, accum, count, e);
  ch_model_destroy(model);
  return st == CH_OK ? 0 : 1;
}
