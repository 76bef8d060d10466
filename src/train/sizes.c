/* Size checks before the trainer allocates anything: every buffer that the trainer and its
 * model size from keys and the data's shape, as a product checked for overflow and bounded.
 * A product that wraps around would allocate a small buffer that the step then overruns (a
 * batch of 2^62 samples gave a 1-byte row buffer), so a value whose buffers cannot exist is
 * refused here, naming the keys, on every rank alike (the inputs are the same everywhere).
 *
 * The bound, 2^48 bytes (256 TiB) per buffer, is more than any node holds, and it keeps the
 * sums the model layer forms from these products (its activation arena adds up fewer than
 * 2^15 such terms: at most 1024 layers of a few dozen buffers) below 2^63. */
#include <inttypes.h>
#include <stdio.h>

#include "train/train_internal.h"

#define MAX_BUFFER_BYTES (1ull << 48)

/* Fails when f[0] x ... x f[n-1] x 4 bytes (fp32 or int32 elements) wraps around or exceeds
 * MAX_BUFFER_BYTES; `what` names the keys the factors come from. */
static ch_status bounded(const char *what, int n, const uint64_t *f) {
  uint64_t bytes = 4;
  int wrapped = 0;
  for (int i = 0; i < n; i++) wrapped |= __builtin_mul_overflow(bytes, f[i], &bytes);
  if (!wrapped && bytes <= MAX_BUFFER_BYTES) return CH_OK;
  char factors[160];
  int len = 0;
  for (int i = 0; i < n && len < (int)sizeof factors; i++)
    len += snprintf(factors + len, sizeof factors - (size_t)len, "%" PRIu64 " x ", f[i]);
  return CH_FAIL(CH_ERR_CONFIG, "%s: %s4 bytes %s; a buffer may take at most 256 TiB", what,
                 factors, wrapped ? "does not fit in 64 bits" : "is too large");
}

#define BOUNDED(what, ...) \
  bounded(what, (int)(sizeof((uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)), (uint64_t[]){__VA_ARGS__})

ch_status trainer_check_sizes(const ch_config *c, const ch_batch_plan *plan,
                              const ch_ckpt_model_info *info) {
  const ch_model_cfg *m = &c->model;
  /* Rows held at once: the rank's part of a batch, or a validation chunk. */
  uint64_t rows = (uint64_t)(plan->local_max > plan->max_batch ? plan->local_max : plan->max_batch);
  uint64_t mb = (uint64_t)plan->max_batch;
  if (m->type == CH_MODEL_MLP) {
    uint64_t in = (uint64_t)info->features, out = (uint64_t)info->classes;
    uint64_t h = m->depth > 0 ? (uint64_t)m->hidden : out, wide = h;
    wide = in > wide ? in : wide;
    wide = out > wide ? out : wide;
    CH_CHECK(BOUNDED("train.batch_size / ranks x the data's features (input rows)", rows, in));
    CH_CHECK(BOUNDED("model.hidden x the data's features (first layer)", h, in));
    CH_CHECK(BOUNDED("model.depth x model.hidden x model.hidden (hidden layers)",
                     (uint64_t)m->depth, (uint64_t)m->hidden, (uint64_t)m->hidden));
    CH_CHECK(BOUNDED("model.hidden x the data's classes (output layer)", h, out));
    CH_CHECK(BOUNDED("micro-batch x (2 x model.depth + 4) x the widest layer (activations)", mb,
                     2 * (uint64_t)m->depth + 4, wide));
    return CH_OK;
  }
  uint64_t V = m->vocab_size > 0 ? (uint64_t)m->vocab_size : (uint64_t)info->classes;
  uint64_t T = (uint64_t)m->context, C = (uint64_t)m->n_embd, L = (uint64_t)m->n_layer;
  CH_CHECK(BOUNDED("train.batch_size / ranks x (model.context + 1) (token windows)", rows, T + 1));
  CH_CHECK(BOUNDED("model.vocab_size x model.n_embd (token embedding)", V, C));
  CH_CHECK(BOUNDED("model.context x model.n_embd (position embedding)", T, C));
  CH_CHECK(BOUNDED("model.n_layer x 12 x model.n_embd x model.n_embd (blocks)", L, 12, C, C));
  CH_CHECK(BOUNDED("micro-batch x model.context x model.vocab_size (logits)", mb, T, V));
  CH_CHECK(BOUNDED("micro-batch x model.n_layer x model.n_head x model.context x model.context "
                   "(attention)", mb, L, (uint64_t)m->n_head, T, T));
  /* About 16 activations of width n_embd per token per block (4 of them 4 x wider). */
  CH_CHECK(BOUNDED("micro-batch x model.n_layer x model.context x model.n_embd x 32 "
                   "(block activations)", mb, L, T, C, 32));
  return CH_OK;
}
