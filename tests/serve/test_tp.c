/* Tensor parallelism on N ranks against the whole model on one:
 *  - each rank's slices from a checkpoint (ch_ckpt_load_tp, hyperslab reads) equal the slices
 *    cut from the full parameters in memory (ch_tp_extract), bit for bit;
 *  - MLP logits (3 hidden layers: a column/row pair, then a pair whose second layer is the head,
 *    plus an unpaired variant) equal the full forward;
 *  - GPT decoding (prompt chunk, then single tokens) equals the full model's, with a head count
 *    (3) that 2 and 4 ranks do not divide, so ranks hold different numbers of heads, and on 4
 *    ranks one holds none; batched steps of two slots at once (ch_tp_model_decode_batch)
 *    equal the full model decoding each alone.
 * Tolerance 1e-5 of the largest |logit|: the runs differ only in the summation order of the
 * row-parallel products (partial sums added by the allreduce), a few fp32 ulps of sums of ~100
 * terms; a wrong slice, a bias added twice or a missing head gives 1e-2 or more. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/ckpt.h"
#include "cohort/comm.h"
#include "cohort/config.h"
#include "cohort/kernels.h"
#include "cohort/model.h"
#include "cohort/parallel.h"
#include "cohort/rng.h"
#include "cohort/runtime.h"
#include "testlib.h"

#define TOL 1e-5

static ch_status allreduce(void *ctx, float *x, int64_t n) {
  return ch_comm_allreduce((const ch_group *)ctx, x, (size_t)n, CH_F32, CH_SUM, NULL);
}

static double rel_err(const float *a, const float *b, size_t n) {
  double mx = 0, err = 0;
  for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
  for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)a[i] - b[i]));
  return err / (mx > 0 ? mx : 1);
}

/* Full params (same on every rank), this rank's slice, and the slice loaded from a checkpoint
 * written by all ranks; checks they agree. */
typedef struct setup {
  ch_model *m;
  float *full, *local;
  ch_layout ll;
  ch_tp_slice *sl;
} setup;

static void make(setup *s, const ch_config *cfg, int64_t features, int64_t classes, int batch,
                 const ch_group *g, const char *dir) {
  CHT_OK(ch_model_create(ch_backend_cpu(), &cfg->model, features, classes, batch, &s->m));
  const ch_layout *l = ch_model_layout(s->m);
  s->full = ch_alloc_aligned(sizeof(float) * l->numel);
  ch_layout_init_params(l, s->full, 11);
  for (size_t i = 0; i < l->numel; i++) s->full[i] += 0.05f * (2 * ch_rng_uniform(12, 0, i) - 1);
  CHT_OK(ch_tp_layout(l, g->size, g->rank, &s->ll, &s->sl));
  s->local = ch_alloc_aligned(sizeof(float) * (s->ll.numel + 1));
  ch_tp_extract(l, s->full, &s->ll, s->sl, s->local);

  /* The same slices through a checkpoint. */
  char path[512];
  ch_ckpt_buffer buf = {NULL, s->full, CH_ADDR_FLAT};
  ch_ckpt_meta meta = {.world_size = g->size};
  snprintf(meta.strategy, sizeof meta.strategy, "ddp");
  snprintf(meta.version, sizeof meta.version, "test");
  snprintf(meta.created, sizeof meta.created, "1970-01-01T00:00:00Z");
  meta.config = ch_config_to_yaml(cfg);
  meta.model = (ch_ckpt_model_info){.model = cfg->model, .features = features, .classes = classes};
  ch_ckpt_policy keep = {1, 0};
  size_t lo = ch_part_offset(l->numel, g->size, g->rank);
  size_t hi = lo + ch_part_count(l->numel, g->size, g->rank);
  ch_segment seg;
  ch_shard mine = ch_shard_range(&seg, lo, hi);
  CHT_OK(ch_ckpt_save(g, dir, &keep, l, &buf, 1, &mine, &meta, path, sizeof path));
  free(meta.config);
  ch_ckpt_model_info info2;
  ch_model *m2;
  ch_layout ll2;
  ch_tp_slice *sl2;
  float *p2;
  CHT_OK(ch_ckpt_load_tp(g, path, ch_backend_cpu(), &info2, &m2, &ll2, &sl2, &p2));
  CHT_ASSERT(ll2.numel == s->ll.numel && memcmp(p2, s->local, sizeof(float) * ll2.numel) == 0,
             "slices read from the checkpoint differ from the in-memory extract");
  CHT_ASSERT(!memcmp(&info2.model, &cfg->model, sizeof info2.model) && info2.features == features &&
                 info2.classes == classes, "model attributes round trip");
  ch_free_aligned(p2);
  free(sl2);
  ch_layout_destroy(&ll2);
  ch_model_destroy(m2);
}

static void release(setup *s) {
  ch_free_aligned(s->full);
  ch_free_aligned(s->local);
  free(s->sl);
  ch_layout_destroy(&s->ll);
  ch_model_destroy(s->m);
}

static void check_mlp(const ch_group *g, int depth, const char *dir) {
  enum { IN = 20, CLASSES = 7, B = 9 };
  ch_config cfg;
  ch_config_defaults(&cfg);
  cfg.model.type = CH_MODEL_MLP;
  cfg.model.depth = depth;
  cfg.model.hidden = 37; /* divisible by none of 2, 3, 4 */
  cfg.model.activation = CH_ACT_GELU;
  setup s;
  make(&s, &cfg, IN, CLASSES, B, g, dir);
  float x[B * IN];
  cht_fill_uniform(x, B * IN, 5, 1);
  const float *ref, *got;
  CHT_OK(ch_model_forward(s.m, s.full, x, NULL, B, &ref));
  ch_tp_model *t;
  CHT_OK(ch_tp_model_create(s.m, &s.ll, s.local, g->rank == 0, B, 0, allreduce, (void *)g, &t));
  CHT_OK(ch_tp_model_logits(t, x, B, &got));
  double e = rel_err(got, ref, B * CLASSES);
  if (g->rank == 0) printf("mlp depth %d on %d ranks: max rel err %.3g\n", depth, g->size, e);
  CHT_ASSERT(e <= TOL, "MLP depth %d: tensor-parallel logits differ by %g", depth, e);
  ch_tp_model_destroy(t);
  release(&s);
}

static void check_gpt(const ch_group *g, const char *dir) {
  enum { V = 37, T = 16 };
  ch_config cfg;
  ch_config_defaults(&cfg);
  cht_gpt(&cfg.model, 2, 3, 24, T);
  setup s;
  make(&s, &cfg, 0, V, 1, g, dir);
  ch_kv_cache *kv;
  CHT_OK(ch_kv_cache_create(s.m, 1, &kv));
  ch_tp_model *t;
  CHT_OK(ch_tp_model_create(s.m, &s.ll, s.local, g->rank == 0, 1, 2, allreduce, (void *)g, &t));
  int32_t tok[T];
  for (int i = 0; i < T; i++) tok[i] = (int32_t)ch_rng_below(3, 0, (uint64_t)i, V);
  float ref[V], got[V];
  double worst = 0;
  CHT_OK(ch_model_decode(s.m, s.full, kv, 0, tok, 5, ref));
  CHT_OK(ch_tp_model_decode(t, 1, tok, 5, got));
  worst = fmax(worst, rel_err(got, ref, V));
  for (int i = 5; i < T; i++) {
    CHT_OK(ch_model_decode(s.m, s.full, kv, 0, &tok[i], 1, ref));
    CHT_OK(ch_tp_model_decode(t, 1, &tok[i], 1, got));
    worst = fmax(worst, rel_err(got, ref, V));
  }
  CHT_ASSERT(ch_tp_model_length(t, 1) == T, "slot length");
  if (g->rank == 0) printf("gpt (3 heads) on %d ranks: max rel err %.3g over %d steps\n", g->size, worst, T - 4);
  CHT_ASSERT(worst <= TOL, "GPT: tensor-parallel decoding differs by %g", worst);

  /* Batched steps (both slots in one forward, one sum per projection for both): a prompt of 5
   * and one of 3 together, then one token each, equal the full model decoding each alone. */
  ch_kv_cache *kv2;
  CHT_OK(ch_kv_cache_create(s.m, 2, &kv2));
  ch_tp_model_reset(t, 0);
  ch_tp_model_reset(t, 1);
  float ref2[2][V], got2[2][V];
  worst = 0;
  int32_t both[8];
  memcpy(both, tok, sizeof(int32_t) * 5);
  memcpy(both + 5, tok + 8, sizeof(int32_t) * 3);
  CHT_OK(ch_tp_model_decode_batch(t, 2, (int[]){1, 0}, (int[]){5, 3}, both, &got2[0][0]));
  CHT_OK(ch_model_decode(s.m, s.full, kv2, 0, both, 5, ref2[0]));
  CHT_OK(ch_model_decode(s.m, s.full, kv2, 1, both + 5, 3, ref2[1]));
  worst = fmax(rel_err(got2[0], ref2[0], V), rel_err(got2[1], ref2[1], V));
  for (int i = 5; i < 9; i++) {
    int32_t next[2] = {tok[i], tok[i + 3]};
    CHT_OK(ch_tp_model_decode_batch(t, 2, (int[]){1, 0}, (int[]){1, 1}, next, &got2[0][0]));
    CHT_OK(ch_model_decode(s.m, s.full, kv2, 0, &next[0], 1, ref2[0]));
    CHT_OK(ch_model_decode(s.m, s.full, kv2, 1, &next[1], 1, ref2[1]));
    worst = fmax(worst, fmax(rel_err(got2[0], ref2[0], V), rel_err(got2[1], ref2[1], V)));
  }
  CHT_ASSERT(ch_tp_model_length(t, 1) == 9 && ch_tp_model_length(t, 0) == 7, "batched lengths");
  if (g->rank == 0) printf("gpt batched steps of 2 slots on %d ranks: max rel err %.3g\n", g->size, worst);
  CHT_ASSERT(worst <= TOL, "GPT: batched tensor-parallel decoding differs by %g", worst);
  ch_kv_cache_destroy(kv2);
  ch_tp_model_destroy(t);
  ch_kv_cache_destroy(kv);
  release(&s);
}

int main(int argc, char **argv) {
  ch_runtime *rt;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  CHT_OK(ch_blas_init(1));
  ch_group g;
  CHT_OK(ch_group_world(&g));
  char dir[256] = "";
  if (g.rank == 0) {
    snprintf(dir, sizeof dir, "/tmp/cohort-test-tp-XXXXXX");
    CHT_ASSERT(mkdtemp(dir), "mkdtemp");
  }
  CHT_OK(ch_comm_broadcast(&g, dir, sizeof dir, CH_U8, 0, NULL));
  char sub[300];
  snprintf(sub, sizeof sub, "%s/mlp3", dir);
  check_mlp(&g, 3, sub); /* layers: rows, cols, rows, cols (the head) */
  snprintf(sub, sizeof sub, "%s/mlp2", dir);
  check_mlp(&g, 2, sub); /* layers: rows, cols, whole head */
  snprintf(sub, sizeof sub, "%s/gpt", dir);
  check_gpt(&g, sub);
  CHT_OK(ch_comm_barrier(&g, NULL));
  if (g.rank == 0) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHT_ASSERT(system(cmd) == 0, "cleanup");
  }
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return 0;
}
