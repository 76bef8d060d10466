/* Requests, the queue between the HTTP threads and the executor, and the request lifecycle
 * (src/serve/server.h): accepted (queued) -> finished by the executor -> its answer sent. The
 * counts SIGTERM reports are kept here only; so are readiness and the model's unload (the
 * repository extension), which the queue enforces. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/log.h"
#include "cohort/runtime.h"
#include "serve/server.h"

static _Atomic long g_live; /* requests allocated and not yet freed */

long serve_req_live(void) { return g_live; }

int serve_test_fail_alloc(const char *what) {
  const char *e = getenv("COHORT_TEST_FAIL_ALLOC");
  return e && !strcmp(e, what);
}

serve_req *serve_req_new(serve_kind kind) {
  serve_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  g_live++;
  r->kind = kind;
  r->refs = 1;
  r->slot = -1;
  r->http_status = 500;
  r->t_new = ch_time();
  pthread_cond_init(&r->cond, NULL);
  return r;
}

void serve_req_put(serve_state *s, serve_req *r) {
  if (!r || --r->refs > 0) return;
  if (s) serve_observe_end(s, r); /* its answer is out, or it was refused or dropped */
  pthread_cond_destroy(&r->cond);
  free(r->x);
  free(r->logits);
  free(r->labels);
  free(r->label_names);
  free(r->prompt);
  free(r->out);
  free(r->text);
  free(r->tok_end);
  free(r->lp);
  free(r->lp_ids);
  for (int i = 0; i < r->nstop; i++) free(r->stop[i]);
  free(r->stop);
  free(r);
  g_live--;
}

int serve_ready_locked(serve_state *s) {
  return s->ready && s->accepting && !(s->step_since > 0 && ch_time() - s->step_since > s->stall_after);
}

int serve_ready(serve_state *s) {
  pthread_mutex_lock(&s->lock);
  int ready = serve_ready_locked(s);
  pthread_mutex_unlock(&s->lock);
  return ready;
}

int serve_model_ready(serve_state *s) {
  pthread_mutex_lock(&s->lock);
  int ready = serve_ready_locked(s) && !s->unloaded;
  pthread_mutex_unlock(&s->lock);
  return ready;
}

void serve_unload(serve_state *s) {
  pthread_mutex_lock(&s->lock);
  s->unloaded = 1;
  pthread_mutex_unlock(&s->lock);
}

int serve_submit(serve_state *s, serve_req *r, int *accepted) {
  pthread_mutex_lock(&s->lock);
  int status = 0;
  if (!serve_ready_locked(s)) {
    status = 503;
    snprintf(r->err, sizeof r->err, "%s",
             !s->accepting ? "shutting down"
             : !s->ready   ? "the model is not ready"
                           : "not ready: the executor is stuck in one step (a rank may be hung)");
  } else if (r->kind != SERVE_RELOAD && s->unloaded) {
    status = 503;
    snprintf(r->err, sizeof r->err,
             "model '%.64s' is unloaded: POST /v2/repository/models/%.64s/load serves it again",
             s->model_name, s->model_name);
  } else if (r->kind != SERVE_RELOAD && s->queued >= s->opts.max_queue_size) {
    status = 503;
    snprintf(r->err, sizeof r->err, "overloaded: %d requests are waiting", s->queued);
  } else {
    r->refs++;
    r->t_enqueue = ch_time();
    serve_req **head = r->kind == SERVE_INFER ? &s->infer_head
                       : r->kind == SERVE_GENERATE ? &s->gen_head : &s->ctl_head;
    serve_req **tail = r->kind == SERVE_INFER ? &s->infer_tail
                       : r->kind == SERVE_GENERATE ? &s->gen_tail : NULL;
    if (tail) {
      if (*tail) (*tail)->next = r;
      else *head = r;
      *tail = r;
    } else { /* control requests: order does not matter */
      r->next = *head;
      *head = r;
    }
    if (r->kind != SERVE_RELOAD) s->queued++;
    s->inflight++;
    s->accepted += !*accepted; /* a call counts once, however many requests it queues */
    *accepted = 1;
    pthread_cond_signal(&s->wake);
  }
  pthread_mutex_unlock(&s->lock);
  return status;
}

/* Takes r off its queue if the executor has not taken it yet (lock held): a request that timed
 * out waiting no longer counts against max_queue_size, so a 504 never turns into 503s for the
 * clients after it. Returns whether it was still queued. */
static int unqueue_locked(serve_state *s, serve_req *r) {
  serve_req **head = r->kind == SERVE_INFER ? &s->infer_head
                     : r->kind == SERVE_GENERATE ? &s->gen_head : NULL;
  serve_req **tail = r->kind == SERVE_INFER ? &s->infer_tail : &s->gen_tail;
  if (!head) return 0;
  serve_req *prev = NULL;
  for (serve_req *q = *head; q; prev = q, q = q->next) {
    if (q != r) continue;
    if (prev) prev->next = r->next;
    else *head = r->next;
    if (*tail == r) *tail = prev;
    r->next = NULL;
    s->queued--;
    r->refs--; /* the queue's reference; the caller still holds its own */
    return 1;
  }
  return 0;
}

int serve_wait(serve_state *s, serve_req *r, double timeout) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)timeout;
  until.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&s->lock);
  int rc = 0;
  while (!r->done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&r->cond, &s->lock, &until);
  int status = r->done ? r->http_status : 504;
  if (!r->done) {
    r->abandoned = 1;
    snprintf(r->err, sizeof r->err, "timed out after %.3g s", timeout);
    if (unqueue_locked(s, r)) serve_finish_locked(s, r, 504, NULL);
  }
  pthread_mutex_unlock(&s->lock);
  return status;
}

void serve_finish_locked(serve_state *s, serve_req *r, int http_status, const char *err) {
  if (r->done) return;
  r->done = 1;
  r->http_status = http_status;
  if (err) snprintf(r->err, sizeof r->err, "%s", err);
  r->t_done = ch_time();
  if (r->kind == SERVE_RELOAD && http_status == 200) s->unloaded = 0; /* loaded: served again */
  s->inflight--;
  pthread_cond_broadcast(&r->cond);
  pthread_cond_signal(&s->wake); /* a drain may be waiting for the last one */
}

void serve_facts_publish(serve_state *s) {
  const serve_model *m = s->model;
  serve_facts f = {.is_gpt = m->is_gpt, .context = m->context, .features = m->features,
                   .classes = m->classes, .vocab = m->vocab, .io = m->io};
  snprintf(f.version, sizeof f.version, "%s", m->version);
  pthread_mutex_lock(&s->lock);
  s->facts = f;
  pthread_mutex_unlock(&s->lock);
}

serve_facts serve_facts_get(serve_state *s) {
  pthread_mutex_lock(&s->lock);
  serve_facts f = s->facts;
  pthread_mutex_unlock(&s->lock);
  return f;
}

void serve_call_closed(serve_state *s, int ok) {
  pthread_mutex_lock(&s->lock);
  s->delivered += ok != 0;
  s->closed++;
  pthread_cond_broadcast(&s->wake);
  pthread_mutex_unlock(&s->lock);
}

void serve_drain(serve_state *s, double seconds) {
  double until = ch_time() + seconds;
  pthread_mutex_lock(&s->lock);
  while (s->closed < s->accepted && ch_time() < until) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 10 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&s->wake, &s->lock, &ts);
  }
  pthread_mutex_unlock(&s->lock);
}

void serve_report_answers(serve_state *s) {
  pthread_mutex_lock(&s->lock);
  unsigned long long accepted = s->accepted, delivered = s->delivered;
  pthread_mutex_unlock(&s->lock);
  CH_INFO("%llu request(s) accepted, %llu answered in full", accepted, delivered);
}
