/* Triton's binary tensor data and model configuration in the V2 codecs (src/serve/v2.c,
 * v2_binary.c, v2_write.c, v2_config.c): every numeric datatype decoded from raw little-endian
 * bytes equals the same values sent as JSON; a body's split into JSON header and binary part,
 * with every size error named; the Inference-Header-Content-Length value; binary outputs
 * (per output, for all, mixed with JSON) byte for byte; the check of inputs against a model's
 * (unknown, missing, datatypes); the model configuration of a batching and a non-batching
 * model. Bodies are exact-size heap copies without a NUL, so ASan catches a read past the end. */
#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/v2.h"
#include "testlib.h"

/* A body: the JSON header then `nbin` raw bytes. */
typedef struct body {
  char buf[8192];
  size_t json_len, len;
} body;

static void body_json(body *b, const char *json) {
  b->json_len = b->len = strlen(json);
  memcpy(b->buf, json, b->len);
}
static void body_bytes(body *b, const void *p, size_t n) {
  memcpy(b->buf + b->len, p, n);
  b->len += n;
}

static int parse(const body *b, size_t json_len, v2_request *r, char *err, size_t n) {
  char *copy = malloc(b->len ? b->len : 1);
  memcpy(copy, b->buf, b->len);
  int st = v2_parse_request_binary(copy, b->len, json_len, NULL, r, err, n);
  free(copy);
  return st;
}

/* n little-endian bytes of v. */
static void put_le(unsigned char *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++, v >>= 8) p[i] = (unsigned char)v;
}

static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* ---- every datatype: binary == JSON ---------------------------------------------------- */

typedef struct dtype_case {
  const char *dtype, *json; /* the values as JSON */
  int n;
  uint64_t raw[6];          /* the same values as the datatype's bits */
} dtype_case;

static const dtype_case dtype_cases[] = {
    {"BOOL", "[true,false,true]", 3, {1, 0, 1}},
    {"UINT8", "[0,255,7]", 3, {0, 255, 7}},
    {"UINT16", "[0,65535]", 2, {0, 65535}},
    {"UINT32", "[0,4294967295,2147483647]", 3, {0, 4294967295u, 2147483647}},
    {"UINT64", "[0,18446744073709549568,5]", 3, {0, 18446744073709549568ull, 5}},
    {"INT8", "[-128,127,-1]", 3, {0x80, 0x7f, 0xff}},
    {"INT16", "[-32768,32767,-2]", 3, {0x8000, 0x7fff, 0xfffe}},
    {"INT32", "[-2147483648,2147483647,-3]", 3, {0x80000000u, 0x7fffffff, 0xfffffffdu}},
    {"INT64", "[-4611686018427387904,2147483648,-5]", 3,
     {0xC000000000000000ull, 2147483648ull, (uint64_t)-5}},
    /* FP16: 1, -2, 65504, 2^-24 (the smallest subnormal), -0 */
    {"FP16", "[1,-2,65504,5.9604644775390625e-08,-0.0]", 5, {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000}},
    {"FP32", "[1.5,-0.1,3.4028234663852886e38,1e-45]", 4,
     {0x3FC00000, 0xBDCCCCCD, 0x7F7FFFFF, 0x00000001}},
    {"FP64", "[0.1,-2.5,1e-300]", 3,
     {0x3FB999999999999Aull, 0xC004000000000000ull, 0x01A56E1FC2F8F359ull}},
    {"BF16", "[1,-3,0.5]", 3, {0x3F80, 0xC040, 0x3F00}},
};

static void test_every_dtype(void) {
  for (size_t c = 0; c < sizeof dtype_cases / sizeof *dtype_cases; c++) {
    const dtype_case *dc = &dtype_cases[c];
    v2_dtype t;
    CHT_ASSERT(v2_dtype_parse(dc->dtype, &t) == 0, "%s", dc->dtype);
    size_t sz = v2_dtype_size(t);
    char json[512], err[256];
    body bj, bb;
    snprintf(json, sizeof json, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"%s\",\"shape\":[%d],"
             "\"data\":%s}]}", dc->dtype, dc->n, dc->json);
    body_json(&bj, json);
    snprintf(json, sizeof json, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"%s\",\"shape\":[%d],"
             "\"parameters\":{\"binary_data_size\":%zu}}]}", dc->dtype, dc->n, sz * (size_t)dc->n);
    body_json(&bb, json);
    for (int k = 0; k < dc->n; k++) {
      unsigned char p[8];
      put_le(p, dc->raw[k], sz);
      body_bytes(&bb, p, sz);
    }
    v2_request rj, rb;
    CHT_ASSERT(parse(&bj, bj.len, &rj, err, sizeof err) == 0, "%s JSON: %s", dc->dtype, err);
    CHT_ASSERT(parse(&bb, bb.json_len, &rb, err, sizeof err) == 0, "%s binary: %s", dc->dtype, err);
    const v2_input *a = &rj.inputs[0], *b = &rb.inputs[0];
    CHT_ASSERT(b->binary_size == (int64_t)(sz * (size_t)dc->n) && a->binary_size == -1, "sizes");
    CHT_ASSERT(b->numel == dc->n && b->dtype == t, "%s numel", dc->dtype);
    CHT_ASSERT(!a->i32 == !b->i32, "%s: i32 present in both or neither", dc->dtype);
    for (int k = 0; k < dc->n; k++) {
      CHT_ASSERT(fbits(a->f32[k]) == fbits(b->f32[k]), "%s element %d: JSON %.9g, binary %.9g",
                 dc->dtype, k, a->f32[k], b->f32[k]);
      CHT_ASSERT(!a->i32 || a->i32[k] == b->i32[k], "%s element %d int32", dc->dtype, k);
    }
    v2_request_free(&rj);
    v2_request_free(&rb);
  }
}

/* ---- a body's split and its errors ------------------------------------------------------ */

static void test_mixed_inputs(void) {
  /* JSON, binary, binary inputs: the binary part is consumed in input order. */
  body b;
  body_json(&b, "{\"inputs\":[{\"name\":\"j\",\"datatype\":\"INT32\",\"shape\":[2],\"data\":[4,5]},"
                "{\"name\":\"f\",\"datatype\":\"FP32\",\"shape\":[1,2],\"parameters\":"
                "{\"binary_data_size\":8}},{\"name\":\"i\",\"datatype\":\"INT64\",\"shape\":[1],"
                "\"parameters\":{\"binary_data_size\":8}}],\"parameters\":"
                "{\"binary_data_output\":true},\"outputs\":[{\"name\":\"a\",\"parameters\":"
                "{\"binary_data\":false}},{\"name\":\"b\"},{\"name\":\"c\",\"parameters\":"
                "{\"binary_data\":true}}]}");
  float f[2] = {0.25f, -8};
  unsigned char p[16];
  put_le(p, fbits(f[0]), 4);
  put_le(p + 4, fbits(f[1]), 4);
  put_le(p + 8, (uint64_t)-77, 8);
  body_bytes(&b, p, 16);
  v2_request r;
  char err[256];
  CHT_ASSERT(parse(&b, b.json_len, &r, err, sizeof err) == 0, "mixed: %s", err);
  CHT_ASSERT(r.inputs[0].i32[1] == 5 && r.inputs[1].f32[0] == 0.25f && r.inputs[1].f32[1] == -8 &&
             r.inputs[2].i32[0] == -77, "mixed values");
  CHT_ASSERT(r.binary_output == 1 && r.output_binary[0] == 0 && r.output_binary[1] == -1 &&
             r.output_binary[2] == 1, "output flags");
  v2_request_free(&r);
}

typedef struct bin_error {
  const char *json;
  size_t nbin;        /* raw bytes after the JSON (value 0x01 each, or NaN floats if nan) */
  int nan, no_header; /* no_header: the whole body is given as JSON */
  const char *want;
} bin_error;

static const bin_error bin_errors[] = {
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[4],\"parameters\":"
     "{\"binary_data_size\":16}}]}", 12, 0, 0,
     "input 'x': binary_data_size 16 runs past the end of the body (12 bytes"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[4],\"parameters\":"
     "{\"binary_data_size\":12}}]}", 12, 0, 0,
     "input 'x': binary_data_size is 12 bytes but 4 elements of FP32 take 16"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT64\",\"shape\":[2,1],\"parameters\":"
     "{\"binary_data_size\":8}}]}", 8, 0, 0,
     "input 'x': binary_data_size is 8 bytes but 2 elements of INT64 take 16"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[2],\"parameters\":"
     "{\"binary_data_size\":2}}]}", 5, 0, 0,
     "5 bytes follow the JSON header but the inputs' binary_data_size add up to 2"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[2],\"data\":[1,2]}]}", 3, 0, 0,
     "3 bytes follow the JSON header"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[2],\"data\":[1,2],"
     "\"parameters\":{\"binary_data_size\":2}}]}", 2, 0, 0,
     "input 'x': both 'data' and binary_data_size are given"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[2],"
     "\"parameters\":{\"binary_data_size\":-2}}]}", 2, 0, 0,
     "input 'x': binary_data_size must be a non-negative integer"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[2],"
     "\"parameters\":{\"binary_data_size\":\"2\"}}]}", 2, 0, 0,
     "input 'x': binary_data_size must be a non-negative integer"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[2],\"parameters\":7}]}", 2, 0,
     0, "input 'x': 'parameters' must be an object"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],\"parameters\":"
     "{\"binary_data_size\":8}}]}", 8, 1, 0, "input 'x': element 0: NaN/Infinity is not allowed"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BOOL\",\"shape\":[1],\"parameters\":"
     "{\"binary_data_size\":1}}]}", 1, 2, 0, "input 'x': element 0 (byte 2) is not a boolean"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[2],\"parameters\":"
     "{\"binary_data_size\":2}}]}", 2, 0, 1,
     "binary tensor data needs the Inference-Header-Content-Length header"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[1]}],"
     "\"parameters\":{\"binary_data_output\":1}}", 0, 0, 0,
     "request: parameter 'binary_data_output' must be true or false"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[1]}],"
     "\"outputs\":[{\"name\":\"y\",\"parameters\":{\"binary_data\":\"yes\"}}]}", 0, 0, 0,
     "output 'y': parameter 'binary_data' must be true or false"},
    {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[1],\"parameters\":"
     "{\"binary_data_size\":5}}]}", 5, 0, 0, "input 'x': datatype 'BYTES' is not supported"},
};

static void test_errors(void) {
  char err[256];
  v2_request r;
  for (size_t c = 0; c < sizeof bin_errors / sizeof *bin_errors; c++) {
    const bin_error *e = &bin_errors[c];
    body b;
    body_json(&b, e->json);
    for (size_t i = 0; i < e->nbin; i++) {
      unsigned char v = e->nan == 2 ? 2 : 1;
      if (e->nan == 1) v = (i % 4 == 3) ? 0x7f : (i % 4 == 2) ? 0xc0 : 0; /* 0x7fc00000 */
      body_bytes(&b, &v, 1);
    }
    int st = parse(&b, e->no_header ? b.len : b.json_len, &r, err, sizeof err);
    CHT_ASSERT(st == 400 && strstr(err, e->want), "case %zu: %d '%s' (want '%s')", c, st, err,
               e->want);
    CHT_ASSERT(r.inputs == NULL && r.ninputs == 0, "case %zu: left zeroed", c);
  }
  body b;
  body_json(&b, "{\"inputs\":[]}");
  CHT_ASSERT(parse(&b, b.len + 1, &r, err, sizeof err) == 400 &&
             strstr(err, "Inference-Header-Content-Length 14 exceeds the body's 13 bytes"), "%s", err);
  CHT_ASSERT(parse(&b, 0, &r, err, sizeof err) == 400 && strstr(err, "JSON header is empty"), "%s",
             err);
  /* A header cut inside the JSON: the JSON is invalid at its end. */
  CHT_ASSERT(parse(&b, 5, &r, err, sizeof err) == 400 && strstr(err, "not valid JSON"), "%s", err);

  /* The header's value. */
  size_t n;
  CHT_ASSERT(v2_header_length(NULL, 40, &n, err, sizeof err) == 0 && n == 40, "no header");
  CHT_ASSERT(v2_header_length(" 12 ", 40, &n, err, sizeof err) == 0 && n == 12, "spaces");
  CHT_ASSERT(v2_header_length("40", 40, &n, err, sizeof err) == 0 && n == 40, "whole body");
  const char *bad[] = {"", "abc", "-1", "12x", "41", "99999999999999999999999", "+3", "0x10"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHT_ASSERT(v2_header_length(bad[i], 40, &n, err, sizeof err) == 400 &&
               strstr(err, "Inference-Header-Content-Length") &&
               strstr(err, "is not a byte count within the body's 40 bytes"), "'%s': %s", bad[i], err);
}

/* ---- binary outputs --------------------------------------------------------------------- */

static cJSON *split(const v2_body *b) {
  char *json = malloc(b->json_len + 1);
  memcpy(json, b->data, b->json_len);
  json[b->json_len] = 0;
  cJSON *j = cJSON_Parse(json);
  CHT_ASSERT(j, "the JSON header parses: %s", json);
  free(json);
  return j;
}

static const cJSON *output(const cJSON *j, int i) {
  return cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), i);
}

static size_t binsize(const cJSON *o) {
  const cJSON *p = cJSON_GetObjectItem(o, "parameters");
  const cJSON *s = p ? cJSON_GetObjectItem(p, "binary_data_size") : NULL;
  return s ? (size_t)s->valuedouble : 0;
}

static void test_outputs(void) {
  float logits[6] = {1.5f, -0.25f, 3e38f, 1e-45f, 0, -7};
  int32_t labels[2] = {2, -1};
  v2_output outs[2] = {{"logits", CH_V2_FP32, 2, {2, 3}, logits, NULL, NULL},
                       {"label", CH_V2_INT32, 1, {2}, NULL, labels, NULL}};
  unsigned char want_l[24], want_i[8];
  for (int k = 0; k < 6; k++) put_le(want_l + 4 * k, fbits(logits[k]), 4);
  for (int k = 0; k < 2; k++) put_le(want_i + 4 * k, (uint32_t)labels[k], 4);
  char err[256];
  v2_request r;
  v2_body b;

  /* binary_data_output with no outputs named: every output binary, in model order. */
  body q;
  body_json(&q, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],"
                "\"parameters\":{\"binary_data_output\":true}}");
  CHT_ASSERT(parse(&q, q.len, &r, err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(v2_response_body("m", "3", &r, outs, 2, &b) == 0, "all binary");
  CHT_ASSERT(b.len == b.json_len + 32, "32 bytes of data after the JSON (%zu, %zu)", b.len, b.json_len);
  cJSON *j = split(&b);
  CHT_ASSERT(binsize(output(j, 0)) == 24 && binsize(output(j, 1)) == 8, "sizes");
  CHT_ASSERT(!cJSON_GetObjectItem(output(j, 0), "data"), "no JSON data for a binary output");
  CHT_ASSERT(!strcmp(cJSON_GetObjectItem(output(j, 1), "datatype")->valuestring, "INT32"), "type");
  CHT_ASSERT(!memcmp(b.data + b.json_len, want_l, 24) && !memcmp(b.data + b.json_len + 24, want_i, 8),
             "bytes");
  cJSON_Delete(j);
  free(b.data);
  v2_request_free(&r);

  /* Per output: label binary, logits JSON, in the request's order. */
  body_json(&q, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],"
                "\"outputs\":[{\"name\":\"label\",\"parameters\":{\"binary_data\":true}},"
                "{\"name\":\"logits\"}]}");
  CHT_ASSERT(parse(&q, q.len, &r, err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(v2_response_body("m", NULL, &r, outs, 2, &b) == 0, "mixed");
  CHT_ASSERT(b.len == b.json_len + 8 && !memcmp(b.data + b.json_len, want_i, 8), "label bytes");
  j = split(&b);
  CHT_ASSERT(!strcmp(cJSON_GetObjectItem(output(j, 0), "name")->valuestring, "label") &&
             binsize(output(j, 0)) == 8, "label first, binary");
  const cJSON *d = cJSON_GetObjectItem(output(j, 1), "data");
  CHT_ASSERT(d && cJSON_GetArraySize(d) == 6 && (float)cJSON_GetArrayItem(d, 2)->valuedouble == 3e38f,
             "logits as JSON");
  cJSON_Delete(j);
  free(b.data);
  v2_request_free(&r);

  /* binary_data false overrides binary_data_output; nothing binary: JSON only, as v2_response. */
  body_json(&q, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],"
                "\"parameters\":{\"binary_data_output\":true},"
                "\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":false}}]}");
  CHT_ASSERT(parse(&q, q.len, &r, err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(v2_response_body("m", NULL, &r, outs, 2, &b) == 0 && b.len == b.json_len, "JSON only");
  char *plain = v2_response("m", NULL, &r, outs, 2);
  CHT_ASSERT(plain && !strcmp(plain, b.data), "the same as v2_response");
  free(plain);
  free(b.data);
  v2_request_free(&r);
  CHT_ASSERT(v2_response_body("m", NULL, NULL, outs, 2, &b) == 0 && b.len == b.json_len, "no req");
  free(b.data);

  /* Other types from the model's f32/i32: BOOL, INT64, FP64, UINT8; FP16 has no encoder. */
  float fv[3] = {0, 1, 2};
  int32_t iv[3] = {-3, 0, 300};
  v2_output more[4] = {{"b", CH_V2_BOOL, 1, {3}, fv, NULL, NULL},
                       {"l", CH_V2_INT64, 1, {3}, NULL, iv, NULL},
                       {"d", CH_V2_FP64, 1, {3}, fv, NULL, NULL},
                       {"u", CH_V2_UINT8, 1, {3}, fv, NULL, NULL}};
  body_json(&q, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}],"
                "\"parameters\":{\"binary_data_output\":true}}");
  CHT_ASSERT(parse(&q, q.len, &r, err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(v2_response_body("m", NULL, &r, more, 4, &b) == 0, "more types");
  const unsigned char *p = (const unsigned char *)b.data + b.json_len;
  CHT_ASSERT(b.len - b.json_len == 3 + 24 + 24 + 3, "sizes %zu", b.len - b.json_len);
  CHT_ASSERT(p[0] == 0 && p[1] == 1 && p[2] == 1, "BOOL bytes");
  unsigned char w[8];
  put_le(w, (uint64_t)-3, 8);
  CHT_ASSERT(!memcmp(p + 3, w, 8), "INT64 -3");
  double two = 2;
  uint64_t tb;
  memcpy(&tb, &two, 8);
  put_le(w, tb, 8);
  CHT_ASSERT(!memcmp(p + 27 + 16, w, 8), "FP64 2");
  CHT_ASSERT(p[51] == 0 && p[52] == 1 && p[53] == 2, "UINT8");
  free(b.data);
  v2_output half = {"h", CH_V2_FP16, 1, {3}, fv, NULL, NULL};
  CHT_ASSERT(v2_response_body("m", NULL, &r, &half, 1, &b) == -1 && !b.data, "FP16 refused");

  /* BYTES (class names): binary, each element a 4-byte little-endian length and its bytes;
   * JSON, strings (escaped); no strings: malformed. */
  const char *names[3] = {"setosa", "", "vir\"gi\u00e9"};
  v2_output str = {"class_name", CH_V2_BYTES, 1, {3}, NULL, NULL, names};
  CHT_ASSERT(v2_response_body("m", NULL, &r, &str, 1, &b) == 0, "BYTES binary");
  p = (const unsigned char *)b.data + b.json_len;
  size_t l2 = strlen(names[2]);
  CHT_ASSERT(b.len - b.json_len == 12 + 6 + l2 && p[0] == 6 && p[1] == 0 && !memcmp(p + 4, "setosa", 6) &&
                 p[10] == 0 && p[14] == l2 && !memcmp(p + 18, names[2], l2),
             "BYTES bytes (%zu)", b.len - b.json_len);
  CHT_ASSERT(strstr(b.data, "\"datatype\":\"BYTES\",\"shape\":[3],\"parameters\":{\"binary_data_size\":"),
             "BYTES header: %.*s", (int)b.json_len, b.data);
  free(b.data);
  char *js = v2_response("m", NULL, NULL, &str, 1);
  CHT_ASSERT(js && strstr(js, "\"data\":[\"setosa\",\"\",\"vir\\\"gi\u00e9\"]"), "BYTES JSON: %s", js);
  free(js);
  str.str = NULL;
  CHT_ASSERT(v2_response("m", NULL, NULL, &str, 1) == NULL, "BYTES without strings refused");
  v2_request_free(&r);
}

/* ---- inputs against the model's --------------------------------------------------------- */

static void test_check_inputs(void) {
  v2_tensor_meta mlp[1] = {{"input", CH_V2_FP32, 2, {-1, 4}}};
  v2_tensor_meta gpt[1] = {{"input_ids", CH_V2_INT32, 1, {-1}}};
  struct {
    const char *json;
    const v2_tensor_meta *m;
    const char *want; /* NULL: accepted */
  } cases[] = {
      {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", mlp, NULL},
      {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP64\",\"shape\":[1],\"data\":[1]}]}", mlp,
       "input 'input': datatype FP64 is not accepted (the model takes FP32)"},
      {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[1]}]}", mlp,
       "input 'input': datatype INT32 is not accepted (the model takes FP32)"},
      {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", mlp,
       "unknown input 'x' (the model's inputs: 'input')"},
      {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]},"
       "{\"name\":\"extra\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", mlp,
       "unknown input 'extra'"},
      {"{\"inputs\":[{\"name\":\"input_ids\",\"datatype\":\"INT64\",\"shape\":[1],\"data\":[1]}]}", gpt, NULL},
      {"{\"inputs\":[{\"name\":\"input_ids\",\"datatype\":\"UINT16\",\"shape\":[1],\"data\":[1]}]}", gpt, NULL},
      {"{\"inputs\":[{\"name\":\"input_ids\",\"datatype\":\"BOOL\",\"shape\":[1],\"data\":[1]}]}", gpt,
       "datatype BOOL is not accepted (the model takes INT32 or another integer type)"},
      {"{\"inputs\":[{\"name\":\"input_ids\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}", gpt,
       "datatype FP32 is not accepted"},
      {"{\"inputs\":[{\"name\":\"ids\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[1]}]}", gpt,
       "unknown input 'ids' (the model's inputs: 'input_ids')"},
  };
  char err[256];
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    body q;
    v2_request r;
    body_json(&q, cases[c].json);
    CHT_ASSERT(parse(&q, q.len, &r, err, sizeof err) == 0, "%s", err);
    int st = v2_check_inputs(&r, cases[c].m, 1, err, sizeof err);
    if (!cases[c].want) CHT_ASSERT(st == 0, "case %zu accepted: %s", c, err);
    else CHT_ASSERT(st == 400 && strstr(err, cases[c].want), "case %zu: '%s'", c, err);
    v2_request_free(&r);
  }
  /* Missing: the model has two inputs, the request one. */
  v2_tensor_meta two[2] = {{"a", CH_V2_FP32, 1, {-1}}, {"b", CH_V2_INT32, 1, {-1}}};
  body q;
  v2_request r;
  body_json(&q, "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]}]}");
  CHT_ASSERT(parse(&q, q.len, &r, err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(v2_check_inputs(&r, two, 2, err, sizeof err) == 400 &&
             strstr(err, "missing input 'b' (the model's inputs: 'a', 'b')"), "%s", err);
  v2_request_free(&r);
  CHT_ASSERT(v2_dtype_accepts(CH_V2_FP32, CH_V2_FP32) && !v2_dtype_accepts(CH_V2_FP32, CH_V2_FP16) &&
             v2_dtype_accepts(CH_V2_INT32, CH_V2_UINT64) && !v2_dtype_accepts(CH_V2_INT32, CH_V2_BYTES),
             "v2_dtype_accepts");
}

/* ---- model configuration ---------------------------------------------------------------- */

static const cJSON *item(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  CHT_ASSERT(v, "missing '%s'", k);
  return v;
}

static void dims_are(const cJSON *t, const int64_t *want, int n) {
  const cJSON *d = item(t, "dims");
  CHT_ASSERT(cJSON_GetArraySize(d) == n, "%s: %d dims", item(t, "name")->valuestring,
             cJSON_GetArraySize(d));
  for (int i = 0; i < n; i++)
    CHT_ASSERT(cJSON_GetArrayItem(d, i)->valuedouble == (double)want[i], "dim %d", i);
}

static void test_config(void) {
  v2_tensor_meta in[1] = {{"input", CH_V2_FP32, 2, {-1, 64}}};
  v2_tensor_meta out[2] = {{"logits", CH_V2_FP32, 2, {-1, 10}}, {"label", CH_V2_INT32, 1, {-1}}};
  char *s = v2_model_config("mlp", "cohort_mlp", 8, 500, in, 1, out, 2);
  cJSON *j = cJSON_Parse(s);
  CHT_ASSERT(j, "config parses: %s", s);
  CHT_ASSERT(!strcmp(item(j, "name")->valuestring, "mlp") &&
             !strcmp(item(j, "platform")->valuestring, "cohort_mlp") &&
             !strcmp(item(j, "backend")->valuestring, "cohort") &&
             item(j, "max_batch_size")->valuedouble == 8, "header fields: %s", s);
  const cJSON *ti = cJSON_GetArrayItem(item(j, "input"), 0);
  CHT_ASSERT(!strcmp(item(ti, "data_type")->valuestring, "TYPE_FP32") &&
             !strcmp(item(ti, "format")->valuestring, "FORMAT_NONE"), "input fields");
  dims_are(ti, (int64_t[]){64}, 1);
  const cJSON *lo = cJSON_GetArrayItem(item(j, "output"), 0), *la = cJSON_GetArrayItem(item(j, "output"), 1);
  dims_are(lo, (int64_t[]){10}, 1);
  dims_are(la, (int64_t[]){1}, 1);
  CHT_ASSERT(!strcmp(item(la, "data_type")->valuestring, "TYPE_INT32") &&
             cJSON_GetArraySize(item(item(la, "reshape"), "shape")) == 0, "label: [1] reshaped to []");
  CHT_ASSERT(item(item(j, "dynamic_batching"), "max_queue_delay_microseconds")->valuedouble == 500,
             "dynamic batching");
  cJSON_Delete(j);
  free(s);

  v2_tensor_meta gin[1] = {{"input_ids", CH_V2_INT32, 1, {-1}}};
  v2_tensor_meta gout[2] = {{"logits", CH_V2_FP32, 1, {300}}, {"next_token", CH_V2_INT32, 1, {1}}};
  s = v2_model_config("tiny", "cohort_gpt", 0, 500, gin, 1, gout, 2);
  j = cJSON_Parse(s);
  CHT_ASSERT(j && item(j, "max_batch_size")->valuedouble == 0 &&
             !cJSON_GetObjectItem(j, "dynamic_batching"), "no batching: %s", s);
  dims_are(cJSON_GetArrayItem(item(j, "input"), 0), (int64_t[]){-1}, 1);
  dims_are(cJSON_GetArrayItem(item(j, "output"), 0), (int64_t[]){300}, 1);
  dims_are(cJSON_GetArrayItem(item(j, "output"), 1), (int64_t[]){1}, 1);
  CHT_ASSERT(!cJSON_GetObjectItem(cJSON_GetArrayItem(item(j, "output"), 1), "reshape"), "no reshape");
  cJSON_Delete(j);
  free(s);
}

int main(void) {
  test_every_dtype();
  test_mixed_inputs();
  test_errors();
  test_outputs();
  test_check_inputs();
  test_config();
  printf("test_v2_binary: ok (%zu datatypes, %zu malformed bodies)\n",
         sizeof dtype_cases / sizeof *dtype_cases, sizeof bin_errors / sizeof *bin_errors);
  return 0;
}
