/* The KServe V2 API on rank 0: model metadata, POST .../infer (the MLP's rows, or the GPT's
 * next token), and POST /v2/repository/models/{m}/load. Bodies are v2.h's codecs; requests go
 * through the queue to the executor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cohort/ckpt.h"
#include "cohort/runtime.h"
#include "serve/server.h"
#include "serve/v2.h"

/* Drops the HTTP thread's reference to r. */
static void put(serve_state *s, serve_req *r) {
  pthread_mutex_lock(&s->lock);
  serve_req_put(s, r);
  pthread_mutex_unlock(&s->lock);
}

int serve_v2_metadata(serve_state *s, serve_call *k) {
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
    return serve_reply_json(k, 200, ch_v2_model_metadata(s->model_name, versions, 1, "cohort_gpt",
                                                         &in, 1, out, 2));
  }
  in = (ch_v2_tensor_meta){.name = "input", .dtype = CH_V2_FP32, .ndim = 2,
                           .shape = {-1, m->features}};
  out[0] = (ch_v2_tensor_meta){.name = "logits", .dtype = CH_V2_FP32, .ndim = 2,
                               .shape = {-1, m->classes}};
  out[1] = (ch_v2_tensor_meta){.name = "label", .dtype = CH_V2_INT32, .ndim = 1, .shape = {-1}};
  return serve_reply_json(k, 200, ch_v2_model_metadata(s->model_name, versions, 1, "cohort_mlp",
                                                       &in, 1, out, 2));
}

/* Submits r and waits for its answer: 200 or an error status with r->err. */
static int run(serve_state *s, serve_call *k, serve_req *r) {
  int status = serve_submit(s, r, &k->accepted);
  if (!status) status = serve_wait(s, r, s->opts.request_timeout);
  return status;
}

/* The GPT: input_ids INT32 [n] (or [1, n]) -> the next token's logits [vocab] and its argmax,
 * one prefill step through the same executor and KV slots as completions. */
static int infer_gpt(serve_state *s, serve_call *k, ch_v2_request *req, const serve_facts *m) {
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
    serve_count(s, "infer", 400, k->t0);
    return serve_reply_error(k, 400, err);
  }
  serve_req *r = serve_req_new(SERVE_GENERATE);
  if (r) {
    r->nprompt = (int)n;
    r->max_tokens = 1;
    r->sampling = (ch_sampling){.temperature = 0.0f, .top_p = 1.0f}; /* next_token: the argmax */
    r->want_logits = 1;
    r->prompt = malloc(sizeof(int32_t) * (size_t)n);
    r->out = malloc(sizeof(int32_t) * 2);
    r->logits = malloc(sizeof(float) * (size_t)m->vocab);
    if (r->prompt) memcpy(r->prompt, in->i32, sizeof(int32_t) * (size_t)n);
  }
  if (!r || !r->prompt || !r->out || !r->logits) {
    put(s, r);
    return serve_reply_error(k, 500, "out of memory");
  }
  int status = run(s, k, r);
  char *body;
  if (status == 200) {
    ch_v2_output o[2] = {
        {.name = "logits", .dtype = CH_V2_FP32, .ndim = 1, .shape = {m->vocab}, .f32 = r->logits},
        {.name = "next_token", .dtype = CH_V2_INT32, .ndim = 1, .shape = {1}, .i32 = r->out}};
    body = ch_v2_response(s->model_name, m->version, req, o, 2);
  } else {
    body = ch_v2_error(r->err);
  }
  put(s, r);
  serve_count(s, "infer", status, k->t0);
  return serve_reply_json(k, status, body);
}

/* The MLP: input FP32 (or any numeric type) [N, features] or [features]. */
static int infer_mlp(serve_state *s, serve_call *k, ch_v2_request *req, const serve_facts *m) {
  char err[256] = "";
  const char *outs[] = {"logits", "label"};
  const ch_v2_input *in = req->ninputs == 1 ? &req->inputs[0] : NULL;
  int64_t rows = 0;
  if (!in) {
    snprintf(err, sizeof err, "expected exactly one input, got %d", req->ninputs);
  } else if (!((in->ndim == 2 && in->shape[1] == m->features) ||
               (in->ndim == 1 && in->shape[0] == m->features))) {
    snprintf(err, sizeof err, "input '%s': expected shape [N, %lld] or [%lld]", in->name,
             (long long)m->features, (long long)m->features);
  } else if ((rows = in->ndim == 2 ? in->shape[0] : 1) < 1) {
    snprintf(err, sizeof err, "input '%s': no rows", in->name);
  } else if (ch_v2_check_outputs(req, outs, 2, err, sizeof err) == 0) {
    err[0] = '\0';
  }
  if (err[0]) {
    serve_count(s, "infer", 400, k->t0);
    return serve_reply_error(k, 400, err);
  }
  serve_req *r = serve_req_new(SERVE_INFER);
  if (r) {
    r->rows = (int)rows;
    r->features = m->features;
    r->x = malloc(sizeof(float) * (size_t)(rows * m->features));
    if (r->x) memcpy(r->x, in->f32, sizeof(float) * (size_t)(rows * m->features));
  }
  if (!r || !r->x) {
    put(s, r);
    return serve_reply_error(k, 500, "out of memory");
  }
  int status = run(s, k, r);
  char *body;
  if (status == 200) {
    ch_v2_output o[2] = {
        {.name = "logits", .dtype = CH_V2_FP32, .ndim = 2, .shape = {rows, r->classes},
         .f32 = r->logits},
        {.name = "label", .dtype = CH_V2_INT32, .ndim = 1, .shape = {rows}, .i32 = r->labels}};
    body = ch_v2_response(s->model_name, r->version, req, o, 2);
  } else {
    body = ch_v2_error(r->err);
  }
  put(s, r);
  serve_count(s, "infer", status, k->t0);
  return serve_reply_json(k, status, body);
}

int serve_v2_infer(serve_state *s, serve_call *k) {
  serve_facts f = serve_facts_get(s);
  char err[256] = "";
  ch_v2_request req;
  ch_v2_limits lim = {.max_elements = (int64_t)s->opts.max_body_bytes, .max_inputs = 4};
  int status = ch_v2_parse_request(k->body, k->len, &lim, &req, err, sizeof err);
  if (status) {
    serve_count(s, "infer", status, k->t0);
    return serve_reply_error(k, status, err);
  }
  int ret = f.is_gpt ? infer_gpt(s, k, &req, &f) : infer_mlp(s, k, &req, &f);
  ch_v2_request_free(&req);
  return ret;
}

/* {"parameters": {"path": "..."}} or none ("latest"): 0 and the checkpoint to load, or 400. */
static int load_path(serve_state *s, serve_call *k, char *path, size_t n, const char **err) {
  snprintf(path, n, "latest");
  if (k->len > 0) {
    cJSON *j = cJSON_ParseWithLength(k->body, k->len);
    cJSON *p = j ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "parameters"), "path") : NULL;
    if (!j || (p && !cJSON_IsString(p))) {
      cJSON_Delete(j);
      *err = "expected {\"parameters\": {\"path\": \"CHECKPOINT\"}}";
      return 400;
    }
    if (p) snprintf(path, n, "%s", p->valuestring);
    cJSON_Delete(j);
  }
  if (!strcmp(path, "latest")) {
    if (!s->ckpt_dir[0]) {
      *err = "serving weights from memory: name a checkpoint path to load";
      return 400;
    }
    snprintf(path, n, "%s", s->ckpt_dir);
  }
  return 0;
}

int serve_v2_load(serve_state *s, serve_call *k) {
  char path[CH_PATH_MAX], resolved[CH_PATH_MAX];
  const char *err = NULL;
  if (load_path(s, k, path, sizeof path, &err)) {
    serve_count(s, "load", 400, k->t0);
    return serve_reply_error(k, 400, err);
  }
  if (ch_ckpt_resolve(path, resolved, sizeof resolved) != CH_OK) {
    serve_count(s, "load", 400, k->t0);
    return serve_reply_error(k, 400, ch_error_message());
  }
  serve_req *r = serve_req_new(SERVE_RELOAD);
  if (!r) return serve_reply_error(k, 500, "out of memory");
  snprintf(r->path, sizeof r->path, "%s", resolved);
  int status = serve_submit(s, r, &k->accepted);
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
  put(s, r);
  serve_count(s, "load", status, k->t0);
  return serve_reply_json(k, status, body);
}
