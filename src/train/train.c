/* The training loop (DDP). One optimizer step:
 *   1. the sampler gives this rank its part of the global batch (positions step*B ..);
 *   2. the rows are read from HDF5 (hyperslabs) and split into micro-batches;
 *   3. each micro-batch runs forward/backward of (1/B) * sum of losses, accumulating gradients;
 *      only the last one passes the DDP hook, so accumulation needs no communication;
 *   4. DDP sums gradients over ranks: the result is the gradient of the mean loss over the
 *      GLOBAL batch whatever the rank count, even when ranks hold unequal parts;
 *   5. clip by global norm, learning rate from the schedule, optimizer update. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/data.h"
#include "cohort/log.h"
#include "cohort/model.h"
#include "cohort/optim.h"
#include "cohort/runtime.h"
#include "cohort/train.h"
#include "train/train_internal.h"

typedef struct trainer {
  const ch_config *cfg;
  const ch_group *g;
  ch_dataset *train, *val;
  ch_sampler sampler;
  ch_model *model;
  const ch_layout *layout;
  ch_optim *optim;
  ch_ddp *ddp;
  float *params, *grads;
  int64_t local_max;   /* rows of the largest rank part of a global batch */
  int64_t micro;       /* rows per micro-batch */
  int64_t accum;       /* micro-batches per optimizer step */
  int64_t features;
  float *x;            /* [local_max, features] */
  int32_t *y;
  int64_t *rows;
  FILE *metrics;
} trainer;

/* Batch decomposition: rank parts of ceil(B/N) rows at most, split into accum micro-batches. */
static ch_status plan_batches(trainer *t) {
  const ch_config *c = t->cfg;
  int n = t->g->size;
  t->local_max = (int64_t)ch_part_count((size_t)c->train.batch_size, n, 0);
  if (t->local_max == 0)
    return CH_FAIL(CH_ERR_CONFIG, "train.batch_size (%lld) is smaller than the number of ranks "
                   "(%d): every rank needs at least one sample", (long long)c->train.batch_size, n);
  t->micro = c->train.micro_batch_size > 0 ? c->train.micro_batch_size : t->local_max;
  if (t->local_max % t->micro != 0)
    return CH_FAIL(CH_ERR_CONFIG, "train.micro_batch_size (%lld) must divide the per-rank batch "
                   "ceil(train.batch_size / ranks) = ceil(%lld / %d) = %lld",
                   (long long)t->micro, (long long)c->train.batch_size, n, (long long)t->local_max);
  t->accum = t->local_max / t->micro;
  return CH_OK;
}

static ch_status setup(trainer *t, const ch_config *cfg, const ch_group *g) {
  memset(t, 0, sizeof *t);
  t->cfg = cfg;
  t->g = g;
  CH_CHECK(plan_batches(t));
  CH_CHECK(ch_dataset_open(g, cfg->data.path, "train", &t->train));
  if (ch_dataset_rows(t->train) < 1)
    return CH_FAIL(CH_ERR_CONFIG, "data.path %s: the train split is empty", cfg->data.path);
  CH_CHECK(ch_dataset_open(g, cfg->data.path, "val", &t->val));
  t->features = ch_dataset_features(t->train);
  CH_CHECK(ch_sampler_create(ch_dataset_rows(t->train), (uint64_t)cfg->train.seed, &t->sampler));
  int max_batch = (int)(t->micro > 256 ? t->micro : 256); /* eval chunks reuse the arena */
  CH_CHECK(ch_model_create(cfg, t->features, ch_dataset_classes(t->train), max_batch, &t->model));
  t->layout = ch_model_layout(t->model);
  t->params = ch_alloc_aligned(t->layout->numel * sizeof(float));
  t->grads = ch_alloc_aligned(t->layout->numel * sizeof(float));
  size_t xrows = (size_t)(t->local_max > max_batch ? t->local_max : max_batch);
  t->x = malloc(sizeof *t->x * xrows * (size_t)t->features);
  t->y = malloc(sizeof *t->y * xrows);
  t->rows = malloc(sizeof *t->rows * xrows);
  if (!t->params || !t->grads || !t->x || !t->y || !t->rows)
    return CH_FAIL(CH_ERR_NOMEM, "training buffers");
  ch_layout_init_params(t->layout, t->params, (uint64_t)cfg->train.seed);
  /* Init is a pure function of the seed, so replicas agree already; the broadcast makes that
   * an invariant rather than an assumption (as torch DDP does at construction). */
  CH_CHECK(ch_comm_broadcast(g, t->params, t->layout->numel, CH_F32, 0, NULL));
  CH_CHECK(ch_optim_create(cfg, t->layout, 0, t->layout->numel, &t->optim));
  CH_CHECK(ch_ddp_create(g, t->layout, t->grads, cfg->parallel.bucket_mb,
                         cfg->parallel.first_bucket_mb, cfg->parallel.overlap, &t->ddp));
  if (g->rank == 0) {
    CH_CHECK(ch_mkdir_p(cfg->run.dir));
    char path[CH_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run.dir);
    CH_CHECK(ch_config_write(cfg, path));
    snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->run.dir);
    t->metrics = fopen(path, "w");
    if (!t->metrics) return CH_FAIL(CH_ERR_IO, "cannot write %s", path);
  }
  size_t nparams = 0;
  for (int i = 0; i < t->layout->nparams; i++) nparams += (size_t)ch_param_numel(&t->layout->params[i]);
  ch_ddp_stats ds = ch_ddp_get_stats(t->ddp);
  CH_INFO("model mlp: %zu parameters in %d units; activations %.2f MiB; train %lld rows x %lld "
          "features, val %lld rows, %d classes",
          nparams, t->layout->nunits,
          (double)ch_model_activation_bytes(t->model) / 1048576.0,
          (long long)ch_dataset_rows(t->train), (long long)t->features,
          (long long)ch_dataset_rows(t->val), ch_dataset_classes(t->train));
  CH_INFO("%d rank%s, strategy ddp (%d bucket%s, overlap %s); global batch %lld = up to %lld "
          "per rank x %lld micro-step%s of %lld",
          g->size, g->size == 1 ? "" : "s", ds.nbuckets, ds.nbuckets == 1 ? "" : "s",
          cfg->parallel.overlap ? "on" : "off", (long long)cfg->train.batch_size,
          (long long)t->local_max, (long long)t->accum, t->accum == 1 ? "" : "s",
          (long long)t->micro);
  return CH_OK;
}

static void teardown(trainer *t) {
  if (t->metrics) fclose(t->metrics);
  ch_ddp_destroy(t->ddp);
  ch_optim_destroy(t->optim);
  ch_model_destroy(t->model);
  ch_sampler_destroy(&t->sampler);
  if (t->val) ch_dataset_close(t->val);
  if (t->train) ch_dataset_close(t->train);
  ch_free_aligned(t->params);
  ch_free_aligned(t->grads);
  free(t->x);
  free(t->y);
  free(t->rows);
}

/* Forward/backward over this rank's part of global batch `step`, then the DDP gradient sum.
 * Adds this rank's summed loss to *loss_sum and its rows to *rows_seen. */
static ch_status compute_gradients(trainer *t, int64_t step, double *loss_sum, int64_t *rows_seen) {
  int64_t batch = t->cfg->train.batch_size;
  int64_t mine = ch_sampler_batch(&t->sampler, step * batch, batch, t->g->size, t->g->rank, t->rows);
  CH_CHECK(ch_dataset_read(t->train, t->rows, mine, t->x, t->y));
  memset(t->grads, 0, t->layout->numel * sizeof(float));
  float scale = 1.0f / (float)batch;
  for (int64_t i = 0; i < t->accum; i++) {
    int64_t lo = i * t->micro, cnt = mine - lo;
    cnt = cnt < 0 ? 0 : (cnt > t->micro ? t->micro : cnt);
    const ch_grad_hook *hook = (i == t->accum - 1) ? ch_ddp_hook(t->ddp) : NULL;
    double l = 0.0;
    CH_CHECK(ch_model_train_step(t->model, t->params, t->grads, t->x + lo * t->features,
                                 t->y + lo, (int)cnt, scale, hook, &l));
    *loss_sum += l;
  }
  *rows_seen += mine;
  return ch_ddp_finish(t->ddp);
}

static ch_status run_loop(trainer *t, ch_train_result *res) {
  const ch_config *c = t->cfg;
  int64_t steps = c->train.steps, batch = c->train.batch_size;
  int64_t ntrain = ch_dataset_rows(t->train);
  double interval_loss = 0.0, t_start = ch_time(), t_interval = t_start;
  int64_t interval_rows = 0, interval_steps = 0;
  res->step_seconds_min = INFINITY;
  for (int64_t step = 0; step < steps; step++) {
    double t_step = ch_time();
    CH_CHECK(compute_gradients(t, step, &interval_loss, &interval_rows));
    res->ddp_wait_seconds += ch_ddp_get_stats(t->ddp).wait_seconds;
    double norm;
    CH_CHECK(ch_clip_grad_norm(t->grads, t->layout->numel, c->optim.grad_clip, NULL, &norm));
    double lr = ch_lr_at(c, step);
    ch_optim_step(t->optim, t->params, t->grads, lr);
    double now = ch_time();
    if (now - t_step < res->step_seconds_min) res->step_seconds_min = now - t_step;
    interval_steps++;

    int64_t done = step + 1;
    int last = done == steps;
    int do_eval = last || (c->train.eval_every > 0 && done % c->train.eval_every == 0);
    if (!(last || done % c->train.log_every == 0 || do_eval)) continue;
    double sums[2] = {interval_loss, (double)interval_rows};
    CH_CHECK(ch_comm_allreduce(t->g, sums, 2, CH_F64, CH_SUM, NULL));
    ch_progress p = {.step = done, .total_steps = steps, .lr = lr, .grad_norm = norm,
                     .val_loss = NAN, .val_acc = NAN};
    p.epoch = (double)(done * batch) / (double)ntrain;
    p.loss = sums[0] / sums[1];
    double elapsed = ch_time() - t_interval;
    p.samples_per_s = (double)(interval_steps * batch) / elapsed;
    p.eta_seconds = (double)(steps - done) * (ch_time() - t_start) / (double)done;
    if (do_eval && ch_dataset_rows(t->val) > 0)
      CH_CHECK(ch_train_evaluate(t->model, t->params, t->val, t->g, t->x, t->y, &p.val_loss,
                                 &p.val_acc));
    if (t->g->rank == 0) {
      ch_progress_print(&p);
      ch_progress_write_json(t->metrics, &p);
    }
    res->train_loss = p.loss;
    res->val_loss = p.val_loss;
    res->val_acc = p.val_acc;
    interval_loss = 0.0;
    interval_rows = interval_steps = 0;
    t_interval = ch_time();
  }
  res->steps = steps;
  res->seconds = ch_time() - t_start;
  res->samples_per_s = (double)(steps * batch) / res->seconds;
  res->ddp = ch_ddp_get_stats(t->ddp);
  return CH_OK;
}

ch_status ch_train_run(const ch_config *cfg, const ch_group *dp, int keep_params,
                       ch_train_result *res) {
  memset(res, 0, sizeof *res);
  res->val_loss = res->val_acc = NAN;
  trainer t;
  ch_status st;
  CH_CHECK_GOTO(setup(&t, cfg, dp), st, done);
  CH_CHECK_GOTO(run_loop(&t, res), st, done);
  if (keep_params) {
    res->params = malloc(sizeof(float) * t.layout->numel);
    if (!res->params) {
      st = CH_FAIL(CH_ERR_NOMEM, "copy of the parameters");
      goto done;
    }
    memcpy(res->params, t.params, sizeof(float) * t.layout->numel);
    res->numel = t.layout->numel;
  }
done:
  teardown(&t);
  return st;
}

void ch_train_result_free(ch_train_result *res) {
  free(res->params);
  res->params = NULL;
}
