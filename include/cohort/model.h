/* Models built from the config: a parameter spec table plus forward/backward written once over
 * the backend seam (cohort/backend.h). A model lives on the backend it is created on: it owns
 * its activation arena there; parameters and gradients are passed in (flat buffers laid out by
 * ch_model_layout, in that backend's memory), so strategies decide where they live. Batches
 * (x, y) are host memory: the model checks them and stages them onto the backend (the CPU
 * backend reads them in place). */
#pragma once
#include <stdint.h>
#include "cohort/backend.h"
#include "cohort/status.h"
#include "cohort/tensor.h"

/* How a strategy sees a model's passes unit by unit (units as in the spec table). Every callback
 * may be NULL; so may the hook.
 *   fetch:      before the model reads the unit's parameters (ZeRO-3 gathers them here);
 *   release:    the model is done reading them for now; `last` when no later use in this pass
 *               (backward, or a forward-only pass) follows, else it may fetch them again;
 *   grad_ready: every gradient of the unit is final for this micro-batch; units complete in
 *               reverse order. DDP starts bucket allreduces here, ZeRO reduce-scatters. */
typedef struct ch_unit_hook {
  ch_status (*fetch)(void *ctx, int unit);
  ch_status (*release)(void *ctx, int unit, int last);
  ch_status (*grad_ready)(void *ctx, int unit);
  void *ctx;
} ch_unit_hook;

/* The callbacks with a NULL-safe front (for model implementations). */
CH_API ch_status ch_hook_fetch(const ch_unit_hook *h, int unit);
CH_API ch_status ch_hook_release(const ch_unit_hook *h, int unit, int last);
CH_API ch_status ch_hook_grad_ready(const ch_unit_hook *h, int unit);

typedef enum ch_model_type { CH_MODEL_MLP = 0, CH_MODEL_GPT } ch_model_type;
typedef enum ch_activation { CH_ACT_RELU = 0, CH_ACT_GELU } ch_activation;

/* What the GPT computes beyond its spec table, fixed (the Hugging Face export and import check
 * and state them: config.json's layer_norm_epsilon and activation_function): LayerNorm's
 * epsilon (torch's default, as GPT-2) and GELU's tanh approximation (HF "gelu_new"), the MLP
 * width 4 n_embd, the LM head tied to wte. */
#define CH_GPT_LN_EPS 1e-5f

/* The architecture (the model.* keys of the training config). */
typedef struct ch_model_cfg {
  int type;            /* ch_model_type */
  int depth;           /* hidden layers (MLP) */
  int hidden;          /* hidden width (MLP) */
  int activation;      /* ch_activation (MLP) */
  int n_layer, n_head, n_embd; /* GPT blocks, heads, width */
  int context;         /* GPT context length (tokens) */
  int64_t vocab_size;  /* GPT vocabulary; 0 = the dataset's */
} ch_model_cfg;

typedef struct ch_model ch_model;

/* Builds, on backend `be`, the model described by cfg (type mlp or gpt) with activations for micro-batches
 * of up to `max_batch` samples. `in_features` and `classes` come from the dataset: for the MLP
 * the float features per row and the number of classes; for the GPT in_features is ignored and
 * `classes` is the dataset's vocabulary (cfg->vocab_size, when set, must be >= it). Errors:
 * CH_ERR_CONFIG naming the key (bad shape, n_embd not divisible by n_head), CH_ERR_NOMEM.
 * max_batch 0 builds the spec table and layout only (no activation arena; no forward).
 * Free with ch_model_destroy. */
CH_API ch_status ch_model_create(const ch_backend *be, const ch_model_cfg *cfg,
                                 int64_t in_features, int64_t classes, int max_batch,
                                 ch_model **out);
CH_API void ch_model_destroy(ch_model *m);

/* The parameter spec table and its flat layout (owned by the model). */
CH_API const ch_layout *ch_model_layout(const ch_model *m);
/* The backend the model runs on. */
CH_API const ch_backend *ch_model_backend(const ch_model *m);
/* Bytes of the activation arena. */
CH_API size_t ch_model_activation_bytes(const ch_model *m);
CH_API int ch_model_max_batch(const ch_model *m);
/* "mlp" or "gpt". */
CH_API const char *ch_model_name(const ch_model *m);

/* The shape of one sample. A batch is x [batch, sample_floats] (float inputs; MLP: the
 * features, GPT: none, x may be NULL) and y [batch, sample_ints] (int32; MLP: the label, GPT:
 * a window of context + 1 tokens whose first `context` are the inputs and last `context` the
 * targets). `targets` is the number of predictions, i.e. loss terms, per sample (MLP 1, GPT
 * context): the trainer scales by 1 / (batch * targets) to get the mean loss. */
CH_API int64_t ch_model_sample_floats(const ch_model *m);
CH_API int64_t ch_model_sample_ints(const ch_model *m);
CH_API int64_t ch_model_targets(const ch_model *m);

/* Forward only: *logits gets [batch * targets, classes] (GPT: [batch * context, vocab], one row
 * per input token) in a model-owned backend buffer (host memory on the CPU backend) valid until
 * the next call. Samples as above (GPT
 * windows: every token, the last included, must be in the vocabulary). */
CH_API ch_status ch_model_forward(ch_model *m, const float *params, const float *x, const int32_t *y,
                           int batch, const float **logits);

/* Summed loss over the batch's batch * targets predictions and the number of them whose argmax
 * is the target (no backward; one download of both). `hook` (fetch/release only; may be NULL) as in training. */
CH_API ch_status ch_model_eval(ch_model *m, const float *params, const float *x, const int32_t *y,
                        int batch, const ch_unit_hook *hook, double *loss_sum, int64_t *correct);

/* Forward + backward of loss_scale * (sum of per-target losses). Gradients are ADDED into
 * `grads` (same layout as params), so micro-batches accumulate. `hook` (may be NULL) sees each
 * unit fetched and released around its use and is told when its gradient is final; with
 * batch == 0 no compute happens and nothing is fetched, but grad_ready still fires for every
 * unit (a rank with no rows still takes part in gradient communication).
 * The unscaled summed loss is ADDED to the model's loss accumulator, a backend buffer: no host
 * read per micro-batch; read it once per step with ch_model_take_loss. */
CH_API ch_status ch_model_train_step(ch_model *m, const float *params, float *grads, const float *x,
                              const int32_t *y, int batch, float loss_scale,
                              const ch_unit_hook *hook);
/* The loss summed by ch_model_train_step since the last take (one download), then resets the
 * accumulator to 0. */
CH_API ch_status ch_model_take_loss(ch_model *m, double *loss_sum);

/* ---- Generation (GPT) ------------------------------------------------------------------ */

/* Keys and values of every layer for `slots` sequences of up to model.context tokens, so that
 * each new token costs one incremental step. Errors: CH_ERR_INVALID (not a GPT), CH_ERR_NOMEM. */
typedef struct ch_kv_cache ch_kv_cache;
CH_API ch_status ch_kv_cache_create(const ch_model *m, int slots, ch_kv_cache **out);
CH_API void ch_kv_cache_destroy(ch_kv_cache *kv);
/* Empties a slot (its sequence starts again at position 0). */
CH_API void ch_kv_cache_reset(ch_kv_cache *kv, int slot);
/* Tokens held by a slot. */
CH_API int ch_kv_cache_length(const ch_kv_cache *kv, int slot);
/* New tokens one decoding step may take, all its sequences together: model.context + slots (a
 * whole prompt, or a prompt chunk beside one token of every other slot). */
CH_API int ch_kv_cache_max_rows(const ch_kv_cache *kv);

/* Runs tokens[0..n) (host memory) through the model after the slot's cached sequence, appends
 * their keys and values to the cache, and writes the next-token logits [vocab] after the last
 * of them to `logits` (host memory). n >= 1 (a prompt is one call, then one token per step). Errors: CH_ERR_INVALID
 * when the sequence would exceed model.context or a token is outside the vocabulary. */
CH_API ch_status ch_model_decode(ch_model *m, const float *params, ch_kv_cache *kv, int slot,
                          const int32_t *tokens, int n, float *logits);

/* One step of continuous batching: sequence e (e < nseq) appends counts[e] >= 1 tokens to KV
 * slot slots[e], its tokens following those of sequence e - 1 in `tokens` (host memory). All
 * the sequences' rows go through the model's GEMMs together (one pass over the weights);
 * attention runs per sequence over its own slot. logits (host memory, may be NULL: nothing is
 * computed past the blocks) gets [nseq, vocab]: row e the next-token logits after sequence
 * e's last token. Equals ch_model_decode of each sequence alone, up to GEMM rounding. Errors
 * (CH_ERR_INVALID, the cache unchanged): a slot out of range or named twice, counts[e] < 1, a
 * sequence past model.context, more than ch_kv_cache_max_rows tokens in all, a token outside
 * the vocabulary. */
CH_API ch_status ch_model_decode_batch(ch_model *m, const float *params, ch_kv_cache *kv,
                                       int nseq, const int *slots, const int *counts,
                                       const int32_t *tokens, float *logits);

/* How the next token is drawn. temperature <= 0 (or top_k == 1) is greedy: the argmax. Else
 * p ~ softmax(logits / temperature), restricted to the top_k most likely tokens (0 = all),
 * then to the smallest most-likely set whose mass reaches top_p of that (1 = all). Only ids
 * below vocab_real are drawn (the tokenizer's vocabulary when model.vocab_size pads it; 0 = all). */
typedef struct ch_sampling {
  float temperature;
  int top_k;
  float top_p;
  int64_t vocab_real;
} ch_sampling;

/* Draws a token from logits [vocab] with the uniform number u in [0, 1) (the caller's RNG
 * position, so a seed reproduces a generation). Generators draw u for the k-th new token as
 * ch_rng_uniform(seed, CH_SAMPLE_STREAM, k), so `cohort generate --seed S` and a completion
 * request with seed S give the same text. */
#define CH_SAMPLE_STREAM 11
CH_API int32_t ch_sample_token(const float *logits, int64_t vocab, const ch_sampling *s, float u);

/* The vocabulary and context of a GPT (0 for other models). */
CH_API int64_t ch_model_vocab(const ch_model *m);
CH_API int ch_model_context(const ch_model *m);

/* ---- Tensor-parallel execution (serving) ------------------------------------------------
 * A model run on one rank's slice of its weights (ch_tp_layout / ch_ckpt_load_tp): column-
 * parallel layers compute their part of the outputs, row-parallel ones a partial sum that
 * `reduce` adds up over the ranks (one allreduce per pair); the bias of a row-parallel layer
 * is added by the one rank with owns_bias. With one rank (the full layout, reduce NULL) it is
 * the model's own forward. Every call is collective: all ranks make the same calls. */
typedef ch_status (*ch_reduce_fn)(void *ctx, float *x, int64_t n);
typedef struct ch_tp_model ch_tp_model;

/* `m` (a layout-only model is enough) gives the architecture; local/params (borrowed, must
 * outlive the object) this rank's slice. max_batch: MLP rows per call; kv_slots: GPT
 * sequences held at once. Errors: CH_ERR_INVALID (a layout that is not a slice of m's),
 * CH_ERR_NOMEM. */
CH_API ch_status ch_tp_model_create(const ch_model *m, const ch_layout *local, const float *params,
                             int owns_bias, int max_batch, int kv_slots, ch_reduce_fn reduce,
                             void *rctx, ch_tp_model **out);
CH_API void ch_tp_model_destroy(ch_tp_model *t);
/* MLP: logits [batch, classes] (a backend buffer) of host x [batch, features], valid until the
 * next call. */
CH_API ch_status ch_tp_model_logits(ch_tp_model *t, const float *x, int batch, const float **logits);
/* GPT: as ch_model_decode, on KV slot `slot` (reset with ch_tp_model_reset). */
CH_API ch_status ch_tp_model_decode(ch_tp_model *t, int slot, const int32_t *tokens, int n,
                             float *logits);
/* GPT: as ch_model_decode_batch, on this rank's slice (every rank the same step; logits may
 * be NULL on the ranks that do not sample). */
CH_API ch_status ch_tp_model_decode_batch(ch_tp_model *t, int nseq, const int *slots,
                                          const int *counts, const int32_t *tokens,
                                          float *logits);
/* GPT: the most tokens one decode step may take (ch_kv_cache_max_rows); 0 for an MLP. */
CH_API int ch_tp_model_max_rows(const ch_tp_model *t);
CH_API void ch_tp_model_reset(ch_tp_model *t, int slot);
/* MLP rows per call. */
CH_API int ch_tp_model_max_batch(const ch_tp_model *t);
CH_API int ch_tp_model_length(const ch_tp_model *t, int slot);

/* ==== Serving schemas (src/nn/io_schema.c) ===============================================
 * What a model family takes and gives as tensors when served (the KServe V2 metadata and the
 * checks of an inference request): names, datatypes, and shapes with -1 for a variable dim
 * (the batch, a sequence length).
 *   MLP  input FP32 [-1, features] -> logits FP32 [-1, classes], label INT32 [-1], and for a
 *        model trained on string labels class_name BYTES [-1] (the name of each label)
 *   GPT  input_ids INT32 [-1]      -> logits FP32 [vocab] (of the next token), next_token
 *                                     INT32 [1] (its argmax over the tokenizer's ids) */
#define CH_IO_MAX_DIMS 4
#define CH_IO_MAX_TENSORS 4

typedef enum ch_io_dtype { CH_IO_FP32, CH_IO_INT32, CH_IO_BYTES } ch_io_dtype;

typedef struct ch_io_tensor {
  const char *name; /* a static string */
  ch_io_dtype dtype;
  int ndim;
  int64_t shape[CH_IO_MAX_DIMS];
} ch_io_tensor;

typedef struct ch_io_schema {
  const char *platform; /* "cohort_mlp", "cohort_gpt" */
  int ninputs, noutputs;
  ch_io_tensor inputs[CH_IO_MAX_TENSORS], outputs[CH_IO_MAX_TENSORS];
} ch_io_schema;

/* The inputs and outputs of m (a layout-only model is enough) as served. Errors:
 * CH_ERR_INVALID for a family that cannot be served. */
CH_API ch_status ch_model_io(const ch_model *m, ch_io_schema *out);
/* Adds the classifier's named-class output (class_name BYTES [-1]) to an MLP schema from
 * ch_model_io, for a model whose classes have names. Errors: CH_ERR_INVALID (not an MLP
 * schema). */
CH_API ch_status ch_model_io_add_class_names(ch_io_schema *io);
