/* What every model family implements behind include/cohort/model.h. A model owns its spec
 * table layout and activation arena; src/nn/model.c dispatches on cfg->type, checks and
 * stages the host batch, and keeps the loss/accuracy accumulators. Families run every op
 * through m->be (cohort/backend.h): no host code between ops, so any backend runs them. */
#pragma once
#include "cohort/model.h"

typedef struct model_ops {
  const char *name;
  void (*destroy)(ch_model *m);
  /* Host-side check of a batch before it is staged (token range); NULL: none. */
  ch_status (*check)(const ch_model *m, const int32_t *y, int batch);
  /* Logits of the batch in the arena. x, y: staged (backend memory). */
  ch_status (*forward)(ch_model *m, const float *params, const float *x, const int32_t *y,
                       int batch, const float **logits);
  /* Adds the loss summed over the batch's targets to *loss and the argmax hits to *correct
   * (both backend memory). */
  ch_status (*eval)(ch_model *m, const float *params, const float *x, const int32_t *y, int batch,
                    const ch_unit_hook *hook, double *loss, int64_t *correct);
  /* Adds the summed loss to *loss (backend memory). */
  ch_status (*train_step)(ch_model *m, const float *params, float *grads, const float *x,
                          const int32_t *y, int batch, float loss_scale, const ch_unit_hook *hook,
                          double *loss);
} model_ops;

/* The model's backend accumulators: [0] training loss, [1] eval loss, [2] eval correct. */
typedef struct model_stats {
  double train_loss, eval_loss;
  int64_t eval_correct;
} model_stats;

struct ch_model {
  const model_ops *ops;
  const ch_backend *be;
  ch_layout layout;
  int max_batch;
  int64_t sample_floats, sample_ints, targets; /* per sample, see model.h */
  size_t arena_bytes;
  model_stats *stats;          /* backend memory */
  float *x_stage;              /* backend staging for host batches (unused on the CPU) */
  int32_t *y_stage;
  void *impl; /* the family's own state */
};

/* Family constructors: fill m->layout, sample shape, arena_bytes, impl and ops; allocate
 * through m->be. */
ch_status mlp_init(ch_model *m, const ch_model_cfg *cfg, int64_t in_features, int64_t classes);
ch_status gpt_init(ch_model *m, const ch_model_cfg *cfg, int64_t vocab);

/* Rejects a batch outside [0, max_batch]. */
ch_status model_check_batch(const ch_model *m, int batch);

/* The MLP's hidden activation (ch_activation); -1 when `m` is not an MLP. */
int mlp_activation(const ch_model *m);

/* One linear layer of an MLP as a tensor-parallel rank holds it: weight [out, in] and bias
 * (views into the rank's buffer), out_full the layer's whole output width, `partial` when its
 * output is a partial sum over the ranks (split by inputs: the bias is added once, after the
 * sum, param_after_reduce). */
typedef struct mlp_layer_view {
  const float *w, *b;
  int in, out, out_full, partial;
} mlp_layer_view;
/* The layers of `local` (a slice of m's spec table, ch_tp_layout) over `p`, in order: mlp.c
 * reads its own table, so no other file knows its parameter order. `out` holds
 * mlp_layers(m) entries. Errors: CH_ERR_INVALID (not an MLP, or not a slice of its table). */
ch_status mlp_view_slice(const ch_model *m, const ch_layout *local, const float *p,
                         mlp_layer_view *out);
/* Linear layers of the MLP (depth + 1); 0 when `m` is not an MLP. */
int mlp_layers(const ch_model *m);

/* Whether parameter i of `l` is a bias added AFTER a tensor-parallel sum (so one rank adds it):
 * a replicated bias whose weight (the row before it in the spec table) is split. A split
 * weight with a split bias is column-parallel (each rank adds its part of the bias). */
int param_after_reduce(const ch_layout *l, int i);
