/* OpenAI completions API codecs (https://platform.openai.com/docs/api-reference/completions):
 * request parsing, the response and the server-sent-event chunks of a streamed response, the
 * model list, and the stop-sequence logic that both paths share. Pure functions (no HTTP, no
 * MPI, no globals); safe from any thread. Text is bytes: any byte sequence becomes a valid
 * JSON string (invalid UTF-8 bytes turn into U+FFFD), so a token that ends in the middle of a
 * character must be held back by the streamer (oai_utf8_holdback) to come out whole. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define CH_OAI_MODEL_MAX 128 /* bytes of a model name, NUL included */
#define CH_OAI_MAX_STOP 4
#define CH_OAI_DEFAULT_MAX_TOKENS 16
/* The event that ends a stream. */
#define CH_OAI_SSE_DONE "data: [DONE]\n\n"

typedef struct oai_request {
  char model[CH_OAI_MODEL_MAX];
  char *prompt;      /* malloc'ed; a string, or a list holding one string */
  int max_tokens;    /* >= 1; default 16, lowered to max_context when that is smaller */
  float temperature; /* [0, 2]; default 1; 0 means greedy */
  float top_p;       /* (0, 1]; default 1 */
  int top_k;         /* >= 0; 0 = off (default); not in OpenAI's API */
  int has_seed;
  uint64_t seed;     /* a negative JSON seed is taken modulo 2^64 */
  char **stop;       /* nstop (<= 4) non-empty malloc'ed strings */
  int nstop;
  int stream;        /* 0/1, default 0 */
  int n;             /* always 1 (anything else is rejected) */
} oai_request;

/* Parses a POST /v1/completions body (len bytes, no NUL needed). Returns 0 and fills *out, or
 * 400 (500 when out of memory) with a message naming the field in err; *out is left zeroed on
 * failure. Unknown fields are ignored (as OpenAI does); fields whose non-default value would
 * change the shape of the answer and that cohort does not implement (n, best_of, echo,
 * logprobs, suffix) are rejected when set to anything but their default. max_context > 0 caps
 * max_tokens (the server still checks prompt tokens + max_tokens against the context).
 * Free with oai_request_free. */
int oai_parse_completion(const char *body, size_t len, int max_context, oai_request *out,
                         char *err, size_t errlen);
/* Frees what parsing allocated and zeroes *r (safe on a zeroed request). */
void oai_request_free(oai_request *r);

/* The non-streaming response: {"id","object":"text_completion","created","model","choices":[{
 * "text","index":0,"logprobs":null,"finish_reason"}],"usage":{"prompt_tokens",
 * "completion_tokens","total_tokens"}}; finish_reason NULL prints null. Malloc'ed or NULL. */
char *oai_completion(const char *id, long created, const char *model, const char *text,
                     size_t text_len, const char *finish_reason, int prompt_tokens,
                     int completion_tokens);

/* One server-sent event of a stream: "data: {same object, choices[0].text = delta,
 * finish_reason null (NULL) or final}\n\n" (the JSON holds no newline). Malloc'ed or NULL.
 * After the last chunk send CH_OAI_SSE_DONE. */
char *oai_chunk(const char *id, long created, const char *model, const char *delta,
                size_t delta_len, const char *finish_reason);

/* GET /v1/models: {"object":"list","data":[{"id","object":"model","created","owned_by":
 * "cohort"}]}. Malloc'ed or NULL. */
char *oai_models(const char *const *names, int n, long created);

/* Where generation stops: the length of text before the earliest occurrence of any stop string
 * fully inside text[0..len) (the stop string itself is not returned, as in OpenAI), or -1 when
 * none occurs. Empty stop strings are ignored. */
int64_t oai_find_stop(const char *text, size_t len, char *const *stop, int nstop);

/* For streaming: how many trailing bytes of text must not be sent yet because they could be the
 * start of a stop string (the longest suffix that is a proper prefix of one). Send
 * text[sent .. len - holdback) after checking oai_find_stop. */
size_t oai_holdback(const char *text, size_t len, char *const *stop, int nstop);

/* For streaming: how many trailing bytes (0-3) are a valid but unfinished UTF-8 character,
 * which the next token may complete. Hold back the larger of this and oai_holdback; at the
 * end of the stream send everything. */
size_t oai_utf8_holdback(const char *text, size_t len);
