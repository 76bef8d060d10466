/* The executor on every rank's main thread: the ops of the wire format (wire.h) as every rank
 * runs them, and the followers' loop. The leader's side (forming ops from the queue, answering
 * requests) is lead.c.
 *   INFER   rows of features -> logits (tensor-parallel MLP), in chunks of the model's batch
 *   GEN     one forward over every entry's tokens (continuous batching: sequences join and
 *           leave at step boundaries, a long prompt may take several steps), attention per
 *           entry in its own KV slot; the leader samples the next tokens
 *   RELOAD  every rank loads its slices of a checkpoint, then the model is switched
 *   SYNC    every rank says whether a signal reached it (the leader then drains and stops)
 *   STOP    every rank returns */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/log.h"
#include "cohort/rng.h"
#include "cohort/signals.h"
#include "serve/exec.h"
#include "serve/wire.h"

ch_status serve_exec_infer(serve_state *s, int64_t rows, const float *x, float *logits) {
  serve_model *m = s->model;
  const int64_t chunk = ch_tp_model_max_batch(m->tp);
  for (int64_t lo = 0; lo < rows; lo += chunk) {
    int n = (int)(rows - lo < chunk ? rows - lo : chunk);
    const float *out;
    CH_CHECK(ch_tp_model_logits(m->tp, x + lo * m->features, n, &out));
    if (logits) /* the leader's answer: the backend's logits to the host */
      CH_CHECK(ch_op_download(m->be, logits + lo * m->classes, out,
                              sizeof(float) * (size_t)(n * m->classes)));
  }
  return CH_OK;
}

ch_status serve_exec_gen(serve_state *s, int64_t nent, int32_t *buf, float *logits,
                         serve_req **reqs) {
  serve_model *m = s->model;
  int *slots = calloc((size_t)(2 * nent + 1), sizeof(int)); /* zeroed: gcc sees no entries */
  if (!slots) return CH_FAIL(CH_ERR_NOMEM, "generation step");
  int *counts = slots + nent;
  for (int64_t e = 0; e < nent; e++) {
    const int32_t *ent = serve_wire_gen_entry(buf, e);
    slots[e] = ent[0];
    counts[e] = ent[1];
    if (ent[2]) ch_tp_model_reset(m->tp, ent[0]);
  }
  /* Every entry's rows in one forward (GEMMs over all of them, attention per slot). */
  ch_status st = ch_tp_model_decode_batch(m->tp, (int)nent, slots, counts,
                                          serve_wire_gen_tokens(buf, nent), logits);
  free(slots);
  CH_CHECK(st);
  for (int64_t e = 0; reqs && e < nent; e++) { /* the leader samples the next tokens */
    serve_req *r = reqs[e];
    if (!r) continue; /* a prompt chunk with more to come */
    const float *row = logits + e * m->vocab;
    if (r->want_logits && r->nout == 0)
      memcpy(r->logits, row, sizeof(float) * (size_t)m->vocab);
    float u = ch_rng_uniform(r->seed, CH_SAMPLE_STREAM, (uint64_t)r->nout);
    ch_sampling how = r->sampling; /* ids past the tokenizer's (padding) have no text */
    how.vocab_real = s->vocab_real;
    r->out[r->nout] = ch_sample_token(row, m->vocab, &how, u);
    serve_logprobs_record(r, row, m->vocab, s->vocab_real); /* OpenAI logprobs */
  }
  return CH_OK;
}

/* Why `next` may not replace `cur` under the running front end, or NULL. The routes, the
 * metadata and (GPT) the tokenizer were set up for the family at startup, and the tokenizer was
 * paired with the GPT's vocabulary: a reload keeps both. Every rank decides alike (same files). */
static const char *reload_conflict(const serve_model *cur, const serve_model *next, char *buf,
                                   size_t n) {
  if (next->is_gpt != cur->is_gpt)
    snprintf(buf, n, "the checkpoint holds %s; this server was started for %s and keeps serving "
             "it (start a new server for the other family)", next->is_gpt ? "a GPT" : "an MLP",
             cur->is_gpt ? "a GPT" : "an MLP");
  else if (cur->is_gpt && next->vocab != cur->vocab)
    snprintf(buf, n, "the checkpoint's GPT has a vocabulary of %lld, the served one %lld (its "
             "tokenizer): start a new server for it", (long long)next->vocab, (long long)cur->vocab);
  else
    return NULL;
  return buf;
}

ch_status serve_exec_reload(serve_state *s, const char *path) {
  serve_model *next = NULL;
  char why[256];
  ch_status st = serve_model_load(s->g, &s->dev, path, &s->opts, &next); /* collective, agreed */
  if (st != CH_OK) return st;
  if (reload_conflict(s->model, next, why, sizeof why)) {
    serve_model_free(next);
    return CH_FAIL(CH_ERR_CONFIG, "%s", why);
  }
  serve_model_free(s->model);
  s->model = next;
  if (s->g->rank == 0) serve_facts_publish(s);
  return CH_OK;
}

ch_status serve_exec_sync(serve_state *s, int32_t out[2]) {
  int sig = ch_signals_pending();
  out[0] = sig;
  out[1] = sig ? s->g->rank : -1;
  return ch_comm_allreduce(s->g, out, 2, CH_I32, CH_MAX, NULL);
}

/* ---- followers -------------------------------------------------------------------------- */

static ch_status follow_infer(serve_state *s, const serve_op *h) {
  float *x = malloc(sizeof(float) * (size_t)(h->a * s->model->features + 1));
  if (!x) return CH_FAIL(CH_ERR_NOMEM, "inference batch");
  ch_status st = serve_wire_infer(s->g, x, h->a, s->model->features);
  if (st == CH_OK) st = serve_exec_infer(s, h->a, x, NULL);
  free(x);
  return st;
}

static ch_status follow_gen(serve_state *s, const serve_op *h) {
  int32_t *buf = malloc(sizeof(int32_t) * (size_t)(3 * h->a + h->b + 1));
  ch_status st = buf ? CH_OK : CH_FAIL(CH_ERR_NOMEM, "generation step");
  if (st == CH_OK) st = serve_wire_gen(s->g, buf, h->a, h->b);
  /* No logits: only the leader samples, so the followers skip the LM head. */
  if (st == CH_OK) st = serve_exec_gen(s, h->a, buf, NULL, NULL);
  free(buf);
  return st;
}

static ch_status follow_reload(serve_state *s) {
  char path[CH_PATH_MAX] = "";
  CH_CHECK(serve_wire_path(s->g, path));
  if (serve_exec_reload(s, path) != CH_OK)
    CH_WARN("reload of %s failed; still serving the previous version", path);
  return CH_OK; /* a failed reload keeps the old model on every rank */
}

static ch_status follower(serve_state *s) {
  for (;;) {
    serve_op h;
    CH_CHECK(serve_wire_recv(s->g, &h));
    switch (h.op) {
      case SERVE_OP_STOP: return CH_OK;
      case SERVE_OP_INFER: CH_CHECK(follow_infer(s, &h)); break;
      case SERVE_OP_GEN: CH_CHECK(follow_gen(s, &h)); break;
      case SERVE_OP_RELOAD: CH_CHECK(follow_reload(s)); break;
      case SERVE_OP_SYNC: {
        int32_t vote[2];
        CH_CHECK(serve_exec_sync(s, vote));
        break; /* the leader drains on a signal, then sends STOP */
      }
      default: return CH_FAIL(CH_ERR_INTERNAL, "serving: unknown op %lld", (long long)h.op);
    }
  }
}

ch_status serve_run(serve_state *s) { return s->g->rank == 0 ? serve_lead(s) : follower(s); }
