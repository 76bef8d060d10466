/* The training loop, the same for every data-parallel strategy. One optimizer step:
 *   1. the sampler gives this rank its part of the global batch (positions step*B ..);
 *   2. the rows are read from HDF5 (hyperslabs) and split into micro-batches;
 *   3. each micro-batch runs forward/backward of (1/B) * sum of losses, accumulating gradients,
 *      with the strategy's hook (ch_dp: DDP allreduces only on the last micro-step);
 *   4. gradients are summed over ranks (each rank's owned part under ZeRO): the result is the
 *      gradient of the mean loss over the GLOBAL batch whatever the rank count, even when
 *      ranks hold unequal parts;
 *   5. clip by global norm, learning rate from the schedule, optimizer update. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/ckpt.h"
#include "cohort/comm_mpi.h"
#include "cohort/data.h"
#include "cohort/fs.h"
#include "cohort/log.h"
#include "cohort/model.h"
#include "cohort/optim.h"
#include "cohort/runtime.h"
#include "cohort/signals.h"
#include "cohort/train.h"
#include "cohort/watchdog.h"
#include "train/train_internal.h"


ch_status ch_train_plan(const ch_config *c, int n, ch_batch_plan *out) {
  out->local_max = (int64_t)ch_part_count((size_t)c->train.batch_size, n, 0);
  if (out->local_max == 0)
    return CH_FAIL(CH_ERR_CONFIG, "train.batch_size (%lld) is smaller than the number of ranks "
                   "(%d): every rank needs at least one sample", (long long)c->train.batch_size, n);
  out->micro = c->train.micro_batch_size > 0 ? c->train.micro_batch_size : out->local_max;
  if (out->local_max % out->micro != 0)
    return CH_FAIL(CH_ERR_CONFIG, "train.micro_batch_size (%lld) must divide the per-rank batch "
                   "ceil(train.batch_size / ranks) = ceil(%lld / %d) = %lld",
                   (long long)out->micro, (long long)c->train.batch_size, n,
                   (long long)out->local_max);
  out->accum = out->local_max / out->micro;
  /* Eval chunks reuse the arena: MLP rows are cheap, GPT sequences are not. */
  int eval_batch = c->model.type == CH_MODEL_GPT ? 8 : 256;
  out->max_batch = (int)(out->micro > eval_batch ? out->micro : eval_batch);
  return CH_OK;
}

/* run.dir and the checkpoint directory must be the same directory on every rank (a file system
 * every node mounts): otherwise the first collective checkpoint create waits on ranks that
 * opened another file, until the watchdog fires. Checked on every rank before anything is
 * read from or written to either directory (the resume, config.yaml, metrics). */
static ch_status check_shared_dirs(const ch_config *cfg, const ch_group *g) {
  MPI_Comm comm = ch_group_mpi_comm(g);
  if (comm == MPI_COMM_NULL) return CH_OK; /* not an MPI group: nothing to compare */
  CH_CHECK(ch_runtime_check_shared_dir(comm, "run.dir", cfg->run.dir));
  ch_ckpt_cfg cc = ch_config_ckpt(cfg);
  return ch_runtime_check_shared_dir(comm, "run.checkpoint.dir", cc.dir);
}

static ch_status setup(trainer *t, const ch_config *cfg, const ch_group *g) {
  memset(t, 0, sizeof *t);
  t->cfg = cfg;
  t->optim = ch_config_optim(cfg);
  t->ckpt = ch_config_ckpt(cfg);
  t->g = g;
  ch_batch_plan plan;
  CH_CHECK(ch_train_plan(cfg, g->size, &plan));
  t->local_max = plan.local_max;
  t->micro = plan.micro;
  t->accum = plan.accum;
  CH_CHECK(source_open(cfg, g, "train", &t->train));
  if (source_samples(t->train) < 1)
    return CH_FAIL(CH_ERR_CONFIG, "data.path %s: the train split is empty", cfg->data.path);
  CH_CHECK(source_open(cfg, g, "val", &t->val));
  CH_CHECK(ch_sampler_create(source_samples(t->train), (uint64_t)cfg->train.seed, &t->sampler));
  int max_batch = plan.max_batch;
  CH_CHECK(source_model_info(cfg, t->train, &t->info));
  CH_CHECK(trainer_check_sizes(cfg, &plan, &t->info));
  CH_CHECK(check_shared_dirs(cfg, g)); /* after the config checks: a refused run creates nothing */
  CH_CHECK(ch_device_open(&cfg->device, &t->dev));
  const ch_backend *be = ch_device_backend(t->dev);
  CH_CHECK(ch_device_group(t->dev, g, &t->dg));
  CH_CHECK(ch_model_create(be, &cfg->model, t->info.features, t->info.classes, max_batch,
                           &t->model));
  t->layout = ch_model_layout(t->model);
  t->features = ch_model_sample_floats(t->model);
  t->ints = ch_model_sample_ints(t->model);
  size_t xrows = (size_t)(t->local_max > max_batch ? t->local_max : max_batch);
  t->x = malloc(sizeof *t->x * (xrows * (size_t)t->features + 1));
  t->y = malloc(sizeof *t->y * xrows * (size_t)t->ints);
  t->rows = malloc(sizeof *t->rows * xrows);
  t->losses = calloc((size_t)cfg->train.log_every, sizeof *t->losses);
  if (!t->x || !t->y || !t->rows || !t->losses) return CH_FAIL(CH_ERR_NOMEM, "training buffers");
  CH_CHECK(ch_dp_create(&cfg->parallel, &t->optim, be, &t->dg, t->layout, &t->dp));
  CH_CHECK(ch_dp_init_params(t->dp, (uint64_t)cfg->train.seed));
  int resumed = 0;
  CH_CHECK(trainer_resume(t, &resumed));
  CH_CHECK(trainer_init_from(t, resumed));
  if (g->rank == 0) {
    CH_CHECK(ch_mkdir_p(cfg->run.dir));
    char path[CH_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run.dir);
    CH_CHECK(ch_config_write(cfg, path));
  }
  CH_CHECK(trainer_open_metrics(t, resumed));
  if (g->rank == 0 && cfg->run.tensorboard) t->tb = tb_open(cfg->run.dir, t->step);
  size_t nparams = 0;
  for (int i = 0; i < t->layout->nparams; i++) nparams += (size_t)ch_param_numel(&t->layout->params[i]);
  char train_desc[160], val_desc[160];
  source_describe(t->train, train_desc, sizeof train_desc);
  source_describe(t->val, val_desc, sizeof val_desc);
  CH_INFO("model %s: %zu parameters in %d units; activation arena %.2f MiB (%d samples)",
          ch_model_name(t->model), nparams, t->layout->nunits,
          (double)ch_model_activation_bytes(t->model) / 1048576.0, ch_model_max_batch(t->model));
  CH_INFO("data %s: train %s; val %s", cfg->data.path, train_desc, val_desc);
  CH_INFO("%d rank%s on %s, strategy %s; global batch %lld = up to %lld per rank x %lld "
          "micro-step%s of %lld", g->size, g->size == 1 ? "" : "s", ch_device_describe(t->dev),
          ch_strategy_name(cfg->parallel.strategy),
          (long long)cfg->train.batch_size, (long long)t->local_max, (long long)t->accum,
          t->accum == 1 ? "" : "s", (long long)t->micro);
  return CH_OK;
}

static void teardown(trainer *t) {
  if (t->metrics) fclose(t->metrics);
  tb_close(t->tb);
  ch_dp_destroy(t->dp);
  ch_model_destroy(t->model);
  ch_group_destroy(&t->dg);
  ch_device_close(t->dev);
  ch_sampler_destroy(&t->sampler);
  source_close(t->val);
  source_close(t->train);
  free(t->x);
  free(t->y);
  free(t->rows);
  free(t->losses);
}

/* Forward/backward over this rank's part of the global batch at the sampler's position, then
 * the gradient sum over ranks. Returns this rank's summed loss in *loss_sum. */
static ch_status compute_gradients(trainer *t, double *loss_sum) {
  int64_t batch = t->cfg->train.batch_size;
  int64_t mine = ch_sampler_batch(&t->sampler, t->position, batch, t->g->size, t->g->rank, t->rows);
  CH_CHECK(source_read(t->train, t->rows, mine, t->x, t->y));
  /* The mean over every target of the global batch (tokens, for the GPT). */
  float scale = (float)(1.0 / ((double)batch * (double)ch_model_targets(t->model)));
  for (int64_t i = 0; i < t->accum; i++) {
    int64_t lo = i * t->micro, cnt = mine - lo;
    cnt = cnt < 0 ? 0 : (cnt > t->micro ? t->micro : cnt);
    const ch_unit_hook *hook;
    CH_CHECK(ch_dp_begin_micro(t->dp, (int)i, (int)t->accum, &hook));
    CH_CHECK(ch_model_train_step(t->model, ch_dp_params(t->dp), ch_dp_grads(t->dp),
                                 t->x + lo * t->features, t->y + lo * t->ints, (int)cnt, scale,
                                 hook));
  }
  double l; /* the model summed the micro-steps' losses; one read per step */
  CH_CHECK(ch_model_take_loss(t->model, &l));
  *loss_sum += l;
  return ch_dp_reduce(t->dp);
}

/* Prints and records the progress line for the steps since the last one. */
static ch_status log_progress(trainer *t, double lr, double norm, int do_eval, double elapsed,
                              double t_start, int64_t first_step, ch_train_result *res) {
  const ch_config *c = t->cfg;
  int64_t batch = c->train.batch_size, steps = c->train.steps;
  CH_CHECK(trainer_reduce_losses(t));
  double sum = 0.0;
  for (int i = 0; i < t->n_losses; i++) sum += t->losses[i];
  progress p = {.step = t->step, .total_steps = steps, .lr = lr, .grad_norm = norm,
                   .val_loss = NAN, .val_acc = NAN, .targets = ch_model_targets(t->model),
                   .skipped = t->n_skipped};
  p.epoch = (double)t->position / (double)source_samples(t->train);
  p.loss = t->n_losses > 0 ? sum / ((double)t->n_losses * (double)batch *
                                    (double)ch_model_targets(t->model)) : NAN;
  p.samples_per_s = (double)((t->n_losses + t->n_skipped) * batch) / elapsed;
  p.eta_seconds = (double)(steps - t->step) * (ch_time() - t_start) / (double)(t->step - first_step);
  if (do_eval && source_samples(t->val) > 0)
    CH_CHECK(train_evaluate(t->model, ch_dp_params(t->dp), ch_dp_eval_hook(t->dp), t->val,
                            t->g, t->x, t->y, &p.val_loss, &p.val_acc));
  if (t->g->rank == 0) {
    progress_print(&p);
    progress_write_json(t->metrics, &p);
    tb_write(t->tb, &p);
  }
  res->train_loss = p.loss;
  res->val_loss = p.val_loss;
  res->val_acc = p.val_acc;
  t->n_losses = t->n_global = 0;
  t->n_skipped = 0;
  return CH_OK;
}

/* Starts the agreement on preemption for this step: a signal that reached any rank stops all. */
static ch_status start_stop_vote(trainer *t, int32_t *vote, ch_request *req) {
  *vote = ch_signals_pending();
  return ch_comm_allreduce(t->g, vote, 1, CH_I32, CH_MAX, req);
}

static ch_status run_loop(trainer *t, ch_train_result *res) {
  const ch_config *c = t->cfg;
  int64_t steps = c->train.steps, batch = c->train.batch_size, first_step = t->step;
  int64_t every = t->ckpt.every;
  double t_start = ch_time(), t_interval = t_start;
  res->step_seconds_min = INFINITY;
  if (t->step >= steps) CH_WARN("resumed at step %lld: train.steps (%lld) is already reached",
                                (long long)t->step, (long long)steps);
  while (t->step < steps) {
    double t_step = ch_time();
    ch_watchdog_set_step(t->step + 1);
    int32_t vote;
    ch_request vote_req;
    CH_CHECK(start_stop_vote(t, &vote, &vote_req));
    double loss = 0.0;
    CH_CHECK(compute_gradients(t, &loss));
    /* A loss that is not finite on some rank, or a norm that is not (computed from the reduced
     * gradient, the same on every rank), skips the update on every rank alike. */
    int32_t bad_loss;
    ch_request bad_req;
    CH_CHECK(trainer_loss_vote(t, loss, &bad_loss, &bad_req));
    double norm;
    CH_CHECK(ch_dp_clip(t->dp, c->optim.grad_clip, &norm));
    CH_CHECK(ch_comm_wait(&bad_req));
    double lr = ch_lr_at(&t->optim, t->step);
    if (bad_loss || !isfinite(norm)) {
      ch_status st = trainer_skip_step(t, bad_loss, norm);
      if (st != CH_OK) {
        CH_CHECK(ch_comm_wait(&vote_req)); /* every rank stops here: no collective left open */
        res->nonfinite_stop = t->step + 1;
        return st;
      }
    } else {
      t->nonfinite_run = 0;
      CH_CHECK(ch_dp_update(t->dp, lr));
      t->losses[t->n_losses++] = loss;
    }
    res->comm_exposed_seconds += ch_dp_get_stats(t->dp).exposed_seconds;
    t->step++;
    t->position += batch;
    double now = ch_time();
    if (now - t_step < res->step_seconds_min) res->step_seconds_min = now - t_step;

    int last = t->step == steps;
    int do_eval = last || (c->train.eval_every > 0 && t->step % c->train.eval_every == 0);
    if (last || t->step % c->train.log_every == 0 || do_eval) {
      CH_CHECK(log_progress(t, lr, norm, do_eval, ch_time() - t_interval, t_start, first_step, res));
      t_interval = ch_time();
    }
    CH_CHECK(ch_comm_wait(&vote_req));
    if (vote || (every > 0 && (t->step % every == 0 || last))) {
      char path[CH_PATH_MAX * 2 + 32];
      /* Skipped steps keep the state finite; this is the last guard (an update to Inf). */
      ch_status st = trainer_check_finite(t);
      if (st != CH_OK) {
        res->nonfinite_stop = t->step;
        return st;
      }
      CH_CHECK(trainer_checkpoint(t, path, sizeof path));
      if (vote) {
        CH_INFO("stopping on %s: checkpoint of step %lld is %s; resume with run.resume=auto",
                ch_signal_name(vote), (long long)t->step, path);
        res->preempted = vote;
        break;
      }
    }
  }
  res->steps = t->step - first_step;
  res->seconds = ch_time() - t_start;
  res->samples_per_s = res->steps > 0 ? (double)(res->steps * batch) / res->seconds : 0.0;
  res->comm = ch_dp_get_stats(t->dp);
  res->memory = ch_dp_get_memory(t->dp);
  res->activation_bytes = ch_model_activation_bytes(t->model);
  return CH_OK;
}

/* Rank 0: the strategy's per-rank memory and communication to the log and run.dir/memory.json
 * (read by bench/zero.sh and the tests), and the memory to the TensorBoard file. */
static ch_status report_memory(const trainer *t, const ch_train_result *res) {
  if (t->g->rank != 0) return CH_OK;
  const ch_dp_memory *m = &res->memory;
  double mib = 1048576.0, per_step = res->steps > 0 ? res->comm_exposed_seconds / (double)res->steps : 0;
  CH_INFO("memory per rank (%s, %d ranks): params %.2f MiB, grads %.2f MiB, optimizer %.2f MiB, "
          "communication buffers %.2f MiB (peak), activations %.2f MiB; %.2f MiB sent per step, "
          "%.1f ms exposed communication per step", ch_strategy_name(t->cfg->parallel.strategy),
          t->g->size, (double)m->params / mib, (double)m->grads / mib, (double)m->optim / mib,
          (double)m->comm / mib, (double)res->activation_bytes / mib,
          (double)res->comm.bytes_communicated / mib, 1e3 * per_step);
  static const char *const names[] = {"params", "grads", "optim", "comm", "activations"};
  const double each[] = {(double)m->params / mib, (double)m->grads / mib, (double)m->optim / mib,
                         (double)m->comm / mib, (double)res->activation_bytes / mib};
  tb_write_memory(t->tb, t->step, names, each, 5);
  char path[CH_PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/memory.json", t->cfg->run.dir);
  char text[1024];
  int n = snprintf(text, sizeof text,
                   "{\"strategy\": \"%s\", \"ranks\": %d, \"params\": %zu, \"grads\": %zu, "
                   "\"optim\": %zu, \"comm\": %zu, \"activations\": %zu, \"bytes_per_step\": %zu, "
                   "\"exposed_seconds_per_step\": %.6f, \"step_seconds_min\": %.6f, "
                   "\"eval_bytes\": %zu}\n",
                   ch_strategy_name(t->cfg->parallel.strategy), t->g->size, m->params, m->grads,
                   m->optim, m->comm, res->activation_bytes, res->comm.bytes_communicated,
                   per_step, res->step_seconds_min, res->comm.eval_bytes);
  return ch_write_file_atomic(path, text, (size_t)n);
}

ch_status ch_train_run(const ch_config *cfg, const ch_group *dp, int keep_params,
                       ch_train_result *res) {
  memset(res, 0, sizeof *res);
  res->train_loss = res->val_loss = res->val_acc = NAN; /* until a step or evaluation runs */
  trainer t;
  memset(&t, 0, sizeof t); /* teardown runs on it even when the watchdog never started */
  ch_status st;
  ch_signals_install();
  CH_CHECK_GOTO(ch_watchdog_start(dp, cfg->run.watchdog_timeout), st, done);
  CH_CHECK_GOTO(setup(&t, cfg, dp), st, done);
  CH_CHECK_GOTO(run_loop(&t, res), st, done);
  CH_CHECK_GOTO(report_memory(&t, res), st, done);
  if (keep_params) {
    res->params = malloc(sizeof(float) * t.layout->numel);
    if (!res->params) {
      st = CH_FAIL(CH_ERR_NOMEM, "copy of the parameters");
      goto done;
    }
    res->numel = t.layout->numel;
    CH_CHECK_GOTO(ch_dp_full_params(t.dp, res->params), st, done);
  }
  res->step = t.step;
  res->model = t.info;
done:
  teardown(&t);
  ch_watchdog_stop();
  ch_signals_restore();
  return st;
}

void ch_train_result_free(ch_train_result *res) {
  free(res->params);
  res->params = NULL;
}
