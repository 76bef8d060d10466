/* DDP training-step benchmark: ch_train_run with gradient allreduce overlapped with backward
 * (parallel.overlap=true) against the same run with the allreduces started after backward
 * (overlap=false), in one program, plus what the communication alone costs.
 *
 *   mpirun -n N build/bench/mlp_step configs/bench-mlp.yaml [key.sub=value ...]
 *          [--reps 2] [--comm-iters 20] [--no-breakdown] [--verbose]
 *
 * 1. A short warm-up run (10 steps; pages in the data file, starts the BLAS threads).
 * 2. --reps repetitions of the pair (on, off), in ABBA order (on off, off on, ...) so that a
 *    slow phase of a noisy machine does not always hit the same mode. Each run writes
 *    <run.dir>/<mode>-<rep>/metrics.jsonl; its per-log-interval throughputs (train.log_every
 *    steps each, timed by the training loop without evaluation) give the steady-state figure:
 *    the median interval, the first interval excluded as warm-up. The whole-run figure
 *    (res.samples_per_s) includes the first steps and the final evaluation.
 * 3. comm: the gradient's buckets (the same ranges DDP reduces, from ch_ddp_bucket_range)
 *    allreduced one after another with blocking ch_comm_allreduce, with no compute around
 *    them; per iteration the maximum over ranks, median over --comm-iters. Also printed: one
 *    allreduce of the whole gradient, and the buckets started non-blocking then waited (the
 *    exact calls DDP makes with overlap off; Open MPI runs those through libnbc, not the
 *    blocking path's coll/tuned).
 *    hidden = (step_off - step_on) / comm: the fraction of the communication that overlap
 *    removed from the step (N > 1 only). Also hidden' = 1 - exposed_on / exposed_off, from
 *    the time DDP spent blocked waiting (res.comm_exposed_seconds).
 * 4. breakdown (every rank at once, no communication): median per-step time of the HDF5 batch
 *    read, forward+backward, and clip+AdamW, at this rank's share of the batch.
 *
 * Caveat: all runs share one process, so state the first run leaves behind carries over. One
 * case matters: after the warm-up run frees its large buffers, glibc raises its heap-trim
 * threshold, and the measured runs no longer pay the per-step heap grow/trim (page faults) that
 * a fresh `cohort train` process pays when Open MPI's libnbc mallocs a bucket-sized temporary
 * per non-blocking allreduce. bench/mlp_ddp.sh therefore also times the CLI itself.
 *
 * Output on rank 0 only; the last line is "summary: key=value ..." for bench/mlp_ddp.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm.h"
#include "cohort/config.h"
#include "cohort/data.h"
#include "cohort/kernels.h"
#include "cohort/model.h"
#include "cohort/optim.h"
#include "cohort/parallel.h"
#include "cohort/runtime.h"
#include "cohort/train.h"
#include "common/bench_util.h"

#define MAX_INTERVALS 4096

typedef struct run_stats {
  int overlap, rep;
  double sps_whole;      /* res.samples_per_s */
  double step_min;       /* res.step_seconds_min */
  double step_mean;      /* res.seconds / steps (includes warm-up steps and the final eval) */
  double step_med;       /* batch / median interval throughput (first interval excluded) */
  double exposed;        /* res.comm_exposed_seconds / steps */
  double val_acc, train_loss;
  double iv[MAX_INTERVALS]; /* interval throughputs, samples/s */
  int niv;
} run_stats;

static void die(ch_status st, const char *what) {
  if (st != CH_OK) ch_runtime_fatal(st, "%s", what);
}

/* Interval throughputs from <dir>/metrics.jsonl (rank 0 wrote it), skipping the first. */
static int read_intervals(const char *dir, double *out, int max) {
  char path[CH_PATH_MAX + 32], line[1024];
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int n = 0, seen = 0;
  while (fgets(line, sizeof line, f)) {
    const char *p = strstr(line, "\"samples_per_s\":");
    if (!p) continue;
    if (seen++ == 0) continue; /* the first interval carries the warm-up */
    if (n < max) out[n++] = strtod(p + 16, NULL);
  }
  fclose(f);
  return n;
}

static void train_once(const ch_config *base, const ch_group *g, int overlap, int rep,
                       int64_t steps, run_stats *rs) {
  ch_config cfg = *base;
  cfg.parallel.overlap = overlap;
  cfg.train.steps = steps;
  if (cfg.optim.warmup_steps > steps) cfg.optim.warmup_steps = 0;
  char dir[CH_PATH_MAX + 32];
  if (rep < 0) snprintf(dir, sizeof dir, "%s/warmup", base->run.dir);
  else snprintf(dir, sizeof dir, "%s/%s-%d", base->run.dir, overlap ? "on" : "off", rep);
  if (strlen(dir) >= sizeof cfg.run.dir)
    ch_runtime_fatal(CH_ERR_CONFIG, "run.dir %s is too long", base->run.dir);
  memcpy(cfg.run.dir, dir, strlen(dir) + 1);
  ch_train_result res;
  die(ch_train_run(&cfg, g, 0, &res), "ch_train_run");
  memset(rs, 0, sizeof *rs);
  rs->overlap = overlap;
  rs->rep = rep;
  rs->sps_whole = res.samples_per_s;
  rs->step_min = res.step_seconds_min;
  rs->step_mean = res.seconds / (double)res.steps;
  rs->exposed = res.comm_exposed_seconds / (double)res.steps;
  rs->val_acc = res.val_acc;
  rs->train_loss = res.train_loss;
  if (g->rank == 0) rs->niv = read_intervals(cfg.run.dir, rs->iv, MAX_INTERVALS);
  double ivcopy[MAX_INTERVALS];
  memcpy(ivcopy, rs->iv, sizeof(double) * (size_t)rs->niv);
  rs->step_med = rs->niv ? (double)cfg.train.batch_size / bench_median(ivcopy, rs->niv) : rs->step_mean;
  ch_train_result_free(&res);
}

/* Per-step time of the bucketed blocking allreduce of the whole gradient (max over ranks,
 * median over iters). Also reports the bucket sizes and the gradient's bytes. */
static double time_comm(const ch_config *cfg, const ch_group *g, int iters, int *nbuckets,
                        size_t *bytes, double *single, double *nonblocking) {
  ch_dataset *ds;
  die(ch_dataset_open(g, cfg->data.path, "train", &ds), "ch_dataset_open");
  ch_model *m;
  die(ch_model_create(ch_backend_cpu(), &cfg->model, ch_dataset_features(ds), ch_dataset_classes(ds), 1, &m), "model");
  ch_dataset_close(ds);
  const ch_layout *l = ch_model_layout(m);
  float *grads = ch_alloc_aligned(l->numel * sizeof(float));
  if (!grads) ch_runtime_fatal(CH_ERR_NOMEM, "gradient buffer");
  ch_ddp *d;
  die(ch_ddp_create(g, l, grads, cfg->parallel.bucket_mb, cfg->parallel.first_bucket_mb, 0, &d),
      "ch_ddp_create");
  *nbuckets = ch_ddp_get_stats(d).nbuckets;
  *bytes = 0;
  double *t = calloc((size_t)iters, sizeof *t), *t1 = calloc((size_t)iters, sizeof *t1);
  double *t2s = calloc((size_t)iters, sizeof *t2s);
  ch_request *reqs = calloc((size_t)*nbuckets, sizeof *reqs);
  if (!t || !t1 || !t2s || !reqs) ch_runtime_fatal(CH_ERR_NOMEM, "comm timing");
  for (int it = -3; it < iters; it++) {
    /* Refilled each time (untimed) so the sums stay small whatever the iteration count. */
    for (size_t i = 0; i < l->numel; i++) grads[i] = (float)((i * 7 + (size_t)g->rank) % 64) / 64.0f;
    ch_comm_barrier(g, NULL);
    double t0 = ch_time();
    for (int b = 0; b < *nbuckets; b++) {
      size_t off, n;
      ch_ddp_bucket_range(d, b, &off, &n);
      if (it == -3) *bytes += n * sizeof(float);
      die(ch_comm_allreduce(g, grads + off, n, CH_F32, CH_SUM, NULL), "allreduce");
    }
    double dt = ch_time() - t0;
    ch_comm_barrier(g, NULL);
    double t2 = ch_time();
    die(ch_comm_allreduce(g, grads, l->numel, CH_F32, CH_SUM, NULL), "allreduce");
    double dt1 = ch_time() - t2;
    /* What DDP does with overlap off: every bucket started non-blocking, then all waited. */
    ch_comm_barrier(g, NULL);
    double t3 = ch_time();
    for (int b = 0; b < *nbuckets; b++) {
      size_t off, n;
      ch_ddp_bucket_range(d, b, &off, &n);
      die(ch_comm_allreduce(g, grads + off, n, CH_F32, CH_SUM, &reqs[b]), "allreduce");
    }
    for (int b = 0; b < *nbuckets; b++) die(ch_comm_wait(&reqs[b]), "wait");
    double dt2 = ch_time() - t3;
    double mx[3] = {dt, dt1, dt2};
    die(ch_comm_allreduce(g, mx, 3, CH_F64, CH_MAX, NULL), "allreduce");
    if (it >= 0) {
      t[it] = mx[0];
      t1[it] = mx[1];
      t2s[it] = mx[2];
    }
  }
  double med = bench_median(t, iters);
  *single = bench_median(t1, iters);
  *nonblocking = bench_median(t2s, iters);
  free(t);
  free(t1);
  free(t2s);
  free(reqs);
  ch_ddp_destroy(d);
  ch_free_aligned(grads);
  ch_model_destroy(m);
  return med;
}

/* Median per-step time of data read, forward+backward and clip+optimizer, every rank at once
 * on its share of the global batch, with no communication. */
static void time_breakdown(const ch_config *cfg, const ch_group *g, int iters, double out[3]) {
  ch_dataset *ds;
  die(ch_dataset_open(g, cfg->data.path, "train", &ds), "ch_dataset_open");
  int64_t B = cfg->train.batch_size, D = ch_dataset_features(ds);
  int64_t local = (int64_t)ch_part_count((size_t)B, g->size, 0);
  ch_sampler s;
  die(ch_sampler_create(ch_dataset_rows(ds), (uint64_t)cfg->train.seed, &s), "sampler");
  ch_model *m;
  die(ch_model_create(ch_backend_cpu(), &cfg->model, D, ch_dataset_classes(ds), (int)local, &m), "model");
  const ch_layout *l = ch_model_layout(m);
  float *p = ch_alloc_aligned(l->numel * sizeof(float));
  float *gr = ch_alloc_aligned(l->numel * sizeof(float));
  float *x = malloc(sizeof *x * (size_t)(local * D));
  int32_t *y = malloc(sizeof *y * (size_t)local);
  int64_t *rows = malloc(sizeof *rows * (size_t)local);
  if (!p || !gr || !x || !y || !rows) ch_runtime_fatal(CH_ERR_NOMEM, "breakdown buffers");
  ch_layout_init_params(l, p, (uint64_t)cfg->train.seed);
  ch_optim *o;
  ch_segment all;
  ch_shard whole = ch_shard_range(&all, 0, l->numel);
  die(ch_optim_create(ch_backend_cpu(), &cfg->optim, l, &whole, &o), "optim");
  double *t[3];
  for (int k = 0; k < 3; k++) t[k] = calloc((size_t)iters, sizeof(double));
  for (int it = -3; it < iters; it++) {
    double t0 = ch_time();
    int64_t mine = ch_sampler_batch(&s, (int64_t)(it + 3) * B, B, g->size, g->rank, rows);
    die(ch_dataset_read(ds, rows, mine, x, y), "ch_dataset_read");
    double t1 = ch_time();
    memset(gr, 0, l->numel * sizeof(float));
    double loss;
    die(ch_model_train_step(m, p, gr, x, y, (int)mine, 1.0f / (float)B, NULL), "train_step");
    die(ch_model_take_loss(m, &loss), "take_loss");
    double t2 = ch_time(), norm;
    die(ch_clip_grad_norm(ch_backend_cpu(), gr, l->numel, cfg->optim.grad_clip, NULL, &norm), "clip");
    ch_optim_step(o, p, CH_ADDR_FLAT, gr, CH_ADDR_FLAT, cfg->optim.lr);
    double t3 = ch_time();
    if (it >= 0) {
      t[0][it] = t1 - t0;
      t[1][it] = t2 - t1;
      t[2][it] = t3 - t2;
    }
  }
  for (int k = 0; k < 3; k++) {
    out[k] = bench_median(t[k], iters);
    free(t[k]);
  }
  ch_optim_destroy(o);
  ch_model_destroy(m);
  ch_sampler_destroy(&s);
  ch_dataset_close(ds);
  ch_free_aligned(p);
  ch_free_aligned(gr);
  free(x);
  free(y);
  free(rows);
}

int main(int argc, char **argv) {
  const char *config = NULL;
  const char **ov = calloc((size_t)argc, sizeof *ov);
  int nov = 0, reps = 2, comm_iters = 20, breakdown = 1, verbose = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--comm-iters") && i + 1 < argc) comm_iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--no-breakdown")) breakdown = 0;
    else if (!strcmp(argv[i], "--verbose")) verbose = 1;
    else if (strchr(argv[i], '=')) ov[nov++] = argv[i];
    else if (!config) config = argv[i];
    else {
      fprintf(stderr, "usage: mlp_step CONFIG.yaml [key.sub=value ...] [--reps R] "
                      "[--comm-iters K] [--no-breakdown] [--verbose]\n");
      return 2;
    }
  }
  if (!config || reps < 1 || comm_iters < 1) {
    fprintf(stderr, "usage: mlp_step CONFIG.yaml [key.sub=value ...] [--reps R] [--comm-iters K]\n");
    return 2;
  }
  /* Progress lines of the 2*reps+1 training runs would bury the results. */
  if (!verbose) setenv("COHORT_LOG", "warn", 0);
  ch_runtime *rt;
  if (ch_runtime_init(&argc, &argv, NULL, &rt) != CH_OK) {
    fprintf(stderr, "mlp_step: runtime initialisation failed: %s\n", ch_error_message());
    return 1;
  }
  ch_config cfg;
  if (ch_config_load(config, ov, nov, &cfg) != CH_OK) {
    if (rt->world_rank == 0) fprintf(stderr, "mlp_step: %s\n", ch_error_message());
    ch_runtime_finalize();
    return 2;
  }
  ch_group g;
  die(ch_group_world(&g), "ch_group_world");
  die(ch_blas_init(rt->ncores), "ch_blas_init");
  int root = g.rank == 0;
  char cpu[256];
  bench_cpu_model(cpu, sizeof cpu);
  if (root) {
    printf("# mlp_step: %s, %d rank%s x %d core%s (%s), OpenBLAS %s\n", cpu, g.size,
           g.size == 1 ? "" : "s", rt->ncores, rt->ncores == 1 ? "" : "s", rt->cpuset,
           ch_blas_corename());
    printf("# model mlp depth %d hidden %d %s; batch %lld global; %lld steps, log_every %lld; "
           "buckets %g MiB (first %g); data %s\n",
           cfg.model.depth, cfg.model.hidden, cfg.model.activation ? "gelu" : "relu",
           (long long)cfg.train.batch_size, (long long)cfg.train.steps,
           (long long)cfg.train.log_every, cfg.parallel.bucket_mb, cfg.parallel.first_bucket_mb,
           cfg.data.path);
    fflush(stdout);
  }

  run_stats warm;
  train_once(&cfg, &g, 1, -1, cfg.train.steps < 10 ? cfg.train.steps : 10, &warm);

  int nruns = 2 * reps;
  run_stats *runs = calloc((size_t)nruns, sizeof *runs);
  for (int r = 0; r < reps; r++) {
    int first = (r % 2 == 0) ? 1 : 0; /* ABBA: on off, off on, ... */
    train_once(&cfg, &g, first, r, cfg.train.steps, &runs[2 * r]);
    train_once(&cfg, &g, !first, r, cfg.train.steps, &runs[2 * r + 1]);
  }

  int nb = 0;
  size_t bytes = 0;
  double single = 0, nonblocking = 0;
  double comm = g.size > 1 ? time_comm(&cfg, &g, comm_iters, &nb, &bytes, &single, &nonblocking) : 0.0;
  double bd[3] = {NAN, NAN, NAN};
  if (breakdown) time_breakdown(&cfg, &g, 20, bd);

  if (root) {
    printf("%-8s %3s %12s %11s %11s %11s %12s %8s %9s\n", "overlap", "rep", "samples/s",
           "step_med", "step_mean", "step_min", "exposed/step", "loss", "val_acc");
    for (int i = 0; i < nruns; i++) {
      run_stats *s = &runs[i];
      printf("%-8s %3d %12.0f %9.2fms %9.2fms %9.2fms %10.2fms %8.4f %8.2f%%\n",
             s->overlap ? "on" : "off", s->rep, cfg.train.batch_size / s->step_med,
             1e3 * s->step_med, 1e3 * s->step_mean, 1e3 * s->step_min, 1e3 * s->exposed,
             s->train_loss, 100.0 * s->val_acc);
    }
    /* Pool the interval throughputs of all reps per mode. */
    double step[2], exposed[2] = {0, 0}, whole[2] = {0, 0}, smin[2] = {INFINITY, INFINITY};
    for (int mode = 0; mode < 2; mode++) {
      double *pool = malloc(sizeof(double) * MAX_INTERVALS * (size_t)nruns);
      int np = 0;
      double mean_sum = 0;
      for (int i = 0; i < nruns; i++) {
        if (runs[i].overlap != mode) continue;
        memcpy(pool + np, runs[i].iv, sizeof(double) * (size_t)runs[i].niv);
        np += runs[i].niv;
        exposed[mode] += runs[i].exposed / reps;
        whole[mode] += runs[i].sps_whole / reps;
        mean_sum += runs[i].step_mean / reps;
        if (runs[i].step_min < smin[mode]) smin[mode] = runs[i].step_min;
      }
      step[mode] = np ? (double)cfg.train.batch_size / bench_median(pool, np) : mean_sum;
      free(pool);
    }
    printf("pooled (median of %lld-step intervals over %d reps, first interval of each run "
           "excluded):\n", (long long)cfg.train.log_every, reps);
    printf("  overlap on : %8.0f samples/s, step %.2f ms (min %.2f), exposed comm %.2f ms/step\n",
           cfg.train.batch_size / step[1], 1e3 * step[1], 1e3 * smin[1], 1e3 * exposed[1]);
    printf("  overlap off: %8.0f samples/s, step %.2f ms (min %.2f), exposed comm %.2f ms/step\n",
           cfg.train.batch_size / step[0], 1e3 * step[0], 1e3 * smin[0], 1e3 * exposed[0]);
    double hidden = NAN, hidden_wait = NAN;
    if (g.size > 1) {
      hidden = (step[0] - step[1]) / comm;
      hidden_wait = exposed[0] > 0 ? 1.0 - exposed[1] / exposed[0] : NAN;
      printf("  comm alone : %.2f ms/step (%d bucketed blocking allreduces, %.2f MiB) = %.2f GB/s "
             "algbw; one allreduce of it all %.2f ms; the buckets non-blocking + wait (as DDP "
             "with overlap off) %.2f ms\n",
             1e3 * comm, nb, bytes / 1048576.0, bytes / comm / 1e9, 1e3 * single, 1e3 * nonblocking);
      printf("  hidden = (step_off - step_on) / comm = %.2f;  1 - exposed_on/exposed_off = %.2f\n",
             hidden, hidden_wait);
    }
    if (breakdown)
      printf("  breakdown per step, %lld rows/rank, no comm: data read %.2f ms, fwd+bwd %.2f ms, "
             "clip+adamw %.2f ms (sum %.2f)\n",
             (long long)ch_part_count((size_t)cfg.train.batch_size, g.size, 0), 1e3 * bd[0],
             1e3 * bd[1], 1e3 * bd[2], 1e3 * (bd[0] + bd[1] + bd[2]));
    printf("summary: n=%d sps_on=%.1f sps_off=%.1f step_on_ms=%.3f step_off_ms=%.3f "
           "whole_sps_on=%.1f whole_sps_off=%.1f exposed_on_ms=%.3f exposed_off_ms=%.3f "
           "min_on_ms=%.3f min_off_ms=%.3f comm_ms=%.3f comm_nb_ms=%.3f hidden=%.3f hidden_wait=%.3f read_ms=%.3f "
           "fwdbwd_ms=%.3f opt_ms=%.3f\n",
           g.size, cfg.train.batch_size / step[1], cfg.train.batch_size / step[0], 1e3 * step[1],
           1e3 * step[0], whole[1], whole[0], 1e3 * exposed[1], 1e3 * exposed[0], 1e3 * smin[1],
           1e3 * smin[0],
           1e3 * comm, 1e3 * nonblocking, hidden, hidden_wait, 1e3 * bd[0], 1e3 * bd[1], 1e3 * bd[2]);
    fflush(stdout);
  }
  free(runs);
  free(ov);
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return 0;
}
