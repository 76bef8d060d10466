/* Serving schemas (include/cohort/model.h, "Serving schemas"): a model family's inputs and
 * outputs as tensors, from the model's own sizes. The serving front ends show and check these;
 * a new family adds its entry here. */
#include <string.h>

#include "cohort/model.h"

static ch_io_tensor tensor(const char *name, ch_io_dtype dtype, int ndim, int64_t d0, int64_t d1) {
  ch_io_tensor t = {.name = name, .dtype = dtype, .ndim = ndim, .shape = {d0, d1}};
  return t;
}

ch_status ch_model_io(const ch_model *m, ch_io_schema *out) {
  memset(out, 0, sizeof *out);
  const char *family = ch_model_name(m);
  if (!strcmp(family, "mlp")) {
    /* The classes are the rows of the last layer's weight (its bias follows it). */
    const ch_layout *l = ch_model_layout(m);
    int64_t features = ch_model_sample_floats(m), classes = l->params[l->nparams - 2].shape[0];
    out->platform = "cohort_mlp";
    out->ninputs = 1;
    out->inputs[0] = tensor("input", CH_IO_FP32, 2, -1, features);
    out->noutputs = 2;
    out->outputs[0] = tensor("logits", CH_IO_FP32, 2, -1, classes);
    out->outputs[1] = tensor("label", CH_IO_INT32, 1, -1, 0);
    return CH_OK;
  }
  if (!strcmp(family, "gpt")) {
    out->platform = "cohort_gpt";
    out->ninputs = 1;
    out->inputs[0] = tensor("input_ids", CH_IO_INT32, 1, -1, 0);
    out->noutputs = 2;
    out->outputs[0] = tensor("logits", CH_IO_FP32, 1, ch_model_vocab(m), 0);
    out->outputs[1] = tensor("next_token", CH_IO_INT32, 1, 1, 0);
    return CH_OK;
  }
  return CH_FAIL(CH_ERR_INVALID, "a '%s' model has no serving schema", family);
}

ch_status ch_model_io_add_class_names(ch_io_schema *io) {
  if (!io->platform || strcmp(io->platform, "cohort_mlp") || io->noutputs != 2)
    return CH_FAIL(CH_ERR_INVALID, "class names apply to the MLP's outputs (logits, label) only");
  io->outputs[io->noutputs++] = tensor("class_name", CH_IO_BYTES, 1, -1, 0);
  return CH_OK;
}
