/* What the server observes of its requests and executor steps (rank 0): the Prometheus
 * families (metrics.h) and Triton's statistics (stats.h), fed from the same moments so the two
 * agree. Every per-model series carries the model's name and version (the version that ran the
 * step, or the one served when a request ends), as Triton's do, so a reload starts new series
 * and rates per version stay meaningful. */
#include <stdio.h>
#include <string.h>

#include "cohort/runtime.h"
#include "serve/server.h"
#include "serve/stats.h"

static const char *const k_stage[3] = {"infer", "prefill", "decode"};

ch_status serve_metrics_init(serve_state *s) {
  const char *model[] = {"model", "version", NULL};
  const char *ep[] = {"model", "version", "endpoint", NULL};
  const char *out[] = {"model", "version", "endpoint", "code", NULL};
  const char *stage[] = {"model", "version", "stage", NULL};
  double batch[32];
  int nb = metrics_pow2_buckets(batch, s->opts.max_batch_size > 1 ? s->opts.max_batch_size : 2);
  const double *lat = metrics_latency_buckets;
  int nl = metrics_latency_nbuckets;
  const struct {
    const char *name, *help;
    metric_type type;
    const char *const *labels;
    const double *bounds;
    int nbounds;
    metric **out;
  } fam[] = {
    {"cohort_requests_total", "Requests by endpoint and HTTP status", CH_METRIC_COUNTER, out,
     NULL, 0, &s->m_requests},
    {"cohort_request_duration_seconds", "Time from a request's arrival to its response",
     CH_METRIC_HISTOGRAM, ep, lat, nl, &s->m_latency},
    {"cohort_queue_duration_seconds", "Time a request waited for the executor",
     CH_METRIC_HISTOGRAM, model, lat, nl, &s->m_queue},
    {"cohort_batch_size", "Rows (V2) or sequences (generation) per executor step",
     CH_METRIC_HISTOGRAM, model, batch, nb, &s->m_batch},
    {"cohort_inferences_total",
     "Rows (V2) or sequences (generation) computed, summed over executor steps",
     CH_METRIC_COUNTER, model, NULL, 0, &s->m_inferences},
    {"cohort_executions_total", "Executor steps (model executions)", CH_METRIC_COUNTER, model,
     NULL, 0, &s->m_executions},
    {"cohort_pending_requests", "Requests waiting for the executor", CH_METRIC_GAUGE, model,
     NULL, 0, &s->m_pending},
    {"cohort_prompt_tokens_total", "Prompt tokens prefilled", CH_METRIC_COUNTER, model, NULL, 0,
     &s->m_prompt_tokens},
    {"cohort_generated_tokens_total", "Tokens generated", CH_METRIC_COUNTER, model, NULL, 0,
     &s->m_tokens},
    {"cohort_time_to_first_token_seconds",
     "Time from a completion request's arrival to its first token", CH_METRIC_HISTOGRAM, model,
     lat, nl, &s->m_ttft},
    {"cohort_inter_token_latency_seconds",
     "Time between a sequence's consecutive generated tokens", CH_METRIC_HISTOGRAM, model, lat,
     nl, &s->m_itl},
    {"cohort_compute_duration_seconds", "Executor time per step by stage (infer, prefill, decode)",
     CH_METRIC_HISTOGRAM, stage, lat, nl, &s->m_compute},
  };
  CH_CHECK(metrics_create(&s->metrics));
  for (size_t i = 0; i < sizeof fam / sizeof *fam; i++)
    CH_CHECK(metrics_register(s->metrics, fam[i].name, fam[i].help, fam[i].type, fam[i].labels,
                              fam[i].bounds, fam[i].nbounds, fam[i].out));
  if (!(s->stats = serve_stats_create())) return CH_FAIL(CH_ERR_NOMEM, "statistics");
  return CH_OK;
}

void serve_observe_start(serve_state *s, serve_req *r, double now) {
  const char *lv[] = {s->model_name, s->model->version};
  r->t_start = now;
  metric_observe(s->m_queue, lv, now - r->t_enqueue);
  if (r->kind == SERVE_GENERATE) metric_inc(s->m_prompt_tokens, lv, (double)r->nprompt);
}

void serve_observe_step(serve_state *s, int stage, int64_t batch, double seconds) {
  const char *version = s->model->version;
  const char *lv[] = {s->model_name, version}, *ls[] = {s->model_name, version, k_stage[stage]};
  metric_observe(s->m_compute, ls, seconds);
  if (batch < 1) return;
  metric_observe(s->m_batch, lv, (double)batch);
  metric_inc(s->m_inferences, lv, (double)batch);
  metric_inc(s->m_executions, lv, 1);
  serve_stats_execution(s->stats, version, batch, seconds);
}

void serve_observe_token(serve_state *s, serve_req *r, double now) {
  const char *lv[] = {s->model_name, s->model->version};
  if (r->nout == 0) {
    r->t_first = now;
    metric_observe(s->m_ttft, lv, now - r->t_enqueue);
  } else {
    metric_observe(s->m_itl, lv, now - r->t_last);
  }
  r->t_last = now;
  metric_inc(s->m_tokens, lv, 1);
}

void serve_observe_end(serve_state *s, serve_req *r) {
  if (r->kind != SERVE_INFER && r->kind != SERVE_GENERATE) return;
  serve_req_times t = {.created = r->t_new, .enqueued = r->t_enqueue, .started = r->t_start,
                       .done = r->t_done, .ended = ch_time(),
                       .ok = r->done && r->http_status == 200 && !r->abandoned};
  serve_stats_request(s->stats, r->version[0] ? r->version : s->facts.version, &t);
}

void serve_observe_pending(serve_state *s) {
  char version[32], before[32];
  pthread_mutex_lock(&s->lock);
  int queued = s->queued;
  snprintf(version, sizeof version, "%s", s->facts.version);
  snprintf(before, sizeof before, "%s", s->pending_version);
  snprintf(s->pending_version, sizeof s->pending_version, "%s", version);
  pthread_mutex_unlock(&s->lock);
  if (before[0] && strcmp(before, version) != 0) { /* a reload: the old version waits for none */
    const char *old[] = {s->model_name, before};
    metric_set(s->m_pending, old, 0);
  }
  const char *lv[] = {s->model_name, version};
  metric_set(s->m_pending, lv, (double)queued);
}
