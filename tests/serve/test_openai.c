/* The OpenAI codecs (src/serve/openai.c, openai_chat.c, openai_write.c) and the logprobs the
 * executor records (src/serve/logprobs.c): completions requests in every prompt form (text,
 * lists, token ids), n, logprobs, echo, stream_options; chat requests and the chat template;
 * each malformed body a 400 naming the field; every body the API writes parsed back with cJSON
 * and checked field by field (completions and chat, whole and chunks, logprobs in both
 * shapes, usage, the error object, models); top-k logprobs against a naive log-softmax. */
#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/openai.h"
#include "serve/server.h"
#include "testlib.h"
#include "json_check.h"

/* Parses a body passed as an exact-size heap copy (ASan catches reads past the end). */
static int parse(int chat, const char *body, int max_context, oai_request *r, char *err, size_t n) {
  size_t len = strlen(body);
  char *copy = malloc(len ? len : 1);
  memcpy(copy, body, len);
  int st = (chat ? oai_parse_chat : oai_parse_completion)(copy, len, max_context, r, err, n);
  free(copy);
  return st;
}

static void test_parse_completion(void) {
  oai_request r;
  char err[300];
  CHT_ASSERT(parse(0, "{\"model\":\"gpt\",\"prompt\":\"Hello\"}", 0, &r, err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(!strcmp(r.model, "gpt") && r.nprompts == 1 && !strcmp(r.prompts[0].text, "Hello") &&
             !r.prompts[0].ids && r.max_tokens == 16 && r.temperature == 1 && r.top_p == 1 &&
             r.top_k == 0 && !r.has_seed && r.nstop == 0 && !r.stop && !r.stream && r.n == 1 &&
             r.logprobs == -1 && !r.echo && !r.include_usage && !r.chat, "defaults");
  oai_request_free(&r);
  CHT_ASSERT(parse(0, "{\"model\":\"gpt\",\"prompt\":\"x\"}", 8, &r, err, sizeof err) == 0 &&
             r.max_tokens == 8, "default capped by the context");
  oai_request_free(&r);
  const char *full =
      "{\"model\":\"gpt\",\"prompt\":[\"Once \\\"upon\\\"\\n\"],\"max_tokens\":100,\"temperature\":0,"
      "\"top_p\":0.5,\"top_k\":40,\"seed\":-1,\"stop\":[\"\\n\",\"END\"],\"stream\":true,\"n\":3,"
      "\"best_of\":3,\"echo\":true,\"logprobs\":null,\"suffix\":\"\",\"user\":\"u\","
      "\"stream_options\":{\"include_usage\":true},"
      "\"presence_penalty\":0.5,\"logit_bias\":{\"50256\":-100},\"unknown\":[1,{\"a\":2}]}";
  CHT_ASSERT(parse(0, full, 1024, &r, err, sizeof err) == 0, "full: %s", err);
  CHT_ASSERT(r.nprompts == 1 && !strcmp(r.prompts[0].text, "Once \"upon\"\n") && r.max_tokens == 100 &&
             r.temperature == 0 && r.top_p == 0.5f && r.top_k == 40 && r.has_seed &&
             r.seed == UINT64_MAX && r.nstop == 2 && !strcmp(r.stop[0], "\n") &&
             !strcmp(r.stop[1], "END") && r.stream == 1 && r.n == 3 && r.echo && r.logprobs == -1 &&
             r.include_usage, "full fields");
  oai_request_free(&r);
  /* Prompt lists, token ids, lists of token-id lists. */
  CHT_ASSERT(parse(0, "{\"model\":\"m\",\"prompt\":[\"a\",\"bc\",\"\"],\"n\":2,\"logprobs\":5}", 0, &r,
                   err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(r.nprompts == 3 && !strcmp(r.prompts[1].text, "bc") && !strcmp(r.prompts[2].text, "") &&
             r.n == 2 && r.logprobs == 5, "prompt list");
  oai_request_free(&r);
  CHT_ASSERT(parse(0, "{\"model\":\"m\",\"prompt\":[82,79,77],\"logprobs\":0}", 0, &r, err, sizeof err) == 0,
             "%s", err);
  CHT_ASSERT(r.nprompts == 1 && !r.prompts[0].text && r.prompts[0].nids == 3 && r.prompts[0].ids[0] == 82 &&
             r.prompts[0].ids[2] == 77 && r.logprobs == 0, "token ids");
  oai_request_free(&r);
  CHT_ASSERT(parse(0, "{\"model\":\"m\",\"prompt\":[[1],[2,3]]}", 0, &r, err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(r.nprompts == 2 && r.prompts[0].nids == 1 && r.prompts[1].nids == 2 && r.prompts[1].ids[1] == 3,
             "token-id lists");
  oai_request_free(&r);
  CHT_ASSERT(parse(0, "{\"model\":\"m\",\"prompt\":\"p\",\"seed\":18446744073709549568,\"stop\":\"x\","
                      "\"max_tokens\":null,\"temperature\":null,\"top_p\":1,\"stream\":null,\"n\":null}",
                   0, &r, err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(r.seed == 18446744073709549568ull && r.nstop == 1 && !strcmp(r.stop[0], "x") &&
             r.max_tokens == 16 && r.temperature == 1 && !r.stream && r.n == 1, "seed/stop/null fields");
  oai_request_free(&r);

  static const struct { const char *body; int ctx; const char *want; } bad[] = {
      {"", 0, "body is empty"},
      {"{\"model\":\"m\",", 0, "not valid JSON at byte"},
      {"{\"model\":\"m\",\"prompt\":\"p\"} {}", 0, "not valid JSON at byte 27"},
      {"\"m\"", 0, "body must be a JSON object"},
      {"{\"prompt\":\"p\"}", 0, "missing field 'model'"},
      {"{\"model\":7,\"prompt\":\"p\"}", 0, "'model' must be a string"},
      {"{\"model\":\"\",\"prompt\":\"p\"}", 0, "'model' is empty"},
      {"{\"model\":\"m\"}", 0, "missing field 'prompt'"},
      {"{\"model\":\"m\",\"prompt\":null}", 0, "missing field 'prompt'"},
      {"{\"model\":\"m\",\"prompt\":5}", 0, "'prompt' must be a string, a list"},
      {"{\"model\":\"m\",\"prompt\":[]}", 0, "'prompt' is an empty list"},
      {"{\"model\":\"m\",\"prompt\":[\"a\",5]}", 0, "'prompt'[1] must be a string like the first"},
      {"{\"model\":\"m\",\"prompt\":[1,\"a\"]}", 0, "'prompt'[1] must be a token id"},
      {"{\"model\":\"m\",\"prompt\":[1,-2]}", 0, "'prompt'[1] must be a token id"},
      {"{\"model\":\"m\",\"prompt\":[1,2.5]}", 0, "'prompt'[1] must be a token id"},
      {"{\"model\":\"m\",\"prompt\":[[1],[]]}", 0, "'prompt'[1] is an empty list of token ids"},
      {"{\"model\":\"m\",\"prompt\":[[1],\"a\"]}", 0, "'prompt'[1] must be a list of token ids"},
      {"{\"model\":\"m\",\"prompt\":[{}]}", 0, "'prompt'[0] must be a list of token ids"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":0}", 0, "'max_tokens' must be at least 1"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":-3}", 0, "'max_tokens' must be at least 1"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":2.5}", 0, "'max_tokens' must be an integer"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":\"16\"}", 0, "'max_tokens' must be an integer"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":1e10}", 0, "'max_tokens' (10000000000) is too large"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":2000}", 1024, "exceeds the model's context length of 1024"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"temperature\":-0.1}", 0, "'temperature' must be between 0 and 2"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"temperature\":\"hot\"}", 0, "'temperature' must be a number"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"top_p\":0}", 0, "'top_p' must be in (0, 1]"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"top_k\":-1}", 0, "'top_k' must be a non-negative"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"seed\":1.5}", 0, "'seed' must be an integer"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"seed\":1e20}", 0, "'seed' is out of the 64-bit range"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 0, "at most 4"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"stop\":[\"a\",1]}", 0, "'stop' must be a string or a list"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"stop\":\"\"}", 0, "'stop' sequences must not be empty"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"stream\":\"yes\"}", 0, "'stream' must be a boolean"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"n\":0}", 0, "'n' must be from 1 to 128"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"n\":129}", 0, "'n' must be from 1 to 128"},
      {"{\"model\":\"m\",\"prompt\":[\"a\",\"b\"],\"n\":65}", 0, "2 prompts x 'n' 65 is more than 128"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"best_of\":3}", 0, "'best_of' must equal 'n'"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"echo\":1}", 0, "'echo' must be a boolean"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":21}", 0, "'logprobs' must be from 0 to 20"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":true}", 0, "'logprobs' must be an integer"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":2,\"echo\":true}", 0, "'echo' with 'logprobs'"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"suffix\":\"end\"}", 0, "'suffix' is not supported"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"stream_options\":{\"include_usage\":true}}", 0,
       "'stream_options' is only allowed when 'stream' is true"},
      {"{\"model\":\"m\",\"prompt\":\"p\",\"stream\":true,\"stream_options\":{\"include_usage\":1}}", 0,
       "'stream_options.include_usage' must be a boolean"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memset(&r, 0xAB, sizeof r);
    int st = parse(0, bad[i].body, bad[i].ctx, &r, err, sizeof err);
    CHT_ASSERT(st == 400 && strstr(err, bad[i].want), "%s: status %d err '%s' (want '%s')",
               bad[i].body, st, err, bad[i].want);
    CHT_ASSERT(!r.prompts && !r.stop && !r.nstop, "%s: request not zeroed", bad[i].body);
  }
}

static void test_parse_chat(void) {
  oai_request r;
  char err[300];
  const char *body =
      "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be terse.\"},"
      "{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello.\"},"
      "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Who \"},{\"type\":\"text\","
      "\"text\":\"are you?\"}]}],\"max_completion_tokens\":9,\"stop\":\"!\",\"logprobs\":true,"
      "\"top_logprobs\":3,\"n\":2}";
  CHT_ASSERT(parse(1, body, 64, &r, err, sizeof err) == 0, "%s", err);
  CHT_ASSERT(r.chat && r.nprompts == 1 &&
             !strcmp(r.prompts[0].text, "System: Be terse.\nUser: Hi\nAssistant: Hello.\nUser: Who "
                                        "are you?\nAssistant:"), "template: '%s'", r.prompts[0].text);
  CHT_ASSERT(r.nstop == 2 && !strcmp(r.stop[0], "!") && !strcmp(r.stop[1], CH_OAI_CHAT_STOP) &&
             r.max_tokens == 9 && r.logprobs == 3 && r.n == 2, "chat fields");
  oai_request_free(&r);
  CHT_ASSERT(parse(1, "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"x\"}],"
                      "\"logprobs\":false,\"stop\":[\"a\",\"b\",\"c\",\"d\"]}", 0, &r, err, sizeof err) == 0,
             "%s", err);
  CHT_ASSERT(!strcmp(r.prompts[0].text, "System: x\nAssistant:") && r.logprobs == -1 && r.nstop == 5,
             "developer role, four stops + the template's");
  oai_request_free(&r);
  static const struct { const char *body; const char *want; } bad[] = {
      {"{\"model\":\"m\"}", "missing field 'messages'"},
      {"{\"model\":\"m\",\"messages\":[]}", "'messages' must be a non-empty list"},
      {"{\"model\":\"m\",\"messages\":\"hi\"}", "'messages' must be a non-empty list"},
      {"{\"model\":\"m\",\"messages\":[5]}", "'messages'[0] must be an object"},
      {"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", "'messages'[0].role must be a string"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\",\"content\":\"x\"}]}",
       "'messages'[1].role 'tool' is not supported"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "'messages'[0] has no content"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":7}]}", "must be a string or a list of text parts"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
       "'messages'[0].content[0] must be {\"type\": \"text\""},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}",
       "'top_logprobs' needs 'logprobs': true"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":30}",
       "'top_logprobs' must be from 0 to 20"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":0}",
       "'max_completion_tokens' must be at least 1"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memset(&r, 0xAB, sizeof r);
    int st = parse(1, bad[i].body, 0, &r, err, sizeof err);
    CHT_ASSERT(st == 400 && strstr(err, bad[i].want), "%s: status %d err '%s' (want '%s')",
               bad[i].body, st, err, bad[i].want);
    CHT_ASSERT(!r.prompts && !r.stop && !r.nstop, "%s: request not zeroed", bad[i].body);
  }
}

/* Two tokens "ab" and "c" with two alternatives each. */
static const oai_alt k_alts[4] = {{"ab", 2, -0.5f}, {"x", 1, -1.5f}, {"z", 1, -0.25f}, {"y", 1, -2.5f}};
static const oai_tok k_toks[2] = {{{"ab", 2, -0.5f}, 0, k_alts, 2}, {{"c", 1, -2.0f}, 2, k_alts + 2, 2}};

static void test_completion_bodies(void) {
  oai_head h = {.id = "cmpl-1", .created = 1700000000L, .model = "gpt"};
  oai_choice c[2] = {{.index = 0, .text = "abc", .len = 3, .finish_reason = "length", .logprobs = 2,
                      .toks = k_toks, .ntoks = 2},
                     {.index = 1, .text = "q\xff", .len = 2, .finish_reason = "stop", .logprobs = -1}};
  oai_usage u = {5, 7};
  char *s = oai_completion(&h, c, 2, &u);
  cJSON *j = jparse(s);
  CHT_ASSERT(!strcmp(jstr(j, "id"), "cmpl-1") && !strcmp(jstr(j, "object"), "text_completion") &&
             jnum(j, "created") == 1700000000.0 && !strcmp(jstr(j, "model"), "gpt"), "head: %s", s);
  const cJSON *ch = jget(j, "choices"), *c0 = jat(ch, 0), *c1 = jat(ch, 1), *us = jget(j, "usage");
  CHT_ASSERT(cJSON_GetArraySize(ch) == 2 && !strcmp(jstr(c0, "text"), "abc") && jnum(c1, "index") == 1 &&
             !strcmp(jstr(c1, "text"), "q\xEF\xBF\xBD") && cJSON_IsNull(jget(c1, "logprobs")) &&
             !strcmp(jstr(c1, "finish_reason"), "stop"), "choices: %s", s);
  const cJSON *lp = jget(c0, "logprobs");
  CHT_ASSERT(!strcmp(jat(jget(lp, "tokens"), 1)->valuestring, "c") &&
             cJSON_GetArraySize(jget(lp, "tokens")) == 2 &&
             jat(jget(lp, "token_logprobs"), 0)->valuedouble == -0.5 &&
             jat(jget(lp, "text_offset"), 1)->valuedouble == 2, "logprobs: %s", s);
  const cJSON *top0 = jat(jget(lp, "top_logprobs"), 0), *top1 = jat(jget(lp, "top_logprobs"), 1);
  /* Token 0 is among its alternatives (2 entries); token 1 is not (2 + the sampled one). */
  CHT_ASSERT(cJSON_GetArraySize(top0) == 2 && jnum(top0, "x") == -1.5 &&
             cJSON_GetArraySize(top1) == 3 && jnum(top1, "z") == -0.25 && jnum(top1, "c") == -2.0,
             "top_logprobs: %s", s);
  CHT_ASSERT(jnum(us, "prompt_tokens") == 5 && jnum(us, "completion_tokens") == 7 &&
             jnum(us, "total_tokens") == 12, "usage");
  cJSON_Delete(j);
  free(s);

  /* A chunk: SSE framing, no usage unless asked, "usage": null when asked, usage-only last. */
  s = oai_chunk(&h, c, 1, 0, NULL);
  size_t sl = strlen(s);
  CHT_ASSERT(!strncmp(s, "data: ", 6) && !strcmp(s + sl - 2, "\n\n") && !memchr(s, '\n', sl - 2), "framing");
  s[sl - 2] = 0;
  j = jparse(s + 6);
  CHT_ASSERT(!cJSON_GetObjectItem(j, "usage") && cJSON_GetArraySize(jget(j, "choices")) == 1, "chunk");
  cJSON_Delete(j);
  free(s);
  s = oai_chunk(&h, c + 1, 1, 1, NULL);
  j = jparse(s + 6);
  CHT_ASSERT(cJSON_IsNull(jget(j, "usage")) && jnum(jat(jget(j, "choices"), 0), "index") == 1, "usage null");
  cJSON_Delete(j);
  free(s);
  s = oai_chunk(&h, NULL, 0, 1, &u);
  j = jparse(s + 6);
  CHT_ASSERT(cJSON_GetArraySize(jget(j, "choices")) == 0 && jnum(jget(j, "usage"), "total_tokens") == 12,
             "usage chunk: %s", s);
  cJSON_Delete(j);
  free(s);
}

static void test_chat_bodies(void) {
  oai_head h = {.id = "chatcmpl-1", .created = 5, .model = "gpt", .chat = 1};
  oai_choice c = {.index = 0, .text = "Hi.", .len = 3, .finish_reason = "stop", .logprobs = 2,
                  .toks = k_toks, .ntoks = 2};
  oai_usage u = {4, 2};
  char *s = oai_completion(&h, &c, 1, &u);
  cJSON *j = jparse(s);
  const cJSON *c0 = jat(jget(j, "choices"), 0), *msg = jget(c0, "message");
  CHT_ASSERT(!strcmp(jstr(j, "object"), "chat.completion") && !strcmp(jstr(msg, "role"), "assistant") &&
             !strcmp(jstr(msg, "content"), "Hi.") && !strcmp(jstr(c0, "finish_reason"), "stop"), "%s", s);
  const cJSON *content = jget(jget(c0, "logprobs"), "content"), *t0 = jat(content, 0);
  CHT_ASSERT(cJSON_GetArraySize(content) == 2 && !strcmp(jstr(t0, "token"), "ab") &&
             jnum(t0, "logprob") == -0.5 && cJSON_GetArraySize(jget(t0, "bytes")) == 2 &&
             jat(jget(t0, "bytes"), 1)->valuedouble == 'b' &&
             cJSON_GetArraySize(jget(t0, "top_logprobs")) == 2 &&
             !strcmp(jstr(jat(jget(t0, "top_logprobs"), 1), "token"), "x"), "chat logprobs: %s", s);
  cJSON_Delete(j);
  free(s);
  /* Chunks: the first carries the role (and empty content), later ones content only, the last
   * an empty delta with the finish reason. */
  oai_choice first = {.index = 1, .text = "", .role = 1, .logprobs = -1};
  s = oai_chunk(&h, &first, 1, 0, NULL);
  j = jparse(s + 6);
  const cJSON *d = jget(jat(jget(j, "choices"), 0), "delta");
  CHT_ASSERT(!strcmp(jstr(j, "object"), "chat.completion.chunk") && !strcmp(jstr(d, "role"), "assistant") &&
             !strcmp(jstr(d, "content"), ""), "role chunk: %s", s);
  cJSON_Delete(j);
  free(s);
  oai_choice mid = {.index = 0, .text = "yo", .len = 2, .logprobs = -1};
  s = oai_chunk(&h, &mid, 1, 0, NULL);
  j = jparse(s + 6);
  d = jget(jat(jget(j, "choices"), 0), "delta");
  CHT_ASSERT(!cJSON_GetObjectItem(d, "role") && !strcmp(jstr(d, "content"), "yo") &&
             cJSON_IsNull(jget(jat(jget(j, "choices"), 0), "finish_reason")), "content chunk: %s", s);
  cJSON_Delete(j);
  free(s);
  oai_choice last = {.index = 0, .text = "", .finish_reason = "length", .logprobs = -1};
  s = oai_chunk(&h, &last, 1, 0, NULL);
  j = jparse(s + 6);
  d = jget(jat(jget(j, "choices"), 0), "delta");
  CHT_ASSERT(cJSON_GetArraySize(d) == 0 && !strcmp(jstr(jat(jget(j, "choices"), 0), "finish_reason"), "length"),
             "last chunk: %s", s);
  cJSON_Delete(j);
  free(s);
}

static void test_errors_and_models(void) {
  static const struct { int status; const char *type; } types[] = {
      {400, "invalid_request_error"}, {401, "authentication_error"}, {404, "not_found_error"},
      {405, "invalid_request_error"}, {413, "invalid_request_error"}, {429, "rate_limit_error"},
      {500, "server_error"}, {503, "server_error"}, {504, "server_error"}};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    char *s = oai_error(types[i].status, "bad \"thing\"\n", i % 2 ? "max_tokens" : NULL,
                        i % 2 ? NULL : "some_code", 0);
    cJSON *j = jparse(s);
    const cJSON *e = jget(j, "error");
    CHT_ASSERT(cJSON_IsObject(e) && !strcmp(jstr(e, "message"), "bad \"thing\"\n") &&
               !strcmp(jstr(e, "type"), types[i].type), "%d: %s", types[i].status, s);
    CHT_ASSERT(i % 2 ? !strcmp(jstr(e, "param"), "max_tokens") && cJSON_IsNull(jget(e, "code"))
                     : cJSON_IsNull(jget(e, "param")) && !strcmp(jstr(e, "code"), "some_code"),
               "param/code: %s", s);
    cJSON_Delete(j);
    free(s);
  }
  char *s = oai_error(504, "timed out", NULL, NULL, 1);
  size_t sl = strlen(s);
  CHT_ASSERT(!strncmp(s, "data: {\"error\":{", 16) && !strcmp(s + sl - 2, "\n\n"), "SSE error: %s", s);
  free(s);
  const char *names[2] = {"gpt-small", "mlp\"x"};
  s = oai_models(names, 2, 123);
  cJSON *j = jparse(s);
  const cJSON *d = jget(j, "data");
  CHT_ASSERT(!strcmp(jstr(j, "object"), "list") && cJSON_GetArraySize(d) == 2 &&
             !strcmp(jstr(jat(d, 1), "id"), "mlp\"x") && !strcmp(jstr(jat(d, 0), "object"), "model") &&
             jnum(jat(d, 0), "created") == 123 && !strcmp(jstr(jat(d, 0), "owned_by"), "cohort"),
             "models: %s", s);
  cJSON_Delete(j);
  free(s);
  s = oai_model("tiny", 9);
  CHT_ASSERT(!strcmp(s, "{\"id\":\"tiny\",\"object\":\"model\",\"created\":9,\"owned_by\":\"cohort\"}"), "%s", s);
  free(s);
}

/* serve_logprobs_record against a naive log-softmax and sort, on random logits; the padded ids
 * past vocab_real never appear. */
static void test_logprobs_record(void) {
  enum { V = 300, REAL = 290, K = 5, T = 4 };
  float logits[V];
  uint64_t z = 12345;
  serve_req r;
  memset(&r, 0, sizeof r);
  int32_t out[T];
  float lp[T * (1 + K)];
  int32_t ids[T * K];
  r.out = out;
  r.lp = lp;
  r.lp_ids = ids;
  r.top_logprobs = K;
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < V; i++) {
      z = z * 6364136223846793005ull + 1442695040888963407ull;
      logits[i] = (float)((z >> 33) % 20000) / 1000.0f - 10.0f;
    }
    logits[REAL + 3] = 100; /* padding: never listed */
    out[t] = (int32_t)(t * 37);
    r.nout = t;
    serve_logprobs_record(&r, logits, V, REAL);
    double mx = -1e30, sum = 0;
    for (int i = 0; i < REAL; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < REAL; i++) sum += exp(logits[i] - mx);
    double lse = mx + log(sum);
    const float *l = lp + t * (1 + K);
    CHT_ASSERT(fabs(l[0] - (logits[out[t]] - lse)) < 1e-4, "token %d: %g vs %g", t, l[0], logits[out[t]] - lse);
    for (int a = 0; a < K; a++) {
      int32_t id = ids[t * K + a];
      CHT_ASSERT(id >= 0 && id < REAL && fabs(l[1 + a] - (logits[id] - lse)) < 1e-4, "alt %d", a);
      int larger = 0, geq = 0; /* a ids are more likely (ties in either order) */
      for (int i = 0; i < REAL; i++) larger += logits[i] > logits[id], geq += logits[i] >= logits[id];
      CHT_ASSERT(larger <= a && geq > a, "token %d alt %d is rank %d", t, a, larger);
    }
  }
}

int main(void) {
  test_parse_completion();
  test_parse_chat();
  test_completion_bodies();
  test_chat_bodies();
  test_errors_and_models();
  test_logprobs_record();
  printf("test_openai: ok\n");
  return 0;
}
