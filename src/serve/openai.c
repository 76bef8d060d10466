/* OpenAI completions: request parsing, response/SSE/model-list bodies, stop sequences (see
 * openai.h). JSON text is written with the writer of serve/v2.h. */
#include "serve/openai.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/v2.h"

#define OAI_FAIL(...) codec_fail(err, errlen, 400, __VA_ARGS__)

/* The field `key` unless absent or JSON null. */
static const cJSON *field(const cJSON *root, const char *key) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, key);
  return f && !cJSON_IsNull(f) ? f : NULL;
}

/* An optional number: 0 with *v set when present, 0 and *v untouched when absent or null, 400
 * when it is not a finite number (or not an integer when `integer`). */
static int opt_number(const cJSON *root, const char *key, int integer, double *v, char *err,
                      size_t errlen) {
  const cJSON *f = field(root, key);
  if (!f) return 0;
  if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble))
    return OAI_FAIL("'%s' must be %s", key, integer ? "an integer" : "a number");
  if (integer && f->valuedouble != trunc(f->valuedouble))
    return OAI_FAIL("'%s' must be an integer (got %.15g)", key, f->valuedouble);
  *v = f->valuedouble;
  return 0;
}

/* A malloc'ed copy of s; NULL when out of memory. */
static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* "prompt": a string or a list holding one string. */
static int parse_prompt(oai_request *r, const cJSON *root, char *err, size_t errlen) {
  const cJSON *p = field(root, "prompt");
  if (!p) return OAI_FAIL("missing field 'prompt'");
  if (cJSON_IsArray(p)) {
    int n = cJSON_GetArraySize(p);
    if (n == 0) return OAI_FAIL("'prompt' is an empty list");
    if (n > 1) return OAI_FAIL("only one prompt per request ('prompt' holds %d)", n);
    p = p->child;
    if (cJSON_IsNumber(p) || cJSON_IsArray(p))
      return OAI_FAIL("'prompt' as token ids is not supported; send text");
  }
  if (!cJSON_IsString(p)) return OAI_FAIL("'prompt' must be a string or a list of one string");
  r->prompt = dup_str(p->valuestring);
  return r->prompt ? 0 : codec_fail(err, errlen, 500, "out of memory");
}

/* "stop": a string or a list of up to CH_OAI_MAX_STOP non-empty strings. */
static int parse_stop(oai_request *r, const cJSON *root, char *err, size_t errlen) {
  const cJSON *s = field(root, "stop"), *e;
  if (!s) return 0;
  if (!cJSON_IsString(s) && !cJSON_IsArray(s))
    return OAI_FAIL("'stop' must be a string or a list of strings");
  int n = cJSON_IsString(s) ? 1 : cJSON_GetArraySize(s);
  if (n > CH_OAI_MAX_STOP)
    return OAI_FAIL("'stop' holds %d sequences; at most %d are allowed", n, CH_OAI_MAX_STOP);
  if (n == 0) return 0;
  r->stop = calloc((size_t)n, sizeof *r->stop);
  if (!r->stop) return codec_fail(err, errlen, 500, "out of memory");
  for (e = cJSON_IsString(s) ? s : s->child; r->nstop < n; e = e->next) {
    if (!cJSON_IsString(e)) return OAI_FAIL("'stop' must be a string or a list of strings");
    if (!e->valuestring[0]) return OAI_FAIL("'stop' sequences must not be empty");
    if (!(r->stop[r->nstop] = dup_str(e->valuestring)))
      return codec_fail(err, errlen, 500, "out of memory");
    r->nstop++;
  }
  return 0;
}

/* Fields cohort does not implement: accepted only at their defaults. */
static int check_unsupported(const cJSON *root, char *err, size_t errlen) {
  double v = 1;
  int st;
  if ((st = opt_number(root, "n", 1, &v, err, errlen))) return st;
  if (v != 1) return OAI_FAIL("only n=1 is supported (got %.15g)", v);
  v = 1;
  if ((st = opt_number(root, "best_of", 1, &v, err, errlen))) return st;
  if (v != 1) return OAI_FAIL("only best_of=1 is supported (got %.15g)", v);
  const cJSON *f = field(root, "echo");
  if (f && !cJSON_IsFalse(f)) return OAI_FAIL("'echo' is not supported");
  if (field(root, "logprobs")) return OAI_FAIL("'logprobs' is not supported");
  f = field(root, "suffix");
  if (f && !(cJSON_IsString(f) && !f->valuestring[0])) return OAI_FAIL("'suffix' is not supported");
  return 0;
}

/* The body of oai_parse_completion once JSON parsing succeeded. */
static int parse_root(oai_request *r, const cJSON *root, int max_context, char *err,
                      size_t errlen) {
  int st;
  if (!cJSON_IsObject(root)) return OAI_FAIL("body must be a JSON object");
  const cJSON *m = field(root, "model");
  if (!m) return OAI_FAIL("missing field 'model'");
  if (!cJSON_IsString(m)) return OAI_FAIL("'model' must be a string");
  size_t mlen = strlen(m->valuestring);
  if (mlen == 0) return OAI_FAIL("'model' is empty");
  if (mlen >= sizeof r->model)
    return OAI_FAIL("'model' is longer than %zu bytes", sizeof r->model - 1);
  memcpy(r->model, m->valuestring, mlen + 1);
  if ((st = parse_prompt(r, root, err, errlen))) return st;

  double mt = CH_OAI_DEFAULT_MAX_TOKENS;
  if (max_context > 0 && max_context < mt) mt = max_context;
  if ((st = opt_number(root, "max_tokens", 1, &mt, err, errlen))) return st;
  if (mt < 1) return OAI_FAIL("'max_tokens' must be at least 1 (got %.15g)", mt);
  if (mt > INT_MAX) return OAI_FAIL("'max_tokens' (%.15g) is too large", mt);
  if (max_context > 0 && mt > max_context)
    return OAI_FAIL("'max_tokens' (%.15g) exceeds the model's context length of %d", mt,
                    max_context);
  r->max_tokens = (int)mt;

  double t = 1, p = 1, k = 0, seed = NAN; /* NaN: no seed given */
  if ((st = opt_number(root, "temperature", 0, &t, err, errlen))) return st;
  if (t < 0 || t > 2) return OAI_FAIL("'temperature' must be between 0 and 2 (got %.15g)", t);
  if ((st = opt_number(root, "top_p", 0, &p, err, errlen))) return st;
  if (!(p > 0 && p <= 1)) return OAI_FAIL("'top_p' must be in (0, 1] (got %.15g)", p);
  if ((st = opt_number(root, "top_k", 1, &k, err, errlen))) return st;
  if (k < 0 || k > INT_MAX) return OAI_FAIL("'top_k' must be a non-negative int (got %.15g)", k);
  r->temperature = (float)t;
  r->top_p = (float)p;
  r->top_k = (int)k;

  if ((st = opt_number(root, "seed", 1, &seed, err, errlen))) return st;
  if (!isnan(seed)) {
    /* Doubles hold every int64 and uint64 seed that JSON text can carry, rounded the same way
     * each time, so a repeated request gets the same seed. */
    if (seed < -9223372036854775808.0 || seed >= 18446744073709551616.0)
      return OAI_FAIL("'seed' is out of the 64-bit range");
    r->seed = seed < 0 ? (uint64_t)(int64_t)seed : (uint64_t)seed;
    r->has_seed = 1;
  }
  const cJSON *s = field(root, "stream");
  if (s && !cJSON_IsBool(s)) return OAI_FAIL("'stream' must be a boolean");
  r->stream = s && cJSON_IsTrue(s);
  r->n = 1;
  if ((st = check_unsupported(root, err, errlen))) return st;
  return parse_stop(r, root, err, errlen);
}

int oai_parse_completion(const char *body, size_t len, int max_context, oai_request *out,
                         char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = 0;
  if (!body || len == 0) return OAI_FAIL("body is empty");
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (!root) return OAI_FAIL("body is not valid JSON at byte %zu", end ? (size_t)(end - body) : 0);
  size_t at = (size_t)(end - body);
  while (at < len && (body[at] == ' ' || body[at] == '\t' || body[at] == '\n' || body[at] == '\r'))
    at++;
  int st = at < len ? OAI_FAIL("body is not valid JSON at byte %zu (text after the value)", at)
                    : parse_root(out, root, max_context, err, errlen);
  cJSON_Delete(root);
  if (st) oai_request_free(out);
  return st;
}

void oai_request_free(oai_request *r) {
  free(r->prompt);
  for (int i = 0; i < r->nstop; i++) free(r->stop[i]);
  free(r->stop);
  memset(r, 0, sizeof *r);
}

/* ---- response bodies ---- */

static void put_str(jsonw *w, const char *s) { jsonw_str(w, s, s ? strlen(s) : 0); }

/* {"id":..,"object":"text_completion","created":..,"model":..,"choices":[{"text":text,
 * "index":0,"logprobs":null,"finish_reason":.. }] -- shared by the response and the chunks. */
static void put_choice_object(jsonw *w, const char *id, long created, const char *model,
                              const char *text, size_t len, const char *finish_reason) {
  jsonw_raw(w, "{\"id\":", 6);
  put_str(w, id);
  jsonw_fmt(w, ",\"object\":\"text_completion\",\"created\":%ld,\"model\":", created);
  put_str(w, model);
  jsonw_raw(w, ",\"choices\":[{\"text\":", 20);
  jsonw_str(w, text, len);
  jsonw_raw(w, ",\"index\":0,\"logprobs\":null,\"finish_reason\":", 43);
  if (finish_reason) put_str(w, finish_reason);
  else jsonw_raw(w, "null", 4);
  jsonw_raw(w, "}]", 2);
}

char *oai_completion(const char *id, long created, const char *model, const char *text,
                     size_t text_len, const char *finish_reason, int prompt_tokens,
                     int completion_tokens) {
  jsonw w = {0};
  put_choice_object(&w, id, created, model, text, text_len, finish_reason);
  jsonw_fmt(&w, ",\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
               "\"total_tokens\":%lld}}", prompt_tokens, completion_tokens,
            (long long)prompt_tokens + completion_tokens);
  return jsonw_finish(&w);
}

char *oai_chunk(const char *id, long created, const char *model, const char *delta,
                size_t delta_len, const char *finish_reason) {
  jsonw w = {0};
  jsonw_raw(&w, "data: ", 6);
  put_choice_object(&w, id, created, model, delta, delta_len, finish_reason);
  jsonw_raw(&w, "}\n\n", 3);
  return jsonw_finish(&w);
}

char *oai_models(const char *const *names, int n, long created) {
  jsonw w = {0};
  jsonw_raw(&w, "{\"object\":\"list\",\"data\":[", 25);
  for (int i = 0; i < n; i++) {
    jsonw_raw(&w, i ? ",{\"id\":" : "{\"id\":", i ? 7 : 6);
    put_str(&w, names[i]);
    jsonw_fmt(&w, ",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"cohort\"}", created);
  }
  jsonw_raw(&w, "]}", 2);
  return jsonw_finish(&w);
}

/* ---- stop sequences ---- */

int64_t oai_find_stop(const char *text, size_t len, char *const *stop, int nstop) {
  /* Scanning start positions in order makes the first hit the earliest; stop strings are a few
   * bytes and there are at most four, so this is linear in practice. */
  for (size_t i = 0; i < len; i++)
    for (int j = 0; j < nstop; j++) {
      size_t m = stop[j] ? strlen(stop[j]) : 0;
      if (m && m <= len - i && text[i] == stop[j][0] && !memcmp(text + i, stop[j], m))
        return (int64_t)i;
    }
  return -1;
}

size_t oai_holdback(const char *text, size_t len, char *const *stop, int nstop) {
  size_t best = 0;
  for (int j = 0; j < nstop; j++) {
    size_t m = stop[j] ? strlen(stop[j]) : 0;
    /* Longest k < m with text's last k bytes equal to the stop string's first k. */
    size_t top = m > 0 ? m - 1 : 0;
    for (size_t k = top < len ? top : len; k > best; k--)
      if (!memcmp(text + len - k, stop[j], k)) {
        best = k;
        break;
      }
  }
  return best;
}

size_t oai_utf8_holdback(const char *text, size_t len) {
  const unsigned char *p = (const unsigned char *)text;
  for (size_t k = 1; k <= 3 && k <= len; k++) {
    unsigned c = p[len - k];
    if (c < 0x80) return 0;
    if (c >= 0xC0) return jsonw_utf8_seq(p + len - k, k) == -1 ? k : 0;
  }
  return 0;
}
