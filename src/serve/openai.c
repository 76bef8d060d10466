/* OpenAI requests (completions and chat; the chat template is openai_chat.c's) and the stop
 * sequences (see openai.h). */
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

#define OAI_NOMEM() codec_fail(err, errlen, 500, "out of memory")

/* A list of token ids (what `what` names, for messages) into p: each an integer 0..2^31-1. */
static int parse_ids(oai_prompt *p, const cJSON *a, const char *what, char *err, size_t errlen) {
  int n = cJSON_GetArraySize(a), i = 0;
  if (n == 0) return OAI_FAIL("%s is an empty list of token ids", what);
  if (!(p->ids = malloc(sizeof(int32_t) * (size_t)n))) return OAI_NOMEM();
  const cJSON *e;
  cJSON_ArrayForEach(e, a) {
    if (!cJSON_IsNumber(e) || e->valuedouble != trunc(e->valuedouble) || e->valuedouble < 0 ||
        e->valuedouble > INT32_MAX)
      return OAI_FAIL("%s[%d] must be a token id (an integer from 0)", what, i);
    p->ids[i++] = (int32_t)e->valuedouble;
  }
  p->nids = n;
  return 0;
}

/* "prompt": a string, a list of strings, a list of token ids, or a list of token-id lists. */
static int parse_prompt(oai_request *r, const cJSON *root, char *err, size_t errlen) {
  const cJSON *p = field(root, "prompt");
  if (!p) return OAI_FAIL("missing field 'prompt'");
  if (!cJSON_IsString(p) && !cJSON_IsArray(p))
    return OAI_FAIL("'prompt' must be a string, a list of strings, a list of token ids or a "
                    "list of token-id lists");
  int n = cJSON_IsString(p) || cJSON_IsNumber(p->child) ? 1 : cJSON_GetArraySize(p);
  if (n == 0) return OAI_FAIL("'prompt' is an empty list");
  if (n > CH_OAI_MAX_CHOICES)
    return OAI_FAIL("'prompt' holds %d prompts; at most %d are allowed", n, CH_OAI_MAX_CHOICES);
  if (!(r->prompts = calloc((size_t)n, sizeof *r->prompts))) return OAI_NOMEM();
  r->nprompts = n;
  if (cJSON_IsString(p)) return (r->prompts[0].text = dup_str(p->valuestring)) ? 0 : OAI_NOMEM();
  if (cJSON_IsNumber(p->child)) return parse_ids(&r->prompts[0], p, "'prompt'", err, errlen);
  const cJSON *e;
  int i = 0, strings = cJSON_IsString(p->child);
  char what[32];
  cJSON_ArrayForEach(e, p) {
    snprintf(what, sizeof what, "'prompt'[%d]", i);
    if (strings ? !cJSON_IsString(e) : !cJSON_IsArray(e))
      return OAI_FAIL("%s must be %s like the first", what, strings ? "a string" : "a list of token ids");
    int st = strings ? ((r->prompts[i].text = dup_str(e->valuestring)) ? 0 : OAI_NOMEM())
                     : parse_ids(&r->prompts[i], e, what, err, errlen);
    if (st) return st;
    i++;
  }
  return 0;
}

/* "stop": a string or a list of up to CH_OAI_MAX_STOP non-empty strings; `extra` (or NULL) is
 * added after them (the chat template's stop). */
static int parse_stop(oai_request *r, const cJSON *root, const char *extra, char *err,
                      size_t errlen) {
  const cJSON *s = field(root, "stop"), *e;
  if (s && !cJSON_IsString(s) && !cJSON_IsArray(s))
    return OAI_FAIL("'stop' must be a string or a list of strings");
  int n = !s ? 0 : cJSON_IsString(s) ? 1 : cJSON_GetArraySize(s);
  if (n > CH_OAI_MAX_STOP)
    return OAI_FAIL("'stop' holds %d sequences; at most %d are allowed", n, CH_OAI_MAX_STOP);
  if (n + (extra != NULL) == 0) return 0;
  r->stop = calloc((size_t)n + 1, sizeof *r->stop);
  if (!r->stop) return OAI_NOMEM();
  for (e = n == 0 ? NULL : cJSON_IsString(s) ? s : s->child; r->nstop < n; e = e->next) {
    if (!cJSON_IsString(e)) return OAI_FAIL("'stop' must be a string or a list of strings");
    if (!e->valuestring[0]) return OAI_FAIL("'stop' sequences must not be empty");
    if (!(r->stop[r->nstop] = dup_str(e->valuestring))) return OAI_NOMEM();
    r->nstop++;
  }
  if (extra) {
    if (!(r->stop[r->nstop] = dup_str(extra))) return OAI_NOMEM();
    r->nstop++;
  }
  return 0;
}

/* An optional boolean into *v (untouched when absent or null). */
static int opt_bool(const cJSON *root, const char *key, int *v, char *err, size_t errlen) {
  const cJSON *f = field(root, key);
  if (!f) return 0;
  if (!cJSON_IsBool(f)) return OAI_FAIL("'%s' must be a boolean", key);
  *v = cJSON_IsTrue(f);
  return 0;
}

/* n, best_of, stream and stream_options. */
static int parse_choices(oai_request *r, const cJSON *root, char *err, size_t errlen) {
  double n = 1, best = NAN;
  int st;
  if ((st = opt_number(root, "n", 1, &n, err, errlen))) return st;
  if (n < 1 || n > CH_OAI_MAX_CHOICES)
    return OAI_FAIL("'n' must be from 1 to %d (got %.15g)", CH_OAI_MAX_CHOICES, n);
  if (r->nprompts * n > CH_OAI_MAX_CHOICES)
    return OAI_FAIL("%d prompts x 'n' %.15g is more than %d choices", r->nprompts, n,
                    CH_OAI_MAX_CHOICES);
  r->n = (int)n;
  if ((st = opt_number(root, "best_of", 1, &best, err, errlen))) return st;
  if (!isnan(best) && best != 1 && best != n)
    return OAI_FAIL("'best_of' must equal 'n' (%d): ranking choices is not supported", r->n);
  if ((st = opt_bool(root, "stream", &r->stream, err, errlen))) return st;
  const cJSON *so = field(root, "stream_options");
  if (!so) return 0;
  if (!cJSON_IsObject(so)) return OAI_FAIL("'stream_options' must be an object");
  if (!r->stream) return OAI_FAIL("'stream_options' is only allowed when 'stream' is true");
  const cJSON *u = field(so, "include_usage");
  if (u && !cJSON_IsBool(u)) return OAI_FAIL("'stream_options.include_usage' must be a boolean");
  r->include_usage = u && cJSON_IsTrue(u);
  return 0;
}

/* "logprobs" and "echo" (completions), or "logprobs" and "top_logprobs" (chat). */
static int parse_logprobs(oai_request *r, const cJSON *root, char *err, size_t errlen) {
  double k = -1;
  int st, on = 0;
  r->logprobs = -1;
  if (r->chat) {
    if ((st = opt_bool(root, "logprobs", &on, err, errlen))) return st;
    k = on ? 0 : -1;
    const cJSON *t = field(root, "top_logprobs");
    if (t && !on) return OAI_FAIL("'top_logprobs' needs 'logprobs': true");
    if ((st = opt_number(root, "top_logprobs", 1, &k, err, errlen))) return st;
    if (on && (k < 0 || k > CH_OAI_MAX_LOGPROBS))
      return OAI_FAIL("'top_logprobs' must be from 0 to %d (got %.15g)", CH_OAI_MAX_LOGPROBS, k);
    r->logprobs = (int)k;
    return 0;
  }
  if ((st = opt_number(root, "logprobs", 1, &k, err, errlen))) return st;
  if (field(root, "logprobs") && (k < 0 || k > CH_OAI_MAX_LOGPROBS))
    return OAI_FAIL("'logprobs' must be from 0 to %d (got %.15g)", CH_OAI_MAX_LOGPROBS, k);
  r->logprobs = (int)k;
  if ((st = opt_bool(root, "echo", &r->echo, err, errlen))) return st;
  if (r->echo && r->logprobs >= 0)
    return OAI_FAIL("'echo' with 'logprobs' is not supported (the prompt's logprobs are not "
                    "computed)");
  const cJSON *f = field(root, "suffix");
  if (f && !(cJSON_IsString(f) && !f->valuestring[0])) return OAI_FAIL("'suffix' is not supported");
  return 0;
}

/* model, max_tokens and the sampling fields, shared by both endpoints. */
static int parse_common(oai_request *r, const cJSON *root, int max_context, char *err,
                        size_t errlen) {
  int st;
  const cJSON *m = field(root, "model");
  if (!m) return OAI_FAIL("missing field 'model'");
  if (!cJSON_IsString(m)) return OAI_FAIL("'model' must be a string");
  size_t mlen = strlen(m->valuestring);
  if (mlen == 0) return OAI_FAIL("'model' is empty");
  if (mlen >= sizeof r->model)
    return OAI_FAIL("'model' is longer than %zu bytes", sizeof r->model - 1);
  memcpy(r->model, m->valuestring, mlen + 1);

  double mt = CH_OAI_DEFAULT_MAX_TOKENS;
  if (max_context > 0 && max_context < mt) mt = max_context;
  const char *mt_key = r->chat && field(root, "max_completion_tokens") ? "max_completion_tokens"
                                                                       : "max_tokens";
  if ((st = opt_number(root, mt_key, 1, &mt, err, errlen))) return st;
  if (mt < 1) return OAI_FAIL("'%s' must be at least 1 (got %.15g)", mt_key, mt);
  if (mt > INT_MAX) return OAI_FAIL("'%s' (%.15g) is too large", mt_key, mt);
  if (max_context > 0 && mt > max_context)
    return OAI_FAIL("'%s' (%.15g) exceeds the model's context length of %d", mt_key, mt,
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
  if ((st = parse_choices(r, root, err, errlen))) return st;
  if ((st = parse_logprobs(r, root, err, errlen))) return st;
  return parse_stop(r, root, r->chat ? CH_OAI_CHAT_STOP : NULL, err, errlen);
}

/* The body of both parsers once JSON parsing succeeded. */
static int parse_root(oai_request *r, const cJSON *root, int max_context, char *err,
                      size_t errlen) {
  if (!cJSON_IsObject(root)) return OAI_FAIL("body must be a JSON object");
  int st;
  if (r->chat) {
    const cJSON *msgs = field(root, "messages");
    if (!msgs) return OAI_FAIL("missing field 'messages'");
    if (!(r->prompts = calloc(1, sizeof *r->prompts))) return OAI_NOMEM();
    r->nprompts = 1;
    if ((st = oai_chat_template(msgs, &r->prompts[0].text, err, errlen))) return st;
  } else if ((st = parse_prompt(r, root, err, errlen))) {
    return st;
  }
  return parse_common(r, root, max_context, err, errlen);
}

/* Parses either endpoint's body. */
static int parse_body(int chat, const char *body, size_t len, int max_context, oai_request *out,
                      char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  out->chat = chat;
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

int oai_parse_completion(const char *body, size_t len, int max_context, oai_request *out,
                         char *err, size_t errlen) {
  return parse_body(0, body, len, max_context, out, err, errlen);
}

int oai_parse_chat(const char *body, size_t len, int max_context, oai_request *out, char *err,
                   size_t errlen) {
  return parse_body(1, body, len, max_context, out, err, errlen);
}

void oai_request_free(oai_request *r) {
  for (int i = 0; r->prompts && i < r->nprompts; i++) {
    free(r->prompts[i].text);
    free(r->prompts[i].ids);
  }
  free(r->prompts);
  for (int i = 0; i < r->nstop; i++) free(r->stop[i]);
  free(r->stop);
  memset(r, 0, sizeof *r);
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

size_t oai_sendable(const char *text, size_t len, int final, char *const *stop, int nstop,
                    int *stopped) {
  int64_t at = oai_find_stop(text, len, stop, nstop);
  *stopped = at >= 0;
  if (at >= 0) return (size_t)at;
  if (final) return len;
  size_t hold = oai_holdback(text, len, stop, nstop), u = oai_utf8_holdback(text, len);
  hold = hold > u ? hold : u;
  return len > hold ? len - hold : 0;
}
