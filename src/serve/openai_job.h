/* One OpenAI call as the front end runs it (openai_api.c, openai_stream.c): its parsed request
 * and one generation request per choice (prompt p, sample j: choice index p * n + j, as the API
 * numbers them), and what the answers need besides the tokens (the prompts' text for echo,
 * the usage). Rank 0, HTTP threads. */
#pragma once
#include "serve/openai.h"
#include "serve/server.h"

typedef struct oai_job {
  serve_state *s;
  oai_request q;
  serve_req **reqs;    /* [nreq]; references held until oai_job_free */
  int nreq;
  char **echo;         /* [q.nprompts] each prompt's text when q.echo, else NULL */
  size_t *echo_len;
  long long prompt_tokens; /* each prompt counted once, whatever n */
  const char *endpoint;    /* the metrics' endpoint label */
  char id[48];
  long created;
  double t0, deadline;
} oai_job;

/* A job for the parsed request q (taken: q is zeroed) on the model m: the prompts tokenised and
 * checked against the context, one request per choice (choice c samples with seed + c, the
 * request's seed or a random one). NULL with *status and err set (400 bad prompt, 500). */
oai_job *oai_job_new(serve_state *s, const serve_facts *m, oai_request *q, const char *endpoint,
                     double t0, char *err, size_t errlen, int *status);
/* Queues every request of j (serve_submit; the call counts as accepted once). 0, or 503 with
 * the message in err: then the ones already queued are abandoned. */
int oai_job_submit(oai_job *j, int *accepted, char *err, size_t errlen);
/* The head every body of the job's answer starts with. */
oai_head oai_job_head(const oai_job *j);
/* Usage so far (lock held): the prompts' tokens and every choice's generated tokens. */
oai_usage oai_job_usage(const oai_job *j);
/* Marks every unfinished request abandoned (the executor drops them at its next step). Lock
 * held. */
void oai_job_abandon(oai_job *j);
/* Drops the requests and frees everything (the job itself too). Takes the lock. */
void oai_job_free(oai_job *j);

/* Logprobs of tokens [from, to) of request r as oai_tok views (lock held): the tokens' text
 * points into r->text, the alternatives are decoded into storage this view owns. */
typedef struct oai_lp_view {
  oai_tok *toks;
  int ntoks;
  oai_alt *alts;
  char **pieces;
  int npieces;
} oai_lp_view;
/* 0, or -1 when out of memory (the view is then empty). Free with oai_lp_view_free. */
int oai_lp_view_make(serve_state *s, const serve_req *r, int from, int to, oai_lp_view *v);
void oai_lp_view_free(oai_lp_view *v);
/* Where token t's text starts in r->text. */
size_t oai_tok_start(const serve_req *r, int t);

/* Answers a streamed job (openai_stream.c): takes j (freed when the stream ends). */
int oai_stream_reply(serve_call *k, oai_job *j);
