/* Setting up and tearing down a server (include/cohort/serve.h): the model on every rank, the
 * tokenizer, metrics and HTTP front end on rank 0, then the executor loop until shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/ckpt.h"
#include "cohort/log.h"
#include "cohort/signals.h"
#include "cohort/watchdog.h"
#include "serve/server.h"
#include "serve/stats.h"
#include "serve/tls.h"

void ch_serve_opts_default(ch_serve_opts *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->host, sizeof o->host, "127.0.0.1");
  o->port = 8000;
  o->max_batch_size = 8;
  o->max_queue_delay_us = 2000;
  o->max_queue_size = 256;
  o->request_timeout = 60.0;
  o->max_body_bytes = (size_t)16 << 20;
  o->max_connections = 256;
  o->max_connections_per_client = 0;
  o->read_deadline = 30.0;
  o->watchdog_timeout = 300.0;
}

/* How long one executor step may run before the server says it is not ready: the request
 * timeout (every request would time out anyway), but never under 5 s (a tiny --timeout is a
 * budget for requests, not a sign of a hung rank), and at most half the watchdog's timeout, so
 * that probes see a hung rank well before the watchdog ends the job. */
static double stall_after(const ch_serve_opts *o) {
  double t = o->request_timeout > 5.0 ? o->request_timeout : 5.0;
  if (o->watchdog_timeout > 0 && o->watchdog_timeout / 2 < t) t = o->watchdog_timeout / 2;
  return t;
}

/* Rank 0's part of the startup: tokenizer, metrics, listening socket. */
static ch_status start_leader(serve_state *s, const char *data_path) {
  serve_model *m = s->model;
  if (m->is_gpt) {
    const char *data = data_path[0] ? data_path : m->info.data_path;
    if (ch_tokenizer_load(data, &s->tok) != CH_OK)
      return CH_FAIL(CH_ERR_IO, "the tokenizer comes from the training data %s (--data names "
                     "another copy): %s", data, ch_error_message());
    s->vocab_real = ch_tokenizer_vocab(s->tok);
    if (s->vocab_real > m->vocab)
      return CH_FAIL(CH_ERR_CONFIG, "%s's tokenizer has %lld tokens, the model only %lld", data,
                     (long long)s->vocab_real, (long long)m->vocab);
  }
  /* The model repository: loads are confined to it (repo.c). */
  const char *repo = s->opts.model_repository[0] ? s->opts.model_repository : s->ckpt_dir;
  if (serve_repo_root(repo, s->repo_root, sizeof s->repo_root) != 0) {
    if (s->opts.model_repository[0])
      return CH_FAIL(CH_ERR_CONFIG, "--model-repository %s: not a directory that exists", repo);
    s->repo_root[0] = '\0'; /* serving from memory with no checkpoint directory: no loads */
  }
  CH_CHECK(serve_metrics_init(s));
  CH_CHECK(serve_http_start(s));
  if (s->opts.port_file[0]) {
    FILE *f = fopen(s->opts.port_file, "w");
    if (!f || fprintf(f, "%d\n", s->opts.port) < 0 || fclose(f) != 0)
      return CH_FAIL(CH_ERR_IO, "cannot write %s", s->opts.port_file);
  }
  return CH_OK;
}

/* Runs the server over model m on device d (both owned from here on). */
static ch_status serve_main(const ch_group *g, serve_dev *d, serve_model *m, const char *ckpt_dir,
                            const ch_serve_opts *o) {
  serve_state *s = o->port < 0 || o->port > 65535 ? NULL : calloc(1, sizeof *s);
  if (!s) {
    serve_model_free(m);
    serve_dev_close(d);
    return o->port < 0 || o->port > 65535
               ? CH_FAIL(CH_ERR_CONFIG, "serve.port %d is not a TCP port (0-65535)", o->port)
               : CH_FAIL(CH_ERR_NOMEM, "server");
  }
  s->g = g;
  s->dev = *d;
  s->opts = *o;
  if (s->opts.max_batch_size < 1) s->opts.max_batch_size = 1;
  s->model = m;
  s->stall_after = stall_after(o);
  snprintf(s->model_name, sizeof s->model_name, "%s",
           o->model_name[0] ? o->model_name : (m->is_gpt ? "gpt" : "mlp"));
  /* Its real path when it exists: "latest" reloads name it, checked against the repository. */
  if (!ckpt_dir || serve_repo_root(ckpt_dir, s->ckpt_dir, sizeof s->ckpt_dir) != 0)
    snprintf(s->ckpt_dir, sizeof s->ckpt_dir, "%s", ckpt_dir ? ckpt_dir : "");
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->wake, NULL);
  serve_facts_publish(s);
  ch_signals_install(); /* every rank: SIGTERM must not kill followers; the ranks agree (SYNC) */
  /* A hung rank ends the job naming it, as in training (every rank starts it: collective). */
  ch_status st = ch_watchdog_start(g, o->watchdog_timeout);
  if (st == CH_OK && g->rank == 0) st = start_leader(s, o->data_path);
  /* Every rank learns whether rank 0 could start. */
  int bad = st != CH_OK;
  ch_status cs = ch_comm_allreduce(g, &bad, 1, CH_I32, CH_MAX, NULL);
  if (cs != CH_OK) st = cs;
  else if (bad && st == CH_OK) st = CH_FAIL(CH_ERR_IO, "rank 0 could not start the server");
  if (st == CH_OK) {
    if (g->rank == 0)
      CH_INFO("serving %s (%s) version %s on %s://%s:%d with %d rank%s (tensor parallel) "
              "on %s", s->model_name, m->is_gpt ? "gpt" : "mlp", m->version,
              serve_tls_scheme(s->tls), s->opts.host,
              s->opts.port, g->size, g->size == 1 ? "" : "s", ch_device_describe(s->dev.dev));
    pthread_mutex_lock(&s->lock);
    s->ready = s->accepting = 1;
    pthread_mutex_unlock(&s->lock);
    st = serve_run(s);
    if (g->rank == 0 && st == CH_OK) CH_INFO("server stopped");
  }
  serve_http_stop(s);
  ch_watchdog_stop();
  if (g->rank == 0 && serve_req_live() != 0)
    CH_WARN("%ld request(s) were never freed (a leak)", serve_req_live());
  /* The handlers stay installed until the process exits: across nodes SIGTERM reaches the
   * ranks at different times, and one arriving while this rank is in MPI_Finalize (its server
   * already stopped by an earlier rank's signal) must not kill it. */
  ch_tokenizer_destroy(s->tok);
  metrics_destroy(s->metrics);
  serve_stats_destroy(s->stats);
  serve_model_free(s->model);
  serve_dev_close(&s->dev);
  pthread_cond_destroy(&s->wake);
  pthread_mutex_destroy(&s->lock);
  free(s);
  return st;
}

ch_status ch_serve_checkpoint(const ch_group *g, const char *path, const ch_serve_opts *o) {
  char file[CH_PATH_MAX];
  CH_CHECK(ch_ckpt_resolve(path, file, sizeof file));
  serve_model *m = NULL;
  serve_dev d;
  ch_status st = serve_dev_open(g, o, &d);
  if (st == CH_OK) st = serve_model_load(g, &d, file, o, &m);
  if (st != CH_OK) {
    serve_dev_close(&d);
    return st;
  }
  /* "latest" reloads look in the directory that was named, or the file's own directory. */
  char dir[CH_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", strcmp(file, path) ? path : file);
  if (!strcmp(file, path)) {
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
  }
  return serve_main(g, &d, m, dir, o);
}

ch_status ch_serve_params(const ch_group *g, const ch_ckpt_model_info *info, const float *params,
                          int64_t step, const char *ckpt_dir, const ch_serve_opts *o) {
  serve_model *m = NULL;
  serve_dev d;
  ch_status st = serve_dev_open(g, o, &d);
  if (st == CH_OK) st = serve_model_from_params(g, &d, info, params, step, o, &m);
  if (st != CH_OK) {
    serve_dev_close(&d);
    return st;
  }
  return serve_main(g, &d, m, ckpt_dir, o);
}
