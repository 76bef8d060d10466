/* The executor: every rank's main thread runs the same stream of ops, which the leader (rank 0)
 * makes from the queue and broadcasts: a fixed header, then the op's payload.
 *   INFER   rows of features -> logits (tensor-parallel MLP), in chunks of the model's batch
 *   GEN     a list of (slot, n, reset) with their tokens: each slot decodes n tokens (a new
 *           sequence's prompt, or the one token sampled at the last step) -- continuous
 *           batching: sequences join and leave at step boundaries, each in its own KV slot
 *   RELOAD  a checkpoint path: every rank loads its slices of it, then the model is switched
 *   STOP    every rank returns
 * Followers wait for a header with a non-blocking broadcast polled with growing sleeps (50 us
 * up to 2 ms), so an idle follower costs a few % of a core while a busy stream of ops still
 * starts within microseconds. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/kernels.h"
#include "cohort/log.h"
#include "cohort/rng.h"
#include "cohort/runtime.h"
#include "cohort/signals.h"
#include "serve/openai.h"
#include "serve/server.h"

enum { OP_STOP = 1, OP_INFER, OP_GEN, OP_RELOAD };

typedef struct op_header {
  int64_t op, a, b, c;
} op_header;

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

/* Followers: the next header, without spinning a core while idle. */
static ch_status recv_header(const ch_group *g, op_header *h) {
  ch_request req;
  CH_CHECK(ch_comm_broadcast(g, h, 4, CH_I64, 0, &req));
  long nap = 50;
  for (;;) {
    int done = 0;
    CH_CHECK(ch_comm_test(&req, &done));
    if (done) return CH_OK;
    sleep_us(nap);
    nap = nap < 2000 ? nap * 2 : 2000;
  }
}

/* Leader: sends a header. Non-blocking like the followers' receive: MPI never matches a blocking
 * collective with a non-blocking one. */
static ch_status send_header(const ch_group *g, op_header *h) {
  ch_request req;
  CH_CHECK(ch_comm_broadcast(g, h, 4, CH_I64, 0, &req));
  return ch_comm_wait(&req);
}

/* ---- INFER ------------------------------------------------------------------------------ */

static ch_status run_infer(serve_state *s, int64_t rows, float *x, float *logits) {
  serve_model *m = s->model;
  const int64_t chunk = ch_tp_model_max_batch(m->tp);
  for (int64_t lo = 0; lo < rows; lo += chunk) {
    int n = (int)(rows - lo < chunk ? rows - lo : chunk);
    const float *out;
    CH_CHECK(ch_tp_model_logits(m->tp, x + lo * m->features, n, &out));
    if (logits) memcpy(logits + lo * m->classes, out, sizeof(float) * (size_t)(n * m->classes));
  }
  return CH_OK;
}

static ch_status follow_infer(serve_state *s, const op_header *h) {
  float *x = malloc(sizeof(float) * (size_t)(h->a * s->model->features + 1));
  if (!x) return CH_FAIL(CH_ERR_NOMEM, "inference batch");
  ch_status st = ch_comm_broadcast(s->g, x, (size_t)(h->a * s->model->features), CH_F32, 0, NULL);
  if (st == CH_OK) st = run_infer(s, h->a, x, NULL);
  free(x);
  return st;
}

/* ---- GEN -------------------------------------------------------------------------------- */

static ch_status run_gen(serve_state *s, int64_t nent, const int32_t *ent, const int32_t *tok,
                         float *logits, serve_req **reqs) {
  serve_model *m = s->model;
  int64_t off = 0;
  for (int64_t e = 0; e < nent; e++) {
    int slot = ent[3 * e], n = ent[3 * e + 1];
    if (ent[3 * e + 2]) ch_tp_model_reset(m->tp, slot);
    CH_CHECK(ch_tp_model_decode(m->tp, slot, tok + off, n, logits));
    off += n;
    if (reqs) { /* the leader samples the next token right away: logits is reused */
      serve_req *r = reqs[e];
      if (r->want_logits && r->nout == 0)
        memcpy(r->logits, logits, sizeof(float) * (size_t)m->vocab);
      float u = ch_rng_uniform(r->seed, CH_SAMPLE_STREAM, (uint64_t)r->nout);
      ch_sampling how = r->sampling; /* ids past the tokenizer's (padding) have no text */
      how.vocab_real = ch_tokenizer_vocab(s->tok);
      r->out[r->nout] = ch_sample_token(logits, m->vocab, &how, u);
    }
  }
  return CH_OK;
}

static ch_status follow_gen(serve_state *s, const op_header *h) {
  int32_t *buf = malloc(sizeof(int32_t) * (size_t)(3 * h->a + h->b + 1));
  float *logits = malloc(sizeof(float) * (size_t)s->model->vocab);
  ch_status st = buf && logits ? CH_OK : CH_FAIL(CH_ERR_NOMEM, "generation step");
  if (st == CH_OK) st = ch_comm_broadcast(s->g, buf, (size_t)(3 * h->a + h->b), CH_I32, 0, NULL);
  if (st == CH_OK) st = run_gen(s, h->a, buf, buf + 3 * h->a, logits, NULL);
  free(buf);
  free(logits);
  return st;
}

/* ---- RELOAD ----------------------------------------------------------------------------- */

/* Why `next` may not replace `cur` under the running front end, or NULL. The routes, the
 * metadata and (GPT) the tokenizer were set up for the family at startup, and the tokenizer was
 * paired with the GPT's vocabulary: a reload keeps both. Every rank decides alike (same files). */
static const char *reload_conflict(const serve_model *cur, const serve_model *next, char *buf,
                                   size_t n) {
  if (next->is_gpt != cur->is_gpt)
    snprintf(buf, n, "the checkpoint holds %s; this server was started for %s and keeps serving "
             "it (start a new server for the other family)", next->is_gpt ? "a GPT" : "an MLP",
             cur->is_gpt ? "a GPT" : "an MLP");
  else if (cur->is_gpt && next->vocab != cur->vocab)
    snprintf(buf, n, "the checkpoint's GPT has a vocabulary of %lld, the served one %lld (its "
             "tokenizer): start a new server for it", (long long)next->vocab, (long long)cur->vocab);
  else
    return NULL;
  return buf;
}

/* Loads path on every rank and switches to it; *refused when it may not replace the model (the
 * old one stays, CH_ERR_CONFIG). Collective. */
static ch_status run_reload(serve_state *s, const char *path, int *refused) {
  serve_model *next = NULL;
  char why[256];
  *refused = 0;
  ch_status st = serve_model_load(s->g, path, &s->opts, &next); /* collective, agreed */
  if (st != CH_OK) return st;
  if (reload_conflict(s->model, next, why, sizeof why)) {
    serve_model_free(next);
    *refused = 1;
    return CH_FAIL(CH_ERR_CONFIG, "%s", why);
  }
  serve_model_free(s->model);
  s->model = next;
  if (s->g->rank == 0) serve_facts_publish(s);
  return CH_OK;
}

static ch_status follow_reload(serve_state *s, const op_header *h) {
  char path[CH_PATH_MAX] = "";
  CH_CHECK(ch_comm_broadcast(s->g, path, sizeof path, CH_U8, 0, NULL));
  (void)h;
  int refused;
  ch_status st = run_reload(s, path, &refused);
  if (st != CH_OK) CH_WARN("reload of %s failed; still serving the previous version", path);
  return CH_OK; /* a failed reload keeps the old model on every rank */
}

static ch_status follower(serve_state *s) {
  for (;;) {
    op_header h;
    CH_CHECK(recv_header(s->g, &h));
    switch (h.op) {
      case OP_STOP: return CH_OK;
      case OP_INFER: CH_CHECK(follow_infer(s, &h)); break;
      case OP_GEN: CH_CHECK(follow_gen(s, &h)); break;
      case OP_RELOAD: CH_CHECK(follow_reload(s, &h)); break;
      default: return CH_FAIL(CH_ERR_INTERNAL, "serving: unknown op %lld", (long long)h.op);
    }
  }
}

/* ---- the leader ------------------------------------------------------------------------- */

typedef struct leader {
  serve_state *s;
  serve_req **active;   /* [slots] running generations */
  int nactive;
  float *logits;
} leader;

static const char *const k_stage[3] = {"infer", "prefill", "decode"};

static void observe_compute(serve_state *s, int stage, double seconds) {
  const char *lv[] = {s->model_name, k_stage[stage]};
  ch_metric_observe(s->m_compute, lv, seconds);
}

/* A request leaves the queue for the executor: its wait is over. */
static void start_req(serve_state *s, serve_req *r, double now) {
  const char *lv[] = {s->model_name};
  r->t_start = now;
  ch_metric_observe(s->m_queue, lv, now - r->t_enqueue);
}

/* Takes a V2 batch: up to max_batch_size rows of whole requests, the first one always. */
static int take_infer_batch(serve_state *s, serve_req **batch, int cap, int64_t *rows) {
  int n = 0;
  *rows = 0;
  while (s->infer_head && n < cap) {
    serve_req *r = s->infer_head;
    if (n > 0 && *rows + r->rows > s->opts.max_batch_size) break;
    s->infer_head = r->next;
    if (!s->infer_head) s->infer_tail = NULL;
    r->next = NULL;
    s->queued--;
    batch[n++] = r;
    *rows += r->rows;
  }
  return n;
}

static ch_status lead_infer(leader *L, serve_req **batch, int n, int64_t rows) {
  serve_state *s = L->s;
  serve_model *m = s->model;
  /* A reload may have changed the input width since a request was queued: such requests are
   * answered 503 (retry), the rest run. */
  int kept = 0;
  rows = 0;
  pthread_mutex_lock(&s->lock);
  for (int i = 0; i < n; i++) {
    if (batch[i]->features == m->features) {
      batch[kept++] = batch[i];
      rows += batch[i]->rows;
      continue;
    }
    serve_finish_locked(s, batch[i], 503, "the model was replaced by one of another input width");
    serve_req_put(s, batch[i]);
  }
  pthread_mutex_unlock(&s->lock);
  n = kept;
  if (n == 0) return CH_OK;
  float *x = malloc(sizeof(float) * (size_t)(rows * m->features + 1));
  float *logits = malloc(sizeof(float) * (size_t)(rows * m->classes + 1));
  ch_status st = x && logits ? CH_OK : CH_FAIL(CH_ERR_NOMEM, "inference batch");
  int64_t at = 0;
  double t0 = ch_time();
  for (int i = 0; st == CH_OK && i < n; i++) {
    memcpy(x + at * m->features, batch[i]->x, sizeof(float) * (size_t)(batch[i]->rows * m->features));
    at += batch[i]->rows;
    start_req(s, batch[i], t0);
  }
  op_header h = {OP_INFER, rows, 0, 0};
  if (st == CH_OK) st = send_header(s->g, &h);
  if (st == CH_OK) st = ch_comm_broadcast(s->g, x, (size_t)(rows * m->features), CH_F32, 0, NULL);
  if (st == CH_OK) st = run_infer(s, rows, x, logits);
  observe_compute(s, 0, ch_time() - t0);
  const char *lv[] = {s->model_name};
  ch_metric_observe(s->m_batch, lv, (double)rows);
  pthread_mutex_lock(&s->lock);
  at = 0;
  for (int i = 0; i < n; i++) {
    serve_req *r = batch[i];
    r->classes = m->classes;
    snprintf(r->version, sizeof r->version, "%s", m->version);
    if (st == CH_OK) {
      r->logits = malloc(sizeof(float) * (size_t)(r->rows * m->classes));
      r->labels = malloc(sizeof(int32_t) * (size_t)r->rows);
      if (r->logits && r->labels) {
        memcpy(r->logits, logits + at * m->classes, sizeof(float) * (size_t)(r->rows * m->classes));
        for (int64_t k = 0; k < r->rows; k++) {
          const float *row = r->logits + k * m->classes;
          int32_t best = 0;
          for (int64_t c = 1; c < m->classes; c++)
            if (row[c] > row[best]) best = (int32_t)c;
          r->labels[k] = best;
        }
      }
      serve_finish_locked(s, r, r->logits && r->labels ? 200 : 500,
                          r->logits && r->labels ? NULL : "out of memory");
    } else {
      serve_finish_locked(s, r, 500, ch_error_message());
    }
    at += r->rows;
    serve_req_put(s, r);
  }
  pthread_mutex_unlock(&s->lock);
  free(x);
  free(logits);
  return st;
}

/* Appends a token's text to r->text (leader, GPT). */
static void append_text(serve_state *s, serve_req *r, int32_t token) {
  char *piece = NULL;
  size_t len = 0;
  if (ch_tokenizer_decode(s->tok, &token, 1, &piece, &len) != CH_OK) return;
  if (r->text_len + len + 1 > r->text_cap) {
    size_t cap = (r->text_cap + len + 1) * 2;
    char *t = realloc(r->text, cap);
    if (!t) {
      free(piece);
      return;
    }
    r->text = t;
    r->text_cap = cap;
  }
  memcpy(r->text + r->text_len, piece, len);
  r->text_len += len;
  r->text[r->text_len] = '\0';
  free(piece);
}

/* One generation step: new requests join free slots with their prompts, running ones feed the
 * token sampled last time; then every sequence samples its next token. */
static ch_status lead_gen(leader *L) {
  serve_state *s = L->s;
  serve_model *m = s->model;
  int slots = s->opts.max_batch_size;
  serve_req *step[slots];
  int nent = 0, ntok = 0, nnew = 0;
  pthread_mutex_lock(&s->lock);
  for (int i = 0; i < slots; i++) { /* running sequences first, in slot order */
    serve_req *r = L->active[i];
    if (!r) continue;
    step[nent++] = r;
    ntok += 1;
  }
  for (int i = 0; i < slots && s->gen_head; i++) {
    if (L->active[i]) continue;
    serve_req *r = s->gen_head;
    s->gen_head = r->next;
    if (!s->gen_head) s->gen_tail = NULL;
    r->next = NULL;
    s->queued--;
    r->slot = i;
    start_req(s, r, ch_time());
    L->active[i] = r;
    L->nactive++;
    step[nent++] = r;
    ntok += r->nprompt;
    nnew++;
  }
  pthread_mutex_unlock(&s->lock);
  if (nent == 0) return CH_OK;
  int32_t *buf = malloc(sizeof(int32_t) * (size_t)(3 * nent + ntok));
  if (!buf) return CH_FAIL(CH_ERR_NOMEM, "generation step");
  int32_t *ent = buf, *tok = buf + 3 * nent;
  int off = 0;
  for (int e = 0; e < nent; e++) {
    serve_req *r = step[e];
    int fresh = r->nout == 0;
    ent[3 * e] = r->slot;
    ent[3 * e + 1] = fresh ? r->nprompt : 1;
    ent[3 * e + 2] = fresh;
    if (fresh) memcpy(tok + off, r->prompt, sizeof(int32_t) * (size_t)r->nprompt);
    else tok[off] = r->out[r->nout - 1];
    off += ent[3 * e + 1];
  }
  double t0 = ch_time();
  op_header h = {OP_GEN, nent, ntok, 0};
  ch_status st = send_header(s->g, &h);
  if (st == CH_OK) st = ch_comm_broadcast(s->g, buf, (size_t)(3 * nent + ntok), CH_I32, 0, NULL);
  if (st == CH_OK) st = run_gen(s, nent, ent, tok, L->logits, step);
  free(buf);
  double t1 = ch_time();
  observe_compute(s, nnew > 0 ? 1 : 2, t1 - t0);
  if (st != CH_OK) return st;
  const char *lv[] = {s->model_name};
  ch_metric_observe(s->m_batch, lv, (double)nent);
  ch_metric_inc(s->m_tokens, lv, (double)nent);
  pthread_mutex_lock(&s->lock);
  for (int e = 0; e < nent; e++) {
    serve_req *r = step[e];
    if (r->nout == 0) {
      r->t_first = t1;
      ch_metric_observe(s->m_ttft, lv, t1 - r->t_enqueue);
    }
    append_text(s, r, r->out[r->nout]);
    r->nout++;
    int stopped = r->nstop > 0 && ch_oai_find_stop(r->text, r->text_len, r->stop, r->nstop) >= 0;
    int full = r->nprompt + r->nout >= m->context;
    if (stopped || r->nout >= r->max_tokens || full || r->abandoned) {
      r->finish = stopped ? "stop" : "length";
      L->active[r->slot] = NULL;
      L->nactive--;
      serve_finish_locked(s, r, 200, NULL);
      serve_req_put(s, r);
    } else {
      pthread_cond_broadcast(&r->cond); /* a streaming client sends the new token */
    }
  }
  pthread_mutex_unlock(&s->lock);
  return CH_OK;
}

static ch_status lead_reload(leader *L, serve_req *r) {
  serve_state *s = L->s;
  char path[CH_PATH_MAX];
  snprintf(path, sizeof path, "%s", r->path);
  op_header h = {OP_RELOAD, 0, 0, 0};
  CH_CHECK(send_header(s->g, &h));
  CH_CHECK(ch_comm_broadcast(s->g, path, sizeof path, CH_U8, 0, NULL));
  double t0 = ch_time();
  int refused;
  ch_status st = run_reload(s, path, &refused);
  pthread_mutex_lock(&s->lock);
  if (st == CH_OK) {
    CH_INFO("serving %s version %s (loaded %s in %.2f s)", s->model_name, s->model->version, path,
            ch_time() - t0);
    serve_finish_locked(s, r, 200, NULL);
  } else {
    CH_WARN("reload of %s failed, still serving version %s: %s", path, s->model->version,
            ch_error_message());
    serve_finish_locked(s, r, refused ? 409 : 400, ch_error_message());
  }
  serve_req_put(s, r);
  pthread_mutex_unlock(&s->lock);
  return CH_OK; /* a failed reload is the client's error; the old model keeps serving */
}

/* Waits (leader, lock held) until there is something to do; returns what. */
enum { WORK_NONE, WORK_INFER, WORK_GEN, WORK_RELOAD, WORK_STOP };

static int next_work(leader *L) {
  serve_state *s = L->s;
  for (;;) {
    if (ch_signals_pending() && s->accepting) {
      s->accepting = 0; /* stop taking requests; finish the accepted ones */
      CH_INFO("shutting down on signal: finishing %d accepted request(s)", s->inflight);
    }
    if (L->nactive > 0 || (s->gen_head && L->nactive < s->opts.max_batch_size)) {
      /* A reload waits for running generations (their caches belong to the old weights). */
      if (!(s->ctl_head && L->nactive == 0)) return WORK_GEN;
    }
    if (s->ctl_head && L->nactive == 0) return WORK_RELOAD;
    if (s->infer_head) {
      double waited = ch_time() - s->infer_head->t_enqueue;
      int64_t rows = 0;
      for (serve_req *r = s->infer_head; r && rows < s->opts.max_batch_size; r = r->next)
        rows += r->rows;
      /* Waiting only helps when more requests can still arrive before the delay ends: when every
       * accepted request is already queued (closed-loop clients all waiting on us), go now. */
      if (rows >= s->opts.max_batch_size || waited * 1e6 >= (double)s->opts.max_queue_delay_us ||
          !s->accepting || s->queued == s->inflight)
        return WORK_INFER;
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      double left = (double)s->opts.max_queue_delay_us * 1e-6 - waited;
      long ns = ts.tv_nsec + (long)(left * 1e9) + 1000;
      ts.tv_sec += ns / 1000000000L;
      ts.tv_nsec = ns % 1000000000L;
      pthread_cond_timedwait(&s->wake, &s->lock, &ts);
      continue;
    }
    if (!s->accepting && s->inflight == 0) return WORK_STOP;
    struct timespec ts; /* wake now and then to notice signals */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&s->wake, &s->lock, &ts);
  }
}

static ch_status lead(serve_state *s) {
  leader L = {.s = s};
  L.active = calloc((size_t)s->opts.max_batch_size, sizeof *L.active);
  L.logits = malloc(sizeof(float) * (size_t)(s->model->vocab > 0 ? s->model->vocab : 1));
  if (!L.active || !L.logits) {
    free(L.active);
    free(L.logits);
    return CH_FAIL(CH_ERR_NOMEM, "executor");
  }
  ch_status st = CH_OK;
  int cap = s->opts.max_batch_size > 0 ? s->opts.max_batch_size : 1;
  serve_req **batch = malloc(sizeof *batch * (size_t)cap);
  while (st == CH_OK && batch) {
    pthread_mutex_lock(&s->lock);
    int work = next_work(&L);
    serve_req *ctl = NULL;
    int n = 0;
    int64_t rows = 0;
    if (work == WORK_INFER) n = take_infer_batch(s, batch, cap, &rows);
    if (work == WORK_RELOAD) {
      ctl = s->ctl_head;
      s->ctl_head = ctl->next;
    }
    pthread_mutex_unlock(&s->lock);
    if (work == WORK_STOP) break;
    if (work == WORK_INFER) st = lead_infer(&L, batch, n, rows);
    else if (work == WORK_GEN) st = lead_gen(&L);
    else if (work == WORK_RELOAD) st = lead_reload(&L, ctl);
    if (L.logits && s->model->vocab > 0) { /* a reload may change the vocabulary */
      float *lg = realloc(L.logits, sizeof(float) * (size_t)s->model->vocab);
      if (lg) L.logits = lg;
    }
  }
  op_header h = {OP_STOP, 0, 0, 0};
  ch_status stop = send_header(s->g, &h);
  free(batch);
  free(L.active);
  free(L.logits);
  return st != CH_OK ? st : stop;
}

ch_status serve_run(serve_state *s) { return s->g->rank == 0 ? lead(s) : follower(s); }
