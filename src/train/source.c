/* The trainer's view of its data: samples of a classification dataset (rows) or of a token
 * dataset (windows of context + 1 tokens), read by sample index. The model type decides. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/log.h"
#include "train/train_internal.h"

struct source {
  ch_dataset *rows;
  ch_tokens *tokens;
  int train; /* the train split (describes the unigram baseline) */
};

ch_status source_open(const ch_config *cfg, const ch_group *g, const char *split,
                      source **out) {
  source *s = calloc(1, sizeof *s);
  if (!s) return CH_FAIL(CH_ERR_NOMEM, "data source");
  s->train = !strcmp(split, "train");
  ch_status st = cfg->model.type == CH_MODEL_GPT
                     ? ch_tokens_open(g, cfg->data.path, split, cfg->model.context, &s->tokens)
                     : ch_dataset_open(g, cfg->data.path, split, &s->rows);
  if (st == CH_OK) *out = s;
  else free(s);
  return st;
}

void source_close(source *s) {
  if (!s) return;
  ch_dataset_close(s->rows);
  ch_tokens_close(s->tokens);
  free(s);
}

int64_t source_samples(const source *s) {
  return s->tokens ? ch_tokens_windows(s->tokens) : ch_dataset_rows(s->rows);
}

int64_t source_features(const source *s) {
  return s->tokens ? 0 : ch_dataset_features(s->rows);
}

int64_t source_classes(const source *s) {
  return s->tokens ? ch_tokens_vocab(s->tokens) : ch_dataset_classes(s->rows);
}

ch_status source_read(source *s, const int64_t *samples, int64_t n, float *x, int32_t *y) {
  return s->tokens ? ch_tokens_read(s->tokens, samples, n, y)
                   : ch_dataset_read(s->rows, samples, n, x, y);
}

void source_describe(const source *s, char *buf, size_t size) {
  if (s->tokens) {
    int n = snprintf(buf, size, "%lld tokens in %lld windows, vocabulary %lld",
                     (long long)ch_tokens_count(s->tokens), (long long)ch_tokens_windows(s->tokens),
                     (long long)ch_tokens_vocab(s->tokens));
    double h = ch_tokens_unigram_entropy(s->tokens);
    if (s->train && !isnan(h) && n > 0 && (size_t)n < size) /* the loss to beat: a model ignoring context */
      snprintf(buf + n, size - (size_t)n, ", unigram entropy %.4f nats/token", h);
  }
  else {
    int n = snprintf(buf, size, "%lld rows x %lld features, %d classes",
                     (long long)ch_dataset_rows(s->rows), (long long)ch_dataset_features(s->rows),
                     ch_dataset_classes(s->rows));
    /* string labels: the first class names, once (with the train split) */
    const char *const *names = s->train ? ch_dataset_class_names(s->rows) : NULL;
    int classes = ch_dataset_classes(s->rows), shown = names ? (classes < 4 ? classes : 4) : 0;
    for (int c = 0; c < shown && n > 0 && (size_t)n < size; c++)
      n += snprintf(buf + n, size - (size_t)n, "%s%.40s", c ? ", " : " (", names[c]);
    if (names && n > 0 && (size_t)n < size)
      snprintf(buf + n, size - (size_t)n, "%s)", classes > shown ? ", ..." : "");
  }
}

ch_status source_model_info(const ch_config *cfg, const source *s, ch_ckpt_model_info *out) {
  memset(out, 0, sizeof *out);
  out->model = cfg->model;
  out->features = source_features(s);
  out->classes = source_classes(s);
  snprintf(out->data_path, sizeof out->data_path, "%s", cfg->data.path);
  snprintf(out->tokenizer, sizeof out->tokenizer, "none");
  if (!s->tokens) { /* string labels: their names travel with the model */
    const char *const *names = ch_dataset_class_names(s->rows);
    if (ch_ckpt_set_class_names(out, names, names ? ch_dataset_classes(s->rows) : 0) != CH_OK) {
      CH_WARN("%s: %s; checkpoints will hold class ids only", cfg->data.path, ch_error_message());
      ch_error_clear();
    }
    return CH_OK;
  }
  ch_tokenizer *tok;
  CH_CHECK(ch_tokenizer_load(cfg->data.path, &tok));
  snprintf(out->tokenizer, sizeof out->tokenizer, "%s", ch_tokenizer_name(tok));
  ch_tokenizer_destroy(tok);
  return CH_OK;
}
