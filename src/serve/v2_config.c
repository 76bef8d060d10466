/* Triton's model configuration extension (see v2.h, v2_model_config): the model's ModelConfig
 * as JSON, the way Triton prints it (int64 fields as numbers), with the fields its clients
 * read: perf_analyzer takes max_batch_size and, when it is > 0, drops the first dim of the
 * metadata's shapes as the batch; tritonclient's get_model_config returns the object. */
#include <string.h>

#include "serve/v2.h"

static void put_str(jsonw *w, const char *s) { jsonw_str(w, s, s ? strlen(s) : 0); }

/* Triton's name of a datatype in a model configuration ("TYPE_FP32"; BYTES is TYPE_STRING). */
static const char *config_type(v2_dtype t) {
  static const char *const names[CH_V2_NDTYPES] = {
      "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
      "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16",
      "TYPE_FP32", "TYPE_FP64", "TYPE_BF16", "TYPE_STRING"};
  return (unsigned)t < CH_V2_NDTYPES ? names[t] : "TYPE_INVALID";
}

/* One tensor of "input" or "output": its dims without the batch dim when the model batches. */
static void put_tensor(jsonw *w, const v2_tensor_meta *t, int batched, int is_input) {
  int nd = t->ndim < 0 ? 0 : t->ndim > CH_V2_MAX_DIMS ? CH_V2_MAX_DIMS : t->ndim;
  int first = batched && nd > 0 && t->shape[0] == -1 ? 1 : 0;
  jsonw_raw(w, "{\"name\":", 8);
  put_str(w, t->name);
  jsonw_fmt(w, ",\"data_type\":\"%s\"", config_type(t->dtype));
  if (is_input) jsonw_raw(w, ",\"format\":\"FORMAT_NONE\"", 23);
  jsonw_raw(w, ",\"dims\":[", 9);
  for (int d = first; d < nd; d++) jsonw_fmt(w, "%s%lld", d > first ? "," : "", (long long)t->shape[d]);
  /* Triton needs at least one dim: a per-row scalar is dims [1] reshaped to []. */
  if (first == nd) jsonw_raw(w, "1],\"reshape\":{\"shape\":[]}", 25);
  else jsonw_raw(w, "]", 1);
  jsonw_raw(w, ",\"is_shape_tensor\":false", 24);
  if (is_input) jsonw_raw(w, ",\"allow_ragged_batch\":false,\"optional\":false", 44);
  else jsonw_raw(w, ",\"label_filename\":\"\"", 20);
  jsonw_raw(w, "}", 1);
}

static void put_tensors(jsonw *w, const char *key, const v2_tensor_meta *t, int n, int batched,
                        int is_input) {
  jsonw_fmt(w, ",\"%s\":[", key);
  for (int i = 0; i < n; i++) {
    if (i) jsonw_raw(w, ",", 1);
    put_tensor(w, &t[i], batched, is_input);
  }
  jsonw_raw(w, "]", 1);
}

char *v2_model_config(const char *model, const char *platform, int max_batch_size,
                      int64_t max_queue_delay_us, const v2_tensor_meta *inputs, int nin,
                      const v2_tensor_meta *outputs, int nout) {
  int batched = max_batch_size > 0;
  jsonw w = {0};
  jsonw_raw(&w, "{\"name\":", 8);
  put_str(&w, model);
  jsonw_raw(&w, ",\"platform\":", 12);
  put_str(&w, platform);
  jsonw_fmt(&w, ",\"backend\":\"cohort\",\"version_policy\":{\"latest\":{\"num_versions\":1}},"
                "\"max_batch_size\":%d", batched ? max_batch_size : 0);
  put_tensors(&w, "input", inputs, nin, batched, 1);
  put_tensors(&w, "output", outputs, nout, batched, 0);
  if (batched)
    jsonw_fmt(&w, ",\"dynamic_batching\":{\"preferred_batch_size\":[],"
                  "\"max_queue_delay_microseconds\":%lld}", (long long)max_queue_delay_us);
  jsonw_raw(&w, ",\"parameters\":{}}", 17);
  return jsonw_finish(&w);
}
