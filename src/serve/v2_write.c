/* KServe V2 response bodies (see v2.h): inference responses (JSON, or JSON and binary tensor
 * data), errors, server and model metadata, written with the JSON writer so floats print with
 * %.9g and any bytes are valid. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/v2_internal.h"

static void put_str(jsonw *w, const char *s) { jsonw_str(w, s, s ? strlen(s) : 0); }

static void put_shape(jsonw *w, const int64_t *shape, int ndim) {
  jsonw_raw(w, "[", 1);
  for (int d = 0; d < ndim; d++) jsonw_fmt(w, "%s%lld", d ? "," : "", (long long)shape[d]);
  jsonw_raw(w, "]", 1);
}

/* The head of an output object: name, datatype, shape. */
static void put_head(jsonw *w, const v2_output *o) {
  jsonw_raw(w, "{\"name\":", 8);
  put_str(w, o->name);
  jsonw_fmt(w, ",\"datatype\":\"%s\",\"shape\":", v2_dtype_name(o->dtype));
  put_shape(w, o->shape, o->ndim);
}

/* A BYTES output of n strings: JSON strings, or Triton's binary form (each element a 4-byte
 * little-endian length, then its bytes) appended to bin. */
static int put_strings(jsonw *w, const v2_output *o, int64_t n, jsonw *bin) {
  if (n > 0 && !o->str) return -1;
  put_head(w, o);
  if (bin) {
    size_t before = bin->len;
    for (int64_t k = 0; k < n && !bin->failed; k++) {
      size_t len = strlen(o->str[k]);
      unsigned char b[4] = {(unsigned char)len, (unsigned char)(len >> 8), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 24)};
      jsonw_raw(bin, (const char *)b, 4);
      jsonw_raw(bin, o->str[k], len);
    }
    jsonw_fmt(w, ",\"parameters\":{\"binary_data_size\":%zu}}", bin->len - before);
    return bin->failed ? -1 : 0;
  }
  jsonw_raw(w, ",\"data\":[", 9);
  for (int64_t k = 0; k < n && !w->failed; k++) {
    if (k) jsonw_raw(w, ",", 1);
    put_str(w, o->str[k]);
  }
  jsonw_raw(w, "]}", 2);
  return 0;
}

/* Appends one output object, its data as JSON, or as binary tensor data appended to `bin` when
 * bin is not NULL; 0, or -1 when the output is malformed. */
static int put_output(jsonw *w, const v2_output *o, jsonw *bin) {
  if (!o->name || o->ndim < 0 || o->ndim > CH_V2_MAX_DIMS || (unsigned)o->dtype > CH_V2_BYTES)
    return -1;
  int64_t n = 1;
  for (int d = 0; d < o->ndim; d++)
    if (o->shape[d] < 0 || __builtin_mul_overflow(n, o->shape[d], &n)) return -1;
  if (o->dtype == CH_V2_BYTES) return put_strings(w, o, n, bin);
  int integral = v2_dtype_is_integral(o->dtype);
  const int32_t *iv = o->i32 && (integral || !o->f32) ? o->i32 : NULL;
  if (n > 0 && !iv && !o->f32) return -1;
  put_head(w, o);
  if (bin) {
    size_t before = bin->len;
    if (v2_encode_binary(o, n, iv, bin)) return -1;
    jsonw_fmt(w, ",\"parameters\":{\"binary_data_size\":%zu}}", bin->len - before);
    return 0;
  }
  jsonw_raw(w, ",\"data\":[", 9);
  for (int64_t k = 0; k < n && !w->failed; k++) {
    if (k) jsonw_raw(w, ",", 1);
    if (o->dtype == CH_V2_BOOL) {
      int t = iv ? iv[k] != 0 : o->f32[k] != 0;
      jsonw_raw(w, t ? "true" : "false", t ? 4 : 5);
    } else if (iv) {
      jsonw_fmt(w, "%d", (int)iv[k]);
    } else if (integral && isfinite(o->f32[k])) {
      jsonw_fmt(w, "%.0f", (double)o->f32[k]);
    } else {
      jsonw_f32(w, o->f32[k]);
    }
  }
  jsonw_raw(w, "]}", 2);
  return 0;
}

/* Whether output j of the request (or, with no outputs named, any output) goes in binary. */
static int wants_binary(const v2_request *req, int j) {
  if (!req) return 0;
  int b = j >= 0 && req->output_binary ? req->output_binary[j] : -1;
  return b >= 0 ? b : req->binary_output;
}

/* The response's JSON; the binary tensor data, if any, goes to bin (NULL: JSON only). */
static char *write_response(const char *model, const char *version, const v2_request *req,
                            const v2_output *outs, int nouts, jsonw *bin) {
  jsonw w = {0};
  jsonw_raw(&w, "{\"model_name\":", 14);
  put_str(&w, model);
  if (version) {
    jsonw_raw(&w, ",\"model_version\":", 17);
    put_str(&w, version);
  }
  if (req && req->has_id) {
    jsonw_raw(&w, ",\"id\":", 6);
    put_str(&w, req->id);
  }
  jsonw_raw(&w, ",\"outputs\":[", 12);
  int ok = 1;
  if (req && req->noutputs > 0) {
    for (int j = 0; j < req->noutputs && ok; j++) {
      int i = 0;
      while (i < nouts && !(outs[i].name && !strcmp(outs[i].name, req->outputs[j]))) i++;
      if (i == nouts) ok = 0;
      else {
        if (j) jsonw_raw(&w, ",", 1);
        ok = put_output(&w, &outs[i], bin && wants_binary(req, j) ? bin : NULL) == 0;
      }
    }
  } else {
    for (int i = 0; i < nouts && ok; i++) {
      if (i) jsonw_raw(&w, ",", 1);
      ok = put_output(&w, &outs[i], bin && wants_binary(req, -1) ? bin : NULL) == 0;
    }
  }
  jsonw_raw(&w, "]}", 2);
  char *s = jsonw_finish(&w);
  if (!ok) {
    free(s);
    return NULL;
  }
  return s;
}

char *v2_response(const char *model, const char *version, const v2_request *req,
                  const v2_output *outs, int nouts) {
  return write_response(model, version, req, outs, nouts, NULL);
}

int v2_response_body(const char *model, const char *version, const v2_request *req,
                     const v2_output *outs, int nouts, v2_body *body) {
  jsonw bin = {0};
  memset(body, 0, sizeof *body);
  char *json = write_response(model, version, req, outs, nouts, &bin);
  size_t nj = json ? strlen(json) : 0;
  char *data = json && !bin.failed ? realloc(json, nj + bin.len + 1) : NULL;
  if (!data) {
    free(json);
    free(bin.buf);
    return -1;
  }
  if (bin.len) memcpy(data + nj, bin.buf, bin.len);
  data[nj + bin.len] = 0;
  free(bin.buf);
  *body = (v2_body){data, nj + bin.len, nj};
  return 0;
}

char *v2_error(const char *msg) {
  jsonw w = {0};
  jsonw_raw(&w, "{\"error\":", 9);
  put_str(&w, msg ? msg : "unknown error");
  jsonw_raw(&w, "}", 1);
  return jsonw_finish(&w);
}

char *v2_server_metadata(const char *name, const char *version, const char *const *extensions,
                         int n) {
  jsonw w = {0};
  jsonw_raw(&w, "{\"name\":", 8);
  put_str(&w, name);
  jsonw_raw(&w, ",\"version\":", 11);
  put_str(&w, version);
  jsonw_raw(&w, ",\"extensions\":[", 15);
  for (int i = 0; i < n; i++) {
    if (i) jsonw_raw(&w, ",", 1);
    put_str(&w, extensions[i]);
  }
  jsonw_raw(&w, "]}", 2);
  return jsonw_finish(&w);
}

static void put_metas(jsonw *w, const char *key, const v2_tensor_meta *t, int n) {
  jsonw_fmt(w, ",\"%s\":[", key);
  for (int i = 0; i < n; i++) {
    jsonw_raw(w, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
    put_str(w, t[i].name);
    jsonw_fmt(w, ",\"datatype\":\"%s\",\"shape\":", v2_dtype_name(t[i].dtype));
    int nd = t[i].ndim < 0 ? 0 : t[i].ndim > CH_V2_MAX_DIMS ? CH_V2_MAX_DIMS : t[i].ndim;
    put_shape(w, t[i].shape, nd);
    jsonw_raw(w, "}", 1);
  }
  jsonw_raw(w, "]", 1);
}

char *v2_model_metadata(const char *model, const char *const *versions, int nversions,
                        const char *platform, const v2_tensor_meta *inputs, int nin,
                        const v2_tensor_meta *outputs, int nout) {
  jsonw w = {0};
  jsonw_raw(&w, "{\"name\":", 8);
  put_str(&w, model);
  if (nversions > 0) {
    jsonw_raw(&w, ",\"versions\":[", 13);
    for (int i = 0; i < nversions; i++) {
      if (i) jsonw_raw(&w, ",", 1);
      put_str(&w, versions[i]);
    }
    jsonw_raw(&w, "]", 1);
  }
  jsonw_raw(&w, ",\"platform\":", 12);
  put_str(&w, platform);
  put_metas(&w, "inputs", inputs, nin);
  put_metas(&w, "outputs", outputs, nout);
  jsonw_raw(&w, "}", 1);
  return jsonw_finish(&w);
}
