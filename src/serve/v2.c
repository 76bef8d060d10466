/* KServe V2 request parsing, response and metadata bodies, and the JSON writer (see v2.h).
 * cJSON parses (every JSON number becomes a double); output is written by hand so floats print
 * with %.9g and any bytes become valid JSON. */
#include "serve/v2.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const dtype_names[CH_V2_NDTYPES] = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
    "INT32", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES"};

const char *ch_v2_dtype_name(ch_v2_dtype t) {
  return (unsigned)t < CH_V2_NDTYPES ? dtype_names[t] : "?";
}

int ch_v2_dtype_parse(const char *name, ch_v2_dtype *t) {
  for (int i = 0; i < CH_V2_NDTYPES; i++)
    if (strcmp(name, dtype_names[i]) == 0) {
      *t = (ch_v2_dtype)i;
      return 0;
    }
  return -1;
}

int ch_v2_dtype_is_integral(ch_v2_dtype t) { return t >= CH_V2_BOOL && t <= CH_V2_INT64; }

int ch_codec_fail(char *err, size_t errlen, int status, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return status;
}

/* ---- request parsing ---- */

typedef struct v2_ctx {
  char *err;
  size_t errlen;
  int64_t max_el; /* limit on all inputs' elements together */
  int64_t used;   /* elements of the inputs parsed so far */
} v2_ctx;

#define V2_FAIL(c, ...) ch_codec_fail((c)->err, (c)->errlen, 400, __VA_ARGS__)

/* "[2,3]" into buf. */
static const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
  size_t at = 0;
  buf[0] = 0;
  for (int d = 0; d < ndim && at < n; d++)
    at += (size_t)snprintf(buf + at, n - at, "%s%lld", d ? "," : "[", (long long)shape[d]);
  if (at < n) snprintf(buf + at, n - at, "%s]", ndim ? "" : "[");
  return buf;
}

/* 1 when s names a non-finite value the way JSON dialects and Python spell it. */
static int is_nonfinite_name(const char *s) {
  if (*s == '+' || *s == '-') s++;
  return !strcasecmp(s, "nan") || !strcasecmp(s, "inf") || !strcasecmp(s, "infinity");
}

/* Inclusive value range of an integral datatype, as doubles (2^63 and 2^64 are exact). */
static void int_range(ch_v2_dtype t, double *lo, double *hi) {
  static const double r[][2] = {
      [CH_V2_BOOL] = {0, 1},
      [CH_V2_UINT8] = {0, 255},
      [CH_V2_UINT16] = {0, 65535},
      [CH_V2_UINT32] = {0, 4294967295.0},
      [CH_V2_UINT64] = {0, 18446744073709551615.0}, /* rounds to 2^64: checked as < below */
      [CH_V2_INT8] = {-128, 127},
      [CH_V2_INT16] = {-32768, 32767},
      [CH_V2_INT32] = {-2147483648.0, 2147483647.0},
      [CH_V2_INT64] = {-9223372036854775808.0, 9223372036854775807.0}, /* hi rounds to 2^63 */
  };
  *lo = r[t][0];
  *hi = r[t][1];
}

/* Converts element k (row-major) of input `in` from JSON into f32[k] and i32[k]; clears *fits
 * when an integral value lies outside int32. Returns 0 or 400. */
static int convert_elem(ch_v2_input *in, const cJSON *e, int64_t k, int *fits, v2_ctx *c) {
  const char *nm = in->name;
  long long kk = (long long)k;
  double v;
  if (in->dtype == CH_V2_BOOL && cJSON_IsBool(e)) {
    v = cJSON_IsTrue(e) ? 1 : 0;
  } else if (cJSON_IsNumber(e)) {
    v = e->valuedouble;
  } else if (cJSON_IsString(e) && is_nonfinite_name(e->valuestring)) {
    return V2_FAIL(c, "input '%s': element %lld: NaN/Infinity is not allowed", nm, kk);
  } else {
    return V2_FAIL(c, "input '%s': element %lld is not a %s", nm, kk,
                   in->dtype == CH_V2_BOOL ? "boolean" : "number");
  }
  if (!isfinite(v)) /* a literal like 1e999 overflows strtod */
    return V2_FAIL(c, "input '%s': element %lld: NaN/Infinity is not allowed", nm, kk);
  if (ch_v2_dtype_is_integral(in->dtype)) {
    double lo, hi;
    int_range(in->dtype, &lo, &hi);
    if (in->dtype == CH_V2_BOOL && v != 0 && v != 1)
      return V2_FAIL(c, "input '%s': element %lld (%.15g) is not a boolean", nm, kk, v);
    if (v != trunc(v))
      return V2_FAIL(c, "input '%s': element %lld (%.15g) is not an integer (datatype %s)", nm, kk,
                     v, dtype_names[in->dtype]);
    int top_open = in->dtype == CH_V2_INT64 || in->dtype == CH_V2_UINT64;
    if (v < lo || (top_open ? v >= hi : v > hi))
      return V2_FAIL(c, "input '%s': element %lld (%.15g) is out of range for %s", nm, kk, v,
                     dtype_names[in->dtype]);
    if (v >= -2147483648.0 && v <= 2147483647.0)
      in->i32[k] = (int32_t)v;
    else
      *fits = 0;
  }
  float f = (float)v;
  if ((in->dtype == CH_V2_FP16 && fabs(v) > 65504.0) || (isinf(f) && in->dtype != CH_V2_FP64))
    return V2_FAIL(c, "input '%s': element %lld (%.15g) is out of range for %s", nm, kk, v,
                   dtype_names[in->dtype]);
  if (isinf(f))
    return V2_FAIL(c, "input '%s': element %lld (%.15g) does not fit float32, the precision the "
                   "model computes in", nm, kk, v);
  in->f32[k] = f;
  return 0;
}

/* Walks nested data `a` at depth d against in->shape: each array at depth d holds shape[d]
 * entries, arrays down to depth ndim-1 and scalars below. Counts leaves into *k; converts them
 * when `convert` (the first pass only checks the structure, before anything is allocated). */
static int walk_nested(ch_v2_input *in, const cJSON *a, int d, int64_t *idx, int64_t *k,
                       int convert, int *fits, v2_ctx *c) {
  char path[16 + CH_V2_MAX_DIMS * 22], sh[CH_V2_MAX_DIMS * 22];
  size_t at = (size_t)snprintf(path, sizeof path, "data");
  for (int j = 0; j < d && at < sizeof path; j++)
    at += (size_t)snprintf(path + at, sizeof path - at, "[%lld]", (long long)idx[j]);
  int64_t n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, a) n++;
  if (n != in->shape[d])
    return V2_FAIL(c, "input '%s': %s has %lld elements but shape %s needs %lld there "
                   "(nested data must match the shape; ragged rows are not allowed)",
                   in->name, path, (long long)n, shape_str(in->shape, in->ndim, sh, sizeof sh),
                   (long long)in->shape[d]);
  idx[d] = 0;
  cJSON_ArrayForEach(e, a) {
    int st;
    if (d + 1 < in->ndim) {
      if (!cJSON_IsArray(e))
        return V2_FAIL(c, "input '%s': %s[%lld] is not an array (nested data must match the "
                       "shape %s)", in->name, path, (long long)idx[d],
                       shape_str(in->shape, in->ndim, sh, sizeof sh));
      if ((st = walk_nested(in, e, d + 1, idx, k, convert, fits, c))) return st;
    } else {
      if (convert && (st = convert_elem(in, e, *k, fits, c))) return st;
      ++*k;
    }
    idx[d]++;
  }
  return 0;
}

/* Parses "shape": each dim an integer in [0, limit], their product within int64 and, added to
 * the elements of earlier inputs, within the limit. Sets ndim, shape and numel. */
static int parse_shape(ch_v2_input *in, const cJSON *shape, v2_ctx *c) {
  char sh[CH_V2_MAX_DIMS * 22];
  if (!shape) return V2_FAIL(c, "input '%s': missing field 'shape'", in->name);
  if (!cJSON_IsArray(shape)) return V2_FAIL(c, "input '%s': 'shape' must be an array", in->name);
  int nd = cJSON_GetArraySize(shape);
  if (nd > CH_V2_MAX_DIMS)
    return V2_FAIL(c, "input '%s': shape has %d dims; at most %d are supported", in->name, nd,
                   CH_V2_MAX_DIMS);
  const cJSON *e;
  int d = 0;
  cJSON_ArrayForEach(e, shape) {
    double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
    if (!cJSON_IsNumber(e) || !(v >= 0) || v != trunc(v))
      return V2_FAIL(c, "input '%s': shape[%d] must be a non-negative integer", in->name, d);
    if (v >= 9223372036854775808.0 || v > (double)c->max_el) /* keeps the cast defined */
      return V2_FAIL(c, "input '%s': shape[%d] = %.0f exceeds the limit of %lld elements",
                     in->name, d, v, (long long)c->max_el);
    in->shape[d++] = (int64_t)v;
  }
  in->ndim = nd;
  /* Overflow is judged on the nonzero dims, so it does not depend on where a 0 sits. */
  int64_t nz = 1;
  int zero = 0;
  for (d = 0; d < nd; d++) {
    if (in->shape[d] == 0) zero = 1;
    else if (__builtin_mul_overflow(nz, in->shape[d], &nz))
      return V2_FAIL(c, "input '%s': shape %s overflows int64", in->name,
                     shape_str(in->shape, nd, sh, sizeof sh));
  }
  in->numel = zero ? 0 : nz;
  if (in->numel > c->max_el)
    return V2_FAIL(c, "input '%s': shape %s holds %lld elements, more than the limit of %lld",
                   in->name, shape_str(in->shape, nd, sh, sizeof sh), (long long)in->numel,
                   (long long)c->max_el);
  if (in->numel > c->max_el - c->used)
    return V2_FAIL(c, "input '%s': the inputs hold %lld elements in total, more than the limit "
                   "of %lld", in->name, (long long)(c->used + in->numel), (long long)c->max_el);
  c->used += in->numel;
  return 0;
}

/* Parses "data" into freshly allocated f32 (and i32) arrays. */
static int parse_data(ch_v2_input *in, const cJSON *data, v2_ctx *c) {
  char sh[CH_V2_MAX_DIMS * 22];
  if (!data)
    return V2_FAIL(c, "input '%s': missing field 'data' (binary tensor data is not supported)",
                   in->name);
  if (!cJSON_IsArray(data)) return V2_FAIL(c, "input '%s': 'data' must be an array", in->name);
  int64_t idx[CH_V2_MAX_DIMS], k = 0;
  int fits = 1, st;
  int nested = in->ndim >= 2 && data->child && cJSON_IsArray(data->child);
  if (nested) {
    if ((st = walk_nested(in, data, 0, idx, &k, 0, &fits, c))) return st;
  } else {
    const cJSON *e;
    cJSON_ArrayForEach(e, data) k++;
    if (k != in->numel)
      return V2_FAIL(c, "input '%s': shape %s holds %lld elements but data has %lld", in->name,
                     shape_str(in->shape, in->ndim, sh, sizeof sh), (long long)in->numel,
                     (long long)k);
  }
  size_t n = in->numel > 0 ? (size_t)in->numel : 1;
  if (n > SIZE_MAX / sizeof(float)) return ch_codec_fail(c->err, c->errlen, 500, "out of memory");
  in->f32 = malloc(n * sizeof(float));
  if (ch_v2_dtype_is_integral(in->dtype)) in->i32 = malloc(n * sizeof(int32_t));
  if (!in->f32 || (ch_v2_dtype_is_integral(in->dtype) && !in->i32))
    return ch_codec_fail(c->err, c->errlen, 500, "out of memory for input '%s'", in->name);
  k = 0;
  if (nested) {
    if ((st = walk_nested(in, data, 0, idx, &k, 1, &fits, c))) return st;
  } else {
    const cJSON *e;
    cJSON_ArrayForEach(e, data) {
      if ((st = convert_elem(in, e, k, &fits, c))) return st;
      k++;
    }
  }
  if (!fits) {
    free(in->i32);
    in->i32 = NULL;
  }
  return 0;
}

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
static int parse_input(ch_v2_request *r, int i, const cJSON *o, v2_ctx *c) {
  ch_v2_input *in = &r->inputs[i];
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
  if (ch_v2_dtype_parse(dt->valuestring, &in->dtype))
    return V2_FAIL(c, "input '%s': datatype '%.32s' is unknown", in->name, dt->valuestring);
  if (in->dtype == CH_V2_BYTES)
    return V2_FAIL(c, "input '%s': datatype 'BYTES' is not supported (this model takes numeric "
                   "tensors)", in->name);
  if ((st = parse_shape(in, cJSON_GetObjectItemCaseSensitive(o, "shape"), c))) return st;
  return parse_data(in, cJSON_GetObjectItemCaseSensitive(o, "data"), c);
}

/* Parses the optional "outputs": [{"name": ...}, ...]. */
static int parse_outputs(ch_v2_request *r, const cJSON *outs, v2_ctx *c) {
  if (!outs || cJSON_IsNull(outs)) return 0;
  if (!cJSON_IsArray(outs)) return V2_FAIL(c, "'outputs' must be an array");
  int n = cJSON_GetArraySize(outs);
  if (n > CH_V2_MAX_OUTPUTS)
    return V2_FAIL(c, "'outputs' names %d tensors; at most %d are supported", n, CH_V2_MAX_OUTPUTS);
  if (n == 0) return 0;
  r->outputs = calloc((size_t)n, sizeof *r->outputs);
  if (!r->outputs) return ch_codec_fail(c->err, c->errlen, 500, "out of memory");
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

/* The body of ch_v2_parse_request once JSON parsing succeeded. */
static int parse_root(ch_v2_request *r, const cJSON *root, int max_inputs, v2_ctx *c) {
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
  if (!r->inputs) return ch_codec_fail(c->err, c->errlen, 500, "out of memory");
  const cJSON *o;
  int st;
  cJSON_ArrayForEach(o, inputs) {
    /* Counted as we go so that ch_v2_request_free frees what a failure leaves behind. */
    r->ninputs++;
    if ((st = parse_input(r, r->ninputs - 1, o, c))) return st;
  }
  return parse_outputs(r, cJSON_GetObjectItemCaseSensitive(root, "outputs"), c);
}

int ch_v2_parse_request(const char *body, size_t len, const ch_v2_limits *limits,
                        ch_v2_request *out, char *err, size_t errlen) {
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
  if (st) ch_v2_request_free(out);
  return st;
}

void ch_v2_request_free(ch_v2_request *r) {
  for (int i = 0; i < r->ninputs; i++) {
    free(r->inputs[i].f32);
    free(r->inputs[i].i32);
  }
  free(r->inputs);
  free(r->outputs);
  memset(r, 0, sizeof *r);
}

/* ---- response and metadata ---- */

int ch_v2_check_outputs(const ch_v2_request *req, const char *const *names, int n,
                        char *err, size_t errlen) {
  for (int j = 0; req && j < req->noutputs; j++) {
    int found = 0;
    for (int i = 0; i < n && !found; i++) found = !strcmp(names[i], req->outputs[j]);
    if (!found)
      return ch_codec_fail(err, errlen, 400, "requested output '%s' is not an output of the model",
                  req->outputs[j]);
  }
  return 0;
}

static void put_str(ch_jsonw *w, const char *s) { ch_jsonw_str(w, s, s ? strlen(s) : 0); }

static void put_shape(ch_jsonw *w, const int64_t *shape, int ndim) {
  ch_jsonw_raw(w, "[", 1);
  for (int d = 0; d < ndim; d++) ch_jsonw_fmt(w, "%s%lld", d ? "," : "", (long long)shape[d]);
  ch_jsonw_raw(w, "]", 1);
}

/* Appends one output object; 0, or -1 when the output is malformed. */
static int put_output(ch_jsonw *w, const ch_v2_output *o) {
  if (!o->name || o->ndim < 0 || o->ndim > CH_V2_MAX_DIMS || (unsigned)o->dtype >= CH_V2_BYTES)
    return -1;
  int64_t n = 1;
  for (int d = 0; d < o->ndim; d++)
    if (o->shape[d] < 0 || __builtin_mul_overflow(n, o->shape[d], &n)) return -1;
  int integral = ch_v2_dtype_is_integral(o->dtype);
  const int32_t *iv = o->i32 && (integral || !o->f32) ? o->i32 : NULL;
  if (n > 0 && !iv && !o->f32) return -1;
  ch_jsonw_raw(w, "{\"name\":", 8);
  put_str(w, o->name);
  ch_jsonw_fmt(w, ",\"datatype\":\"%s\",\"shape\":", dtype_names[o->dtype]);
  put_shape(w, o->shape, o->ndim);
  ch_jsonw_raw(w, ",\"data\":[", 9);
  for (int64_t k = 0; k < n && !w->failed; k++) {
    if (k) ch_jsonw_raw(w, ",", 1);
    if (o->dtype == CH_V2_BOOL) {
      int t = iv ? iv[k] != 0 : o->f32[k] != 0;
      ch_jsonw_raw(w, t ? "true" : "false", t ? 4 : 5);
    } else if (iv) {
      ch_jsonw_fmt(w, "%d", (int)iv[k]);
    } else if (integral && isfinite(o->f32[k])) {
      ch_jsonw_fmt(w, "%.0f", (double)o->f32[k]);
    } else {
      ch_jsonw_f32(w, o->f32[k]);
    }
  }
  ch_jsonw_raw(w, "]}", 2);
  return 0;
}

char *ch_v2_response(const char *model, const char *version, const ch_v2_request *req,
                     const ch_v2_output *outs, int nouts) {
  ch_jsonw w = {0};
  ch_jsonw_raw(&w, "{\"model_name\":", 14);
  put_str(&w, model);
  if (version) {
    ch_jsonw_raw(&w, ",\"model_version\":", 17);
    put_str(&w, version);
  }
  if (req && req->has_id) {
    ch_jsonw_raw(&w, ",\"id\":", 6);
    put_str(&w, req->id);
  }
  ch_jsonw_raw(&w, ",\"outputs\":[", 12);
  int ok = 1;
  if (req && req->noutputs > 0) {
    for (int j = 0; j < req->noutputs && ok; j++) {
      int i = 0;
      while (i < nouts && !(outs[i].name && !strcmp(outs[i].name, req->outputs[j]))) i++;
      if (i == nouts) ok = 0;
      else {
        if (j) ch_jsonw_raw(&w, ",", 1);
        ok = put_output(&w, &outs[i]) == 0;
      }
    }
  } else {
    for (int i = 0; i < nouts && ok; i++) {
      if (i) ch_jsonw_raw(&w, ",", 1);
      ok = put_output(&w, &outs[i]) == 0;
    }
  }
  ch_jsonw_raw(&w, "]}", 2);
  char *s = ch_jsonw_finish(&w);
  if (!ok) {
    free(s);
    return NULL;
  }
  return s;
}

char *ch_v2_error(const char *msg) {
  ch_jsonw w = {0};
  ch_jsonw_raw(&w, "{\"error\":", 9);
  put_str(&w, msg ? msg : "unknown error");
  ch_jsonw_raw(&w, "}", 1);
  return ch_jsonw_finish(&w);
}

char *ch_v2_server_metadata(const char *name, const char *version) {
  ch_jsonw w = {0};
  ch_jsonw_raw(&w, "{\"name\":", 8);
  put_str(&w, name);
  ch_jsonw_raw(&w, ",\"version\":", 11);
  put_str(&w, version);
  ch_jsonw_raw(&w, ",\"extensions\":[]}", 17);
  return ch_jsonw_finish(&w);
}

static void put_metas(ch_jsonw *w, const char *key, const ch_v2_tensor_meta *t, int n) {
  ch_jsonw_fmt(w, ",\"%s\":[", key);
  for (int i = 0; i < n; i++) {
    ch_jsonw_raw(w, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
    put_str(w, t[i].name);
    ch_jsonw_fmt(w, ",\"datatype\":\"%s\",\"shape\":", ch_v2_dtype_name(t[i].dtype));
    int nd = t[i].ndim < 0 ? 0 : t[i].ndim > CH_V2_MAX_DIMS ? CH_V2_MAX_DIMS : t[i].ndim;
    put_shape(w, t[i].shape, nd);
    ch_jsonw_raw(w, "}", 1);
  }
  ch_jsonw_raw(w, "]", 1);
}

char *ch_v2_model_metadata(const char *model, const char *const *versions, int nversions,
                           const char *platform, const ch_v2_tensor_meta *inputs, int nin,
                           const ch_v2_tensor_meta *outputs, int nout) {
  ch_jsonw w = {0};
  ch_jsonw_raw(&w, "{\"name\":", 8);
  put_str(&w, model);
  if (nversions > 0) {
    ch_jsonw_raw(&w, ",\"versions\":[", 13);
    for (int i = 0; i < nversions; i++) {
      if (i) ch_jsonw_raw(&w, ",", 1);
      put_str(&w, versions[i]);
    }
    ch_jsonw_raw(&w, "]", 1);
  }
  ch_jsonw_raw(&w, ",\"platform\":", 12);
  put_str(&w, platform);
  put_metas(&w, "inputs", inputs, nin);
  put_metas(&w, "outputs", outputs, nout);
  ch_jsonw_raw(&w, "}", 1);
  return ch_jsonw_finish(&w);
}

/* ---- JSON writer ---- */

/* Makes room for `extra` more bytes plus a NUL; 0 once anything failed. */
static int jw_reserve(ch_jsonw *w, size_t extra) {
  if (w->failed) return 0;
  if (extra > SIZE_MAX / 2 - w->len) return !(w->failed = 1);
  size_t need = w->len + extra + 1;
  if (need <= w->cap) return 1;
  size_t cap = w->cap ? w->cap : 256;
  while (cap < need) cap *= 2;
  char *nb = realloc(w->buf, cap);
  if (!nb) return !(w->failed = 1);
  w->buf = nb;
  w->cap = cap;
  return 1;
}

void ch_jsonw_raw(ch_jsonw *w, const char *s, size_t n) {
  if (!jw_reserve(w, n)) return;
  if (n) memcpy(w->buf + w->len, s, n);
  w->len += n;
  w->buf[w->len] = 0;
}

void ch_jsonw_fmt(ch_jsonw *w, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) {
    w->failed = 1;
  } else if ((size_t)n < sizeof tmp) {
    ch_jsonw_raw(w, tmp, (size_t)n);
  } else if (jw_reserve(w, (size_t)n)) {
    va_start(ap, fmt);
    vsnprintf(w->buf + w->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len += (size_t)n;
  }
}

int ch_jsonw_utf8_seq(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  int n;
  unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;      /* overlong */
    else if (c == 0xED) hi = 0x9F; /* UTF-16 surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;      /* overlong */
    else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
  } else {
    return 0;
  }
  for (int i = 1; i < n; i++) {
    if ((size_t)i >= avail) return -1;
    unsigned b = s[i];
    if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
  }
  return n;
}

void ch_jsonw_str(ch_jsonw *w, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  if (!s) n = 0;
  ch_jsonw_raw(w, "\"", 1);
  size_t run = 0, i = 0; /* p[run..i) is pending verbatim output */
  while (i < n) {
    unsigned c = p[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    int len = c < 0x80 ? 1 : ch_jsonw_utf8_seq(p + i, n - i);
    if (len > 1) {
      i += (size_t)len;
      continue;
    }
    ch_jsonw_raw(w, (const char *)p + run, i - run);
    if (c == '"') ch_jsonw_raw(w, "\\\"", 2);
    else if (c == '\\') ch_jsonw_raw(w, "\\\\", 2);
    else if (c == '\n') ch_jsonw_raw(w, "\\n", 2);
    else if (c == '\r') ch_jsonw_raw(w, "\\r", 2);
    else if (c == '\t') ch_jsonw_raw(w, "\\t", 2);
    else if (c < 0x20) {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      ch_jsonw_raw(w, u, 6);
    } else {
      ch_jsonw_raw(w, "\xEF\xBF\xBD", 3); /* U+FFFD REPLACEMENT CHARACTER */
    }
    run = ++i;
  }
  ch_jsonw_raw(w, (const char *)p + run, i - run);
  ch_jsonw_raw(w, "\"", 1);
}

void ch_jsonw_f32(ch_jsonw *w, float v) {
  if (isfinite(v)) ch_jsonw_fmt(w, "%.9g", (double)v);
  else ch_jsonw_raw(w, "null", 4);
}

char *ch_jsonw_finish(ch_jsonw *w) {
  char *s = w->buf;
  if (!w->failed && !s) s = calloc(1, 1);
  if (w->failed) {
    free(s);
    s = NULL;
  }
  memset(w, 0, sizeof *w);
  return s;
}
