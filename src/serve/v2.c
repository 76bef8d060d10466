/* KServe V2 inference requests (see v2.h): the body's root, its inputs and requested outputs,
 * their "parameters" (binary_data_size, binary_data, binary_data_output), the split of a body
 * into its JSON header and binary tensor data, and the check of inputs against the model's.
 * cJSON parses (every JSON number becomes a double); v2_data.c turns each input's shape and
 * JSON data into arrays, v2_binary.c its binary data. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/v2_internal.h"


/* Copies a JSON string field into dst (cap bytes): 0, or 400 naming `what`. */
static int get_name(const cJSON *s, const char *what, char *dst, size_t cap, v2_ctx *c) {
  if (!cJSON_IsString(s)) return V2_FAIL(c, "%s must be a string", what);
  size_t n = strlen(s->valuestring);
  if (n == 0) return V2_FAIL(c, "%s is empty", what);
  if (n >= cap) return V2_FAIL(c, "%s is longer than %zu bytes", what, cap - 1);
  memcpy(dst, s->valuestring, n + 1);
  return 0;
}

/* The object "parameters" of o, or NULL when absent or null; *st = 400 when it is not an
 * object. */
static const cJSON *params_of(const cJSON *o, const char *what, int *st, v2_ctx *c) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "parameters");
  *st = 0;
  if (!p || cJSON_IsNull(p)) return NULL;
  if (!cJSON_IsObject(p)) *st = V2_FAIL(c, "%s: 'parameters' must be an object", what);
  return *st ? NULL : p;
}

/* A boolean parameter into *v (left as is when absent): 0 or 400. */
static int bool_param(const cJSON *p, const char *key, const char *what, int *v, v2_ctx *c) {
  const cJSON *b = p ? cJSON_GetObjectItemCaseSensitive(p, key) : NULL;
  if (!b) return 0;
  if (!cJSON_IsBool(b)) return V2_FAIL(c, "%s: parameter '%s' must be true or false", what, key);
  *v = cJSON_IsTrue(b);
  return 0;
}

/* An input's "binary_data_size" into in->binary_size (-1 when absent): 0 or 400. */
static int binary_size_param(v2_input *in, const cJSON *o, v2_ctx *c) {
  char what[CH_V2_NAME_MAX + 16];
  int st;
  snprintf(what, sizeof what, "input '%s'", in->name);
  const cJSON *p = params_of(o, what, &st, c);
  const cJSON *b = p ? cJSON_GetObjectItemCaseSensitive(p, "binary_data_size") : NULL;
  in->binary_size = -1;
  if (st || !b) return st;
  double v = cJSON_IsNumber(b) ? b->valuedouble : -1;
  if (!(v >= 0) || v != trunc(v) || v >= 9007199254740992.0)
    return V2_FAIL(c, "input '%s': binary_data_size must be a non-negative integer", in->name);
  if (cJSON_GetObjectItemCaseSensitive(o, "data"))
    return V2_FAIL(c, "input '%s': both 'data' and binary_data_size are given", in->name);
  in->binary_size = (int64_t)v;
  return 0;
}

/* Parses inputs[i] into r->inputs[i]. */
static int parse_input(v2_request *r, int i, const cJSON *o, v2_ctx *c) {
  v2_input *in = &r->inputs[i];
  char what[48];
  if (!cJSON_IsObject(o)) return V2_FAIL(c, "inputs[%d] must be an object", i);
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
  if (!name) return V2_FAIL(c, "inputs[%d]: missing field 'name'", i);
  snprintf(what, sizeof what, "inputs[%d]: 'name'", i);
  int st = get_name(name, what, in->name, sizeof in->name, c);
  if (st) return st;
  for (int j = 0; j < i; j++)
    if (!strcmp(r->inputs[j].name, in->name))
      return V2_FAIL(c, "input '%s' appears twice", in->name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(o, "datatype");
  if (!dt) return V2_FAIL(c, "input '%s': missing field 'datatype'", in->name);
  if (!cJSON_IsString(dt)) return V2_FAIL(c, "input '%s': 'datatype' must be a string", in->name);
  if (v2_dtype_parse(dt->valuestring, &in->dtype))
    return V2_FAIL(c, "input '%s': datatype '%.32s' is unknown", in->name, dt->valuestring);
  if (in->dtype == CH_V2_BYTES)
    return V2_FAIL(c, "input '%s': datatype 'BYTES' is not supported (this model takes numeric "
                   "tensors)", in->name);
  if ((st = v2_parse_shape(in, cJSON_GetObjectItemCaseSensitive(o, "shape"), c))) return st;
  if ((st = binary_size_param(in, o, c))) return st;
  if (in->binary_size >= 0) return 0; /* decoded once the JSON header is done (parse_binary) */
  return v2_parse_data(in, cJSON_GetObjectItemCaseSensitive(o, "data"), c);
}

/* Parses outputs[i]'s "parameters": binary_data into r->output_binary[i] (other parameters,
 * such as Triton's classification, are ignored as before). */
static int output_params(v2_request *r, int i, const cJSON *o, v2_ctx *c) {
  char what[CH_V2_NAME_MAX + 16];
  int st, bin = -1;
  snprintf(what, sizeof what, "output '%s'", r->outputs[i]);
  const cJSON *p = params_of(o, what, &st, c);
  if (st || (st = bool_param(p, "binary_data", what, &bin, c))) return st;
  r->output_binary[i] = (signed char)bin;
  return 0;
}

/* Parses the optional "outputs": [{"name": ...}, ...]. */
static int parse_outputs(v2_request *r, const cJSON *outs, v2_ctx *c) {
  if (!outs || cJSON_IsNull(outs)) return 0;
  if (!cJSON_IsArray(outs)) return V2_FAIL(c, "'outputs' must be an array");
  int n = cJSON_GetArraySize(outs);
  if (n > CH_V2_MAX_OUTPUTS)
    return V2_FAIL(c, "'outputs' names %d tensors; at most %d are supported", n, CH_V2_MAX_OUTPUTS);
  if (n == 0) return 0;
  r->outputs = calloc((size_t)n, sizeof *r->outputs);
  r->output_binary = calloc((size_t)n, sizeof *r->output_binary);
  if (!r->outputs || !r->output_binary)
    return codec_fail(c->err, c->errlen, 500, "out of memory");
  const cJSON *o;
  char what[48];
  int i = 0, st;
  cJSON_ArrayForEach(o, outs) {
    if (!cJSON_IsObject(o)) return V2_FAIL(c, "outputs[%d] must be an object", i);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!name) return V2_FAIL(c, "outputs[%d]: missing field 'name'", i);
    snprintf(what, sizeof what, "outputs[%d]: 'name'", i);
    if ((st = get_name(name, what, r->outputs[i], CH_V2_NAME_MAX, c))) return st;
    for (int j = 0; j < i; j++)
      if (!strcmp(r->outputs[j], r->outputs[i]))
        return V2_FAIL(c, "output '%s' is requested twice", r->outputs[i]);
    if ((st = output_params(r, i, o, c))) return st;
    r->noutputs = ++i;
  }
  return 0;
}

/* The body of v2_parse_request once JSON parsing succeeded. */
static int parse_root(v2_request *r, const cJSON *root, int max_inputs, v2_ctx *c) {
  if (!cJSON_IsObject(root)) return V2_FAIL(c, "body must be a JSON object");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
  if (id && !cJSON_IsNull(id)) {
    if (!cJSON_IsString(id)) return V2_FAIL(c, "'id' must be a string");
    size_t n = strlen(id->valuestring);
    if (n >= sizeof r->id) return V2_FAIL(c, "'id' is longer than %zu bytes", sizeof r->id - 1);
    memcpy(r->id, id->valuestring, n + 1);
    r->has_id = 1;
  }
  const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
  if (!inputs) return V2_FAIL(c, "missing field 'inputs'");
  if (!cJSON_IsArray(inputs)) return V2_FAIL(c, "'inputs' must be an array");
  int n = cJSON_GetArraySize(inputs);
  if (n == 0) return V2_FAIL(c, "'inputs' is empty");
  if (n > max_inputs)
    return V2_FAIL(c, "the request has %d inputs, more than the limit of %d", n, max_inputs);
  r->inputs = calloc((size_t)n, sizeof *r->inputs);
  if (!r->inputs) return codec_fail(c->err, c->errlen, 500, "out of memory");
  const cJSON *o;
  int st;
  cJSON_ArrayForEach(o, inputs) {
    /* Counted as we go so that v2_request_free frees what a failure leaves behind. */
    r->ninputs++;
    if ((st = parse_input(r, r->ninputs - 1, o, c))) return st;
  }
  int st2, bin = 0;
  const cJSON *p = params_of(root, "request", &st2, c);
  if (st2 || (st2 = bool_param(p, "binary_data_output", "request", &bin, c))) return st2;
  r->binary_output = bin;
  return parse_outputs(r, cJSON_GetObjectItemCaseSensitive(root, "outputs"), c);
}

/* Decodes the binary part bin[0..n) into the inputs that named a binary_data_size, in order. */
static int parse_binary(v2_request *r, const unsigned char *bin, size_t n, v2_ctx *c) {
  size_t at = 0;
  for (int i = 0; i < r->ninputs; i++) {
    v2_input *in = &r->inputs[i];
    if (in->binary_size < 0) continue;
    if ((uint64_t)in->binary_size > n - at)
      return V2_FAIL(c, "input '%s': binary_data_size %lld runs past the end of the body (%zu "
                     "bytes of binary data follow the JSON header, %zu of them taken by earlier "
                     "inputs)", in->name, (long long)in->binary_size, n, at);
    int st = v2_decode_binary(in, bin + at, (size_t)in->binary_size, c);
    if (st) return st;
    at += (size_t)in->binary_size;
  }
  if (at != n)
    return V2_FAIL(c, "%zu bytes follow the JSON header but the inputs' binary_data_size add up "
                   "to %zu (%zu bytes left over)", n, at, n - at);
  return 0;
}

int v2_parse_request_binary(const char *body, size_t len, size_t json_len,
                            const v2_limits *limits, v2_request *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = 0;
  v2_ctx c = {err, errlen, CH_V2_DEFAULT_MAX_ELEMENTS, 0};
  int max_inputs = CH_V2_DEFAULT_MAX_INPUTS;
  if (limits && limits->max_elements > 0) c.max_el = limits->max_elements;
  if (limits && limits->max_inputs > 0) max_inputs = limits->max_inputs;
  if (!body || len == 0) return V2_FAIL(&c, "body is empty");
  if (json_len > len)
    return V2_FAIL(&c, "Inference-Header-Content-Length %zu exceeds the body's %zu bytes",
                   json_len, len);
  if (json_len == 0) return V2_FAIL(&c, "the JSON header is empty");
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, json_len, &end, 0);
  if (!root)
    return V2_FAIL(&c, "body is not valid JSON at byte %zu", end ? (size_t)(end - body) : 0);
  size_t at = (size_t)(end - body);
  while (at < json_len &&
         (body[at] == ' ' || body[at] == '\t' || body[at] == '\n' || body[at] == '\r'))
    at++;
  int st = at < json_len
               ? V2_FAIL(&c, "body is not valid JSON at byte %zu (text after the value%s)", at,
                         json_len == len ? "; binary tensor data needs the "
                                           "Inference-Header-Content-Length header" : "")
               : parse_root(out, root, max_inputs, &c);
  cJSON_Delete(root);
  if (!st)
    st = parse_binary(out, (const unsigned char *)body + json_len, len - json_len, &c);
  if (st) v2_request_free(out);
  return st;
}

int v2_parse_request(const char *body, size_t len, const v2_limits *limits,
                     v2_request *out, char *err, size_t errlen) {
  return v2_parse_request_binary(body, len, len, limits, out, err, errlen);
}

int v2_header_length(const char *value, size_t len, size_t *json_len, char *err, size_t errlen) {
  *json_len = len;
  if (!value) return 0;
  const char *p = value;
  while (*p == ' ' || *p == '\t') p++;
  char *end = NULL;
  errno = 0;
  unsigned long long v = *p >= '0' && *p <= '9' ? strtoull(p, &end, 10) : 0;
  if (end) while (*end == ' ' || *end == '\t') end++;
  if (!end || *end || errno || v > len)
    return codec_fail(err, errlen, 400, "Inference-Header-Content-Length '%.40s' is not a byte "
                      "count within the body's %zu bytes", value, len);
  *json_len = (size_t)v;
  return 0;
}

int v2_check_inputs(const v2_request *req, const v2_tensor_meta *model, int n, char *err,
                    size_t errlen) {
  char names[256];
  size_t at = 0;
  names[0] = 0;
  for (int i = 0; i < n && at < sizeof names; i++)
    at += (size_t)snprintf(names + at, sizeof names - at, "%s'%s'", i ? ", " : "", model[i].name);
  for (int j = 0; j < req->ninputs; j++) {
    const v2_input *in = &req->inputs[j];
    int i = 0;
    while (i < n && strcmp(model[i].name, in->name)) i++;
    if (i == n)
      return codec_fail(err, errlen, 400, "unknown input '%s' (the model's inputs: %s)", in->name,
                        names);
    if (!v2_dtype_accepts(model[i].dtype, in->dtype))
      return codec_fail(err, errlen, 400, "input '%s': datatype %s is not accepted (the model "
                        "takes %s%s)", in->name, v2_dtype_name(in->dtype),
                        v2_dtype_name(model[i].dtype),
                        model[i].dtype == CH_V2_INT32 ? " or another integer type" : "");
  }
  for (int i = 0; i < n; i++) {
    int j = 0;
    while (j < req->ninputs && strcmp(model[i].name, req->inputs[j].name)) j++;
    if (j == req->ninputs)
      return codec_fail(err, errlen, 400, "missing input '%s' (the model's inputs: %s)",
                        model[i].name, names);
  }
  return 0;
}

void v2_request_free(v2_request *r) {
  for (int i = 0; i < r->ninputs; i++) {
    free(r->inputs[i].f32);
    free(r->inputs[i].i32);
  }
  free(r->inputs);
  free(r->outputs);
  free(r->output_binary);
  memset(r, 0, sizeof *r);
}

int v2_check_outputs(const v2_request *req, const char *const *names, int n,
                     char *err, size_t errlen) {
  for (int j = 0; req && j < req->noutputs; j++) {
    int found = 0;
    for (int i = 0; i < n && !found; i++) found = !strcmp(names[i], req->outputs[j]);
    if (!found)
      return codec_fail(err, errlen, 400, "requested output '%s' is not an output of the model",
                  req->outputs[j]);
  }
  return 0;
}
