/* Internals of the server (include/cohort/serve.h): requests, the queue between the HTTP
 * threads of rank 0 and the executor on every rank's main thread, and the pieces' seams.
 *
 * Threads: libmicrohttpd runs one thread per connection on rank 0; each turns its body into a
 * serve_req, queues it and sleeps on the request's condition variable. The main thread of rank
 * 0 (the leader) forms batches from the queue and broadcasts each op to the followers; every
 * rank runs it (the tensor-parallel forward); the leader completes the requests. Only main
 * threads call MPI. One mutex (the queue's) guards every request and the queue.
 *
 * Files: http.c (transport; conns.c: connections and the request deadline; loglimit.c;
 * encoding.c: Content-Encoding; tls.c: HTTPS; access_log.c) -> route.c (routes, key, methods)
 * -> v2_api.c / openai_api.c (the two APIs; codecs v2*.c, openai.c, jsonw.c; repo.c: which
 * paths a load may name) and ext_api.c (Triton's statistics and repository index/unload) ->
 * queue.c (requests, queue, lifecycle, readiness, unload) -> lead.c (leader: batch.c's policy,
 * wire.h's ops) and exec.c (the ops on every rank); model.c (the served model), observe.c (what
 * is measured: metrics*.c for Prometheus, stats.c for Triton's statistics), serve.c (setup and
 * teardown, the watchdog). */
#pragma once
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "cohort/comm.h"
#include "cohort/model.h"
#include "cohort/parallel.h"
#include "cohort/serve.h"
#include "cohort/tokenizer.h"
#include "serve/loglimit.h"
#include "serve/metrics.h"

typedef enum serve_kind { SERVE_INFER = 1, SERVE_GENERATE, SERVE_RELOAD } serve_kind;

struct serve_state;

typedef struct serve_req {
  serve_kind kind;
  /* INFER: x [rows, features] in; logits [rows, classes] and labels [rows] out. */
  int rows;
  int64_t features, classes; /* the shape the request was made for / answered with */
  char version[32];          /* the model version that answered */
  float *x, *logits;
  int32_t *labels;
  char *label_names;         /* a model with class names: each row's, NUL-terminated, back to back */
  /* GENERATE: prompt tokens in; tokens generated so far out (grows while streaming). */
  int32_t *prompt;
  int nprompt, max_tokens;
  ch_sampling sampling;
  uint64_t seed;
  char **stop;         /* stop strings (owned; taken from the parsed request) */
  int nstop;
  int32_t *out;
  int nout, slot;
  int want_logits;     /* V2 on a GPT: keep the first step's logits in `logits` [vocab] */
  int streaming;       /* its client sends each token as it comes: wake it after every step */
  /* Called by the executor (lock held) after each new token out[nout - 1]; returns 1 when the
   * sequence ends early (a stop string). NULL: token ids only (V2). The front end that sets
   * it owns what follows (the OpenAI one: the decoded text, for stop strings and streaming). */
  int (*on_token)(struct serve_state *s, struct serve_req *r);
  char *text;
  size_t text_len, text_cap;
  size_t *tok_end;     /* OpenAI: where each generated token's text ends in `text` */
  /* Logprobs (OpenAI), recorded by the executor when lp is set (serve_logprobs_record): per
   * generated token t, lp[t * (1 + top_logprobs)] is its log probability, the next
   * top_logprobs values those of the most likely ids lp_ids[t * top_logprobs ..]. */
  int top_logprobs;
  float *lp;
  int32_t *lp_ids;
  const char *finish;  /* "stop" | "length" when done */
  /* RELOAD: a checkpoint path or "latest". */
  char path[CH_PATH_MAX];
  /* Completion. */
  int done, http_status;   /* http_status 200 or an error status with err */
  char err[256];
  double t_new, t_enqueue, t_start, t_first, t_last, t_done; /* t_last: the latest token */
  int abandoned;           /* the client went away: drop at the next step boundary */
  int refs;                /* HTTP thread + queue/executor; freed at 0 (under the lock) */
  pthread_cond_t cond;     /* signalled on every change the HTTP thread waits for */
  struct serve_req *next;
} serve_req;

/* The model as this rank serves it. */
/* Where the served model computes: the device of ch_serve_opts.device and a group over the
 * serving ranks for its tensor-parallel sums (on the device's memory). */
typedef struct serve_dev {
  ch_device *dev;
  ch_group g;
} serve_dev;

typedef struct serve_model {
  ch_ckpt_model_info info; /* architecture, data shape, tokenizer source */
  const ch_backend *be;    /* the device's backend: full, params and tp live there */
  ch_model *full;          /* layout-only: the architecture */
  ch_layout local;
  ch_tp_slice *slices;
  float *params;           /* this rank's slices, backend memory */
  ch_tp_model *tp;
  int64_t step;            /* the version */
  char version[32];
  int is_gpt;
  int64_t features, classes, vocab;
  int context;
  ch_io_schema io;         /* the V2 inputs and outputs of its family */
} serve_model;

/* What the HTTP threads may know of the model: a copy taken under the lock, since a reload
 * replaces the model between executor steps. */
typedef struct serve_facts {
  int is_gpt, context;
  int64_t features, classes, vocab;
  char version[32];
  ch_io_schema io;
} serve_facts;

typedef struct serve_state {
  const ch_group *g;
  serve_dev dev;           /* owned: closed when the server ends */
  ch_serve_opts opts;
  char model_name[128];
  char ckpt_dir[CH_PATH_MAX]; /* for "latest" reloads; "" when serving from memory */
  char repo_root[CH_PATH_MAX]; /* real path of the model repository; "" = no loads */
  serve_model *model;      /* the executor's (main thread) */
  serve_facts facts;       /* under lock */
  ch_tokenizer *tok;       /* rank 0, GPT */
  int64_t vocab_real;      /* rank 0, GPT: the tokenizer's ids; sampling never draws past them */
  /* The queue (rank 0); accepted/delivered/closed are queue.c's (the request lifecycle). */
  pthread_mutex_t lock;
  pthread_cond_t wake;     /* the executor: new work or shutdown */
  serve_req *infer_head, *infer_tail, *gen_head, *gen_tail, *ctl_head;
  int queued;              /* requests waiting (not yet running) */
  int accepting, ready;
  int unloaded;            /* POST .../unload: not served until a load succeeds (queue.c) */
  double step_since;       /* when the executor's current step began; 0 between steps */
  double stall_after;      /* a step longer than this: not ready (serve_ready) */
  int inflight;            /* accepted, not yet finished */
  unsigned long long accepted, delivered; /* requests queued; of them, responses fully sent */
  unsigned long long closed;               /* of them, responses whose sending ended at all */
  /* Metrics (rank 0). */
  metrics *metrics;
  metric *m_requests, *m_latency, *m_queue, *m_batch, *m_tokens, *m_ttft, *m_compute,
      *m_inferences, *m_executions, *m_pending, *m_prompt_tokens, *m_itl;
  char pending_version[32]; /* the version m_pending was last set for (under lock) */
  struct serve_stats *stats; /* Triton's statistics extension (stats.h) */
  void *http;              /* struct MHD_Daemon */
  struct serve_conns *conns; /* its connections and their request deadline (conns.h) */
  struct serve_tls *tls;   /* HTTPS's certificate and key (tls.h); NULL = plain HTTP */
  struct serve_access_log *access_log; /* access_log.h; NULL = none */
  serve_loglimit http_log; /* libmicrohttpd's lines (clients cause them: rate-limited) */
} serve_state;

/* ---- queue.c ---------------------------------------------------------------------------- */
serve_req *serve_req_new(serve_kind kind);
/* Drops one reference (under s->lock); frees at zero. */
void serve_req_put(serve_state *s, serve_req *r);
/* Requests allocated and not freed (process-wide): 0 once a server has stopped, else a leak. */
long serve_req_live(void);
/* Test hook: whether COHORT_TEST_FAIL_ALLOC names `what`, an allocation the tests make fail
 * ("stream": a streamed completion's state). */
int serve_test_fail_alloc(const char *what);
/* Whether the server takes requests (lock held): started, not shutting down, and the executor
 * not stuck in one step for more than s->stall_after seconds (a hung rank: the watchdog ends
 * the job soon after). Health, model readiness and serve_submit all ask this. */
int serve_ready_locked(serve_state *s);
/* The same, taking the lock (the HTTP threads' probes). */
int serve_ready(serve_state *s);
/* Whether the model takes inference requests: the server is ready and the model has not been
 * unloaded (takes the lock). The model-level readiness probe asks this. */
int serve_model_ready(serve_state *s);
/* Unloads the model (repository extension): from now on serve_submit refuses inference and
 * generation requests (503) and the model is not ready, until a load succeeds. Requests
 * already accepted finish; the weights stay in memory on every rank (a load replaces them). */
void serve_unload(serve_state *s);
/* Queues r (takes a reference) unless the server is not accepting, the queue is full or (for
 * inference and generation) the model is unloaded: then returns 503 with a message in r->err. 0 on success, and *accepted = 1:
 * the request's call is owed a complete answer (serve_call_closed counts it). A call that queues
 * several requests (OpenAI's n, prompt lists) is counted accepted once. */
int serve_submit(serve_state *s, serve_req *r, int *accepted);
/* Waits until r is done or `timeout` seconds pass (then marks it abandoned and returns 504). */
int serve_wait(serve_state *s, serve_req *r, double timeout);
/* Marks r done with a status (under the lock) and wakes its waiter. A load that succeeds
 * ends an unload. */
void serve_finish_locked(serve_state *s, serve_req *r, int http_status, const char *err);

/* The connection of a call that had a request accepted has closed: its answer went out in
 * full (ok) or not. Wakes serve_drain. */
void serve_call_closed(serve_state *s, int ok);
/* Shutdown (rank 0): waits up to `seconds` until every accepted request's answer has finished
 * going out. */
void serve_drain(serve_state *s, double seconds);
/* Logs "N request(s) accepted, N answered in full" (once the connections are closed). */
void serve_report_answers(serve_state *s);

/* The facts of s->model, stored under the lock (executor), and a copy of them (HTTP). */
void serve_facts_publish(serve_state *s);
serve_facts serve_facts_get(serve_state *s);

/* ---- exec.c / lead.c: the executor, on every rank's main thread ------------------------- */
/* Runs until a shutdown op (leader: after a signal and draining, or serve_stop). Collective. */
ch_status serve_run(serve_state *s);

/* ---- model.c ---------------------------------------------------------------------------- */
/* Opens o->device and its group over g's ranks (collective); close with serve_dev_close. */
ch_status serve_dev_open(const ch_group *g, const ch_serve_opts *o, serve_dev *d);
void serve_dev_close(serve_dev *d);
/* Loads a checkpoint's slices on every rank onto d's device (collective). */
ch_status serve_model_load(const ch_group *g, const serve_dev *d, const char *path,
                           const ch_serve_opts *o, serve_model **out);
/* Slices weights held in host memory (collective: every rank holds the full params). */
ch_status serve_model_from_params(const ch_group *g, const serve_dev *d,
                                  const ch_ckpt_model_info *info, const float *params,
                                  int64_t step, const ch_serve_opts *o, serve_model **out);
void serve_model_free(serve_model *m);

/* ---- repo.c: the model repository (which paths a load may name) -------------------------- */
/* The real path of `dir` into root[n]: 0, or -1 when it does not resolve (or is empty). */
int serve_repo_root(const char *dir, char *root, size_t n);
/* The checkpoint file a load request's `path` names (absolute, or relative to the repository),
 * as a real path inside `root` (the real path of the repository; "" = loads refused), into
 * out[n]. 0, or 400 with a message in err that never tells whether an outside path exists. */
int serve_repo_confine(const char *root, const char *path, char *out, size_t n, char *err,
                       size_t errn);

/* ---- http.c: the transport (rank 0; libmicrohttpd, one thread per connection) ------------- */
ch_status serve_http_start(serve_state *s);
void serve_http_stop(serve_state *s);

/* One HTTP exchange as the routes and front ends see it. */
typedef struct serve_call {
  struct MHD_Connection *c;
  const char *body;   /* the request body (decoded: Content-Encoding), NUL-terminated after len */
  size_t len;
  int body_status;    /* 0, or the status the body gets (413 too large, 415 unknown coding, 400
                         corrupt); the router answers it once the key is checked */
  char body_err[192]; /* its message */
  double t0;          /* arrival, for the latency metric */
  int accepted;       /* set by serve_submit: a request of this call is owed an answer */
  uint64_t bytes;     /* response body bytes queued or streamed (the access log's) */
} serve_call;

/* The value of a request header, or NULL. */
const char *serve_call_header(serve_call *k, const char *name);
/* The same with its length in bytes (a value may hold NUL bytes: compare all of it). */
const char *serve_call_header_n(serve_call *k, const char *name, size_t *len);
/* Queues the response (takes `text`, malloc'ed; NULL becomes a 500 "out of memory"). Returns
 * libmicrohttpd's result (MHD_YES / MHD_NO) for the route to return. */
int serve_reply(serve_call *k, int status, char *text, const char *content_type);
/* The same for len bytes of any content (data malloc'ed, taken), with one more header when
 * `header` is not NULL (V2's binary tensor data: Inference-Header-Content-Length). */
int serve_reply_bytes(serve_call *k, int status, char *data, size_t len,
                      const char *content_type, const char *header, const char *value);
int serve_reply_json(serve_call *k, int status, char *json);
/* {"error": msg}. */
int serve_reply_error(serve_call *k, int status, const char *msg);
/* The same with one more response header (name: value), e.g. Allow on a 405. */
int serve_reply_error_hdr(serve_call *k, int status, const char *msg, const char *name,
                          const char *value);
/* A server-sent-event stream: read() fills buf with up to max bytes (returns the count,
 * SERVE_STREAM_END or SERVE_STREAM_ERROR); done(cls) runs once when the response is over (also
 * when it could not be created). */
#define SERVE_STREAM_END ((ssize_t)-1)   /* libmicrohttpd's END_OF_STREAM */
#define SERVE_STREAM_ERROR ((ssize_t)-2) /* libmicrohttpd's END_WITH_ERROR */
int serve_reply_sse(serve_call *k, ssize_t (*read)(void *cls, uint64_t pos, char *buf, size_t max),
                    void *cls, void (*done)(void *cls));
/* Counts a finished request: cohort_requests_total and its latency since t0, labelled with
 * the model's current version. */
void serve_count(serve_state *s, const char *endpoint, int status, double t0);

/* ---- route.c: routing, the API key, the small GET endpoints ------------------------------- */
/* Whether the Authorization value h[0..n) is exactly "Bearer KEY": over its whole length (a
 * value may hold a NUL byte, where a C-string compare stops: "Bearer KEY\0junk" must fail), in
 * a time that depends only on the key's length. h may be NULL (no header). */
int serve_bearer_ok(const char *h, size_t n, const char *key);
/* Answers one request: finds its route, checks the key (probes and, unless
 * --metrics-need-key, /metrics go without), the method (405 with Allow; HEAD wherever GET) and
 * the body's status (k->body_status), then runs the route's handler. */
int serve_route(serve_state *s, serve_call *k, const char *url, const char *method);

/* ---- v2_api.c: KServe V2 (model metadata, infer, repository load) ------------------------ */
int serve_v2_metadata(serve_state *s, serve_call *k);
int serve_v2_config(serve_state *s, serve_call *k);
int serve_v2_infer(serve_state *s, serve_call *k);
int serve_v2_load(serve_state *s, serve_call *k);

/* ---- openai_api.c: the OpenAI API (completions, chat, models; the text: tokenising,
 * detokenising, stop strings; openai_stream.c: streamed answers) ----------------------------- */
/* POST /v1/completions (chat 0) and /v1/chat/completions (chat 1), after route.c checked the
 * key, the method and the body; every error is the API's error object. */
int serve_oai_generate(serve_state *s, serve_call *k, int chat);
/* GET /v1/models/{id}: the served model, or a 404 in the API's shape. */
int serve_oai_model(serve_state *s, serve_call *k, const char *id);

/* ---- logprobs.c --------------------------------------------------------------------------- */
/* After the executor sampled r->out[r->nout] from logits [vocab] (the tokenizer's ids are the
 * first vocab_real): records the token's log probability and the top_logprobs most likely ids
 * with theirs into r->lp / r->lp_ids (no-op when r->lp is NULL). Log-softmax of the model's
 * logits, before temperature, top-k and top-p. */
void serve_logprobs_record(serve_req *r, const float *logits, int64_t vocab, int64_t vocab_real);

/* ---- ext_api.c: Triton's extensions around inference ------------------------------------ */
/* GET /v2/models[/{m}[/versions/{v}]]/stats: model may be NULL (every model). The caller has
 * checked that model and version name the served ones. */
int serve_ext_stats(serve_state *s, serve_call *k, const char *model);
/* POST /v2/repository/index ({"ready": bool} optional) and .../models/{m}/unload. */
int serve_ext_index(serve_state *s, serve_call *k);
int serve_ext_unload(serve_state *s, serve_call *k);

/* ---- observe.c: metrics and statistics (rank 0) ------------------------------------------ */
/* Registers the metric families (s->metrics) and creates the statistics store (s->stats). */
ch_status serve_metrics_init(serve_state *s);
/* The executor takes r off the queue at `now` (sets r->t_start): its queue time, and a
 * generation's prompt tokens. Main thread. */
void serve_observe_start(serve_state *s, serve_req *r, double now);
/* One executor step: stage 0 infer, 1 prefill, 2 decode; `batch` rows or sequences; its time.
 * Counts an execution and `batch` inferences. Main thread. */
void serve_observe_step(serve_state *s, int stage, int64_t batch, double seconds);
/* r got a token at `now` (lock held; before r->nout counts it): time to first token or the
 * inter-token latency, and the generated-token count. */
void serve_observe_token(serve_state *s, serve_req *r, double now);
/* r is being freed (lock held): an inference or generation request's statistics. */
void serve_observe_end(serve_state *s, serve_req *r);
/* Sets the pending-request gauge from the queue (before a scrape). */
void serve_observe_pending(serve_state *s);
