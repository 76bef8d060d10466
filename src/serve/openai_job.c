/* An OpenAI call's generation requests (openai_job.h): the prompts tokenised (or their token ids
 * checked), one request per choice with its own seed, the text hook the executor runs after
 * each token, and the views the answers are written from. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/openai_job.h"

/* ---- text ------------------------------------------------------------------------------- */

/* The executor's hook (lock held): appends the new token's text and notes where it ends; 1
 * once a stop string shows. */
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
  r->tok_end[r->nout - 1] = r->text_len;
  return r->nstop > 0 && oai_find_stop(r->text, r->text_len, r->stop, r->nstop) >= 0;
}

size_t oai_tok_start(const serve_req *r, int t) { return t > 0 ? r->tok_end[t - 1] : 0; }

/* ---- building ----------------------------------------------------------------------------- */

/* The tokens of prompt p into *ids (malloc'ed) and, for echo, its text. 0, or the status with
 * a message in err. */
static int prompt_tokens(oai_job *j, const serve_facts *m, int p, int32_t **ids, int64_t *n,
                         char *err, size_t errlen) {
  const oai_prompt *pr = &j->q.prompts[p];
  serve_state *s = j->s;
  char which[32] = "the prompt";
  if (j->q.nprompts > 1) snprintf(which, sizeof which, "prompt %d", p);
  *ids = NULL;
  *n = 0;
  if (pr->text) {
    if (ch_tokenizer_encode(s->tok, pr->text, strlen(pr->text), ids, n) != CH_OK)
      return snprintf(err, errlen, "out of memory"), 500;
  } else {
    for (int i = 0; i < pr->nids; i++)
      if (pr->ids[i] >= s->vocab_real) {
        snprintf(err, errlen, "%s: token id %d at %d is outside the vocabulary (0..%lld)", which,
                 pr->ids[i], i, (long long)s->vocab_real - 1);
        return 400;
      }
    if (!(*ids = malloc(sizeof(int32_t) * (size_t)pr->nids)))
      return snprintf(err, errlen, "out of memory"), 500;
    memcpy(*ids, pr->ids, sizeof(int32_t) * (size_t)pr->nids);
    *n = pr->nids;
  }
  if (*n < 1 || *n >= m->context) {
    snprintf(err, errlen, "%s is %lld tokens; it must be 1 to %d (the context is %d)", which,
             (long long)*n, m->context - 1, m->context);
    free(*ids);
    *ids = NULL;
    return 400;
  }
  if (j->q.echo) { /* the text as the model reads it (token-id prompts decoded) */
    if (ch_tokenizer_decode(s->tok, *ids, *n, &j->echo[p], &j->echo_len[p]) != CH_OK)
      return snprintf(err, errlen, "out of memory"), 500;
  }
  return 0;
}

/* A copy of the request's stop strings for one choice (each request owns its own). */
static int copy_stops(serve_req *r, const oai_request *q) {
  if (q->nstop == 0) return 0;
  if (!(r->stop = calloc((size_t)q->nstop, sizeof *r->stop))) return -1;
  for (; r->nstop < q->nstop; r->nstop++)
    if (!(r->stop[r->nstop] = strdup(q->stop[r->nstop]))) return -1;
  return 0;
}

/* Choice c's request for prompt tokens ids[0..n), or NULL when out of memory. */
static serve_req *choice_request(oai_job *j, const serve_facts *m, int c, const int32_t *ids,
                                 int64_t n, uint64_t seed) {
  const oai_request *q = &j->q;
  serve_req *r = serve_req_new(SERVE_GENERATE);
  if (!r) return NULL;
  int max_tokens = q->max_tokens < m->context - (int)n ? q->max_tokens : m->context - (int)n;
  r->nprompt = (int)n;
  r->max_tokens = max_tokens;
  r->sampling = (ch_sampling){.temperature = q->temperature, .top_k = q->top_k, .top_p = q->top_p};
  r->seed = seed + (uint64_t)c; /* choice c's own draws; choice 0 keeps the request's seed */
  r->on_token = on_token;
  r->streaming = q->stream;
  r->prompt = malloc(sizeof(int32_t) * (size_t)n);
  r->out = malloc(sizeof(int32_t) * (size_t)(max_tokens + 1));
  r->tok_end = malloc(sizeof(size_t) * (size_t)max_tokens);
  int ok = r->prompt && r->out && r->tok_end && !copy_stops(r, q);
  if (ok && q->logprobs >= 0) {
    r->top_logprobs = q->logprobs;
    r->lp = malloc(sizeof(float) * (size_t)max_tokens * (size_t)(1 + q->logprobs));
    r->lp_ids = malloc(sizeof(int32_t) * ((size_t)max_tokens * (size_t)q->logprobs + 1));
    ok = r->lp && r->lp_ids;
  }
  if (!ok) {
    pthread_mutex_lock(&j->s->lock);
    serve_req_put(j->s, r);
    pthread_mutex_unlock(&j->s->lock);
    return NULL;
  }
  memcpy(r->prompt, ids, sizeof(int32_t) * (size_t)n);
  return r;
}

/* Builds the requests of every choice; 0, or an error status with a message in err (the
 * caller frees the job). */
static int build(oai_job *j, const serve_facts *m, char *err, size_t errlen) {
  const oai_request *q = &j->q;
  int total = q->nprompts * q->n;
  j->reqs = calloc((size_t)total, sizeof *j->reqs);
  j->echo = calloc((size_t)q->nprompts, sizeof *j->echo);
  j->echo_len = calloc((size_t)q->nprompts, sizeof *j->echo_len);
  if (!j->reqs || !j->echo || !j->echo_len) return snprintf(err, errlen, "out of memory"), 500;
  uint64_t seed = q->has_seed ? q->seed : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)j;
  for (int p = 0; p < q->nprompts; p++) {
    int32_t *ids;
    int64_t n;
    int st = prompt_tokens(j, m, p, &ids, &n, err, errlen);
    if (st) return st;
    j->prompt_tokens += n;
    for (int c = 0; c < q->n; c++) {
      serve_req *r = choice_request(j, m, p * q->n + c, ids, n, seed);
      if (!r) {
        free(ids);
        return snprintf(err, errlen, "out of memory"), 500;
      }
      j->reqs[j->nreq++] = r;
    }
    free(ids);
  }
  return 0;
}

oai_job *oai_job_new(serve_state *s, const serve_facts *m, oai_request *q, const char *endpoint,
                     double t0, char *err, size_t errlen, int *status) {
  oai_job *j = calloc(1, sizeof *j);
  if (!j) {
    *status = 500;
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  static _Atomic unsigned long long next_id;
  j->s = s;
  j->q = *q; /* the job owns the request now */
  memset(q, 0, sizeof *q);
  j->endpoint = endpoint;
  j->t0 = t0;
  j->deadline = t0 + s->opts.request_timeout;
  j->created = (long)time(NULL);
  snprintf(j->id, sizeof j->id, "%s-%llx-%llu", j->q.chat ? "chatcmpl" : "cmpl",
           (unsigned long long)time(NULL), (unsigned long long)next_id++);
  if ((*status = build(j, m, err, errlen))) {
    oai_job_free(j);
    return NULL;
  }
  return j;
}

int oai_job_submit(oai_job *j, int *accepted, char *err, size_t errlen) {
  for (int i = 0; i < j->nreq; i++) {
    int st = serve_submit(j->s, j->reqs[i], accepted);
    if (st) {
      pthread_mutex_lock(&j->s->lock);
      snprintf(err, errlen, "%s", j->reqs[i]->err);
      oai_job_abandon(j);
      pthread_mutex_unlock(&j->s->lock);
      return st;
    }
  }
  return 0;
}

/* ---- views -------------------------------------------------------------------------------- */

oai_head oai_job_head(const oai_job *j) {
  return (oai_head){.id = j->id, .created = j->created,
                    .model = j->q.model[0] ? j->q.model : j->s->model_name, .chat = j->q.chat};
}

oai_usage oai_job_usage(const oai_job *j) {
  oai_usage u = {.prompt_tokens = j->prompt_tokens};
  for (int i = 0; i < j->nreq; i++) u.completion_tokens += j->reqs[i]->nout;
  return u;
}

void oai_job_abandon(oai_job *j) {
  for (int i = 0; i < j->nreq; i++)
    if (!j->reqs[i]->done) j->reqs[i]->abandoned = 1;
}

void oai_job_free(oai_job *j) {
  if (!j) return;
  pthread_mutex_lock(&j->s->lock);
  oai_job_abandon(j);
  for (int i = 0; i < j->nreq; i++) serve_req_put(j->s, j->reqs[i]);
  pthread_mutex_unlock(&j->s->lock);
  for (int p = 0; j->echo && p < j->q.nprompts; p++) free(j->echo[p]);
  free(j->echo);
  free(j->echo_len);
  free(j->reqs);
  oai_request_free(&j->q);
  free(j);
}

int oai_lp_view_make(serve_state *s, const serve_req *r, int from, int to, oai_lp_view *v) {
  memset(v, 0, sizeof *v);
  if (!r->lp || to <= from) return 0;
  int k = r->top_logprobs, n = to - from;
  v->toks = calloc((size_t)n, sizeof *v->toks);
  v->alts = calloc((size_t)n * (size_t)k + 1, sizeof *v->alts);
  v->pieces = calloc((size_t)n * (size_t)k + 1, sizeof *v->pieces);
  if (!v->toks || !v->alts || !v->pieces) {
    oai_lp_view_free(v);
    return -1;
  }
  for (int t = from; t < to; t++) {
    oai_tok *o = &v->toks[v->ntoks++];
    const float *lp = r->lp + (size_t)t * (size_t)(1 + k);
    const int32_t *ids = r->lp_ids + (size_t)t * (size_t)k;
    size_t a0 = oai_tok_start(r, t);
    o->tok = (oai_alt){.text = r->text ? r->text + a0 : "", .len = r->tok_end[t] - a0, .logprob = lp[0]};
    o->offset = a0;
    o->top = v->alts + (size_t)(t - from) * (size_t)k;
    for (int a = 0; a < k && ids[a] >= 0; a++) {
      char *piece = NULL;
      size_t len = 0;
      if (ch_tokenizer_decode(s->tok, &ids[a], 1, &piece, &len) != CH_OK) continue;
      v->pieces[v->npieces++] = piece;
      v->alts[(size_t)(t - from) * (size_t)k + (size_t)o->ntop++] =
          (oai_alt){.text = piece, .len = len, .logprob = lp[1 + a]};
    }
  }
  return 0;
}

void oai_lp_view_free(oai_lp_view *v) {
  for (int i = 0; i < v->npieces; i++) free(v->pieces[i]);
  free(v->pieces);
  free(v->alts);
  free(v->toks);
  memset(v, 0, sizeof *v);
}
