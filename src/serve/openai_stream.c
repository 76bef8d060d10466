/* Streamed OpenAI answers (server-sent events): one event per generated token of each choice,
 * as soon as the executor made it (a token whose text must be held back -- the start of a
 * possible stop string, an unfinished UTF-8 character -- gets an event with empty text, and the
 * text follows with a later token), so clients time each token. Before the tokens: chat's role
 * event, completions' echoed prompt. After every choice finished: the usage event
 * (stream_options.include_usage), then [DONE]. A failure after the headers went out is sent as
 * the API's error event, which the openai client raises with its message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/runtime.h"
#include "serve/openai_job.h"

/* How far one choice's events have got. */
typedef struct choice_state {
  int toks;      /* tokens sent (one event each) */
  size_t sent;   /* text bytes sent */
  int opened;    /* chat: the role event; completions with echo: the prompt's text */
  int finished;  /* the event with the finish reason went out */
} choice_state;

typedef struct stream {
  oai_job *j;
  choice_state *cs;
  int status;        /* 200, or the status of the error event sent */
  int ended;         /* every choice finished (or failed): usage and [DONE] next */
  int usage_sent, done_sent;
  char *pending;     /* an event not yet fully copied out */
  size_t plen, poff;
} stream;

/* A chunk with one choice. */
static char *chunk(stream *st, const oai_choice *c) {
  oai_head h = oai_job_head(st->j);
  return oai_chunk(&h, c, 1, st->j->q.include_usage, NULL);
}

/* The next event of choice i, or NULL when it has none now (lock held). *none is set when
 * nothing is ready; an allocation failure returns NULL with *none clear. */
static char *choice_event(stream *st, int i, int *none) {
  oai_job *j = st->j;
  serve_req *r = j->reqs[i];
  choice_state *c = &st->cs[i];
  oai_choice ch = {.index = i, .logprobs = j->q.logprobs, .text = "", .role = 0};
  *none = 0;
  if (!c->opened && (j->q.chat || j->q.echo)) {
    c->opened = 1;
    int p = i / j->q.n;
    ch.role = j->q.chat;
    if (j->q.echo) ch.text = j->echo[p], ch.len = j->echo_len[p];
    ch.logprobs = -1; /* no token in this event (echo and logprobs never go together) */
    return chunk(st, &ch);
  }
  c->opened = 1;
  if (c->toks < r->nout) { /* token t's event */
    int t = c->toks++, stopped = 0;
    int final = r->done && t == r->nout - 1;
    size_t upto = oai_sendable(r->text ? r->text : "", r->tok_end[t], final, r->stop, r->nstop,
                               &stopped);
    if (upto < c->sent) upto = c->sent;
    oai_lp_view v;
    int lp_ok = !oai_lp_view_make(j->s, r, t, t + 1, &v);
    ch.text = r->text ? r->text + c->sent : "";
    ch.len = upto - c->sent;
    ch.toks = v.toks;
    ch.ntoks = v.ntoks;
    if (stopped) {
      ch.finish_reason = "stop";
      r->abandoned = 1; /* no need to generate further */
    } else if (final) {
      ch.finish_reason = r->finish ? r->finish : "length";
    }
    c->sent = upto;
    c->finished = ch.finish_reason != NULL;
    char *ev = lp_ok ? chunk(st, &ch) : NULL;
    oai_lp_view_free(&v);
    return ev;
  }
  if (r->done) { /* finished without a further token (ended by the executor) */
    ch.finish_reason = r->finish ? r->finish : "length";
    c->finished = 1;
    return chunk(st, &ch);
  }
  *none = 1;
  return NULL;
}

/* The next event of the stream (lock held), waiting for one; NULL when out of memory. */
static char *next_event(stream *st) {
  oai_job *j = st->j;
  serve_state *s = j->s;
  for (;;) {
    int waiting_on = -1;
    for (int i = 0; i < j->nreq; i++) {
      serve_req *r = j->reqs[i];
      if (st->cs[i].finished) continue;
      if (r->done && r->http_status != 200) { /* failed after the headers went out */
        st->status = r->http_status;
        st->ended = 1;
        oai_job_abandon(j);
        return oai_error(r->http_status, r->err, NULL, NULL, 1);
      }
      int none;
      char *ev = choice_event(st, i, &none);
      if (!none) return ev;
      if (waiting_on < 0) waiting_on = i;
    }
    if (waiting_on < 0) { /* every choice finished */
      st->ended = 1;
      if (!j->q.include_usage) return strdup(CH_OAI_SSE_DONE);
      oai_head h = oai_job_head(j);
      oai_usage u = oai_job_usage(j);
      st->usage_sent = 1;
      return oai_chunk(&h, NULL, 0, 1, &u);
    }
    if (ch_time() > j->deadline) {
      st->status = 504;
      st->ended = 1;
      oai_job_abandon(j);
      char msg[64];
      snprintf(msg, sizeof msg, "timed out after %.0f s", s->opts.request_timeout);
      return oai_error(504, msg, NULL, NULL, 1);
    }
    /* The executor signals each running request after every step; with several choices,
     * one may move while another waits in the queue, so wait briefly on the first. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (j->nreq > 1 ? 5000000L : 0);
    ts.tv_sec += j->nreq > 1 ? ns / 1000000000L : 1;
    ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&j->reqs[waiting_on]->cond, &s->lock, &ts);
  }
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
    if (st->ended && (st->usage_sent || !st->j->q.include_usage || st->status != 200)) {
      st->pending = strdup(CH_OAI_SSE_DONE);
      st->done_sent = 1;
    } else {
      pthread_mutex_lock(&st->j->s->lock);
      st->pending = next_event(st);
      pthread_mutex_unlock(&st->j->s->lock);
      if (st->pending && !strcmp(st->pending, CH_OAI_SSE_DONE)) st->done_sent = 1;
    }
    if (!st->pending) return SERVE_STREAM_ERROR;
    st->plen = strlen(st->pending);
    st->poff = 0;
  }
}

static void stream_free(void *cls) {
  stream *st = cls;
  oai_job *j = st->j;
  serve_count(j->s, j->endpoint, st->done_sent ? st->status : 499, j->t0);
  oai_job_free(j);
  free(st->cs);
  free(st->pending);
  free(st);
}

int oai_stream_reply(serve_call *k, oai_job *j) {
  stream *st = serve_test_fail_alloc("stream") ? NULL : calloc(1, sizeof *st);
  choice_state *cs = calloc((size_t)j->nreq, sizeof *cs);
  if (!st || !cs) { /* the requests are queued: the executor drops them at their first step */
    free(st);
    free(cs);
    serve_count(j->s, j->endpoint, 500, j->t0);
    oai_job_free(j);
    return serve_reply_json(k, 500, oai_error(500, "out of memory", NULL, NULL, 0));
  }
  *st = (stream){.j = j, .cs = cs, .status = 200};
  return serve_reply_sse(k, stream_read, st, stream_free);
}
