/* The OpenAI API on rank 0: GET /v1/models[/{id}], POST /v1/completions and
 * /v1/chat/completions, whole (here) or streamed (openai_stream.c). Every error is the API's
 * error object, so the openai client shows its message. The text is this front end's: a job
 * (openai_job.c) tokenises the prompts and detokenises each token the executor makes; the
 * executor itself only sees token ids. Bodies are openai.h's codecs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/runtime.h"
#include "serve/openai_job.h"

/* Answers with the API's error object; param and code may be NULL. */
static int reply_error(serve_call *k, int status, const char *msg, const char *param,
                       const char *code) {
  return serve_reply_json(k, status, oai_error(status, msg, param, code, 0));
}

/* Counts and answers an error of a generation endpoint; frees q. */
static int refuse(serve_state *s, serve_call *k, const char *endpoint, oai_request *q,
                  int status, const char *err, const char *param, const char *code) {
  oai_request_free(q);
  serve_count(s, endpoint, status, k->t0);
  return reply_error(k, status, err, param, code);
}

/* The request field a codec message is about, into buf: the messages name it first, quoted
 * ("'max_tokens' must be ...", "missing field 'prompt'"); NULL when none. */
static const char *param_of(const char *err, char *buf, size_t n) {
  const char *p = !strncmp(err, "missing field '", 15) ? err + 15 : err[0] == '\'' ? err + 1 : NULL;
  size_t len = p ? strspn(p, "abcdefghijklmnopqrstuvwxyz_.") : 0;
  if (!len || p[len] != '\'' || len >= n) return NULL;
  memcpy(buf, p, len);
  buf[len] = '\0';
  return buf;
}

/* ---- whole answers ------------------------------------------------------------------------ */

/* Choice i of a finished job into c (lock held): its text (the echoed prompt, then the
 * generation up to a stop string) in *text (malloc'ed), its logprobs in v. 0, or -1 when out of
 * memory. */
static int whole_choice(oai_job *j, int i, oai_choice *c, char **text, oai_lp_view *v) {
  serve_req *r = j->reqs[i];
  int p = i / j->q.n, stopped = 0;
  size_t upto = oai_sendable(r->text ? r->text : "", r->text_len, 1, r->stop, r->nstop, &stopped);
  size_t pre = j->q.echo ? j->echo_len[p] : 0;
  *text = malloc(pre + upto + 1);
  if (!*text) return -1;
  if (pre) memcpy(*text, j->echo[p], pre);
  if (upto) memcpy(*text + pre, r->text, upto);
  int ntoks = r->nout;
  while (stopped && ntoks > 0 && oai_tok_start(r, ntoks - 1) >= upto) ntoks--;
  if (oai_lp_view_make(j->s, r, 0, ntoks, v)) return -1;
  *c = (oai_choice){.index = i, .text = *text, .len = pre + upto,
                    .finish_reason = stopped ? "stop" : r->finish ? r->finish : "length",
                    .logprobs = j->q.logprobs, .toks = v->toks, .ntoks = v->ntoks};
  return 0;
}

/* The whole answer of a finished job (lock held); NULL when out of memory. */
static char *whole_body(oai_job *j) {
  oai_choice *c = calloc((size_t)j->nreq, sizeof *c);
  char **texts = calloc((size_t)j->nreq, sizeof *texts);
  oai_lp_view *views = calloc((size_t)j->nreq, sizeof *views);
  char *body = NULL;
  int ok = c && texts && views;
  for (int i = 0; ok && i < j->nreq; i++) ok = !whole_choice(j, i, &c[i], &texts[i], &views[i]);
  if (ok) {
    oai_head h = oai_job_head(j);
    oai_usage u = oai_job_usage(j);
    body = oai_completion(&h, c, j->nreq, &u);
  }
  for (int i = 0; texts && views && i < j->nreq; i++) {
    free(texts[i]);
    oai_lp_view_free(&views[i]);
  }
  free(c);
  free(texts);
  free(views);
  return body;
}

/* Waits for every choice; the first failure (or the timeout) fails the whole call. */
static int wait_all(oai_job *j, char *err, size_t errlen) {
  for (int i = 0; i < j->nreq; i++) {
    double left = j->deadline - ch_time();
    int st = serve_wait(j->s, j->reqs[i], left > 0 ? left : 0);
    if (st != 200) {
      pthread_mutex_lock(&j->s->lock);
      snprintf(err, errlen, "%s", j->reqs[i]->err); /* 504: serve_wait's "timed out after" */
      oai_job_abandon(j);
      pthread_mutex_unlock(&j->s->lock);
      return st;
    }
  }
  return 200;
}

/* ---- POST /v1/completions and /v1/chat/completions ----------------------------------------- */

int serve_oai_generate(serve_state *s, serve_call *k, int chat) {
  const char *endpoint = chat ? "chat_completions" : "completions";
  serve_facts f = serve_facts_get(s);
  char err[400] = "";
  oai_request q;
  memset(&q, 0, sizeof q);
  if (!f.is_gpt)
    return refuse(s, k, endpoint, &q, 400,
                  "this model is a classifier: use POST /v2/models/{m}/infer", NULL, NULL);
  int status = (chat ? oai_parse_chat : oai_parse_completion)(k->body, k->len, f.context, &q,
                                                              err, sizeof err);
  char param[64];
  if (status) return refuse(s, k, endpoint, &q, status, err, param_of(err, param, sizeof param), NULL);
  if (q.model[0] && strcmp(q.model, s->model_name) != 0) {
    snprintf(err, sizeof err, "The model '%s' does not exist (this server serves '%s')", q.model,
             s->model_name);
    return refuse(s, k, endpoint, &q, 404, err, "model", "model_not_found");
  }
  oai_job *j = oai_job_new(s, &f, &q, endpoint, k->t0, err, sizeof err, &status);
  if (!j) return refuse(s, k, endpoint, &q, status, err, NULL, NULL);
  status = oai_job_submit(j, &k->accepted, err, sizeof err);
  if (status) {
    oai_job_free(j);
    serve_count(s, endpoint, status, k->t0);
    return reply_error(k, status, err, NULL, NULL);
  }
  if (j->q.stream) return oai_stream_reply(k, j);
  status = wait_all(j, err, sizeof err);
  char *body = NULL;
  if (status == 200) {
    pthread_mutex_lock(&s->lock);
    body = whole_body(j);
    pthread_mutex_unlock(&s->lock);
  } else {
    body = oai_error(status, err, NULL, NULL, 0);
  }
  oai_job_free(j);
  serve_count(s, endpoint, status, k->t0);
  return serve_reply_json(k, status, body);
}

/* ---- routes --------------------------------------------------------------------------------- */

int serve_oai_model(serve_state *s, serve_call *k, const char *id) {
  char msg[300];
  if (!strcmp(id, s->model_name))
    return serve_reply_json(k, 200, oai_model(s->model_name, (long)time(NULL)));
  snprintf(msg, sizeof msg, "The model '%.200s' does not exist", id);
  return reply_error(k, 404, msg, "model", "model_not_found");
}
