/* Log probabilities of generated tokens (server.h, serve_logprobs_record): what the OpenAI API's
 * `logprobs` shows, recorded by the executor right after sampling, while the step's logits are
 * still at hand (the next entry of the step reuses the buffer). */
#include <math.h>

#include "serve/server.h"

void serve_logprobs_record(serve_req *r, const float *logits, int64_t vocab, int64_t vocab_real) {
  if (!r->lp) return;
  /* Ids past the tokenizer's (padding) have no text and are never sampled: left out. */
  int64_t n = vocab_real > 0 && vocab_real < vocab ? vocab_real : vocab;
  int k = r->top_logprobs, t = r->nout;
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
  float lse = mx + (float)log(sum);
  float *lp = r->lp + (size_t)t * (size_t)(1 + k);
  int32_t *ids = r->lp_ids + (size_t)t * (size_t)k;
  int32_t tok = r->out[t];
  lp[0] = tok >= 0 && tok < n ? logits[tok] - lse : -INFINITY;
  /* The k largest, most likely first: insertion into a short sorted list (k <= 20). */
  int have = 0;
  for (int64_t i = 0; i < n && k > 0; i++) {
    float v = logits[i];
    if (have == k && v <= lp[k]) continue;
    int at = have < k ? have++ : k - 1;
    while (at > 0 && lp[at] < v) { /* lp[1 + j] holds the j-th largest */
      lp[1 + at] = lp[at];
      ids[at] = ids[at - 1];
      at--;
    }
    lp[1 + at] = v;
    ids[at] = (int32_t)i;
  }
  for (int a = 0; a < have; a++) lp[1 + a] -= lse;
  for (int a = have; a < k; a++) {
    lp[1 + a] = -INFINITY;
    ids[a] = -1;
  }
}
