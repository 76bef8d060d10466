/* The serving JSON codecs (src/serve/v2.c, src/serve/openai.c): malformed V2 requests each get a
 * 400 naming the input and field; good ones parse exactly (FP32 bit for bit through %.9g) and
 * round-trip through the response (OpenAI requests and bodies: test_openai.c); the JSON string
 * writer on random bytes against a reference UTF-8 decoder; stop-sequence, hold-back and
 * streaming logic against naive references on random strings. Every produced body is parsed
 * back with cJSON. Bodies are passed as exact-size heap copies without a NUL so that ASan
 * catches any read past the end. */
#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/openai.h"
#include "serve/v2.h"
#include "testlib.h"
#include "json_check.h"

static uint64_t rng_s = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* SplitMix64 */
  uint64_t z = (rng_s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static size_t rnd_below(size_t n) { return (size_t)(rnd() % n); }

/* A random finite float from random bits (all exponents, subnormals and -0 included). */
static float rnd_float(void) {
  for (;;) {
    uint32_t b = (uint32_t)rnd();
    float f;
    memcpy(&f, &b, 4);
    if (isfinite(f)) return f;
  }
}
static uint32_t bits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}

static int v2_parse(const char *body, size_t len, const v2_limits *lim, v2_request *r,
                    char *err, size_t errlen) {
  char *copy = malloc(len ? len : 1);
  memcpy(copy, body, len);
  int st = v2_parse_request(copy, len, lim, r, err, errlen);
  free(copy);
  return st;
}
/* Reference UTF-8 cleaner, written from the definition: decode a code point by its lead
 * byte's bit pattern, then reject overlongs, surrogates and values above U+10FFFF; each byte
 * that does not start a valid sequence becomes U+FFFD. Returns the length written to out. */
static size_t ref_clean(const unsigned char *s, size_t n, unsigned char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 31 : len == 3 ? c & 15 : c & 7;
    int ok = len > 0 && i + (size_t)len <= n;
    for (int j = 1; ok && j < len; j++) {
      ok = (s[i + j] & 0xC0) == 0x80;
      cp = cp << 6 | (s[i + j] & 63);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (ok) ok = cp >= min_cp[len] && !(cp >= 0xD800 && cp <= 0xDFFF) && cp <= 0x10FFFF;
    if (ok) {
      memcpy(out + o, s + i, (size_t)len);
      o += (size_t)len;
      i += (size_t)len;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  return o;
}

/* ================================ V2: malformed requests ================================ */

typedef struct bad_case {
  const char *body;
  int64_t max_elements; /* 0: the table's default of 1000 */
  const char *want1, *want2;
} bad_case;

static const bad_case bad_cases[] = {
    {"", 0, "body is empty", NULL},
    {"{\"inputs\": [{\"name\": \"x\"", 0, "not valid JSON at byte", NULL},
    {"{\"inputs\": [1,]}", 0, "not valid JSON at byte 14", NULL},
    {"{\"inputs\": []} xyz", 0, "not valid JSON at byte 15", "after the value"},
    {"{\"inputs\": [{}]}\n\n}", 0, "not valid JSON at byte 18", NULL},
    {"nul", 0, "not valid JSON", NULL},
    {"[1, 2]", 0, "body must be a JSON object", NULL},
    {"{}", 0, "missing field 'inputs'", NULL},
    {"{\"input\": []}", 0, "missing field 'inputs'", NULL},
    {"{\"inputs\": {\"name\": \"x\"}}", 0, "'inputs' must be an array", NULL},
    {"{\"inputs\": []}", 0, "'inputs' is empty", NULL},
    {"{\"inputs\": [{},{},{},{},{}]}", 0, "5 inputs, more than the limit of 4", NULL},
    {"{\"inputs\": [7]}", 0, "inputs[0] must be an object", NULL},
    {"{\"inputs\": [{\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", 0,
     "inputs[0]: missing field 'name'", NULL},
    {"{\"inputs\": [{\"name\":5,\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", 0,
     "inputs[0]: 'name' must be a string", NULL},
    {"{\"inputs\": [{\"name\":\"\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", 0,
     "inputs[0]: 'name' is empty", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]},"
     "{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", 0,
     "input 'x' appears twice", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"shape\":[1],\"data\":[1]}]}", 0,
     "input 'x': missing field 'datatype'", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":32,\"shape\":[1],\"data\":[1]}]}", 0,
     "input 'x': 'datatype' must be a string", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP33\",\"shape\":[1],\"data\":[1]}]}", 0,
     "input 'x': datatype 'FP33' is unknown", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"fp32\",\"shape\":[1],\"data\":[1]}]}", 0,
     "input 'x': datatype 'fp32' is unknown", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"abc\"]}]}", 0,
     "input 'x': datatype 'BYTES' is not supported", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1]}]}", 0,
     "input 'x': missing field 'shape'", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":3,\"data\":[1,2,3]}]}", 0,
     "input 'x': 'shape' must be an array", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,\"3\"],\"data\":[1]}]}", 0,
     "input 'x': shape[1] must be a non-negative integer", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,-3],\"data\":[1]}]}", 0,
     "input 'x': shape[1] must be a non-negative integer", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2.5],\"data\":[1]}]}", 0,
     "input 'x': shape[0] must be a non-negative integer", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
     "\"data\":[1]}]}", 0, "input 'x': shape has 9 dims; at most 8", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1e18],\"data\":[1]}]}", 0,
     "input 'x': shape[0] = 1000000000000000000 exceeds the limit of 1000 elements", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1,1e19],\"data\":[1]}]}",
     INT64_MAX, "input 'x': shape[1] = 10000000000000000000 exceeds", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[4294967296,4294967296],"
     "\"data\":[1]}]}", INT64_MAX, "input 'x': shape [4294967296,4294967296] overflows int64",
     NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[0,3037000500,3037000500],"
     "\"data\":[]}]}", INT64_MAX, "input 'x': shape [0,3037000500,3037000500] overflows int64",
     NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[40,40],\"data\":[1]}]}", 0,
     "input 'x': shape [40,40] holds 1600 elements, more than the limit of 1000", NULL},
    {"{\"inputs\": [{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[4],\"data\":[1,2,3,4]},"
     "{\"name\":\"b\",\"datatype\":\"FP32\",\"shape\":[3],\"data\":[1,2,3]}]}", 6,
     "input 'b': the inputs hold 7 elements in total, more than the limit of 6", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3]}]}", 0,
     "input 'x': missing field 'data'", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":1}]}", 0,
     "input 'x': 'data' must be an array", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3],\"data\":[1,2,3,4,5]}]}",
     0, "input 'x': shape [2,3] holds 6 elements but data has 5", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[1,2,3]}]}", 0,
     "input 'x': shape [2] holds 2 elements but data has 3", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3],"
     "\"data\":[[1,2,3],[4,5]]}]}", 0, "input 'x': data[1] has 2 elements", "ragged"},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3],"
     "\"data\":[[1,2],[3,4],[5,6]]}]}", 0, "input 'x': data has 3 elements but shape [2,3] needs 2",
     NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3],"
     "\"data\":[[1,2,3],4]}]}", 0, "input 'x': data[1] is not an array", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,2,2],"
     "\"data\":[[[1,2],[3,4]],[[5,6],[7]]]}]}", 0, "input 'x': data[1][1] has 1 elements", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,1],"
     "\"data\":[[1],[[2]]]}]}", 0, "input 'x': element 1 is not a number", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[3],\"data\":[1,\"NaN\",3]}]}",
     0, "input 'x': element 1: NaN/Infinity is not allowed", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[\"-Infinity\",1]}]}",
     0, "input 'x': element 0: NaN/Infinity is not allowed", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[2],\"data\":[1,1e999]}]}", 0,
     "input 'x': element 1: NaN/Infinity is not allowed", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[NaN]}]}", 0,
     "not valid JSON", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[3],\"data\":[1,2,\"abc\"]}]}",
     0, "input 'x': element 2 is not a number", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[null,1]}]}", 0,
     "input 'x': element 0 is not a number", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[2],\"data\":[true,1]}]}", 0,
     "input 'x': element 0 is not a number", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[1,{}]}]}", 0,
     "input 'x': element 1 is not a number", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[3],\"data\":[1,2.5,3]}]}", 0,
     "input 'x': element 1 (2.5) is not an integer (datatype INT32)", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[2],"
     "\"data\":[1,2147483648]}]}", 0, "input 'x': element 1 (2147483648) is out of range for INT32",
     NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[-2147483649]}]}",
     0, "input 'x': element 0 (-2147483649) is out of range for INT32", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[2],\"data\":[-128,128]}]}", 0,
     "element 1 (128) is out of range for INT8", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[-1]}]}", 0,
     "element 0 (-1) is out of range for UINT8", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[1],"
     "\"data\":[9223372036854775808]}]}", 0, "is out of range for INT64", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"UINT64\",\"shape\":[1],"
     "\"data\":[18446744073709551616]}]}", 0, "is out of range for UINT64", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,2]}]}", 0,
     "input 'x': element 1 (2) is not a boolean", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"BOOL\",\"shape\":[1],\"data\":[\"true\"]}]}", 0,
     "input 'x': element 0 is not a boolean", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP16\",\"shape\":[1],\"data\":[70000]}]}", 0,
     "element 0 (70000) is out of range for FP16", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1e39]}]}", 0,
     "element 0 (1e+39) is out of range for FP32", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1],\"data\":[1e300]}]}", 0,
     "element 0 (1e+300) does not fit float32", NULL},
    {"{\"id\": 42, \"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}",
     0, "'id' must be a string", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],"
     "\"outputs\": {}}", 0, "'outputs' must be an array", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],"
     "\"outputs\": [{\"nam\": \"y\"}]}", 0, "outputs[0]: missing field 'name'", NULL},
    {"{\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],"
     "\"outputs\": [{\"name\": \"y\"}, {\"name\": \"y\"}]}", 0, "output 'y' is requested twice",
     NULL},
};

/* One bad body -> 400 with both substrings in the message and *out zeroed. */
static void expect_bad(const char *body, size_t len, int64_t max_el, const char *w1,
                       const char *w2) {
  v2_limits lim = {max_el ? max_el : 1000, 4};
  v2_request r;
  char err[512];
  memset(&r, 0xAB, sizeof r);
  int st = v2_parse(body, len, &lim, &r, err, sizeof err);
  CHT_ASSERT(st == 400, "%.200s: status %d (want 400), err '%s'", body, st, err);
  CHT_ASSERT(strstr(err, w1) && (!w2 || strstr(err, w2)), "%.200s: err '%s' lacks '%s'%s%s", body,
             err, w1, w2 ? " / " : "", w2 ? w2 : "");
  static const v2_request zero;
  CHT_ASSERT(!memcmp(&r, &zero, sizeof r), "%.200s: request not zeroed after failure", body);
  v2_request_free(&r);
}

static void test_v2_bad(void) {
  for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
    const bad_case *b = &bad_cases[i];
    expect_bad(b->body, strlen(b->body), b->max_elements, b->want1, b->want2);
  }
  /* Names and ids at and over their sizes. */
  char name[80], body[600], id[300];
  memset(name, 'n', 64);
  name[64] = 0;
  snprintf(body, sizeof body, "{\"inputs\": [{\"name\":\"%s\",\"datatype\":\"FP32\",\"shape\":[1],"
           "\"data\":[1]}]}", name);
  expect_bad(body, strlen(body), 0, "inputs[0]: 'name' is longer than 63 bytes", NULL);
  memset(id, 'i', 256);
  id[256] = 0;
  snprintf(body, sizeof body, "{\"id\":\"%s\",\"inputs\": [{\"name\":\"x\",\"datatype\":\"FP32\","
           "\"shape\":[1],\"data\":[1]}]}", id);
  expect_bad(body, strlen(body), 0, "'id' is longer than 255 bytes", NULL);
  /* A NUL inside the body is not whitespace. */
  const char nul[] = "{\"inputs\": []}\0";
  expect_bad(nul, sizeof nul - 1, 0, "not valid JSON at byte 14", NULL);
  /* Truncated bodies: every proper prefix of a good request fails cleanly. */
  const char *good = "{\"id\":\"r1\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT32\",\"shape\":[2,2],"
                     "\"data\":[[1,2],[3,4]]}],\"outputs\":[{\"name\":\"y\"}]}";
  for (size_t n = 0; n < strlen(good); n++)
    expect_bad(good, n, 0, n ? "body is not valid JSON at byte" : "body is empty", NULL);
  /* A short error buffer is truncated, not overrun; no buffer at all is fine too. */
  char small[9];
  v2_request r;
  CHT_ASSERT(v2_parse("{}", 2, NULL, &r, small, sizeof small) == 400 && strlen(small) == 8,
             "short err buffer");
  CHT_ASSERT(v2_parse("{}", 2, NULL, &r, NULL, 0) == 400, "NULL err buffer");
}

/* Random byte mutations of a good body: always 0 or 400, never a crash, leak or over-read
 * (under ASan); a success is a consistent request. */
static void test_v2_fuzz(void) {
  const char *good = "{\"id\":\"q\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3],"
                     "\"data\":[[1.5,-2,3e2],[4,5,6]]},{\"name\":\"t\",\"datatype\":\"INT64\","
                     "\"shape\":[3],\"data\":[1,2,3]}],\"outputs\":[{\"name\":\"y\"}]}";
  static const char alphabet[] = "{}[]\",:0123456789.-+eE \\ntruefalsnul\x01\xff";
  size_t glen = strlen(good);
  char *buf = malloc(glen + 16);
  int ok = 0;
  for (int it = 0; it < 4000; it++) {
    memcpy(buf, good, glen);
    size_t len = glen;
    for (int m = 1 + (int)rnd_below(3); m > 0; m--) {
      size_t at = rnd_below(len), kind = rnd_below(3);
      char ch = alphabet[rnd_below(sizeof alphabet - 1)];
      if (kind == 0) buf[at] = ch;
      else if (kind == 1 && len > 1) memmove(buf + at, buf + at + 1, --len - at);
      else if (len < glen + 8) {
        memmove(buf + at + 1, buf + at, len++ - at);
        buf[at] = ch;
      }
    }
    v2_request r;
    char err[256];
    int st = v2_parse(buf, len, NULL, &r, err, sizeof err);
    CHT_ASSERT(st == 0 || (st == 400 && err[0]), "mutation %d: status %d '%s'", it, st, err);
    if (st == 0) {
      ok++;
      CHT_ASSERT(r.ninputs >= 1 && r.inputs, "mutation %d: no inputs", it);
      for (int i = 0; i < r.ninputs; i++) {
        int64_t n = 1;
        for (int d = 0; d < r.inputs[i].ndim; d++) n *= r.inputs[i].shape[d];
        CHT_ASSERT(n == r.inputs[i].numel && r.inputs[i].f32, "mutation %d: numel", it);
        for (int64_t k = 0; k < n; k++) CHT_ASSERT(isfinite(r.inputs[i].f32[k]), "finite");
      }
    }
    v2_request_free(&r);
  }
  free(buf);
  CHT_ASSERT(ok > 50, "only %d of the mutations parsed; the fuzzer is not exercising success", ok);
}

/* ================================ V2: good requests ================================ */

/* Writes x as a JSON array, nested by shape from depth d when `nested` (row-major; *k counts
 * the values written). Returns the length. */
static size_t put_floats(char *b, const float *x, const int64_t *shape, int ndim, int d,
                         int nested, int64_t *k) {
  size_t at = 0;
  int64_t n = 1;
  for (int j = d; j < ndim; j++) n *= shape[j];
  int64_t items = nested && ndim > d ? shape[d] : n;
  b[at++] = '[';
  for (int64_t i = 0; i < items; i++) {
    if (i) b[at++] = ',';
    if (nested && d + 1 < ndim) at += put_floats(b + at, x, shape, ndim, d + 1, 1, k);
    else at += (size_t)sprintf(b + at, "%.9g", x[(*k)++]);
  }
  b[at++] = ']';
  b[at] = 0;
  return at;
}

static void test_v2_fp32(void) {
  static const int64_t shapes[][4] = {{3, 5, 0, 0}, {2, 3, 4, 0}, {1, 7, 0, 0}, {2, 1, 3, 2}};
  static const int ndims[] = {2, 3, 2, 4};
  char *body = malloc(1 << 16);
  for (int trial = 0; trial < 40; trial++) {
    int s = trial % 4, nested = (trial / 4) % 2;
    const int64_t *shape = shapes[s];
    int64_t n = 1;
    for (int d = 0; d < ndims[s]; d++) n *= shape[d];
    float x[64];
    for (int64_t k = 0; k < n; k++) x[k] = rnd_float();
    size_t at = (size_t)sprintf(body, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[");
    for (int d = 0; d < ndims[s]; d++) at += (size_t)sprintf(body + at, "%s%lld", d ? "," : "", (long long)shape[d]);
    at += (size_t)sprintf(body + at, "],\"data\":");
    int64_t written = 0;
    at += put_floats(body + at, x, shape, ndims[s], 0, nested, &written);
    at += (size_t)sprintf(body + at, "}]}");
    v2_request r;
    char err[256];
    int st = v2_parse(body, at, NULL, &r, err, sizeof err);
    CHT_ASSERT(st == 0, "trial %d: %s\n%s", trial, err, body);
    const v2_input *in = &r.inputs[0];
    CHT_ASSERT(r.ninputs == 1 && !r.has_id && r.noutputs == 0 && !strcmp(in->name, "x") &&
               in->dtype == CH_V2_FP32 && in->ndim == ndims[s] && in->numel == n && !in->i32,
               "trial %d: header fields", trial);
    for (int d = 0; d < ndims[s]; d++) CHT_ASSERT(in->shape[d] == shape[d], "shape");
    for (int64_t k = 0; k < n; k++)
      CHT_ASSERT(bits(in->f32[k]) == bits(x[k]), "trial %d element %lld: %.9g != %.9g", trial,
                 (long long)k, in->f32[k], x[k]);
    /* Echo it back as the model's output: the response must carry the same bits. */
    v2_output o = {"y", CH_V2_FP32, in->ndim, {0}, in->f32, NULL, NULL};
    memcpy(o.shape, in->shape, sizeof o.shape);
    char *resp = v2_response("mlp", "3", &r, &o, 1);
    cJSON *j = jparse(resp);
    CHT_ASSERT(!strcmp(jstr(j, "model_name"), "mlp") && !strcmp(jstr(j, "model_version"), "3") &&
               !cJSON_GetObjectItem(j, "id"), "response header");
    const cJSON *y = cJSON_GetArrayItem(jget(j, "outputs"), 0);
    CHT_ASSERT(!strcmp(jstr(y, "name"), "y") && !strcmp(jstr(y, "datatype"), "FP32"), "output");
    CHT_ASSERT(cJSON_GetArraySize(jget(y, "shape")) == in->ndim, "output shape");
    const cJSON *data = jget(y, "data");
    CHT_ASSERT(cJSON_GetArraySize(data) == n, "output data size");
    int64_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, data) {
      CHT_ASSERT(bits((float)e->valuedouble) == bits(x[k]), "response element %lld", (long long)k);
      k++;
    }
    cJSON_Delete(j);
    free(resp);
    v2_request_free(&r);
  }
  free(body);
}

/* Parses `body`, which must succeed with one input, into *r. */
static const v2_input *parse_one(const char *body, v2_request *r) {
  char err[256];
  int st = v2_parse(body, strlen(body), NULL, r, err, sizeof err);
  CHT_ASSERT(st == 0, "%s: %s", body, err);
  return &r->inputs[0];
}

static void test_v2_types(void) {
  v2_request r;
  char body[4096];
  /* INT32: random values over the full range, and its edges. */
  int32_t v[32];
  size_t at = (size_t)sprintf(body, "{\"inputs\":[{\"name\":\"ids\",\"datatype\":\"INT32\",\"shape\":[4,8],\"data\":[");
  for (int k = 0; k < 32; k++) {
    v[k] = k == 0 ? INT32_MIN : k == 1 ? INT32_MAX : (int32_t)(uint32_t)rnd();
    at += (size_t)sprintf(body + at, "%s%d", k ? "," : "", v[k]);
  }
  sprintf(body + at, "]}]}");
  const v2_input *in = parse_one(body, &r);
  CHT_ASSERT(in->i32 && in->numel == 32, "INT32 has i32");
  for (int k = 0; k < 32; k++)
    CHT_ASSERT(in->i32[k] == v[k] && in->f32[k] == (float)v[k], "INT32 element %d", k);
  v2_output o = {"ids", CH_V2_INT32, 2, {4, 8}, NULL, in->i32, NULL};
  char *resp = v2_response("m", NULL, NULL, &o, 1);
  cJSON *j = jparse(resp);
  CHT_ASSERT(!cJSON_GetObjectItem(j, "model_version"), "no version given, none printed");
  const cJSON *e, *data = jget(cJSON_GetArrayItem(jget(j, "outputs"), 0), "data");
  int k = 0;
  cJSON_ArrayForEach(e, data) {
    CHT_ASSERT(e->valuedouble == v[k], "INT32 out %d", k);
    k++;
  }
  CHT_ASSERT(k == 32, "INT32 count");
  cJSON_Delete(j);
  free(resp);
  v2_request_free(&r);

  /* INT64 beyond int32: f32 only; within int32: i32 too. */
  in = parse_one("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"INT64\",\"shape\":[4],"
                 "\"data\":[1099511627776,-4611686018427387904,9007199254740992,-5]}]}", &r);
  CHT_ASSERT(!in->i32 && in->f32[0] == 1099511627776.0f && in->f32[1] == -4611686018427387904.0f &&
             in->f32[2] == 9007199254740992.0f && in->f32[3] == -5, "INT64 wide");
  v2_request_free(&r);
  in = parse_one("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"INT64\",\"shape\":[3],"
                 "\"data\":[-2147483648,2147483647,7]}]}", &r);
  CHT_ASSERT(in->i32 && in->i32[0] == INT32_MIN && in->i32[1] == INT32_MAX && in->i32[2] == 7,
             "INT64 narrow");
  v2_request_free(&r);
  in = parse_one("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"UINT32\",\"shape\":[2],"
                 "\"data\":[0,4294967295]}]}", &r);
  CHT_ASSERT(!in->i32 && in->f32[1] == 4294967295.0f, "UINT32 top");
  v2_request_free(&r);
  in = parse_one("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"UINT64\",\"shape\":[1],"
                 "\"data\":[18446744073709549568]}]}", &r);
  CHT_ASSERT(!in->i32 && in->f32[0] == 18446744073709549568.0f, "UINT64 top");
  v2_request_free(&r);
  in = parse_one("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"INT8\",\"shape\":[3],"
                 "\"data\":[-128,127,-0.0]}]}", &r);
  CHT_ASSERT(in->i32 && in->i32[0] == -128 && in->i32[1] == 127 && in->i32[2] == 0, "INT8");
  v2_request_free(&r);
  in = parse_one("{\"inputs\":[{\"name\":\"a\",\"datatype\":\"UINT8\",\"shape\":[2],"
                 "\"data\":[0,255]}]}", &r);
  CHT_ASSERT(in->i32 && in->i32[1] == 255, "UINT8");
  v2_request_free(&r);

  /* BOOL: JSON booleans and 0/1; the response prints booleans. */
  in = parse_one("{\"inputs\":[{\"name\":\"m\",\"datatype\":\"BOOL\",\"shape\":[2,2],"
                 "\"data\":[[true,false],[1,0]]}]}", &r);
  CHT_ASSERT(in->i32 && in->i32[0] == 1 && in->i32[1] == 0 && in->i32[2] == 1 && in->i32[3] == 0 &&
             in->f32[0] == 1 && in->f32[3] == 0, "BOOL");
  v2_output ob = {"m", CH_V2_BOOL, 2, {2, 2}, in->f32, in->i32, NULL};
  resp = v2_response("m", NULL, &r, &ob, 1);
  CHT_ASSERT(strstr(resp, "\"data\":[true,false,true,false]"), "BOOL out: %s", resp);
  free(resp);
  v2_request_free(&r);

  /* FP64 -> nearest float; FP16 edges; BF16. */
  double dv[16];
  at = (size_t)sprintf(body, "{\"inputs\":[{\"name\":\"d\",\"datatype\":\"FP64\",\"shape\":[16],\"data\":[");
  for (k = 0; k < 16; k++) {
    dv[k] = ((double)(rnd() >> 11) / 9007199254740992.0 - 0.5) * pow(10, (double)rnd_below(60) - 30);
    at += (size_t)sprintf(body + at, "%s%.17g", k ? "," : "", dv[k]);
  }
  sprintf(body + at, "]}]}");
  in = parse_one(body, &r);
  CHT_ASSERT(!in->i32, "FP64 has no i32");
  for (k = 0; k < 16; k++) CHT_ASSERT(bits(in->f32[k]) == bits((float)dv[k]), "FP64 %d", k);
  v2_request_free(&r);
  in = parse_one("{\"inputs\":[{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[3],"
                 "\"data\":[65504,-65504,0.5]}]}", &r);
  CHT_ASSERT(in->f32[0] == 65504 && in->f32[1] == -65504 && in->f32[2] == 0.5f && !in->i32, "FP16");
  v2_request_free(&r);
  in = parse_one("{\"inputs\":[{\"name\":\"h\",\"datatype\":\"BF16\",\"shape\":[1],"
                 "\"data\":[-3.5]}]}", &r);
  CHT_ASSERT(in->dtype == CH_V2_BF16 && in->f32[0] == -3.5f, "BF16");
  v2_request_free(&r);

  /* Scalars and empty tensors. */
  in = parse_one("{\"inputs\":[{\"name\":\"s\",\"datatype\":\"FP32\",\"shape\":[],\"data\":[7]}]}", &r);
  CHT_ASSERT(in->ndim == 0 && in->numel == 1 && in->f32[0] == 7, "scalar");
  v2_request_free(&r);
  in = parse_one("{\"inputs\":[{\"name\":\"e\",\"datatype\":\"FP32\",\"shape\":[0],\"data\":[]}]}", &r);
  CHT_ASSERT(in->ndim == 1 && in->numel == 0 && in->f32, "empty");
  v2_request_free(&r);
  in = parse_one("{\"inputs\":[{\"name\":\"e\",\"datatype\":\"INT32\",\"shape\":[2,0],"
                 "\"data\":[[],[]]}]}", &r);
  CHT_ASSERT(in->numel == 0 && in->shape[0] == 2 && in->i32, "empty nested");
  v2_request_free(&r);
  /* A zero dim empties the tensor even when the other dims multiply past the limit. */
  in = parse_one("{\"inputs\":[{\"name\":\"e\",\"datatype\":\"FP32\",\"shape\":[16777216,0,16777216],"
                 "\"data\":[]}]}", &r);
  CHT_ASSERT(in->numel == 0 && in->shape[2] == 16777216, "empty with big dims");
  v2_request_free(&r);
}

static void test_v2_request_fields(void) {
  v2_request r;
  char err[256];
  /* Whitespace around the body, unknown fields and "parameters" are accepted; the id (with
   * escapes) is kept and echoed; limits are inclusive; requested outputs come back in the
   * request's order. */
  const char *body =
      " \r\n{\"parameters\":{\"x\":1},\"id\":\"q\\\"1\\n\\u00e9\\ud83d\\ude00\",\"foo\":[1,{}],"
      "\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[2,2],\"data\":[1,2,3,4],"
      "\"parameters\":{}},{\"name\":\"b\",\"datatype\":\"INT32\",\"shape\":[2],\"data\":[5,6]}],"
      "\"outputs\":[{\"name\":\"probs\",\"parameters\":{\"classification\":2}},{\"name\":\"logits\"}]} \t\n";
  v2_limits lim = {6, 2};
  int st = v2_parse(body, strlen(body), &lim, &r, err, sizeof err);
  CHT_ASSERT(st == 0, "fields: %s", err);
  CHT_ASSERT(r.has_id && !strcmp(r.id, "q\"1\n\xC3\xA9\xF0\x9F\x98\x80"), "id '%s'", r.id);
  CHT_ASSERT(r.ninputs == 2 && !strcmp(r.inputs[1].name, "b") && r.inputs[1].i32[1] == 6, "inputs");
  CHT_ASSERT(r.noutputs == 2 && !strcmp(r.outputs[0], "probs") && !strcmp(r.outputs[1], "logits"),
             "requested outputs");
  float logits[6], probs[6], extra[1] = {1};
  for (int k = 0; k < 6; k++) logits[k] = rnd_float(), probs[k] = rnd_float();
  v2_output outs[3] = {{"logits", CH_V2_FP32, 2, {2, 3}, logits, NULL, NULL},
                          {"extra", CH_V2_FP32, 1, {1}, extra, NULL, NULL},
                          {"probs", CH_V2_FP32, 2, {3, 2}, probs, NULL, NULL}};
  const char *names[3] = {"logits", "extra", "probs"};
  CHT_ASSERT(v2_check_outputs(&r, names, 3, err, sizeof err) == 0, "outputs known");
  char *resp = v2_response("gpt", NULL, &r, outs, 3);
  cJSON *j = jparse(resp);
  CHT_ASSERT(!strcmp(jstr(j, "id"), r.id), "id echoed");
  const cJSON *jo = jget(j, "outputs");
  CHT_ASSERT(cJSON_GetArraySize(jo) == 2, "only the requested outputs");
  const char *want[2] = {"probs", "logits"};
  const float *wantv[2] = {probs, logits};
  for (int i = 0; i < 2; i++) {
    const cJSON *o = cJSON_GetArrayItem(jo, i), *e;
    CHT_ASSERT(!strcmp(jstr(o, "name"), want[i]), "output %d is %s", i, jstr(o, "name"));
    int k = 0;
    cJSON_ArrayForEach(e, jget(o, "data")) {
      CHT_ASSERT(bits((float)e->valuedouble) == bits(wantv[i][k]), "output %d value %d", i, k);
      k++;
    }
    CHT_ASSERT(k == 6, "count");
    CHT_ASSERT(cJSON_GetArrayItem(jget(o, "shape"), 0)->valuedouble == (i ? 2 : 3), "shape");
  }
  cJSON_Delete(j);
  free(resp);
  /* A requested output the model lacks: check_outputs names it, the response refuses. */
  CHT_ASSERT(v2_check_outputs(&r, names, 2, err, sizeof err) == 400 &&
             strstr(err, "requested output 'probs' is not an output of the model"), "%s", err);
  CHT_ASSERT(!v2_response("gpt", NULL, &r, outs, 2), "missing requested output -> NULL");
  v2_request_free(&r);
  CHT_ASSERT(r.inputs == NULL && r.ninputs == 0, "free zeroes");
  v2_request_free(&r); /* twice is harmless */
}

static void test_v2_bodies(void) {
  /* Non-finite outputs print null; integral outputs from floats print integers; malformed
   * outputs are refused. */
  float f[4] = {NAN, INFINITY, -1.5f, 3};
  v2_output o = {"y", CH_V2_FP32, 1, {4}, f, NULL, NULL};
  char *s = v2_response("m", NULL, NULL, &o, 1);
  cJSON *j = jparse(s);
  CHT_ASSERT(strstr(s, "[null,null,-1.5,3]"), "%s", s);
  cJSON_Delete(j);
  free(s);
  float g[3] = {7, -2, 100000};
  v2_output oi = {"c", CH_V2_INT64, 1, {3}, g, NULL, NULL};
  s = v2_response("m", NULL, NULL, &oi, 1);
  CHT_ASSERT(strstr(s, "\"datatype\":\"INT64\",\"shape\":[3],\"data\":[7,-2,100000]"), "%s", s);
  free(s);
  v2_output bad[4] = {{"a", CH_V2_FP32, 9, {1}, f, NULL, NULL},
                         {"b", CH_V2_FP32, 1, {-1}, f, NULL, NULL},
                         {"c", CH_V2_FP32, 1, {2}, NULL, NULL, NULL},
                         {"d", CH_V2_BYTES, 1, {1}, f, NULL, NULL}};
  for (int i = 0; i < 4; i++) CHT_ASSERT(!v2_response("m", NULL, NULL, &bad[i], 1), "bad %d", i);
  v2_output empty = {"z", CH_V2_FP32, 2, {0, 5}, NULL, NULL, NULL};
  s = v2_response("m", NULL, NULL, &empty, 1);
  CHT_ASSERT(strstr(s, "\"shape\":[0,5],\"data\":[]"), "%s", s);
  free(s);

  /* Error body: escapes and invalid UTF-8. */
  const char *msg = "input 'x': \"q\" \\ line\nctl\x01 bad\xFF ok\xC3\xA9 cut\xE2\x82";
  s = v2_error(msg);
  j = jparse(s);
  CHT_ASSERT(!strcmp(jstr(j, "error"), "input 'x': \"q\" \\ line\nctl\x01 bad\xEF\xBF\xBD ok\xC3\xA9 "
                     "cut\xEF\xBF\xBD\xEF\xBF\xBD"), "error: %s", s);
  cJSON_Delete(j);
  free(s);

  /* Metadata. */
  const char *exts[2] = {"statistics", "model_repository"};
  s = v2_server_metadata("cohort", "0.1.0", exts, 2);
  j = jparse(s);
  CHT_ASSERT(!strcmp(jstr(j, "name"), "cohort") && !strcmp(jstr(j, "version"), "0.1.0") &&
             cJSON_GetArraySize(jget(j, "extensions")) == 2 &&
             !strcmp(cJSON_GetArrayItem(jget(j, "extensions"), 1)->valuestring,
                     "model_repository"), "server metadata %s", s);
  cJSON_Delete(j);
  free(s);
  const char *vers[2] = {"1", "2"};
  v2_tensor_meta in[2] = {{"x", CH_V2_FP32, 2, {-1, 784}}, {"mask", CH_V2_BOOL, 1, {-1}}};
  v2_tensor_meta out[1] = {{"logits", CH_V2_FP32, 2, {-1, 10}}};
  s = v2_model_metadata("mlp", vers, 2, "cohort_c", in, 2, out, 1);
  j = jparse(s);
  CHT_ASSERT(!strcmp(jstr(j, "name"), "mlp") && !strcmp(jstr(j, "platform"), "cohort_c") &&
             cJSON_GetArraySize(jget(j, "versions")) == 2 &&
             !strcmp(cJSON_GetArrayItem(jget(j, "versions"), 1)->valuestring, "2"), "model meta");
  const cJSON *i1 = cJSON_GetArrayItem(jget(j, "inputs"), 1), *o0 = cJSON_GetArrayItem(jget(j, "outputs"), 0);
  CHT_ASSERT(!strcmp(jstr(i1, "name"), "mask") && !strcmp(jstr(i1, "datatype"), "BOOL") &&
             cJSON_GetArrayItem(jget(i1, "shape"), 0)->valuedouble == -1, "input meta");
  CHT_ASSERT(!strcmp(jstr(o0, "datatype"), "FP32") &&
             cJSON_GetArrayItem(jget(o0, "shape"), 1)->valuedouble == 10, "output meta");
  cJSON_Delete(j);
  free(s);
  s = v2_model_metadata("m", NULL, 0, "p", NULL, 0, NULL, 0);
  j = jparse(s);
  CHT_ASSERT(!cJSON_GetObjectItem(j, "versions") && cJSON_GetArraySize(jget(j, "inputs")) == 0, "%s", s);
  cJSON_Delete(j);
  free(s);

  for (int t = 0; t < CH_V2_NDTYPES; t++) {
    v2_dtype back;
    CHT_ASSERT(!v2_dtype_parse(v2_dtype_name((v2_dtype)t), &back) && back == (v2_dtype)t,
               "dtype %d", t);
  }
  CHT_ASSERT(!strcmp(v2_dtype_name(CH_V2_UINT16), "UINT16") && !strcmp(v2_dtype_name(CH_V2_FP64), "FP64"),
             "dtype names");
}

/* ================================ JSON string writer ================================ */

static void test_jsonw_random(void) {
  unsigned char in[64], want[256];
  static const unsigned char pieces[][4] = {
      {0xC3, 0xA9}, {0xE2, 0x82, 0xAC}, {0xF0, 0x9F, 0x98, 0x80}, {0xED, 0x9F, 0xBF}, {0xED, 0xA0, 0x80},
      {0xE0, 0x80, 0x80}, {0xF4, 0x90, 0x80, 0x80}, {0xC0, 0x80}, {0xF4, 0x8F, 0xBF, 0xBF}, {0xEF, 0xBF, 0xBF}};
  static const int plen[] = {2, 3, 4, 3, 3, 3, 4, 2, 4, 3};
  for (int it = 0; it < 20000; it++) {
    size_t n = 0, target = rnd_below(40);
    while (n < target) {
      size_t kind = rnd_below(4);
      if (kind == 0) {
        size_t p = rnd_below(10);
        memcpy(in + n, pieces[p], (size_t)plen[p]);
        n += (size_t)plen[p];
      } else if (kind == 1) {
        in[n++] = (unsigned char)(1 + rnd_below(255)); /* any byte but NUL */
      } else {
        in[n++] = (unsigned char)(0x20 + rnd_below(0x60));
      }
    }
    if (it % 3 == 0 && n) n -= rnd_below(n); /* cut anywhere, even inside a character */
    jsonw w = {0};
    jsonw_str(&w, (const char *)in, n);
    char *s = jsonw_finish(&w);
    size_t slen = strlen(s), wl = ref_clean(in, n, want);
    unsigned char chk[1024];
    CHT_ASSERT(ref_clean((const unsigned char *)s, slen, chk) == slen && !memcmp(chk, s, slen),
               "iteration %d: output is not valid UTF-8", it);
    for (size_t i = 0; i < slen; i++) CHT_ASSERT((unsigned char)s[i] >= 0x20, "raw control byte");
    cJSON *j = jparse(s);
    CHT_ASSERT(cJSON_IsString(j) && strlen(j->valuestring) == wl && !memcmp(j->valuestring, want, wl),
               "iteration %d: decoded string differs from the reference", it);
    cJSON_Delete(j);
    free(s);
  }
  jsonw w = {0};
  jsonw_str(&w, "a\0b", 3);
  char *s = jsonw_finish(&w);
  CHT_ASSERT(!strcmp(s, "\"a\\u0000b\""), "NUL escaped: %s", s);
  free(s);
  jsonw_str(&w, NULL, 0);
  s = jsonw_finish(&w);
  CHT_ASSERT(!strcmp(s, "\"\""), "NULL string");
  free(s);
  jsonw_f32(&w, 0.1f);
  jsonw_raw(&w, ",", 1);
  jsonw_f32(&w, -0.0f);
  s = jsonw_finish(&w);
  CHT_ASSERT(!strcmp(s, "0.100000001,-0"), "%s", s);
  free(s);
  /* Long formatted text grows the buffer correctly. */
  char big[700];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = 0;
  jsonw_raw(&w, "<", 1);
  jsonw_fmt(&w, "%s|%d", big, 42);
  s = jsonw_finish(&w);
  CHT_ASSERT(strlen(s) == 1 + 699 + 3 && !strcmp(s + 700, "|42"), "long fmt");
  free(s);
}

/* ================================ stop sequences ================================ */

static int64_t naive_find(const char *t, size_t n, char *const *stop, int ns) {
  int64_t best = -1;
  for (int j = 0; j < ns; j++) {
    size_t m = strlen(stop[j]);
    for (size_t i = 0; m && i + m <= n; i++)
      if (!strncmp(t + i, stop[j], m) && (best < 0 || (int64_t)i < best)) best = (int64_t)i;
  }
  return best;
}
static size_t naive_holdback(const char *t, size_t n, char *const *stop, int ns) {
  size_t best = 0;
  for (int j = 0; j < ns; j++)
    for (size_t k = 1; k < strlen(stop[j]) && k <= n; k++)
      if (!memcmp(t + n - k, stop[j], k) && k > best) best = k;
  return best;
}

/* Fills s with n random characters from alpha. */
static void rnd_text(char *s, size_t n, const char *alpha) {
  for (size_t i = 0; i < n; i++) s[i] = alpha[rnd_below(strlen(alpha))];
  s[n] = 0;
}

static void test_stop_random(void) {
  char text[40], sbuf[4][8];
  char *stop[4] = {sbuf[0], sbuf[1], sbuf[2], sbuf[3]};
  for (int it = 0; it < 50000; it++) {
    const char *alpha = it % 2 ? "ab" : "abc\n";
    size_t n = rnd_below(30);
    rnd_text(text, n, alpha);
    int ns = (int)rnd_below(5);
    for (int j = 0; j < ns; j++) rnd_text(sbuf[j], 1 + rnd_below(4), alpha);
    int64_t f = oai_find_stop(text, n, stop, ns), fr = naive_find(text, n, stop, ns);
    CHT_ASSERT(f == fr, "find_stop('%s') = %lld, reference %lld", text, (long long)f, (long long)fr);
    size_t h = oai_holdback(text, n, stop, ns), hr = naive_holdback(text, n, stop, ns);
    CHT_ASSERT(h == hr, "holdback('%s') = %zu, reference %zu", text, h, hr);
  }
  char *none[1] = {""};
  CHT_ASSERT(oai_find_stop("abc", 3, none, 1) == -1 && oai_holdback("abc", 3, none, 1) == 0,
             "empty stop strings are ignored");
  char *st[2] = {"\n\n", "END"};
  CHT_ASSERT(oai_find_stop("one\ntwo END\n\nx", 14, st, 2) == 8, "example find");
  CHT_ASSERT(oai_holdback("two EN", 6, st, 2) == 2 && oai_holdback("two\n", 4, st, 2) == 1 &&
             oai_holdback("two", 3, st, 2) == 0, "example holdback");
}

/* 1 when s[0..k) is a valid UTF-8 character missing its last bytes: the reference decoder
 * accepts it once continued (only the second byte has a narrowed range, so trying each second
 * byte and padding with 0x80 covers every completion). */
static int naive_incomplete(const unsigned char *s, size_t k) {
  /* One character: its lead byte's pattern fixes the total length. */
  size_t total = (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
  if (total > k)
    for (unsigned b = 0x80; b <= 0xBF; b++) {
      unsigned char t[4], out[16];
      memcpy(t, s, k);
      for (size_t i = k; i < total; i++) t[i] = i == k ? (unsigned char)b : 0x80;
      if (ref_clean(t, total, out) == total && !memcmp(out, t, total)) return 1;
    }
  return 0;
}

/* Streams token after token the way the server should: after each token, stop if a stop
 * string is complete, else send all but the held-back tail. The text sent must equal the
 * non-streaming answer (the same per-token stop check, truncated once), and every chunk must be
 * whole UTF-8 (no U+FFFD appears when the source text is valid). */
static void test_stream_random(void) {
  static const char *chars[] = {"a", "b", "\n", " ", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
  char sbuf[4][16];
  char *stop[4] = {sbuf[0], sbuf[1], sbuf[2], sbuf[3]};
  for (int it = 0; it < 5000; it++) {
    char text[256], got[256];
    size_t n = 0, nt = rnd_below(40);
    for (size_t c = 0; c < nt; c++) {
      const char *ch = chars[rnd_below(7)];
      memcpy(text + n, ch, strlen(ch));
      n += strlen(ch);
    }
    int ns = (int)rnd_below(4);
    for (int j = 0; j < ns; j++) {
      size_t l = 0;
      for (size_t c = 1 + rnd_below(2); c > 0; c--) {
        const char *ch = chars[rnd_below(7)];
        memcpy(sbuf[j] + l, ch, strlen(ch));
        l += strlen(ch);
      }
      sbuf[j][l] = 0;
    }
    /* Reference: generate token by token, stop at the first step where a stop string is
     * complete, truncate there. */
    size_t L = 0, final = n, sent = 0, glen = 0;
    size_t cuts[256], ncut = 0;
    while (L < n) { /* random token boundaries, even inside a character */
      L += 1 + rnd_below(3);
      if (L > n) L = n;
      cuts[ncut++] = L;
    }
    for (size_t c = 0; c < ncut; c++) {
      int64_t f = oai_find_stop(text, cuts[c], stop, ns);
      if (f >= 0) {
        final = (size_t)f;
        break;
      }
    }
    int done = 0;
    for (size_t c = 0; c < ncut && !done; c++) {
      size_t cur = cuts[c], upto;
      int64_t f = oai_find_stop(text, cur, stop, ns);
      if (f >= 0) upto = (size_t)f, done = 1;
      else if (c + 1 == ncut) upto = cur;
      else {
        size_t h1 = oai_holdback(text, cur, stop, ns), h2 = oai_utf8_holdback(text, cur);
        upto = cur - (h1 > h2 ? h1 : h2);
      }
      int stopped;
      CHT_ASSERT(oai_sendable(text, cur, c + 1 == ncut, stop, ns, &stopped) == upto &&
                 stopped == (f >= 0), "iteration %d: oai_sendable differs", it);
      CHT_ASSERT(upto >= sent, "iteration %d: would have to take back sent text", it);
      if (upto > sent) {
        oai_head h = {.id = "c", .model = "m"};
        oai_choice ch = {.text = text + sent, .len = upto - sent, .logprobs = -1};
        char *s = oai_chunk(&h, &ch, 1, 0, NULL);
        size_t sl = strlen(s);
        s[sl - 2] = 0;
        cJSON *j = jparse(s + 6);
        const char *t = jstr(cJSON_GetArrayItem(jget(j, "choices"), 0), "text");
        CHT_ASSERT(!strstr(t, "\xEF\xBF\xBD"), "iteration %d: a character was split", it);
        memcpy(got + glen, t, strlen(t));
        glen += strlen(t);
        cJSON_Delete(j);
        free(s);
        sent = upto;
      }
    }
    CHT_ASSERT(glen == final && !memcmp(got, text, final), "iteration %d: streamed %zu bytes, want %zu",
               it, glen, final);
  }
  /* The UTF-8 tail against the reference on random bytes. */
  for (int it = 0; it < 20000; it++) {
    unsigned char b[8];
    size_t n = rnd_below(7);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(it % 2 ? rnd() : 0x80 + rnd_below(0x78));
    size_t want = 0;
    for (size_t k = 1; k <= 3 && k <= n; k++)
      if (naive_incomplete(b + n - k, k)) want = k;
    size_t got = oai_utf8_holdback((const char *)b, n);
    CHT_ASSERT(got == want, "utf8_holdback of %zu bytes (%02x %02x %02x ..) = %zu, reference %zu",
               n, n > 0 ? b[n - 1] : 0, n > 1 ? b[n - 2] : 0, n > 2 ? b[n - 3] : 0, got, want);
  }
  CHT_ASSERT(oai_utf8_holdback("x\xE2\x82", 3) == 2 && oai_utf8_holdback("x\xE2\x82\xAC", 4) == 0 &&
             oai_utf8_holdback("\xF0\x9F\x98", 3) == 3 && oai_utf8_holdback("\xC3", 1) == 1 &&
             oai_utf8_holdback("\xE0\x80", 2) == 0, "utf8_holdback examples");
}

int main(void) {
  test_v2_bad();
  test_v2_fuzz();
  test_v2_fp32();
  test_v2_types();
  test_v2_request_fields();
  test_v2_bodies();
  test_jsonw_random();
  test_stop_random();
  test_stream_random();
  printf("test_codecs: ok (%zu malformed V2 cases)\n", sizeof bad_cases / sizeof *bad_cases);
  return 0;
}
