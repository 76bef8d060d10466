/* A checkpoint describes its model in root attributes (format version 2): ch_ckpt_load_model
 * rebuilds the model from them alone (the stored YAML is not parsed: here it is not even a
 * config), returning the architecture, data shape, tokenizer kind and data path; a file
 * without them (format version 1) is refused with a clear error. One rank. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/cohort.h"
#include "testlib.h"

static void save(const ch_group *g, const char *dir, const ch_ckpt_model_info *info,
                 char *path, size_t size) {
  ch_model *m;
  CHT_OK(ch_model_create(ch_backend_cpu(), &info->model, info->features, info->classes, 0, &m));
  const ch_layout *l = ch_model_layout(m);
  float *p = calloc(l->numel, sizeof *p);
  CHT_ASSERT(p, "out of memory");
  ch_layout_init_params(l, p, 3);
  ch_ckpt_buffer buf = {NULL, p, CH_ADDR_FLAT};
  ch_ckpt_meta meta = {.world_size = 1, .config = "not: [a, cohort, config]\n", .model = *info};
  snprintf(meta.strategy, sizeof meta.strategy, "ddp");
  snprintf(meta.version, sizeof meta.version, "test");
  snprintf(meta.created, sizeof meta.created, "1970-01-01T00:00:00Z");
  ch_segment seg;
  ch_shard all = ch_shard_range(&seg, 0, l->numel);
  ch_ckpt_policy keep = {1, 0};
  CHT_OK(ch_ckpt_save(g, dir, &keep, l, &buf, 1, &all, &meta, path, size));
  free(p);
  ch_model_destroy(m);
}

static void check(const ch_group *g, const char *dir, const ch_ckpt_model_info *want) {
  char path[1024];
  save(g, dir, want, path, sizeof path);
  ch_ckpt_model_info got;
  ch_model *m;
  float *p;
  CHT_OK(ch_ckpt_load_model(path, ch_backend_cpu(), 2, &got, &m, &p));
  CHT_ASSERT(!memcmp(&got.model, &want->model, sizeof got.model) &&
                 got.features == want->features && got.classes == want->classes &&
                 !strcmp(got.tokenizer, want->tokenizer) && !strcmp(got.data_path, want->data_path),
             "model attributes did not round trip (%s)", want->tokenizer);
  CHT_ASSERT(!strcmp(ch_model_name(m), want->model.type == CH_MODEL_GPT ? "gpt" : "mlp"), "family");
  ch_free_aligned(p);
  ch_model_destroy(m);

  /* The same file as an older cohort wrote it: no model attributes, format version 1. */
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  CHT_ASSERT(f >= 0 && H5Adelete(f, "model_type") >= 0 && H5Adelete(f, "attrs_crc32") >= 0,
             "cannot edit %s", path);
  hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  int64_t v1 = 1;
  CHT_ASSERT(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &v1) >= 0, "cannot edit format_version");
  H5Aclose(a);
  H5Fclose(f);
  ch_status st = ch_ckpt_load_model(path, ch_backend_cpu(), 2, &got, &m, &p);
  CHT_ASSERT(st == CH_ERR_FORMAT && strstr(ch_error_message(), "has no model attributes"),
             "a version 1 file: %s: %s", ch_status_str(st), ch_error_message());
  unlink(path);
}

int main(int argc, char **argv) {
  ch_runtime *rt;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  ch_group g;
  CHT_OK(ch_group_world(&g));
  char dir[256];
  snprintf(dir, sizeof dir, "%s/cohort_test_ckpt_model_XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  CHT_ASSERT(mkdtemp(dir), "mkdtemp failed");
  ch_ckpt_model_info mlp = {.model = {.type = CH_MODEL_MLP, .depth = 3, .hidden = 17,
                                      .activation = CH_ACT_GELU, .n_layer = 4, .n_head = 4,
                                      .n_embd = 128, .context = 64},
                            .features = 9, .classes = 5, .tokenizer = "none",
                            .data_path = "some/rows.h5"};
  check(&g, dir, &mlp);
  ch_ckpt_model_info gpt = {.model = {.type = CH_MODEL_GPT, .depth = 2, .hidden = 128,
                                      .n_layer = 2, .n_head = 2, .n_embd = 16, .context = 8,
                                      .vocab_size = 300},
                            .classes = 256, .tokenizer = "byte", .data_path = "text.h5"};
  check(&g, dir, &gpt);
  char latest[300];
  snprintf(latest, sizeof latest, "%s/latest", dir);
  unlink(latest);
  rmdir(dir);
  ch_group_destroy(&g);
  ch_runtime_finalize();
  printf("test_ckpt_model: ok\n");
  return 0;
}
