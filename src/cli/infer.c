/* `cohort infer CHECKPOINT IN.h5 OUT.h5 [--split val|train]`: offline inference of a classifier
 * over a dataset split. Every rank rebuilds the model from the checkpoint, takes a contiguous
 * part of the rows, and the predictions are written together with parallel HDF5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort/ckpt.h"
#include "cohort/data.h"
#include "cohort/log.h"
#include "cohort/model.h"
#include "cohort/runtime.h"

enum { CHUNK = 256 };

static void usage(FILE *out) {
  fprintf(out, "usage: [mpirun -n N] cohort infer CHECKPOINT IN.h5 OUT.h5 [--split val|train]\n"
               "                                  [--device cpu|cuda] [--precision fp32|bf16]\n"
               "  predictions of a classifier for every row of the split (default val):\n"
               "  OUT.h5 /logits float32 [rows, classes], /label int32 [rows]; a model trained\n"
               "  on string labels adds /label_name [rows] and /class_names [classes]\n"
               "  --precision bf16: GEMM operands rounded to bfloat16 (cuda, or a CPU with\n"
               "  AVX-512 BF16)\n");
}

static ch_status run(const ch_group *g, const ch_backend *be, const char *ckpt, const char *in,
                     const char *split, const char *out, int64_t *rows) {
  char path[CH_PATH_MAX];
  CH_CHECK(ch_ckpt_resolve(ckpt, path, sizeof path));
  ch_ckpt_model_info info;
  ch_model *m = NULL;
  float *params = NULL, *x = NULL, *logits = NULL;
  int32_t *labels = NULL, *y = NULL;
  int64_t *idx = NULL;
  const char **names = NULL;
  ch_dataset *ds = NULL;
  ch_status st = ch_ckpt_load_model(path, be, CHUNK, &info, &m, &params);
  /* Agree before the collective open, so that a bad checkpoint stops every rank alike. */
  int bad = st != CH_OK;
  ch_status cs = ch_comm_allreduce(g, &bad, 1, CH_I32, CH_MAX, NULL);
  if (cs != CH_OK || bad) {
    if (st == CH_OK) st = cs != CH_OK ? cs : CH_FAIL(CH_ERR_IO, "another rank could not load %s", path);
    goto done;
  }
  if (info.model.type != CH_MODEL_MLP) {
    st = CH_FAIL(CH_ERR_UNSUPPORTED, "%s holds a %s; cohort infer runs classifiers (for text use "
                 "cohort generate or POST /v1/completions)", path, ch_model_name(m));
    goto done;
  }
  CH_CHECK_GOTO(ch_dataset_open(g, in, split, &ds), st, done);
  int64_t D = info.features, C = info.classes;
  if (ch_dataset_features(ds) != D) {
    st = CH_FAIL(CH_ERR_INVALID, "%s has %lld features per row, the model takes %lld", in,
                 (long long)ch_dataset_features(ds), (long long)D);
    goto done;
  }
  int64_t N = ch_dataset_rows(ds);
  int64_t first = (int64_t)ch_part_offset((size_t)N, g->size, g->rank);
  int64_t mine = (int64_t)ch_part_count((size_t)N, g->size, g->rank);
  int64_t most = (int64_t)ch_part_count((size_t)N, g->size, 0);
  x = malloc(sizeof *x * (size_t)(CHUNK * D));
  y = malloc(sizeof *y * CHUNK);
  idx = malloc(sizeof *idx * CHUNK);
  logits = malloc(sizeof *logits * (size_t)(mine * C + 1));
  labels = malloc(sizeof *labels * (size_t)(mine + 1));
  if (!x || !y || !idx || !logits || !labels) {
    st = CH_FAIL(CH_ERR_NOMEM, "inference buffers");
    goto done;
  }
  /* Reads are collective: every rank makes the same number of them. */
  for (int64_t lo = 0; lo < most; lo += CHUNK) {
    int64_t n = mine - lo < CHUNK ? mine - lo : CHUNK;
    n = n < 0 ? 0 : n;
    for (int64_t i = 0; i < n; i++) idx[i] = first + lo + i;
    CH_CHECK_GOTO(ch_dataset_read(ds, idx, n, x, y), st, done);
    if (n == 0) continue;
    const float *out_rows;
    CH_CHECK_GOTO(ch_model_forward(m, params, x, NULL, (int)n, &out_rows), st, done);
    CH_CHECK_GOTO(ch_op_download(be, logits + lo * C, out_rows, sizeof(float) * (size_t)(n * C)),
                  st, done);
    for (int64_t i = 0; i < n; i++) {
      const float *r = logits + (lo + i) * C;
      int32_t best = 0;
      for (int64_t c = 1; c < C; c++)
        if (r[c] > r[best]) best = (int32_t)c;
      labels[lo + i] = best;
    }
  }
  char source[CH_PATH_MAX * 2 + 64];
  snprintf(source, sizeof source, "%s, %s:/%s", path, in, split);
  /* A model trained on string labels names each predicted class. */
  if (info.n_class_names && !(names = calloc((size_t)C, sizeof *names))) {
    st = CH_FAIL(CH_ERR_NOMEM, "class names");
    goto done;
  }
  if (names) ch_ckpt_class_names(&info, names);
  CH_CHECK_GOTO(ch_data_write_predictions(g, out, N, C, first, mine, logits, labels, names, source),
                st, done);
  *rows = N;
done:
  if (ds) ch_dataset_close(ds);
  free(x), free(y), free(idx), free(logits), free(labels), free(names);
  if (params) ch_op_free(be, params);
  ch_model_destroy(m);
  return st;
}

int cli_infer(int argc, char **argv) {
  const char *pos[3] = {NULL, NULL, NULL}, *split = "val";
  int npos = 0;
  ch_config cfg; /* its device and precision keys */
  ch_config_defaults(&cfg);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--split") && i + 1 < argc) split = argv[++i];
    else if ((!strcmp(argv[i], "--device") || !strcmp(argv[i], "--precision")) && i + 1 < argc) {
      if (ch_config_set_serve_flag(&cfg, argv[i], argv[i + 1]) != CH_OK) {
        fprintf(stderr, "cohort infer: %s\n", ch_error_message());
        return 2;
      }
      i++;
    } else if (argv[i][0] != '-' && npos < 3) pos[npos++] = argv[i];
    else {
      fprintf(stderr, "cohort infer: unexpected argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (npos != 3 || (strcmp(split, "val") && strcmp(split, "train"))) {
    usage(stderr);
    return 2;
  }
  ch_group world;
  ch_runtime *rt = cli_start(&argc, &argv, 0, &world);
  if (!rt) return 1;
  int64_t rows = 0;
  double t0 = ch_time();
  ch_device *dev = NULL;
  ch_status st = ch_device_open(&cfg.device, &dev);
  /* Agreed, so that a rank without a device stops every rank alike. */
  int bad = st != CH_OK;
  if (ch_comm_allreduce(&world, &bad, 1, CH_I32, CH_MAX, NULL) == CH_OK && bad && st == CH_OK)
    st = CH_FAIL(CH_ERR_UNSUPPORTED, "another rank could not open device %s",
                 ch_device_describe(dev));
  if (st == CH_OK)
    st = run(&world, ch_device_backend(dev), pos[0], pos[1], split, pos[2], &rows);
  ch_device_close(dev);
  int rc = 0;
  if (st != CH_OK) { /* every failure is agreed: rank 0 reports it */
    if (rt->world_rank == 0) fprintf(stderr, "cohort infer: %s\n", ch_error_message());
    rc = st == CH_ERR_INVALID || st == CH_ERR_UNSUPPORTED || st == CH_ERR_CONFIG ? 2 : 1;
  } else if (rt->world_rank == 0) {
    CH_INFO("wrote %s: predictions of %lld rows of %s:/%s in %.2f s on %d rank%s", pos[2],
            (long long)rows, pos[1], split, ch_time() - t0, world.size, world.size == 1 ? "" : "s");
  }
  cli_stop(&world);
  return rc;
}
