/* OpenAI API codecs (https://platform.openai.com/docs/api-reference): the requests of
 * /v1/completions and /v1/chat/completions, the chat template, the response bodies and the
 * server-sent-event chunks of both, the error object, the model objects, and the stop-sequence
 * logic the whole and the streamed answers share. Pure functions (no HTTP, no MPI, no globals);
 * safe from any thread. Text is bytes: any byte sequence becomes a valid JSON string (invalid
 * UTF-8 bytes turn into U+FFFD), so a token that ends in the middle of a character must be
 * held back by the streamer (oai_sendable) to come out whole.
 * Files: openai.c (requests, stop sequences), openai_chat.c (messages and the chat template),
 * openai_write.c (every body the API sends). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define CH_OAI_MODEL_MAX 128 /* bytes of a model name, NUL included */
#define CH_OAI_MAX_STOP 4    /* the client's stop strings (chat adds its own after them) */
#define CH_OAI_DEFAULT_MAX_TOKENS 16
#define CH_OAI_MAX_CHOICES 128 /* prompts x n in one request */
#define CH_OAI_MAX_LOGPROBS 20 /* top alternatives per token */
/* The event that ends a stream. */
#define CH_OAI_SSE_DONE "data: [DONE]\n\n"
/* The chat template for a base model (openai_chat.c): each message becomes "System: ...\n",
 * "User: ...\n" or "Assistant: ...\n", then "Assistant:" asks for the answer, which ends at
 * CH_OAI_CHAT_STOP (the model starting the user's next turn) or at max_tokens. */
#define CH_OAI_CHAT_STOP "\nUser:"

/* One prompt: text, or token ids (then text is NULL). */
typedef struct oai_prompt {
  char *text;   /* malloc'ed, or NULL */
  int32_t *ids; /* malloc'ed, or NULL; each >= 0 (the server checks them against its vocab) */
  int nids;
} oai_prompt;

typedef struct oai_request {
  int chat;          /* 1: /v1/chat/completions (prompts[0] is the templated conversation) */
  char model[CH_OAI_MODEL_MAX];
  oai_prompt *prompts; /* nprompts >= 1 */
  int nprompts;
  int max_tokens;    /* >= 1; default 16, lowered to max_context when that is smaller */
  float temperature; /* [0, 2]; default 1; 0 means greedy */
  float top_p;       /* (0, 1]; default 1 */
  int top_k;         /* >= 0; 0 = off (default); not in OpenAI's API */
  int has_seed;
  uint64_t seed;     /* a negative JSON seed is taken modulo 2^64 */
  char **stop;       /* nstop malloc'ed non-empty strings (<= 4, chat: + CH_OAI_CHAT_STOP) */
  int nstop;
  int stream;        /* 0/1, default 0 */
  int include_usage; /* stream_options.include_usage: a last chunk with the usage */
  int n;             /* choices per prompt, 1..CH_OAI_MAX_CHOICES (prompts x n <= that too) */
  int logprobs;      /* -1: none; else the top alternatives per token (0..20) */
  int echo;          /* completions: the prompt's text starts each choice's text */
} oai_request;

/* Parses a POST /v1/completions body (len bytes, no NUL needed). "prompt" is a string, a list
 * of strings, a list of token ids or a list of such lists (one choice list per prompt);
 * "logprobs" an integer 0..20; "echo" a boolean ("echo" with "logprobs" is refused: the
 * prompt's own logprobs are not computed). Returns 0 and fills *out, or 400 (500 when out of
 * memory) with a message naming the field in err; *out is left zeroed on failure. Unknown
 * fields are ignored (as OpenAI does); best_of other than 1 or n, and a non-empty suffix, are
 * refused. max_context > 0 caps max_tokens (the server still checks prompt tokens +
 * max_tokens against the context). Free with oai_request_free. */
int oai_parse_completion(const char *body, size_t len, int max_context, oai_request *out,
                         char *err, size_t errlen);
/* Parses a POST /v1/chat/completions body the same way: "messages" (roles system, developer,
 * user, assistant; content a string or a list of {"type":"text","text"} parts) becomes one
 * prompt by the chat template, CH_OAI_CHAT_STOP joins the stop strings; "logprobs" is a
 * boolean and "top_logprobs" 0..20; "max_completion_tokens" is max_tokens' newer name. */
int oai_parse_chat(const char *body, size_t len, int max_context, oai_request *out, char *err,
                   size_t errlen);
/* Frees what parsing allocated and zeroes *r (safe on a zeroed request). */
void oai_request_free(oai_request *r);

/* ---- openai_chat.c ---------------------------------------------------------------------- */
/* The chat template applied to a "messages" value (a cJSON array, passed as void * so this
 * header needs no cJSON): *out malloc'ed text. 0, or 400 naming the message at fault. */
int oai_chat_template(const void *messages, char **out, char *err, size_t errlen);

/* ---- openai_write.c: bodies --------------------------------------------------------------- */

/* One alternative token and its log probability. */
typedef struct oai_alt {
  const char *text; /* the token's bytes */
  size_t len;
  float logprob;
} oai_alt;

/* One generated token with its logprob and the top alternatives (most likely first). */
typedef struct oai_tok {
  oai_alt tok;
  size_t offset;     /* where its text starts in the choice's text (completions' text_offset) */
  const oai_alt *top;
  int ntop;
} oai_tok;

/* One choice as written: its text, finish_reason (NULL prints null) and, when logprobs >= 0,
 * its tokens (ntoks). A chat choice is a message (whole answers) or a delta (chunks: role adds
 * "role":"assistant"; text may be empty). */
typedef struct oai_choice {
  int index;
  const char *text;
  size_t len;
  const char *finish_reason;
  int logprobs;       /* -1: "logprobs": null */
  const oai_tok *toks;
  int ntoks;
  int role;           /* chat chunks: the delta carries the role */
} oai_choice;

/* What heads every body of one answer. */
typedef struct oai_head {
  const char *id;
  long created;
  const char *model;
  int chat;
} oai_head;

typedef struct oai_usage {
  long long prompt_tokens, completion_tokens;
} oai_usage;

/* The whole answer: {"id","object":"text_completion"|"chat.completion","created","model",
 * "choices":[...],"usage":{...}}; completions' choices {"text","index","logprobs",
 * "finish_reason"}, chat's {"index","message":{"role":"assistant","content"},"logprobs",
 * "finish_reason"}. Malloc'ed or NULL. */
char *oai_completion(const oai_head *h, const oai_choice *c, int nc, const oai_usage *u);

/* One server-sent event of a stream ("data: {...}\n\n", the JSON holds no newline): the same
 * head with object "text_completion" | "chat.completion.chunk" and the choices c[0..nc); chat
 * choices carry "delta" instead of "message". with_usage: 0 leaves "usage" out, 1 writes
 * "usage": null (u NULL) or the usage (the last chunk of stream_options.include_usage, nc 0).
 * Malloc'ed or NULL. After the last chunk send CH_OAI_SSE_DONE. */
char *oai_chunk(const oai_head *h, const oai_choice *c, int nc, int with_usage,
                const oai_usage *u);

/* The API's error object: {"error":{"message","type","param","code"}} with the type that
 * `status` means (400/405/413 invalid_request_error, 401 authentication_error, 403
 * permission_error, 404 not_found_error, 429 rate_limit_error, 5xx server_error); param and
 * code may be NULL (null). `sse`: as one server-sent event (an error after a stream began).
 * Malloc'ed or NULL. */
char *oai_error(int status, const char *message, const char *param, const char *code, int sse);

/* GET /v1/models: {"object":"list","data":[model objects]}; GET /v1/models/{id}: one model
 * object {"id","object":"model","created","owned_by":"cohort"}. Malloc'ed or NULL. */
char *oai_models(const char *const *names, int n, long created);
char *oai_model(const char *name, long created);

/* ---- openai.c: stop sequences ------------------------------------------------------------- */

/* Where generation stops: the length of text before the earliest occurrence of any stop string
 * fully inside text[0..len) (the stop string itself is not returned, as in OpenAI), or -1 when
 * none occurs. Empty stop strings are ignored. */
int64_t oai_find_stop(const char *text, size_t len, char *const *stop, int nstop);

/* For streaming: how many trailing bytes of text must not be sent yet because they could be the
 * start of a stop string (the longest suffix that is a proper prefix of one). */
size_t oai_holdback(const char *text, size_t len, char *const *stop, int nstop);

/* For streaming: how many trailing bytes (0-3) are a valid but unfinished UTF-8 character,
 * which the next token may complete. */
size_t oai_utf8_holdback(const char *text, size_t len);

/* How much of text[0..len) (the text generated so far) may be sent: up to the first stop
 * string (*stopped = 1); else, unless `final` (the sequence has ended), minus what could still
 * become a stop string or complete a UTF-8 character. Never less than what it allowed for a
 * shorter prefix of the same text, so a streamer never has to take text back. */
size_t oai_sendable(const char *text, size_t len, int final, char *const *stop, int nstop,
                    int *stopped);
