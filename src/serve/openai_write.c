/* Every body the OpenAI API sends (openai.h): whole answers and stream chunks of completions and
 * chat completions, their logprobs in each endpoint's shape, usage, errors, model objects. */
#include <stdlib.h>
#include <string.h>

#include "serve/jsonw.h"
#include "serve/openai.h"

static void put_str(jsonw *w, const char *s) { jsonw_str(w, s, s ? strlen(s) : 0); }
static void put_lit(jsonw *w, const char *s) { jsonw_raw(w, s, strlen(s)); }
static void put_or_null(jsonw *w, const char *s) {
  if (s) put_str(w, s);
  else put_lit(w, "null");
}

/* Completions' logprobs: {"tokens","token_logprobs","top_logprobs","text_offset"}; each
 * top_logprobs entry maps the alternatives' text (and the chosen token's) to their logprob. */
static void put_completion_logprobs(jsonw *w, const oai_choice *c) {
  put_lit(w, "{\"tokens\":[");
  for (int t = 0; t < c->ntoks; t++) {
    if (t) put_lit(w, ",");
    jsonw_str(w, c->toks[t].tok.text, c->toks[t].tok.len);
  }
  put_lit(w, "],\"token_logprobs\":[");
  for (int t = 0; t < c->ntoks; t++) {
    if (t) put_lit(w, ",");
    jsonw_f32(w, c->toks[t].tok.logprob);
  }
  put_lit(w, "],\"top_logprobs\":[");
  for (int t = 0; t < c->ntoks; t++) {
    const oai_tok *k = &c->toks[t];
    put_lit(w, t ? ",{" : "{");
    for (int a = 0; a < k->ntop; a++) {
      if (a) put_lit(w, ",");
      jsonw_str(w, k->top[a].text, k->top[a].len);
      put_lit(w, ":");
      jsonw_f32(w, k->top[a].logprob);
    }
    /* The API always lists the sampled token too (up to logprobs + 1 entries). */
    int listed = 0;
    for (int a = 0; a < k->ntop && !listed; a++)
      listed = k->top[a].len == k->tok.len && !memcmp(k->top[a].text, k->tok.text, k->tok.len);
    if (!listed) {
      if (k->ntop) put_lit(w, ",");
      jsonw_str(w, k->tok.text, k->tok.len);
      put_lit(w, ":");
      jsonw_f32(w, k->tok.logprob);
    }
    put_lit(w, "}");
  }
  put_lit(w, "],\"text_offset\":[");
  for (int t = 0; t < c->ntoks; t++) jsonw_fmt(w, t ? ",%zu" : "%zu", c->toks[t].offset);
  put_lit(w, "]}");
}

/* Chat's {"token","logprob","bytes":[...]} of one token (top_logprobs appended by the caller). */
static void put_chat_token(jsonw *w, const oai_alt *a) {
  put_lit(w, "{\"token\":");
  jsonw_str(w, a->text, a->len);
  put_lit(w, ",\"logprob\":");
  jsonw_f32(w, a->logprob);
  put_lit(w, ",\"bytes\":[");
  for (size_t i = 0; i < a->len; i++) jsonw_fmt(w, i ? ",%u" : "%u", (unsigned char)a->text[i]);
  put_lit(w, "]");
}

/* Chat's logprobs: {"content":[{"token","logprob","bytes","top_logprobs":[...]}]}. */
static void put_chat_logprobs(jsonw *w, const oai_choice *c) {
  put_lit(w, "{\"content\":[");
  for (int t = 0; t < c->ntoks; t++) {
    const oai_tok *k = &c->toks[t];
    if (t) put_lit(w, ",");
    put_chat_token(w, &k->tok);
    put_lit(w, ",\"top_logprobs\":[");
    for (int a = 0; a < k->ntop; a++) {
      if (a) put_lit(w, ",");
      put_chat_token(w, &k->top[a]);
      put_lit(w, "}");
    }
    put_lit(w, "]}");
  }
  put_lit(w, "]}");
}

/* One choice; `delta`: a chat chunk's (delta instead of message). */
static void put_choice(jsonw *w, const oai_head *h, const oai_choice *c, int delta) {
  if (!h->chat) {
    put_lit(w, "{\"text\":");
    jsonw_str(w, c->text, c->len);
    jsonw_fmt(w, ",\"index\":%d", c->index);
  } else if (delta) {
    jsonw_fmt(w, "{\"index\":%d,\"delta\":{", c->index);
    if (c->role) put_lit(w, "\"role\":\"assistant\"");
    if (c->role || c->len) {
      put_lit(w, c->role ? ",\"content\":" : "\"content\":");
      jsonw_str(w, c->text, c->len);
    }
    put_lit(w, "}");
  } else {
    jsonw_fmt(w, "{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":", c->index);
    jsonw_str(w, c->text, c->len);
    put_lit(w, "}");
  }
  put_lit(w, ",\"logprobs\":");
  if (c->logprobs < 0) put_lit(w, "null");
  else if (h->chat) put_chat_logprobs(w, c);
  else put_completion_logprobs(w, c);
  put_lit(w, ",\"finish_reason\":");
  put_or_null(w, c->finish_reason);
  put_lit(w, "}");
}

static void put_usage(jsonw *w, const oai_usage *u) {
  jsonw_fmt(w, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}",
            u->prompt_tokens, u->completion_tokens, u->prompt_tokens + u->completion_tokens);
}

/* {"id","object","created","model","choices":[...] -- the object not closed. */
static void put_answer(jsonw *w, const oai_head *h, const char *object, const oai_choice *c,
                       int nc, int delta) {
  put_lit(w, "{\"id\":");
  put_str(w, h->id);
  jsonw_fmt(w, ",\"object\":\"%s\",\"created\":%ld,\"model\":", object, h->created);
  put_str(w, h->model);
  put_lit(w, ",\"choices\":[");
  for (int i = 0; i < nc; i++) {
    if (i) put_lit(w, ",");
    put_choice(w, h, &c[i], delta);
  }
  put_lit(w, "]");
}

char *oai_completion(const oai_head *h, const oai_choice *c, int nc, const oai_usage *u) {
  jsonw w = {0};
  put_answer(&w, h, h->chat ? "chat.completion" : "text_completion", c, nc, 0);
  put_lit(&w, ",\"usage\":");
  put_usage(&w, u);
  put_lit(&w, "}");
  return jsonw_finish(&w);
}

char *oai_chunk(const oai_head *h, const oai_choice *c, int nc, int with_usage,
                const oai_usage *u) {
  jsonw w = {0};
  put_lit(&w, "data: ");
  put_answer(&w, h, h->chat ? "chat.completion.chunk" : "text_completion", c, nc, 1);
  if (with_usage) {
    put_lit(&w, ",\"usage\":");
    if (u) put_usage(&w, u);
    else put_lit(&w, "null");
  }
  put_lit(&w, "}\n\n");
  return jsonw_finish(&w);
}

/* The error type a status means in the API. */
static const char *error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

char *oai_error(int status, const char *message, const char *param, const char *code, int sse) {
  jsonw w = {0};
  if (sse) put_lit(&w, "data: ");
  put_lit(&w, "{\"error\":{\"message\":");
  put_str(&w, message);
  put_lit(&w, ",\"type\":");
  put_str(&w, error_type(status));
  put_lit(&w, ",\"param\":");
  put_or_null(&w, param);
  put_lit(&w, ",\"code\":");
  put_or_null(&w, code);
  put_lit(&w, sse ? "}}\n\n" : "}}");
  return jsonw_finish(&w);
}

static void put_model(jsonw *w, const char *name, long created) {
  put_lit(w, "{\"id\":");
  put_str(w, name);
  jsonw_fmt(w, ",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"cohort\"}", created);
}

char *oai_models(const char *const *names, int n, long created) {
  jsonw w = {0};
  put_lit(&w, "{\"object\":\"list\",\"data\":[");
  for (int i = 0; i < n; i++) {
    if (i) put_lit(&w, ",");
    put_model(&w, names[i], created);
  }
  put_lit(&w, "]}");
  return jsonw_finish(&w);
}

char *oai_model(const char *name, long created) {
  jsonw w = {0};
  put_model(&w, name, created);
  return jsonw_finish(&w);
}
