/* KServe V2 inference requests (see v2.h): the body's root, its inputs and requested outputs.
 * cJSON parses (every JSON number becomes a double); v2_data.c turns each input's shape and
 * data into arrays. */
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
  return v2_parse_data(in, cJSON_GetObjectItemCaseSensitive(o, "data"), c);
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
  if (!r->outputs) return codec_fail(c->err, c->errlen, 500, "out of memory");
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
  return parse_outputs(r, cJSON_GetObjectItemCaseSensitive(root, "outputs"), c);
}

int v2_parse_request(const char *body, size_t len, const v2_limits *limits,
                     v2_request *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = 0;
  v2_ctx c = {err, errlen, CH_V2_DEFAULT_MAX_ELEMENTS, 0};
  int max_inputs = CH_V2_DEFAULT_MAX_INPUTS;
  if (limits && limits->max_elements > 0) c.max_el = limits->max_elements;
  if (limits && limits->max_inputs > 0) max_inputs = limits->max_inputs;
  if (!body || len == 0) return V2_FAIL(&c, "body is empty");
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (!root)
    return V2_FAIL(&c, "body is not valid JSON at byte %zu", end ? (size_t)(end - body) : 0);
  size_t at = (size_t)(end - body);
  while (at < len && (body[at] == ' ' || body[at] == '\t' || body[at] == '\n' || body[at] == '\r'))
    at++;
  int st = at < len ? V2_FAIL(&c, "body is not valid JSON at byte %zu (text after the value)", at)
                    : parse_root(out, root, max_inputs, &c);
  cJSON_Delete(root);
  if (st) v2_request_free(out);
  return st;
}

void v2_request_free(v2_request *r) {
  for (int i = 0; i < r->ninputs; i++) {
    free(r->inputs[i].f32);
    free(r->inputs[i].i32);
  }
  free(r->inputs);
  free(r->outputs);
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
