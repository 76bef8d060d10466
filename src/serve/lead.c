/* The leader (rank 0's main thread): turns the queue into the executor's ops (wire.h), as the
 * batching policy (batch.h) says, runs them with the followers, and answers the requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort/log.h"
#include "cohort/runtime.h"
#include "cohort/signals.h"
#include "serve/batch.h"
#include "serve/exec.h"
#include "serve/wire.h"

typedef struct leader {
  serve_state *s;
  serve_req **active;   /* [slots] running generations */
  int nactive;
  int chunk;            /* prompt tokens per step at most (SERVE_PREFILL_CHUNK) */
  float *logits;        /* [slots, vocab]: one row per entry of a step */
  double last_sync;     /* when the last SYNC op ran */
} leader;

/* The names of labels[0..rows) from a model's class names (NUL-terminated, back to back,
 * malloc'ed), so that the answer keeps the names of the model that ran even after a reload;
 * NULL when the model has none or out of memory. */
static char *label_names(const ch_ckpt_model_info *info, const int32_t *labels, int rows) {
  if (info->n_class_names <= 0) return NULL;
  const char **names = malloc(sizeof *names * (size_t)info->n_class_names);
  if (!names) return NULL;
  ch_ckpt_class_names(info, names);
  size_t len = 0;
  for (int k = 0; k < rows; k++) len += strlen(names[labels[k]]) + 1;
  char *out = malloc(len + 1), *p = out;
  for (int k = 0; out && k < rows; k++) p = stpcpy(p, names[labels[k]]) + 1;
  free(names);
  return out;
}

static ch_status lead_infer(serve_state *s, serve_req **batch, int n) {
  serve_model *m = s->model;
  /* A reload may have changed the input width since a request was queued: such requests are
   * answered 503 (retry), the rest run. */
  int kept = 0;
  int64_t rows = 0;
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
    serve_observe_start(s, batch[i], t0);
  }
  serve_op h = {SERVE_OP_INFER, rows, 0, 0};
  if (st == CH_OK) st = serve_wire_send(s->g, &h);
  if (st == CH_OK) st = serve_wire_infer(s->g, x, rows, m->features);
  if (st == CH_OK) st = serve_exec_infer(s, rows, x, logits);
  serve_observe_step(s, 0, st == CH_OK ? rows : 0, ch_time() - t0);
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
        r->label_names = label_names(&m->info, r->labels, r->rows);
      }
      int ok = r->logits && r->labels && (r->label_names || !m->info.n_class_names);
      serve_finish_locked(s, r, ok ? 200 : 500, ok ? NULL : "out of memory");
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

/* One generation step as planned: entry e feeds step[e] the tokens from[e].. of its prompt
 * (from[e] >= 0; reset[e] on its first chunk) or its last sampled token (from[e] -1), cnt[e]
 * of them; sample[e] is step[e] when the step ends its prompt or decodes (a token is drawn),
 * NULL for a prompt chunk with more to come. */
typedef struct gen_plan {
  int nent, ntok, nprefill;
  serve_req **step, **sample;
  int *from, *cnt, *reset;
} gen_plan;

static void plan_add(gen_plan *p, serve_req *r, int from, int n, int reset) {
  int e = p->nent++;
  p->step[e] = r;
  p->from[e] = from;
  p->cnt[e] = n;
  p->reset[e] = reset;
  p->sample[e] = from < 0 || from + n == r->nprompt ? r : NULL;
  p->ntok += n;
  p->nprefill += from >= 0;
}

/* Plans a step (lock held): every running sequence its next token; then prompt tokens up to
 * the chunk (and the cache's rows), first to the sequences part-way through their prompt, then
 * to waiting requests, which join free slots while there is room. Prefill thus rides along
 * with the decodes in the same forward instead of stalling them. */
static void plan_gen(leader *L, gen_plan *p) {
  serve_state *s = L->s;
  ch_tp_model *tp = s->model->tp;
  int slots = s->opts.max_batch_size;
  for (int i = 0; i < slots; i++)
    if (L->active[i] && L->active[i]->nout > 0) plan_add(p, L->active[i], -1, 1, 0);
  int left = ch_tp_model_max_rows(tp) - p->ntok;
  if (left > L->chunk) left = L->chunk;
  for (int i = 0; i < slots && left > 0; i++) {
    serve_req *r = L->active[i];
    if (!r || r->nout > 0) continue;
    int fed = ch_tp_model_length(tp, i), n = r->nprompt - fed < left ? r->nprompt - fed : left;
    plan_add(p, r, fed, n, 0);
    left -= n;
  }
  for (int i = 0; i < slots && s->gen_head && left > 0; i++) {
    if (L->active[i]) continue;
    serve_req *r = s->gen_head;
    s->gen_head = r->next;
    if (!s->gen_head) s->gen_tail = NULL;
    r->next = NULL;
    s->queued--;
    r->slot = i;
    serve_observe_start(s, r, ch_time());
    L->active[i] = r;
    L->nactive++;
    int n = r->nprompt < left ? r->nprompt : left;
    plan_add(p, r, 0, n, 1);
    left -= n;
  }
}

static ch_status lead_gen(leader *L) {
  serve_state *s = L->s;
  serve_model *m = s->model;
  int slots = s->opts.max_batch_size;
  serve_req *step[slots], *sample[slots];
  int from[slots], cnt[slots], reset[slots];
  gen_plan p = {.step = step, .sample = sample, .from = from, .cnt = cnt, .reset = reset};
  pthread_mutex_lock(&s->lock);
  plan_gen(L, &p);
  pthread_mutex_unlock(&s->lock);
  int nent = p.nent;
  if (nent == 0) return CH_OK;
  int32_t *buf = malloc(sizeof(int32_t) * (size_t)(3 * nent + p.ntok));
  if (!buf) return CH_FAIL(CH_ERR_NOMEM, "generation step");
  int32_t *tok = serve_wire_gen_tokens(buf, nent);
  int off = 0;
  for (int e = 0; e < nent; e++) {
    serve_req *r = step[e];
    int32_t *ent = serve_wire_gen_entry(buf, e);
    ent[0] = r->slot;
    ent[1] = cnt[e];
    ent[2] = reset[e];
    if (from[e] >= 0) memcpy(tok + off, r->prompt + from[e], sizeof(int32_t) * (size_t)cnt[e]);
    else tok[off] = r->out[r->nout - 1];
    off += cnt[e];
  }
  double t0 = ch_time();
  serve_op h = {SERVE_OP_GEN, nent, p.ntok, 0};
  ch_status st = serve_wire_send(s->g, &h);
  if (st == CH_OK) st = serve_wire_gen(s->g, buf, nent, p.ntok);
  if (st == CH_OK) st = serve_exec_gen(s, nent, buf, L->logits, sample);
  free(buf);
  double t1 = ch_time();
  serve_observe_step(s, p.nprefill > 0 ? 1 : 2, st == CH_OK ? nent : 0, t1 - t0);
  if (st != CH_OK) return st;
  pthread_mutex_lock(&s->lock);
  for (int e = 0; e < nent; e++) {
    serve_req *r = step[e];
    int stopped = 0, ended = r->abandoned;
    if (sample[e]) {
      serve_observe_token(s, r, t1);
      r->nout++;
      stopped = r->on_token && r->on_token(s, r);
      ended = ended || stopped || r->nout >= r->max_tokens || r->nprompt + r->nout >= m->context;
    }
    if (ended) {
      r->finish = stopped ? "stop" : "length";
      L->active[r->slot] = NULL;
      L->nactive--;
      serve_finish_locked(s, r, 200, NULL);
      serve_req_put(s, r);
    } else if (sample[e] && r->streaming) {
      pthread_cond_broadcast(&r->cond); /* the client sends the new token (others wait for the end) */
    }
  }
  pthread_mutex_unlock(&s->lock);
  return CH_OK;
}

static ch_status lead_reload(serve_state *s, serve_req *r) {
  char path[CH_PATH_MAX];
  snprintf(path, sizeof path, "%s", r->path);
  serve_op h = {SERVE_OP_RELOAD, 0, 0, 0};
  CH_CHECK(serve_wire_send(s->g, &h));
  CH_CHECK(serve_wire_path(s->g, path));
  double t0 = ch_time();
  ch_status st = serve_exec_reload(s, path);
  pthread_mutex_lock(&s->lock);
  if (st == CH_OK) {
    CH_INFO("serving %s version %s (loaded %s in %.2f s)", s->model_name, s->model->version, path,
            ch_time() - t0);
    serve_finish_locked(s, r, 200, NULL);
  } else {
    CH_WARN("reload of %s failed, still serving version %s: %s", path, s->model->version,
            ch_error_message());
    serve_finish_locked(s, r, 400, ch_error_message()); /* the request's fault, either way */
  }
  serve_req_put(s, r);
  pthread_mutex_unlock(&s->lock);
  return CH_OK; /* a failed reload is the client's error; the old model keeps serving */
}

/* A preemption signal reached rank `rank` (lock held): stop taking requests and finish the
 * accepted ones, then the loop sends STOP. Once; later signals change nothing. */
static void begin_shutdown(serve_state *s, int sig, int rank) {
  if (!s->accepting) return;
  s->accepting = 0;
  CH_INFO("shutting down on %s to rank %d: finishing %d accepted request(s)",
          ch_signal_name(sig), rank, s->inflight);
}

/* SYNC: the ranks agree on signals (any rank's SIGTERM stops the whole server, as in
 * training), and the leader enters a collective with every follower at least every
 * SERVE_SYNC_EVERY seconds, where the watchdog sees a hung one. */
static ch_status lead_sync(leader *L) {
  serve_state *s = L->s;
  serve_op h = {SERVE_OP_SYNC, 0, 0, 0};
  int32_t vote[2];
  CH_CHECK(serve_wire_send(s->g, &h));
  CH_CHECK(serve_exec_sync(s, vote));
  L->last_sync = ch_time();
  if (vote[0]) {
    pthread_mutex_lock(&s->lock);
    begin_shutdown(s, vote[0], vote[1]);
    pthread_mutex_unlock(&s->lock);
  }
  return CH_OK;
}

/* What the queue looks like to the batching policy (lock held). */
static serve_queue_view view(const leader *L) {
  const serve_state *s = L->s;
  serve_queue_view q = {.accepting = s->accepting, .inflight = s->inflight, .queued = s->queued,
                        .reload_waiting = s->ctl_head != NULL, .gen_running = L->nactive,
                        .gen_waiting = s->gen_head != NULL, .slots = s->opts.max_batch_size,
                        .max_batch = s->opts.max_batch_size,
                        .max_delay = (double)s->opts.max_queue_delay_us * 1e-6,
                        .sync_due = s->g->size > 1 ? L->last_sync + SERVE_SYNC_EVERY : 0};
  for (serve_req *r = s->infer_head; r && q.infer_rows < q.max_batch; r = r->next)
    q.infer_rows += r->rows;
  if (s->infer_head) q.infer_oldest = s->infer_head->t_enqueue;
  return q;
}

/* Waits (lock held) until the policy says what to do. */
static serve_action next_work(leader *L) {
  serve_state *s = L->s;
  for (;;) {
    if (ch_signals_pending()) begin_shutdown(s, ch_signals_pending(), 0);
    serve_queue_view q = view(L);
    double until;
    serve_action a = serve_batch_decide(&q, ch_time(), &until);
    if (a != SERVE_DO_WAIT) return a;
    /* until is on ch_time()'s clock; the condition variable waits on CLOCK_REALTIME. A wait
     * never exceeds the idle poll, so signals are noticed. */
    double left = until - ch_time() + 1e-6;
    if (left > SERVE_IDLE_POLL) left = SERVE_IDLE_POLL;
    if (left <= 0) continue;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(left * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&s->wake, &s->lock, &ts);
  }
}

/* Takes the V2 batch the policy chooses off the queue (lock held). */
static int take_infer_batch(serve_state *s, serve_req **batch, int cap) {
  int rows[cap], n = 0;
  for (serve_req *r = s->infer_head; r && n < cap; r = r->next) rows[n++] = r->rows;
  n = serve_batch_take(rows, n, s->opts.max_batch_size);
  for (int i = 0; i < n; i++) {
    serve_req *r = s->infer_head;
    s->infer_head = r->next;
    if (!s->infer_head) s->infer_tail = NULL;
    r->next = NULL;
    s->queued--;
    batch[i] = r;
  }
  return n;
}

/* Prompt tokens one generation step feeds at most, all joining sequences together (besides one
 * token per running sequence): a longer prompt is prefilled in chunks over several steps, so
 * the running sequences still get a token every step while it goes in and a step's time stays
 * bounded, yet a chunk is wide enough for efficient GEMMs. COHORT_TEST_PREFILL_CHUNK (a test
 * hook) sets it, so that tests split short prompts. */
#define SERVE_PREFILL_CHUNK 256

static int prefill_chunk(void) {
  const char *e = getenv("COHORT_TEST_PREFILL_CHUNK");
  int n = e ? atoi(e) : 0;
  return n > 0 ? n : SERVE_PREFILL_CHUNK;
}

ch_status serve_lead(serve_state *s) {
  leader L = {.s = s, .last_sync = ch_time()};
  int cap = s->opts.max_batch_size > 0 ? s->opts.max_batch_size : 1;
  L.active = calloc((size_t)cap, sizeof *L.active);
  L.chunk = prefill_chunk();
  L.logits = malloc(sizeof(float) * (size_t)cap * (size_t)(s->model->vocab > 0 ? s->model->vocab : 1));
  serve_req **batch = malloc(sizeof *batch * (size_t)cap);
  ch_status st = L.active && L.logits && batch ? CH_OK : CH_FAIL(CH_ERR_NOMEM, "executor");
  while (st == CH_OK) {
    pthread_mutex_lock(&s->lock);
    serve_action work = next_work(&L);
    serve_req *ctl = NULL;
    int n = 0;
    if (work == SERVE_DO_INFER) n = take_infer_batch(s, batch, cap);
    if (work == SERVE_DO_RELOAD) {
      ctl = s->ctl_head;
      s->ctl_head = ctl->next;
    }
    s->step_since = work == SERVE_DO_STOP ? 0 : ch_time(); /* serve_ready: a step stuck? */
    pthread_mutex_unlock(&s->lock);
    if (work == SERVE_DO_STOP) break;
    if (work == SERVE_DO_INFER) st = lead_infer(s, batch, n);
    else if (work == SERVE_DO_GEN) st = lead_gen(&L);
    else if (work == SERVE_DO_RELOAD) st = lead_reload(s, ctl);
    else if (work == SERVE_DO_SYNC) st = lead_sync(&L);
    pthread_mutex_lock(&s->lock);
    s->step_since = 0;
    pthread_mutex_unlock(&s->lock);
    if (s->model->vocab > 0) { /* a reload may change the vocabulary */
      float *lg = realloc(L.logits, sizeof(float) * (size_t)cap * (size_t)s->model->vocab);
      if (lg) L.logits = lg;
    }
  }
  serve_op h = {SERVE_OP_STOP, 0, 0, 0};
  ch_status stop = serve_wire_send(s->g, &h);
  free(batch);
  free(L.active);
  free(L.logits);
  return st != CH_OK ? st : stop;
}
