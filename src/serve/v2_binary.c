/* Triton's binary tensor data (see v2.h): an input's raw bytes decoded into float32 (and int32
 * for integral datatypes), and an output's values encoded as raw bytes. The wire is
 * little-endian, row-major, without padding, each element in its datatype's native size
 * (BOOL one byte, 0 or 1); bytes are assembled explicitly, so the host's byte order does not
 * matter. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serve/v2_internal.h"

/* The n-byte little-endian unsigned integer at p. */
static uint64_t load_le(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = v << 8 | p[i];
  return v;
}

static void store_le(unsigned char *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++, v >>= 8) p[i] = (unsigned char)v;
}

/* IEEE half precision bits to float (subnormals, infinities and NaN included). */
static float half_to_float(uint16_t h) {
  int e = (h >> 10) & 31;
  float m = (float)(h & 1023);
  float v = e == 0 ? ldexpf(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf(m + 1024, e - 25);
  return h & 0x8000 ? -v : v;
}

static float bits_to_float(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

/* Element p of a float input as a double. */
static double decode_float(v2_dtype t, const unsigned char *p) {
  if (t == CH_V2_FP64) {
    uint64_t b = load_le(p, 8);
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
  }
  if (t == CH_V2_FP32) return bits_to_float((uint32_t)load_le(p, 4));
  if (t == CH_V2_BF16) return bits_to_float((uint32_t)load_le(p, 2) << 16);
  return half_to_float((uint16_t)load_le(p, 2));
}

/* Element k of an integral input: its value sign- or zero-extended; the type bounds it, so
 * only BOOL's 0/1 needs a check. */
static int decode_int(v2_input *in, const unsigned char *p, size_t sz, int64_t k, int *fits,
                      v2_ctx *c) {
  uint64_t u = load_le(p, sz);
  int is_signed = in->dtype >= CH_V2_INT8 && in->dtype <= CH_V2_INT64;
  if (is_signed && sz < 8 && (u >> (8 * sz - 1) & 1)) u |= ~(uint64_t)0 << (8 * sz);
  if (in->dtype == CH_V2_BOOL && u > 1)
    return V2_FAIL(c, "input '%s': element %lld (byte %llu) is not a boolean (0 or 1)", in->name,
                   (long long)k, (unsigned long long)u);
  int inside = is_signed ? (int64_t)u >= INT32_MIN && (int64_t)u <= INT32_MAX : u <= INT32_MAX;
  if (inside) in->i32[k] = (int32_t)(int64_t)u;
  else *fits = 0;
  in->f32[k] = is_signed ? (float)(int64_t)u : (float)u;
  return 0;
}

int v2_decode_binary(v2_input *in, const unsigned char *p, size_t n, v2_ctx *c) {
  size_t sz = v2_dtype_size(in->dtype);
  if (sz == 0)
    return V2_FAIL(c, "input '%s': binary data of datatype %s is not supported", in->name,
                   v2_dtype_name(in->dtype));
  /* n is within the body, so a numel past n (whose byte count could overflow) cannot match. */
  if ((uint64_t)in->numel > n || (uint64_t)in->numel * sz != n)
    return V2_FAIL(c, "input '%s': binary_data_size is %zu bytes but %lld elements of %s take "
                   "%llu", in->name, n, (long long)in->numel, v2_dtype_name(in->dtype),
                   (unsigned long long)in->numel * sz); /* wraps only in the message */
  int st = v2_alloc_data(in, c), fits = 1;
  for (int64_t k = 0; !st && k < in->numel; k++, p += sz) {
    if (v2_dtype_is_integral(in->dtype)) {
      st = decode_int(in, p, sz, k, &fits, c);
      continue;
    }
    st = v2_store(in, k, decode_float(in->dtype, p), &fits, c);
  }
  if (!st && !fits) {
    free(in->i32);
    in->i32 = NULL;
  }
  return st;
}

int v2_encode_binary(const v2_output *o, int64_t n, const int32_t *iv, jsonw *w) {
  size_t sz = v2_dtype_size(o->dtype);
  if (sz == 0 || o->dtype == CH_V2_FP16 || o->dtype == CH_V2_BF16) return -1;
  int integral = v2_dtype_is_integral(o->dtype);
  for (int64_t k = 0; k < n && !w->failed; k++) {
    unsigned char b[8];
    if (integral) {
      /* An int32 value in a narrower type wraps as a C conversion would; the model's integral
       * outputs (labels, token ids) are INT32. */
      float f = iv ? 0.0f : o->f32[k];
      int64_t v = iv ? iv[k] : isfinite(f) && fabsf(f) < 9.2e18f ? (int64_t)f : 0;
      store_le(b, (uint64_t)v, sz);
      if (o->dtype == CH_V2_BOOL) b[0] = v != 0;
    } else if (o->dtype == CH_V2_FP64) {
      double d = iv ? iv[k] : o->f32[k];
      uint64_t u;
      memcpy(&u, &d, sizeof u);
      store_le(b, u, 8);
    } else {
      float f = iv ? (float)iv[k] : o->f32[k];
      uint32_t u;
      memcpy(&u, &f, sizeof u);
      store_le(b, u, 4);
    }
    jsonw_raw(w, (const char *)b, sz);
  }
  return w->failed ? -1 : 0;
}
