/* The KServe V2 API on rank 0: model metadata and configuration, POST .../infer (the MLP's
 * rows, or the GPT's next token; JSON or Triton's binary tensor data both ways), and POST
 * /v2/repository/models/{m}/load. Bodies are v2.h's codecs; requests are checked against the
 * model's schema (names, datatypes) and go through the queue to the executor. */
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

static v2_dtype v2_dtype_of(ch_io_dtype t) {
  return t == CH_IO_INT32 ? CH_V2_INT32 : t == CH_IO_BYTES ? CH_V2_BYTES : CH_V2_FP32;
}

static v2_tensor_meta v2_meta(const ch_io_tensor *t) {
  v2_tensor_meta v = {.name = t->name, .dtype = v2_dtype_of(t->dtype), .ndim = t->ndim};
  for (int d = 0; d < t->ndim; d++) v.shape[d] = t->shape[d];
  return v;
}

/* The schema's tensors as the codec's metadata; returns n. */
static int v2_metas(const ch_io_tensor *t, int n, v2_tensor_meta *out) {
  for (int i = 0; i < n; i++) out[i] = v2_meta(&t[i]);
  return n;
}

/* The model's output names (for the check of requested outputs). */
static int output_names(const ch_io_schema *io, const char **names) {
  for (int i = 0; i < io->noutputs; i++) names[i] = io->outputs[i].name;
  return io->noutputs;
}

/* GET /v2/models/{m}: the inputs and outputs of the model's family (ch_model_io). */
int serve_v2_metadata(serve_state *s, serve_call *k) {
  serve_facts f = serve_facts_get(s);
  const char *versions[1] = {f.version};
  v2_tensor_meta in[CH_IO_MAX_TENSORS], out[CH_IO_MAX_TENSORS];
  int nin = v2_metas(f.io.inputs, f.io.ninputs, in), nout = v2_metas(f.io.outputs, f.io.noutputs, out);
  return serve_reply_json(k, 200, v2_model_metadata(s->model_name, versions, 1, f.io.platform,
                                                    in, nin, out, nout));
}

/* GET /v2/models/{m}/config: Triton's model configuration. The MLP batches rows (max_batch_size
 * --max-batch-size, dynamic batching with --max-queue-delay-us); a GPT request is one sequence
 * whose [n] shape is not a batch (max_batch_size 0). */
int serve_v2_config(serve_state *s, serve_call *k) {
  serve_facts f = serve_facts_get(s);
  v2_tensor_meta in[CH_IO_MAX_TENSORS], out[CH_IO_MAX_TENSORS];
  int nin = v2_metas(f.io.inputs, f.io.ninputs, in), nout = v2_metas(f.io.outputs, f.io.noutputs, out);
  return serve_reply_json(k, 200, v2_model_config(s->model_name, f.io.platform,
                                                  f.is_gpt ? 0 : s->opts.max_batch_size,
                                                  s->opts.max_queue_delay_us, in, nin, out, nout));
}

/* Submits r and waits for its answer: 200 or an error status with r->err. */
static int run(serve_state *s, serve_call *k, serve_req *r) {
  int status = serve_submit(s, r, &k->accepted);
  if (!status) status = serve_wait(s, r, s->opts.request_timeout);
  return status;
}

/* An inference refused before it reached the queue (a bad request). */
static int refuse(serve_state *s, serve_call *k, int status, const char *err) {
  serve_count(s, "infer", status, k->t0);
  return serve_reply_error(k, status, err);
}

/* The reply to a finished inference: its outputs o[0..2) (200; with binary tensor data after
 * the JSON when the request asks, as application/octet-stream with the JSON's length in
 * Inference-Header-Content-Length, as Triton answers) or r's error; drops r. */
static int reply(serve_state *s, serve_call *k, const v2_request *req, serve_req *r, int status,
                 const char *version, const v2_output *o, int nouts) {
  v2_body b = {0};
  if (status == 200 && v2_response_body(s->model_name, version, req, o, nouts, &b) != 0)
    b.data = NULL; /* serve_reply: 500 out of memory */
  char *err = status == 200 ? NULL : v2_error(r->err);
  put(s, r);
  serve_count(s, "infer", status, k->t0);
  if (status != 200) return serve_reply_json(k, status, err);
  if (!b.data || b.json_len == b.len) return serve_reply_json(k, status, b.data);
  char hlen[24];
  snprintf(hlen, sizeof hlen, "%zu", b.json_len);
  return serve_reply_bytes(k, status, b.data, b.len, "application/octet-stream",
                           "Inference-Header-Content-Length", hlen);
}

/* The GPT (its schema: ch_model_io): input_ids INT32 [n] (or [1, n]) -> the next token's
 * logits [vocab] and its argmax, one prefill step through the same executor and KV slots as
 * completions. */
static int infer_gpt(serve_state *s, serve_call *k, v2_request *req, const serve_facts *m) {
  char err[256] = "";
  const ch_io_schema *io = &m->io; /* input_ids [-1] -> logits [vocab], next_token [1] */
  const char *outs[CH_IO_MAX_TENSORS];
  int nouts = output_names(io, outs);
  int64_t vocab = io->outputs[0].shape[0];
  const v2_input *in = &req->inputs[0]; /* the only one (v2_check_inputs) */
  int64_t n = in->numel;
  /* A prompt of the whole context still has its next token's logits (its last position). */
  if (!in->i32 || !(in->ndim == 1 || (in->ndim == 2 && in->shape[0] == 1)))
    snprintf(err, sizeof err, "input '%s': expected token ids, INT32 of shape [n] or [1, n]", in->name);
  else if (n < 1 || n > m->context)
    snprintf(err, sizeof err, "input '%s': %lld tokens; 1 to %d fit the context", in->name,
             (long long)n, m->context);
  for (int64_t i = 0; !err[0] && i < n; i++)
    if (in->i32[i] < 0 || in->i32[i] >= vocab)
      snprintf(err, sizeof err, "input '%s': token %d at %lld is outside the vocabulary [0, %lld)",
               in->name, in->i32[i], (long long)i, (long long)vocab);
  if (!err[0] && v2_check_outputs(req, outs, nouts, err, sizeof err) == 0) err[0] = '\0';
  if (err[0]) return refuse(s, k, 400, err);
  serve_req *r = serve_req_new(SERVE_GENERATE);
  if (r) {
    r->nprompt = (int)n;
    r->max_tokens = 1;
    r->sampling = (ch_sampling){.temperature = 0.0f, .top_p = 1.0f}; /* next_token: the argmax */
    r->want_logits = 1;
    r->prompt = malloc(sizeof(int32_t) * (size_t)n);
    r->out = malloc(sizeof(int32_t) * 2);
    r->logits = malloc(sizeof(float) * (size_t)vocab);
    if (r->prompt) memcpy(r->prompt, in->i32, sizeof(int32_t) * (size_t)n);
  }
  if (!r || !r->prompt || !r->out || !r->logits) {
    put(s, r);
    return serve_reply_error(k, 500, "out of memory");
  }
  int status = run(s, k, r);
  const ch_io_tensor *lo = &io->outputs[0], *nt = &io->outputs[1];
  v2_output o[2] = {{.name = lo->name, .dtype = v2_dtype_of(lo->dtype), .ndim = 1,
                     .shape = {vocab}, .f32 = r->logits},
                    {.name = nt->name, .dtype = v2_dtype_of(nt->dtype), .ndim = 1, .shape = {1},
                     .i32 = r->out}};
  return reply(s, k, req, r, status, m->version, o, 2);
}

/* The MLP (its schema: ch_model_io): input FP32 [N, features] or [features] -> logits
 * [N, classes], label [N]. */
static int infer_mlp(serve_state *s, serve_call *k, v2_request *req, const serve_facts *m) {
  char err[256] = "";
  const ch_io_schema *io = &m->io; /* input [-1, features] -> logits [-1, classes], label [-1] */
  const char *outs[CH_IO_MAX_TENSORS];
  int nouts = output_names(io, outs);
  int64_t features = io->inputs[0].shape[1];
  const v2_input *in = &req->inputs[0]; /* the only one (v2_check_inputs) */
  int64_t rows = 0;
  if (!((in->ndim == 2 && in->shape[1] == features) ||
               (in->ndim == 1 && in->shape[0] == features))) {
    snprintf(err, sizeof err, "input '%s': expected shape [N, %lld] or [%lld]", in->name,
             (long long)features, (long long)features);
  } else if ((rows = in->ndim == 2 ? in->shape[0] : 1) < 1) {
    snprintf(err, sizeof err, "input '%s': no rows", in->name);
  } else if (v2_check_outputs(req, outs, nouts, err, sizeof err) == 0) {
    err[0] = '\0';
  }
  if (err[0]) return refuse(s, k, 400, err);
  serve_req *r = serve_req_new(SERVE_INFER);
  if (r) {
    r->rows = (int)rows;
    r->features = features;
    r->x = malloc(sizeof(float) * (size_t)(rows * features));
    if (r->x) memcpy(r->x, in->f32, sizeof(float) * (size_t)(rows * features));
  }
  if (!r || !r->x) {
    put(s, r);
    return serve_reply_error(k, 500, "out of memory");
  }
  int status = run(s, k, r);
  const ch_io_tensor *lo = &io->outputs[0], *la = &io->outputs[1];
  v2_output o[3] = {{.name = lo->name, .dtype = v2_dtype_of(lo->dtype), .ndim = 2,
                     .shape = {rows, r->classes}, .f32 = r->logits},
                    {.name = la->name, .dtype = v2_dtype_of(la->dtype), .ndim = 1,
                     .shape = {rows}, .i32 = r->labels}};
  /* class_name BYTES [rows] when the model's classes have names (the schema says so) */
  const char **names = nouts == 3 && r->label_names ? malloc(sizeof *names * (size_t)rows) : NULL;
  for (int64_t i = 0, at = 0; names && i < rows; i++) {
    names[i] = r->label_names + at;
    at += (int64_t)strlen(names[i]) + 1;
  }
  o[2] = (v2_output){.name = io->outputs[2].name, .dtype = CH_V2_BYTES, .ndim = 1, .shape = {rows},
                     .str = names};
  int ret = reply(s, k, req, r, status, r->version, o, nouts == 3 && names ? 3 : 2);
  free(names);
  return ret;
}

int serve_v2_infer(serve_state *s, serve_call *k) {
  serve_facts f = serve_facts_get(s);
  char err[256] = "";
  v2_request req;
  v2_limits lim = {.max_elements = (int64_t)s->opts.max_body_bytes, .max_inputs = 4};
  size_t json_len;
  const char *hlen = serve_call_header(k, "Inference-Header-Content-Length");
  int status = v2_header_length(hlen, k->len, &json_len, err, sizeof err);
  if (status) return refuse(s, k, status, err);
  status = v2_parse_request_binary(k->body, k->len, json_len, &lim, &req, err, sizeof err);
  if (status) return refuse(s, k, status, err);
  v2_tensor_meta in[CH_IO_MAX_TENSORS];
  if ((status = v2_check_inputs(&req, in, v2_metas(f.io.inputs, f.io.ninputs, in), err,
                                sizeof err))) {
    v2_request_free(&req);
    return refuse(s, k, status, err);
  }
  int ret = f.is_gpt ? infer_gpt(s, k, &req, &f) : infer_mlp(s, k, &req, &f);
  v2_request_free(&req);
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
  char why[CH_PATH_MAX + 256];
  if (serve_repo_confine(s->repo_root, path, resolved, sizeof resolved, why, sizeof why)) {
    serve_count(s, "load", 400, k->t0);
    return serve_reply_error(k, 400, why);
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
    body = v2_error(r->err);
  }
  put(s, r);
  serve_count(s, "load", status, k->t0);
  return serve_reply_json(k, status, body);
}
