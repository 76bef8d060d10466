/* The trainer's side of checkpoints: what state a checkpoint holds (parameters, optimizer
 * moments, step, sampler position, the partial log interval), choosing one to resume from, and
 * the metrics file of a resumed run. Each rank writes and reads the shard the strategy gives it
 * (under DDP a 1/N slice of the flat layout, allgathered after a load; under ZeRO its part of
 * every unit), so files do not depend on the strategy or world size that wrote them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/ckpt.h"
#include "cohort/fs.h"
#include "cohort/log.h"
#include "cohort/runtime.h"
#include "cohort_build.h"
#include "train/train_internal.h"

/* Parameters and optimizer states as checkpoint buffers (host memory); *n gets the count. */
static ch_status buffers(trainer *t, ch_ckpt_buffer *bufs, const ch_shard **own, int *n) {
  float *data[3];
  ch_addr addr[3];
  CH_CHECK(ch_dp_state_buffers(t->dp, data, addr, own, n));
  ch_optim *o = ch_dp_optim(t->dp);
  for (int i = 0; i < *n; i++)
    bufs[i] = (ch_ckpt_buffer){i ? ch_optim_state_name(o, i - 1) : NULL, data[i], addr[i]};
  return CH_OK;
}

ch_status trainer_reduce_losses(trainer *t) {
  int n = t->n_losses - t->n_global;
  if (n > 0)
    CH_CHECK(ch_comm_allreduce(t->g, t->losses + t->n_global, (size_t)n, CH_F64, CH_SUM, NULL));
  t->n_global = t->n_losses;
  return CH_OK;
}

ch_status trainer_checkpoint(trainer *t, char *path, size_t size) {
  const ch_config *c = t->cfg;
  CH_CHECK(trainer_reduce_losses(t));
  ch_ckpt_buffer bufs[3];
  const ch_shard *own;
  int nbufs = 0;
  CH_CHECK(buffers(t, bufs, &own, &nbufs));
  ch_ckpt_meta m = {.step = t->step, .samples = t->position, .seed = c->train.seed,
                    .optim_steps = ch_optim_steps(ch_dp_optim(t->dp)), .world_size = t->g->size,
                    .interval_losses = t->losses, .n_interval_losses = t->n_losses};
  m.epoch = (double)t->position / (double)source_samples(t->train);
  snprintf(m.strategy, sizeof m.strategy, "%s", ch_strategy_name(c->parallel.strategy));
  snprintf(m.version, sizeof m.version, "%s", COHORT_VERSION);
  time_t now = time(NULL);
  struct tm tm;
  strftime(m.created, sizeof m.created, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
  m.model = t->info;
  m.config = ch_config_to_yaml(c);
  if (!m.config) return CH_FAIL(CH_ERR_NOMEM, "config text for the checkpoint");
  ch_ckpt_policy policy = {t->ckpt.keep_last, t->ckpt.keep_every};
  size_t n = t->layout->numel;
  double t0 = ch_time();
  ch_status st = ch_ckpt_save(t->g, t->ckpt.dir, &policy, t->layout, bufs, nbufs, own, &m, path, size);
  free(m.config);
  CH_CHECK(st);
  double bytes = (double)nbufs * (double)n * sizeof(float);
  CH_INFO("checkpoint step %" PRId64 ": %s (%.1f MiB in %.2f s)", t->step, path, bytes / 1048576.0,
          ch_time() - t0);
  return CH_OK;
}

/* Reads `path` into the trainer; on success the state is the checkpoint's on every rank. */
static ch_status load(trainer *t, const char *path) {
  ch_ckpt_buffer bufs[3];
  const ch_shard *own;
  int nbufs = 0;
  CH_CHECK(buffers(t, bufs, &own, &nbufs));
  ch_ckpt_meta m;
  CH_CHECK(ch_ckpt_read(t->g, path, t->layout, bufs, nbufs, own, &m));
  CH_CHECK(ch_dp_loaded(t->dp));
  ch_status st = CH_OK;
  if (!m.attrs_verified && t->g->rank == 0)
    CH_WARN("%s: format version < 3: its root attributes (step, samples, ...) are not covered by "
            "a checksum and cannot be verified", path);
  if (m.n_interval_losses > t->cfg->train.log_every) {
    st = CH_FAIL(CH_ERR_CONFIG, "%s holds %d steps of an unfinished log interval but "
                 "train.log_every is %" PRId64 ": resume with train.log_every >= %d",
                 path, m.n_interval_losses, t->cfg->train.log_every, m.n_interval_losses);
    goto done;
  }
  if (m.seed != t->cfg->train.seed) {
    /* The sampler's permutation depends on the seed: continue the checkpoint's stream. */
    CH_WARN("%s was written with train.seed=%" PRId64 "; continuing its data order, not "
            "train.seed=%" PRId64, path, m.seed, t->cfg->train.seed);
    ch_sampler_destroy(&t->sampler);
    st = ch_sampler_create(source_samples(t->train), (uint64_t)m.seed, &t->sampler);
    if (st != CH_OK) goto done;
  }
  t->step = m.step;
  t->position = m.samples;
  ch_optim_set_steps(ch_dp_optim(t->dp), m.optim_steps);
  if (m.n_interval_losses > 0)
    memcpy(t->losses, m.interval_losses, sizeof(double) * (size_t)m.n_interval_losses);
  t->n_losses = t->n_global = m.n_interval_losses;
  CH_INFO("resumed from %s: step %" PRId64 ", epoch %.2f, %" PRId64 " samples seen (written by "
          "%d rank%s, %s)", path, m.step, m.epoch, m.samples, m.world_size,
          m.world_size == 1 ? "" : "s", m.created);
done:
  ch_ckpt_meta_free(&m);
  return st;
}

/* "N checkpoints (step-00000040.h5, step-00000020.h5, ...)": the files of a listing, for
 * messages. */
static void describe(char **paths, int n, char *out, size_t size) {
  int len = snprintf(out, size, "%d checkpoint%s (", n, n == 1 ? "" : "s");
  for (int i = 0; i < n && i < 4 && len > 0 && (size_t)len < size; i++)
    len += snprintf(out + len, size - (size_t)len, "%s%s", i ? ", " : "", strrchr(paths[i], '/') + 1);
  if (len > 0 && (size_t)len < size) snprintf(out + len, size - (size_t)len, "%s)", n > 4 ? ", ..." : "");
}

/* Refuses to start fresh over the checkpoints in the directory (`what` says why it would), on
 * every rank with rank 0's text: starting fresh would overwrite them, and a run that cannot
 * read them (a passing file system fault) must not destroy them. */
static ch_status refuse(trainer *t, char **paths, int n, const char *what) {
  char msg[1536] = "";
  if (t->g->rank == 0) {
    char files[384];
    describe(paths, n, files, sizeof files);
    snprintf(msg, sizeof msg, "%s holds %s: %s; refusing to start fresh over them. Resume with "
             "run.resume=auto (the newest readable one) or run.resume=PATH, start fresh "
             "deliberately with "
             "run.resume=never (their files are kept; only a checkpoint of the same step is "
             "replaced), or use another run.checkpoint.dir", t->ckpt.dir, files, what);
  }
  CH_CHECK(ch_comm_broadcast(t->g, msg, sizeof msg, CH_U8, 0, NULL));
  return CH_FAIL(CH_ERR_CONFIG, "%s", msg);
}

ch_status trainer_resume(trainer *t, int *resumed) {
  const char *mode = t->cfg->run.resume;
  *resumed = 0;
  int fresh = !strcmp(mode, "none") || !mode[0], never = !strcmp(mode, "never");
  if (!fresh && !never && strcmp(mode, "auto") != 0) {
    CH_CHECK(load(t, mode));
    *resumed = 1;
    return CH_OK;
  }
  const char *dir = t->ckpt.dir;
  char **paths = NULL;
  int n = 0;
  /* Rank 0 lists the directory and the others follow its choice, so that all ranks try the
   * same files even on a file system whose listings lag. */
  int32_t count = 0;
  ch_status st = t->g->rank == 0 ? ch_ckpt_list(dir, &paths, &n) : CH_OK;
  count = st == CH_OK ? n : -1;
  CH_CHECK(ch_comm_broadcast(t->g, &count, 1, CH_I32, 0, NULL));
  if (count < 0) return t->g->rank == 0 ? st : CH_FAIL(CH_ERR_IO, "cannot list %s", dir);
  if (fresh || never) {
    if (count > 0 && never)
      CH_INFO("run.resume=never: starting fresh in %s, which holds %d checkpoint%s of an earlier "
              "run (kept)", dir, (int)count, count == 1 ? "" : "s");
    st = count > 0 && fresh ? refuse(t, paths, n, "run.resume=none would start fresh") : CH_OK;
    ch_ckpt_list_free(paths, n);
    return st;
  }
  for (int i = 0; i < count && !*resumed; i++) {
    char path[CH_PATH_MAX * 2] = "";
    if (t->g->rank == 0) snprintf(path, sizeof path, "%s", paths[i]);
    st = ch_comm_broadcast(t->g, path, sizeof path, CH_U8, 0, NULL);
    if (st != CH_OK) break;
    st = load(t, path);
    if (st == CH_OK) *resumed = 1;
    else if (st == CH_ERR_FORMAT || st == CH_ERR_IO) {
      CH_WARN("skipping checkpoint %s: %s", path, ch_error_message());
      st = CH_OK;
    } else {
      break;
    }
  }
  if (st == CH_OK && !*resumed && count > 0)
    st = refuse(t, paths, n, "run.resume=auto found none of them readable (see the warnings "
                "above; `cohort ckpt inspect FILE` tells what is wrong)");
  ch_ckpt_list_free(paths, n);
  CH_CHECK(st);
  if (!*resumed) CH_INFO("run.resume=auto: no checkpoint in %s; starting fresh", dir);
  return CH_OK;
}

/* Keeps the lines of `path` whose "step" is <= `step`. */
static ch_status truncate_metrics(const char *path, int64_t step) {
  FILE *f = fopen(path, "r");
  if (!f) return CH_OK;
  char *kept = NULL, *line = NULL;
  size_t kept_len = 0, cap = 0;
  FILE *out = open_memstream(&kept, &kept_len);
  if (!out) {
    fclose(f);
    return CH_FAIL(CH_ERR_NOMEM, "metrics rewrite");
  }
  while (getline(&line, &cap, f) > 0) {
    long long s = -1;
    if (sscanf(line, "{\"step\": %lld", &s) == 1 && s <= step) fputs(line, out);
  }
  free(line);
  fclose(f);
  fclose(out);
  ch_status st = ch_write_file_atomic(path, kept, kept_len);
  free(kept);
  return st;
}

ch_status trainer_open_metrics(trainer *t, int resumed) {
  if (t->g->rank != 0) return CH_OK;
  char path[CH_PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/metrics.jsonl", t->cfg->run.dir);
  if (resumed) CH_CHECK(truncate_metrics(path, t->step));
  t->metrics = fopen(path, resumed ? "a" : "w");
  if (!t->metrics) return CH_FAIL(CH_ERR_IO, "cannot write %s", path);
  return CH_OK;
}
