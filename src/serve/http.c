/* The HTTP front end on rank 0 (libmicrohttpd, one thread per connection): routes, limits,
 * authentication, and the glue between the JSON codecs and the queue. Routes:
 *   GET  /v2, /v2/health/live, /v2/health/ready
 *   GET  /v2/models/{m}[/versions/{v}], .../ready       POST .../infer   (KServe V2)
 *   POST /v2/repository/models/{m}/load                 (reload: {"parameters":{"path":P}})
 *   POST /v1/completions, GET /v1/models                (OpenAI; SSE when "stream": true)
 *   GET  /metrics                                       (Prometheus text format)
 * Errors are {"error": "..."}: 400 bad input, 401 key, 404 unknown route/model/version,
 * 405 method, 409 reload refused (another model family), 413 body too large, 503 not
 * ready/overloaded/shutting down, 504 timed out. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "cohort/ckpt.h"
#include "cohort/log.h"
#include "cohort/runtime.h"
#include "serve/openai.h"
#include "serve/server.h"
#include "serve/v2.h"
#include "cohort_build.h"

#if MHD_VERSION < 0x00097002
typedef int mhd_result;
#else
typedef enum MHD_Result mhd_result;
#endif

typedef struct conn {
  char *body;
  size_t len, cap;
  int too_large;
  int accepted;   /* a request of this connection was queued: its answer must reach the client */
} conn;

/* ---- responses -------------------------------------------------------------------------- */

static mhd_result send_text(struct MHD_Connection *c, int status, char *text, const char *type) {
  if (!text) {
    status = 500;
    text = strdup("{\"error\": \"out of memory\"}");
    if (!text) return MHD_NO;
  }
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", type);
  mhd_result ret = MHD_queue_response(c, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

static mhd_result send_json(struct MHD_Connection *c, int status, char *json) {
  return send_text(c, status, json, "application/json");
}

static mhd_result send_error(struct MHD_Connection *c, int status, const char *msg) {
  return send_json(c, status, ch_v2_error(msg));
}

/* ---- metrics helpers -------------------------------------------------------------------- */

static void count(serve_state *s, const char *endpoint, int status, double t0) {
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  const char *lv[] = {s->model_name, endpoint, code};
  ch_metric_inc(s->m_requests, lv, 1);
  const char *lv2[] = {s->model_name, endpoint};
  ch_metric_observe(s->m_latency, lv2, ch_time() - t0);
}

/* ---- routes ----------------------------------------------------------------------------- */

/* Splits "/v2/models/{m}[/versions/{v}][/tail]": returns 0 when path starts with it. */
static int model_path(const char *path, char *model, size_t msz, char *ver, size_t vsz,
                      const char **tail) {
  const char *p = path + strlen("/v2/models/");
  size_t n = strcspn(p, "/");
  if (n == 0 || n >= msz) return -1;
  memcpy(model, p, n);
  model[n] = '\0';
  p += n;
  ver[0] = '\0';
  if (!strncmp(p, "/versions/", 10)) {
    p += 10;
    n = strcspn(p, "/");
    if (n == 0 || n >= vsz) return -1;
    memcpy(ver, p, n);
    ver[n] = '\0';
    p += n;
  }
  *tail = p;
  return 0;
}

static mhd_result model_metadata(serve_state *s, struct MHD_Connection *c) {
  serve_facts f = serve_facts_get(s), *m = &f;
  const char *versions[1] = {m->version};
  ch_v2_tensor_meta in, out[2];
  memset(&in, 0, sizeof in);
  memset(out, 0, sizeof out);
  if (m->is_gpt) {
    in = (ch_v2_tensor_meta){.name = "input_ids", .dtype = CH_V2_INT32, .ndim = 1, .shape = {-1}};
    out[0] = (ch_v2_tensor_meta){.name = "logits", .dtype = CH_V2_FP32, .ndim = 1,
                                 .shape = {m->vocab}};
    out[1] = (ch_v2_tensor_meta){.name = "next_token", .dtype = CH_V2_INT32, .ndim = 1,
                                 .shape = {1}};
    return send_json(c, 200, ch_v2_model_metadata(s->model_name, versions, 1, "cohort_gpt", &in,
                                                  1, out, 2));
  }
  in = (ch_v2_tensor_meta){.name = "input", .dtype = CH_V2_FP32, .ndim = 2,
                           .shape = {-1, m->features}};
  out[0] = (ch_v2_tensor_meta){.name = "logits", .dtype = CH_V2_FP32, .ndim = 2,
                               .shape = {-1, m->classes}};
  out[1] = (ch_v2_tensor_meta){.name = "label", .dtype = CH_V2_INT32, .ndim = 1, .shape = {-1}};
  return send_json(c, 200, ch_v2_model_metadata(s->model_name, versions, 1, "cohort_mlp", &in, 1,
                                                out, 2));
}

/* POST .../infer for the GPT: input_ids INT32 [n] (or [1, n]) -> the next token's logits [vocab]
 * and its argmax, one prefill step through the same executor and KV slots as completions. */
static mhd_result infer_gpt(serve_state *s, struct MHD_Connection *c, conn *cn,
                            ch_v2_request *req, const serve_facts *m, double t0) {
  char err[256] = "";
  const char *outs[] = {"logits", "next_token"};
  const ch_v2_input *in = req->ninputs == 1 ? &req->inputs[0] : NULL;
  int64_t n = in ? in->numel : 0;
  if (!in) snprintf(err, sizeof err, "expected exactly one input, got %d", req->ninputs);
  else if (!in->i32 || !(in->ndim == 1 || (in->ndim == 2 && in->shape[0] == 1)))
    snprintf(err, sizeof err, "input '%s': expected token ids, INT32 of shape [n] or [1, n]", in->name);
  else if (n < 1 || n >= m->context)
    snprintf(err, sizeof err, "input '%s': %lld tokens; 1 to %d fit the context of %d", in->name,
             (long long)n, m->context - 1, m->context);
  for (int64_t i = 0; !err[0] && i < n; i++)
    if (in->i32[i] < 0 || in->i32[i] >= m->vocab)
      snprintf(err, sizeof err, "input '%s': token %d at %lld is outside the vocabulary [0, %lld)",
               in->name, in->i32[i], (long long)i, (long long)m->vocab);
  if (!err[0] && ch_v2_check_outputs(req, outs, 2, err, sizeof err) == 0) err[0] = '\0';
  if (err[0]) {
    count(s, "infer", 400, t0);
    return send_error(c, 400, err);
  }
  serve_req *r = serve_req_new(SERVE_GENERATE);
  if (r) {
    r->nprompt = (int)n;
    r->max_tokens = 1;
    r->sampling = (ch_sampling){.temperature = 0.0f, .top_p = 1.0f}; /* greedy: next_token is the argmax */
    r->want_logits = 1;
    r->prompt = malloc(sizeof(int32_t) * (size_t)n);
    r->out = malloc(sizeof(int32_t) * 2);
    r->logits = malloc(sizeof(float) * (size_t)m->vocab);
    if (r->prompt) memcpy(r->prompt, in->i32, sizeof(int32_t) * (size_t)n);
  }
  if (!r || !r->prompt || !r->out || !r->logits) {
    pthread_mutex_lock(&s->lock);
    serve_req_put(s, r);
    pthread_mutex_unlock(&s->lock);
    return send_error(c, 500, "out of memory");
  }
  int status = serve_submit(s, r);
  cn->accepted |= status == 0;
  if (!status) status = serve_wait(s, r, s->opts.request_timeout);
  char *body;
  if (status == 200) {
    ch_v2_output o[2] = {
        {.name = "logits", .dtype = CH_V2_FP32, .ndim = 1, .shape = {m->vocab}, .f32 = r->logits},
        {.name = "next_token", .dtype = CH_V2_INT32, .ndim = 1, .shape = {1}, .i32 = r->out}};
    body = ch_v2_response(s->model_name, m->version, req, o, 2);
  } else {
    body = ch_v2_error(r->err);
  }
  pthread_mutex_lock(&s->lock);
  serve_req_put(s, r);
  pthread_mutex_unlock(&s->lock);
  count(s, "infer", status, t0);
  return send_json(c, status, body);
}

/* POST .../infer for the MLP: input FP32 (or any numeric type) [N, features] or [features]. */
static mhd_result infer(serve_state *s, struct MHD_Connection *c, conn *cn, double t0) {
  serve_facts f = serve_facts_get(s), *m = &f;
  char err[256] = "";
  ch_v2_request req;
  ch_v2_limits lim = {.max_elements = (int64_t)s->opts.max_body_bytes, .max_inputs = 4};
  int status = ch_v2_parse_request(cn->body, cn->len, &lim, &req, err, sizeof err);
  if (status) {
    count(s, "infer", status, t0);
    return send_error(c, status, err);
  }
  if (m->is_gpt) {
    mhd_result ret = infer_gpt(s, c, cn, &req, m, t0);
    ch_v2_request_free(&req);
    return ret;
  }
  const char *outs[] = {"logits", "label"};
  const ch_v2_input *in = req.ninputs == 1 ? &req.inputs[0] : NULL;
  int64_t rows = 0;
  if (!in) {
    snprintf(err, sizeof err, "expected exactly one input, got %d", req.ninputs);
  } else if (!((in->ndim == 2 && in->shape[1] == m->features) ||
               (in->ndim == 1 && in->shape[0] == m->features))) {
    snprintf(err, sizeof err, "input '%s': expected shape [N, %lld] or [%lld]", in->name,
             (long long)m->features, (long long)m->features);
  } else if ((rows = in->ndim == 2 ? in->shape[0] : 1) < 1) {
    snprintf(err, sizeof err, "input '%s': no rows", in->name);
  } else if (ch_v2_check_outputs(&req, outs, 2, err, sizeof err) == 0) {
    err[0] = '\0';
  }
  if (err[0]) {
    ch_v2_request_free(&req);
    count(s, "infer", 400, t0);
    return send_error(c, 400, err);
  }
  serve_req *r = serve_req_new(SERVE_INFER);
  if (r) {
    r->rows = (int)rows;
    r->features = m->features;
    r->x = malloc(sizeof(float) * (size_t)(rows * m->features));
    if (r->x) memcpy(r->x, in->f32, sizeof(float) * (size_t)(rows * m->features));
  }
  if (!r || !r->x) {
    pthread_mutex_lock(&s->lock);
    serve_req_put(s, r);
    pthread_mutex_unlock(&s->lock);
    ch_v2_request_free(&req);
    return send_error(c, 500, "out of memory");
  }
  status = serve_submit(s, r);
  cn->accepted |= status == 0;
  if (!status) status = serve_wait(s, r, s->opts.request_timeout);
  char *body = NULL;
  if (status == 200) {
    ch_v2_output o[2] = {
        {.name = "logits", .dtype = CH_V2_FP32, .ndim = 2, .shape = {rows, r->classes},
         .f32 = r->logits},
        {.name = "label", .dtype = CH_V2_INT32, .ndim = 1, .shape = {rows}, .i32 = r->labels}};
    body = ch_v2_response(s->model_name, r->version, &req, o, 2);
  } else {
    body = ch_v2_error(r->err);
  }
  pthread_mutex_lock(&s->lock);
  serve_req_put(s, r);
  pthread_mutex_unlock(&s->lock);
  ch_v2_request_free(&req);
  count(s, "infer", status, t0);
  return send_json(c, status, body);
}

/* POST /v2/repository/models/{m}/load: {"parameters": {"path": "..."}} or none ("latest"). */
static mhd_result load(serve_state *s, struct MHD_Connection *c, conn *cn, double t0) {
  char path[CH_PATH_MAX] = "latest";
  if (cn->len > 0) {
    cJSON *j = cJSON_ParseWithLength(cn->body, cn->len);
    cJSON *p = j ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "parameters"), "path") : NULL;
    if (!j || (p && !cJSON_IsString(p))) {
      cJSON_Delete(j);
      count(s, "load", 400, t0);
      return send_error(c, 400, "expected {\"parameters\": {\"path\": \"CHECKPOINT\"}}");
    }
    if (p) snprintf(path, sizeof path, "%s", p->valuestring);
    cJSON_Delete(j);
  }
  if (!strcmp(path, "latest")) {
    if (!s->ckpt_dir[0]) {
      count(s, "load", 400, t0);
      return send_error(c, 400, "serving weights from memory: name a checkpoint path to load");
    }
    snprintf(path, sizeof path, "%s", s->ckpt_dir);
  }
  char resolved[CH_PATH_MAX];
  if (ch_ckpt_resolve(path, resolved, sizeof resolved) != CH_OK) {
    count(s, "load", 400, t0);
    return send_error(c, 400, ch_error_message());
  }
  serve_req *r = serve_req_new(SERVE_RELOAD);
  if (!r) return send_error(c, 500, "out of memory");
  snprintf(r->path, sizeof r->path, "%s", resolved);
  int status = serve_submit(s, r);
  cn->accepted |= status == 0;
  if (!status) status = serve_wait(s, r, 600.0);
  char *body;
  if (status == 200) {
    char msg[CH_PATH_MAX + 128];
    snprintf(msg, sizeof msg, "{\"name\": \"%s\", \"version\": \"%s\", \"loaded\": true}",
             s->model_name, serve_facts_get(s).version);
    body = strdup(msg);
  } else {
    body = ch_v2_error(r->err);
  }
  pthread_mutex_lock(&s->lock);
  serve_req_put(s, r);
  pthread_mutex_unlock(&s->lock);
  count(s, "load", status, t0);
  return send_json(c, status, body);
}

/* ---- completions ------------------------------------------------------------------------ */

typedef struct stream {
  serve_state *s;
  serve_req *r;
  ch_oai_request q;
  char id[48];
  long created;
  size_t sent;        /* text bytes sent */
  int final_sent, done_sent;
  char *pending;      /* an event not yet fully copied out */
  size_t plen, poff;
  double t0, deadline;
} stream;

/* Text of r ready to send: up to the first stop string; while running, minus what could still
 * turn into a stop string or complete a UTF-8 character. Lock held. */
static size_t sendable(const serve_req *r, int *stopped) {
  int64_t stop = ch_oai_find_stop(r->text, r->text_len, r->stop, r->nstop);
  *stopped = stop >= 0;
  if (stop >= 0) return (size_t)stop;
  if (r->done) return r->text_len;
  size_t hold = ch_oai_holdback(r->text, r->text_len, r->stop, r->nstop);
  size_t u = ch_oai_utf8_holdback(r->text, r->text_len);
  hold = hold > u ? hold : u;
  return r->text_len > hold ? r->text_len - hold : 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  stream *st = cls;
  serve_state *s = st->s;
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
    if (st->done_sent) return MHD_CONTENT_READER_END_OF_STREAM;
    if (st->final_sent) {
      st->pending = strdup(CH_OAI_SSE_DONE);
      st->plen = strlen(CH_OAI_SSE_DONE);
      st->poff = 0;
      st->done_sent = 1;
      if (!st->pending) return MHD_CONTENT_READER_END_WITH_ERROR;
      continue;
    }
    pthread_mutex_lock(&s->lock);
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
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_WITH_ERROR;
      }
      upto = sendable(r, &stopped);
    }
    const char *finish = NULL;
    if (r->done || stopped) finish = stopped ? "stop" : (r->finish ? r->finish : "length");
    if (r->done && r->http_status != 200) { /* failed after the headers went out */
      pthread_mutex_unlock(&s->lock);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (stopped) r->abandoned = 1; /* no need to generate further */
    st->pending = ch_oai_chunk(st->id, st->created, st->q.model[0] ? st->q.model : s->model_name,
                               r->text + st->sent, upto - st->sent, finish);
    st->sent = upto;
    pthread_mutex_unlock(&s->lock);
    if (!st->pending) return MHD_CONTENT_READER_END_WITH_ERROR;
    st->plen = strlen(st->pending);
    st->poff = 0;
    if (finish) st->final_sent = 1;
  }
}

static void stream_free(void *cls) {
  stream *st = cls;
  serve_state *s = st->s;
  pthread_mutex_lock(&s->lock);
  if (!st->r->done) st->r->abandoned = 1;
  serve_req_put(s, st->r);
  pthread_mutex_unlock(&s->lock);
  count(s, "completions", st->done_sent ? 200 : 499, st->t0);
  ch_oai_request_free(&st->q);
  free(st->pending);
  free(st);
}

static mhd_result completions(serve_state *s, struct MHD_Connection *c, conn *cn,
                              double t0) {
  serve_facts f = serve_facts_get(s), *m = &f;
  char err[400] = "";
  ch_oai_request q;
  if (!m->is_gpt) {
    count(s, "completions", 400, t0);
    return send_error(c, 400, "this model is a classifier: use POST /v2/models/{m}/infer");
  }
  int status = ch_oai_parse_completion(cn->body, cn->len, m->context, &q, err, sizeof err);
  if (status) {
    count(s, "completions", status, t0);
    return send_error(c, status, err);
  }
  if (q.model[0] && strcmp(q.model, s->model_name) != 0) {
    snprintf(err, sizeof err, "model '%s' not found (serving '%s')", q.model, s->model_name);
    ch_oai_request_free(&q);
    count(s, "completions", 404, t0);
    return send_error(c, 404, err);
  }
  int32_t *prompt = NULL;
  int64_t np = 0;
  if (ch_tokenizer_encode(s->tok, q.prompt, strlen(q.prompt), &prompt, &np) != CH_OK || np < 1 ||
      np >= m->context) {
    snprintf(err, sizeof err, "the prompt is %lld tokens; it must be 1 to %d (the context is %d)",
             (long long)np, m->context - 1, m->context);
    free(prompt);
    ch_oai_request_free(&q);
    count(s, "completions", 400, t0);
    return send_error(c, 400, err);
  }
  serve_req *r = serve_req_new(SERVE_GENERATE);
  int max_tokens = q.max_tokens < m->context - (int)np ? q.max_tokens : m->context - (int)np;
  if (r) {
    r->prompt = prompt;
    r->nprompt = (int)np;
    r->max_tokens = max_tokens;
    r->sampling = (ch_sampling){.temperature = q.temperature, .top_k = q.top_k, .top_p = q.top_p};
    r->seed = q.has_seed ? q.seed : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)r;
    r->stop = q.stop; /* the request owns them now: it may outlive this thread's wait */
    r->nstop = q.nstop;
    q.stop = NULL;
    q.nstop = 0;
    r->out = malloc(sizeof(int32_t) * (size_t)(max_tokens + 1));
  } else {
    free(prompt);
  }
  if (!r || !r->out) {
    pthread_mutex_lock(&s->lock);
    serve_req_put(s, r);
    pthread_mutex_unlock(&s->lock);
    ch_oai_request_free(&q);
    return send_error(c, 500, "out of memory");
  }
  char id[48];
  static _Atomic unsigned long long next_id;
  snprintf(id, sizeof id, "cmpl-%llx-%llu", (unsigned long long)time(NULL),
           (unsigned long long)atomic_fetch_add(&next_id, 1));
  long created = (long)time(NULL);
  status = serve_submit(s, r);
  cn->accepted |= status == 0;
  if (status) {
    mhd_result ret = send_error(c, status, r->err);
    pthread_mutex_lock(&s->lock);
    serve_req_put(s, r);
    pthread_mutex_unlock(&s->lock);
    ch_oai_request_free(&q);
    count(s, "completions", status, t0);
    return ret;
  }
  if (q.stream) {
    stream *st = serve_test_fail_alloc("stream") ? NULL : calloc(1, sizeof *st);
    if (!st) { /* r is queued: the executor drops it at its first step; the client hears why */
      pthread_mutex_lock(&s->lock);
      r->abandoned = 1;
      serve_req_put(s, r);
      pthread_mutex_unlock(&s->lock);
      ch_oai_request_free(&q);
      count(s, "completions", 500, t0);
      return send_error(c, 500, "out of memory");
    }
    *st = (stream){.s = s, .r = r, .q = q, .created = created, .t0 = t0,
                   .deadline = t0 + s->opts.request_timeout};
    snprintf(st->id, sizeof st->id, "%s", id);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!resp) {
      stream_free(st);
      return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    mhd_result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
  }
  status = serve_wait(s, r, s->opts.request_timeout);
  char *body;
  pthread_mutex_lock(&s->lock);
  if (status == 200) {
    int stopped = 0;
    size_t len = sendable(r, &stopped);
    body = ch_oai_completion(id, created, q.model[0] ? q.model : s->model_name, r->text ? r->text : "",
                             len, stopped ? "stop" : r->finish, r->nprompt, r->nout);
  } else {
    body = ch_v2_error(r->err);
  }
  serve_req_put(s, r);
  pthread_mutex_unlock(&s->lock);
  ch_oai_request_free(&q);
  count(s, "completions", status, t0);
  return send_json(c, status, body);
}

/* ---- dispatch --------------------------------------------------------------------------- */

static int authorized(serve_state *s, struct MHD_Connection *c) {
  if (!s->opts.api_key[0]) return 1;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  return h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, s->opts.api_key);
}

static mhd_result route(serve_state *s, struct MHD_Connection *c, const char *url,
                        const char *method, conn *cn) {
  double t0 = ch_time();
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
  if (get && !strcmp(url, "/v2/health/live")) return send_json(c, 200, strdup("{\"live\": true}"));
  if (get && !strcmp(url, "/v2/health/ready")) {
    int ready = s->ready && s->accepting;
    return send_json(c, ready ? 200 : 503, strdup(ready ? "{\"ready\": true}" : "{\"ready\": false}"));
  }
  if (!authorized(s, c)) return send_error(c, 401, "missing or wrong API key (Authorization: Bearer KEY)");
  if (cn->too_large) {
    char msg[96];
    snprintf(msg, sizeof msg, "request body exceeds %zu bytes", s->opts.max_body_bytes);
    return send_error(c, 413, msg);
  }
  if (get && !strcmp(url, "/v2"))
    return send_json(c, 200, ch_v2_server_metadata("cohort", COHORT_VERSION));
  if (get && !strcmp(url, "/metrics")) {
    size_t len = 0;
    return send_text(c, 200, ch_metrics_render(s->metrics, &len), "text/plain; version=0.0.4");
  }
  if (get && !strcmp(url, "/v1/models")) {
    const char *names[] = {s->model_name};
    return send_json(c, 200, ch_oai_models(names, 1, (long)time(NULL)));
  }
  if (!strcmp(url, "/v1/completions")) {
    if (!post) return send_error(c, 405, "use POST");
    return completions(s, c, cn, t0);
  }
  char model[128], ver[32];
  const char *tail;
  if (!strncmp(url, "/v2/repository/models/", 22)) {
    const char *p = url + 22;
    size_t n = strcspn(p, "/");
    if (strcmp(p + n, "/load") != 0 || n == 0 || n >= sizeof model)
      return send_error(c, 404, "not found");
    if (strncmp(p, s->model_name, n) || s->model_name[n]) return send_error(c, 404, "unknown model");
    if (!post) return send_error(c, 405, "use POST");
    return load(s, c, cn, t0);
  }
  if (!strncmp(url, "/v2/models/", 11) && !model_path(url, model, sizeof model, ver, sizeof ver, &tail)) {
    if (strcmp(model, s->model_name) != 0) {
      char msg[320];
      snprintf(msg, sizeof msg, "unknown model '%s' (serving '%s')", model, s->model_name);
      return send_error(c, 404, msg);
    }
    serve_facts f = serve_facts_get(s);
    if (ver[0] && strcmp(ver, f.version) != 0) {
      char msg[128];
      snprintf(msg, sizeof msg, "unknown version '%s' (serving version %s)", ver, f.version);
      return send_error(c, 404, msg);
    }
    if (!tail[0] && get) return model_metadata(s, c);
    if (!strcmp(tail, "/ready") && get) {
      char msg[320];
      int ready = s->ready && s->accepting;
      snprintf(msg, sizeof msg, "{\"name\": \"%s\", \"ready\": %s}", s->model_name, ready ? "true" : "false");
      return send_json(c, ready ? 200 : 503, strdup(msg));
    }
    if (!strcmp(tail, "/infer")) {
      if (!post) return send_error(c, 405, "use POST");
      return infer(s, c, cn, t0);
    }
  }
  return send_error(c, 404, "not found");
}

static mhd_result on_request(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **ctx) {
  (void)version;
  serve_state *s = cls;
  conn *cn = *ctx;
  if (!cn) { /* first call: headers only */
    cn = calloc(1, sizeof *cn);
    if (!cn) return MHD_NO;
    *ctx = cn;
    return MHD_YES;
  }
  if (*upload_size > 0) { /* body data: keep it, or count it past the limit */
    if (!cn->too_large && cn->len + *upload_size > s->opts.max_body_bytes) {
      cn->too_large = 1;
      free(cn->body);
      cn->body = NULL;
      cn->len = cn->cap = 0;
    }
    if (!cn->too_large) {
      if (cn->len + *upload_size + 1 > cn->cap) {
        size_t cap = (cn->len + *upload_size + 1) * 2;
        char *b = realloc(cn->body, cap);
        if (!b) return MHD_NO;
        cn->body = b;
        cn->cap = cap;
      }
      memcpy(cn->body + cn->len, upload, *upload_size);
      cn->len += *upload_size;
      cn->body[cn->len] = '\0';
    }
    *upload_size = 0;
    return MHD_YES;
  }
  return route(s, c, url, method, cn);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode code) {
  (void)c;
  serve_state *s = cls;
  conn *cn = *ctx;
  if (cn && cn->accepted) { /* the bookkeeping behind "no accepted request lost" */
    pthread_mutex_lock(&s->lock);
    s->delivered += code == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    s->closed++;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
  }
  if (cn) {
    free(cn->body);
    free(cn);
  }
  *ctx = NULL;
}

ch_status serve_http_start(serve_state *s) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)s->opts.port);
  if (inet_pton(AF_INET, s->opts.host, &addr.sin_addr) != 1)
    return CH_FAIL(CH_ERR_INVALID, "--host %s: not an IPv4 address", s->opts.host);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
      (uint16_t)s->opts.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)s->opts.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)(s->opts.request_timeout > 1 ? s->opts.request_timeout : 1), MHD_OPTION_END);
  if (!d)
    return CH_FAIL(CH_ERR_IO, "cannot listen on %s:%d (in use, or not permitted)", s->opts.host,
                   s->opts.port);
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  if (info) s->opts.port = info->port;
  s->http = d;
  return CH_OK;
}

void serve_http_stop(serve_state *s) {
  if (!s->http) return;
  /* Every accepted request is answered before the executor stops, but its response may still
   * be on its way out: let those connections finish (up to 10 s) before closing them all. */
  double until = ch_time() + 10.0;
  pthread_mutex_lock(&s->lock);
  while (s->closed < s->accepted && ch_time() < until) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 10 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&s->wake, &s->lock, &ts);
  }
  pthread_mutex_unlock(&s->lock);
  MHD_stop_daemon(s->http); /* joins the connection threads */
  s->http = NULL;
  CH_INFO("%llu request(s) accepted, %llu answered in full", s->accepted, s->delivered);
}
