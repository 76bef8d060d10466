/* KServe V2 tensors (see v2.h): datatypes, and an input's shape and data parsed from cJSON
 * into float32 (and int32 for integral datatypes), flat or nested, with exact range checks
 * (v2_store, which binary data shares). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve/v2_internal.h"

static const char *const dtype_names[CH_V2_NDTYPES] = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
    "INT32", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES"};

const char *v2_dtype_name(v2_dtype t) {
  return (unsigned)t < CH_V2_NDTYPES ? dtype_names[t] : "?";
}

int v2_dtype_parse(const char *name, v2_dtype *t) {
  for (int i = 0; i < CH_V2_NDTYPES; i++)
    if (strcmp(name, dtype_names[i]) == 0) {
      *t = (v2_dtype)i;
      return 0;
    }
  return -1;
}

int v2_dtype_is_integral(v2_dtype t) { return t >= CH_V2_BOOL && t <= CH_V2_INT64; }

size_t v2_dtype_size(v2_dtype t) {
  static const unsigned char size[CH_V2_NDTYPES] = {
      [CH_V2_BOOL] = 1, [CH_V2_UINT8] = 1, [CH_V2_UINT16] = 2, [CH_V2_UINT32] = 4,
      [CH_V2_UINT64] = 8, [CH_V2_INT8] = 1, [CH_V2_INT16] = 2, [CH_V2_INT32] = 4,
      [CH_V2_INT64] = 8, [CH_V2_FP16] = 2, [CH_V2_FP32] = 4, [CH_V2_FP64] = 8,
      [CH_V2_BF16] = 2, [CH_V2_BYTES] = 0};
  return (unsigned)t < CH_V2_NDTYPES ? size[t] : 0;
}

int v2_dtype_accepts(v2_dtype want, v2_dtype given) {
  if (want == given) return 1;
  return want == CH_V2_INT32 && given != CH_V2_BOOL && v2_dtype_is_integral(given);
}

int codec_fail(char *err, size_t errlen, int status, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return status;
}

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
static void int_range(v2_dtype t, double *lo, double *hi) {
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
static int convert_elem(v2_input *in, const cJSON *e, int64_t k, int *fits, v2_ctx *c) {
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
  return v2_store(in, k, v, fits, c);
}

int v2_store(v2_input *in, int64_t k, double v, int *fits, v2_ctx *c) {
  const char *nm = in->name;
  long long kk = (long long)k;
  if (!isfinite(v)) /* a literal like 1e999 overflows strtod */
    return V2_FAIL(c, "input '%s': element %lld: NaN/Infinity is not allowed", nm, kk);
  if (v2_dtype_is_integral(in->dtype)) {
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
static int walk_nested(v2_input *in, const cJSON *a, int d, int64_t *idx, int64_t *k,
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
int v2_parse_shape(v2_input *in, const cJSON *shape, v2_ctx *c) {
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

int v2_alloc_data(v2_input *in, v2_ctx *c) {
  size_t n = in->numel > 0 ? (size_t)in->numel : 1;
  if (n > SIZE_MAX / sizeof(float)) return codec_fail(c->err, c->errlen, 500, "out of memory");
  in->f32 = malloc(n * sizeof(float));
  if (v2_dtype_is_integral(in->dtype)) in->i32 = malloc(n * sizeof(int32_t));
  if (!in->f32 || (v2_dtype_is_integral(in->dtype) && !in->i32))
    return codec_fail(c->err, c->errlen, 500, "out of memory for input '%s'", in->name);
  return 0;
}

/* Parses "data" into freshly allocated f32 (and i32) arrays. */
int v2_parse_data(v2_input *in, const cJSON *data, v2_ctx *c) {
  char sh[CH_V2_MAX_DIMS * 22];
  if (!data)
    return V2_FAIL(c, "input '%s': missing field 'data' (or \"parameters\": "
                   "{\"binary_data_size\": N} for binary tensor data)", in->name);
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
  if ((st = v2_alloc_data(in, c))) return st;
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

