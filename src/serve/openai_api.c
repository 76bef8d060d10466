/* The OpenAI completions API on rank 0: POST /v1/completions, whole or streamed (SSE). The
 * text is this front end's: it tokenises the prompt, and its on_token hook (run by the
 * executor after each new token) detokenises into the request's text and ends the sequence at
 * a stop string; the executor itself only sees token ids. Bodies are openai.h's codecs. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/runtime.h"
#include "serve/openai.h"
#include "serve/server.h"
#include "serve/v2.h"

/* ---- text ------------------------------------------------------------------------------- */

/* The executor's hook (lock held): appends the new token's text; 1 once a stop string shows. */
static int on_token(serve_state *s, serve_req *r) {
  char *piece = NULL;
  size_t len = 0;
  if (ch_tokenizer_decode(s->tok, &r->out[r->nout - 1], 1, &piece, &len) == CH_OK) {
    if (r->text_len + len + 1 > r->text_cap) {
      size_t cap = (r->text_cap + len + 1) * 2;
      char *t = realloc(r->text, cap);
      if (t) {
        r->text = t;
        r->text_cap = cap;
      }
    }
    if (r->text_len + len + 1 <= r->text_cap) {
      memcpy(r->text + r->text_len, piece, len);
      r->text_len += len;
      r->text[r->text_len] = '\0';
    }
    free(piece);
  }
  return r->nstop > 0 && oai_find_stop(r->text, r->text_len, r->stop, r->nstop) >= 0;
}

/* Text of r ready to send: up to the first stop string; while running, minus what could still
 * turn into a stop string or complete a UTF-8 character. Lock held. */
static size_t sendable(const serve_req *r, int *stopped) {
  int64_t stop = oai_find_stop(r->text, r->text_len, r->stop, r->nstop);
  *stopped = stop >= 0;
  if (stop >= 0) return (size_t)stop;
  if (r->done) return r->text_len;
  size_t hold = oai_holdback(r->text, r->text_len, r->stop, r->nstop);
  size_t u = oai_utf8_holdback(r->text, r->text_len);
  hold = hold > u ? hold : u;
  return r->text_len > hold ? r->text_len - hold : 0;
}

/* ---- streaming -------------------------------------------------------------------------- */

typedef struct stream {
  serve_state *s;
  serve_req *r;
  oai_request q;
  char id[48];
  long created;
  size_t sent;        /* text bytes sent */
  int final_sent, done_sent;
  char *pending;      /* an event not yet fully copied out */
  size_t plen, poff;
  double t0, deadline;
} stream;

/* The next event: waits (lock held) for new text, or for the end; NULL with *failed set when
 * the stream must end with an error. */
static char *next_event(stream *st, int *failed) {
  serve_state *s = st->s;
  serve_req *r = st->r;
  int stopped = 0;
  size_t upto = sendable(r, &stopped);
  while (upto <= st->sent && !r->done) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&r->cond, &s->lock, &ts);
    if (ch_time() > st->deadline && !r->done) {
      r->abandoned = 1; /* the executor drops it at its next step */
      *failed = 1;
      return NULL;
    }
    upto = sendable(r, &stopped);
  }
  if (r->done && r->http_status != 200) { /* failed after the headers went out */
    *failed = 1;
    return NULL;
  }
  const char *finish = NULL;
  if (r->done || stopped) finish = stopped ? "stop" : (r->finish ? r->finish : "length");
  if (stopped) r->abandoned = 1; /* no need to generate further */
  char *ev = oai_chunk(st->id, st->created, st->q.model[0] ? st->q.model : s->model_name,
                       r->text + st->sent, upto - st->sent, finish);
  st->sent = upto;
  if (finish) st->final_sent = 1;
  *failed = !ev;
  return ev;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  stream *st = cls;
  for (;;) {
    if (st->pending) { /* copy out what is pending first */
      size_t n = st->plen - st->poff < max ? st->plen - st->poff : max;
      memcpy(buf, st->pending + st->poff, n);
      st->poff += n;
      if (st->poff == st->plen) {
        free(st->pending);
        st->pending = NULL;
      }
      return (ssize_t)n;
    }
    if (st->done_sent) return SERVE_STREAM_END;
    int failed = 0;
    if (st->final_sent) {
      st->pending = strdup(CH_OAI_SSE_DONE);
      st->done_sent = 1;
      failed = !st->pending;
    } else {
      pthread_mutex_lock(&st->s->lock);
      st->pending = next_event(st, &failed);
      pthread_mutex_unlock(&st->s->lock);
    }
    if (failed) return SERVE_STREAM_ERROR;
    st->plen = strlen(st->pending);
    st->poff = 0;
  }
}

static void stream_free(void *cls) {
  stream *st = cls;
  serve_state *s = st->s;
  pthread_mutex_lock(&s->lock);
  if (!st->r->done) st->r->abandoned = 1;
  serve_req_put(s, st->r);
  pthread_mutex_unlock(&s->lock);
  serve_count(s, "completions", st->done_sent ? 200 : 499, st->t0);
  oai_request_free(&st->q);
  free(st->pending);
  free(st);
}

/* ---- POST /v1/completions ---------------------------------------------------------------- */

/* A generation request for q's prompt, or NULL with an error answered (status in *status). */
static serve_req *make_request(serve_state *s, const serve_facts *m, oai_request *q,
                               char *err, size_t errlen, int *status) {
  int32_t *prompt = NULL;
  int64_t np = 0;
  *status = 400;
  if (ch_tokenizer_encode(s->tok, q->prompt, strlen(q->prompt), &prompt, &np) != CH_OK || np < 1 ||
      np >= m->context) {
    snprintf(err, errlen, "the prompt is %lld tokens; it must be 1 to %d (the context is %d)",
             (long long)np, m->context - 1, m->context);
    free(prompt);
    return NULL;
  }
  *status = 500;
  snprintf(err, errlen, "out of memory");
  serve_req *r = serve_req_new(SERVE_GENERATE);
  if (!r) {
    free(prompt);
    return NULL;
  }
  int max_tokens = q->max_tokens < m->context - (int)np ? q->max_tokens : m->context - (int)np;
  r->prompt = prompt;
  r->nprompt = (int)np;
  r->max_tokens = max_tokens;
  r->sampling = (ch_sampling){.temperature = q->temperature, .top_k = q->top_k, .top_p = q->top_p};
  r->seed = q->has_seed ? q->seed : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)r;
  r->on_token = on_token;
  r->stop = q->stop; /* the request owns them now: it may outlive this thread's wait */
  r->nstop = q->nstop;
  q->stop = NULL;
  q->nstop = 0;
  r->out = malloc(sizeof(int32_t) * (size_t)(max_tokens + 1));
  if (!r->out) {
    pthread_mutex_lock(&s->lock);
    serve_req_put(s, r);
    pthread_mutex_unlock(&s->lock);
    return NULL;
  }
  return r;
}

/* Answers with an error; frees q. */
static int refuse(serve_state *s, serve_call *k, oai_request *q, int status, const char *err) {
  oai_request_free(q);
  serve_count(s, "completions", status, k->t0);
  return serve_reply_error(k, status, err);
}

int serve_oai_completions(serve_state *s, serve_call *k) {
  serve_facts f = serve_facts_get(s), *m = &f;
  char err[400] = "";
  oai_request q;
  memset(&q, 0, sizeof q);
  if (!m->is_gpt)
    return refuse(s, k, &q, 400, "this model is a classifier: use POST /v2/models/{m}/infer");
  int status = oai_parse_completion(k->body, k->len, m->context, &q, err, sizeof err);
  if (status) return refuse(s, k, &q, status, err);
  if (q.model[0] && strcmp(q.model, s->model_name) != 0) {
    snprintf(err, sizeof err, "model '%s' not found (serving '%s')", q.model, s->model_name);
    return refuse(s, k, &q, 404, err);
  }
  serve_req *r = make_request(s, m, &q, err, sizeof err, &status);
  if (!r) return refuse(s, k, &q, status, err);
  char id[48];
  static _Atomic unsigned long long next_id;
  snprintf(id, sizeof id, "cmpl-%llx-%llu", (unsigned long long)time(NULL),
           (unsigned long long)atomic_fetch_add(&next_id, 1));
  long created = (long)time(NULL);
  status = serve_submit(s, r, &k->accepted);
  stream *st = NULL;
  if (!status && q.stream && !(st = serve_test_fail_alloc("stream") ? NULL : calloc(1, sizeof *st))) {
    status = 500; /* r is queued: the executor drops it at its first step */
  }
  if (status) {
    pthread_mutex_lock(&s->lock);
    r->abandoned = 1;
    serve_req_put(s, r);
    pthread_mutex_unlock(&s->lock);
    return refuse(s, k, &q, status, status == 500 ? "out of memory" : r->err);
  }
  if (st) {
    *st = (stream){.s = s, .r = r, .q = q, .created = created, .t0 = k->t0,
                   .deadline = k->t0 + s->opts.request_timeout};
    snprintf(st->id, sizeof st->id, "%s", id);
    return serve_reply_sse(k, stream_read, st, stream_free);
  }
  status = serve_wait(s, r, s->opts.request_timeout);
  char *body;
  pthread_mutex_lock(&s->lock);
  if (status == 200) {
    int stopped = 0;
    size_t len = sendable(r, &stopped);
    body = oai_completion(id, created, q.model[0] ? q.model : s->model_name, r->text ? r->text : "",
                          len, stopped ? "stop" : r->finish, r->nprompt, r->nout);
  } else {
    body = v2_error(r->err);
  }
  serve_req_put(s, r);
  pthread_mutex_unlock(&s->lock);
  oai_request_free(&q);
  serve_count(s, "completions", status, k->t0);
  return serve_reply_json(k, status, body);
}
