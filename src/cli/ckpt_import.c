/* `cohort ckpt import SRC OUT_DIR`: a Hugging Face GPT-2 as a cohort checkpoint of step 0 (the
 * parameters only; docs/checkpoint-format.md, "Hugging Face"). Serial: no MPI (the checkpoint
 * is committed over ch_group_self, the same file and commit as a training run's). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cohort/ckpt.h"
#include "cohort/config.h"
#include "cohort/model.h"
#include "cohort/tokenizer.h"
#include "cohort_build.h"

typedef struct import_args {
  const char *src, *out, *tokenizer, *data;
  int n_head;
} import_args;

/* Returns 0, or 2 after a message. */
static int parse(int argc, char **argv, import_args *a) {
  memset(a, 0, sizeof *a);
  int pos = 0;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    int has_value = i + 1 < argc;
    if (!strcmp(s, "--n-head") && has_value) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (!*argv[i] || *end || v < 1 || v > 1024) {
        fprintf(stderr, "cohort ckpt import: --n-head: expected an integer in [1, 1024], got '%s'\n",
                argv[i]);
        return 2;
      }
      a->n_head = (int)v;
    } else if (!strcmp(s, "--tokenizer") && has_value) {
      a->tokenizer = argv[++i];
      if (strcmp(a->tokenizer, "byte") != 0 && strcmp(a->tokenizer, "gpt2") != 0) {
        fprintf(stderr, "cohort ckpt import: --tokenizer: expected byte or gpt2, got '%s'\n",
                a->tokenizer);
        return 2;
      }
    } else if (!strcmp(s, "--data") && has_value) {
      a->data = argv[++i];
    } else if (s[0] == '-') {
      fprintf(stderr, "cohort ckpt import: unknown option or missing value: '%s'\n", s);
      return 2;
    } else if (pos < 2) {
      *(pos++ ? &a->out : &a->src) = s;
    } else {
      fprintf(stderr, "cohort ckpt import: unexpected argument '%s'\n", s);
      return 2;
    }
  }
  if (pos < 2) {
    fprintf(stderr, "cohort ckpt import: SRC and OUT_DIR are required\n");
    return 2;
  }
  return 0;
}

/* The tokenizer the model uses, into info->tokenizer and info->data_path: --data's (its kind must
 * agree with --tokenizer, its vocabulary fit the model's), --tokenizer, or the usual one for the
 * vocabulary. Returns 0, or 2 (1: the data cannot be read) after a message. */
static int choose_tokenizer(const import_args *a, ch_ckpt_model_info *info) {
  const char *kind = a->tokenizer;
  int64_t V = info->model.vocab_size;
  if (a->data) {
    ch_tokenizer *tok;
    if (ch_tokenizer_load(a->data, &tok) != CH_OK) {
      fprintf(stderr, "cohort ckpt import: --data: %s\n", ch_error_message());
      return 1;
    }
    const char *name = ch_tokenizer_name(tok);
    int64_t vocab = ch_tokenizer_vocab(tok);
    int rc = 0;
    if (kind && strcmp(kind, name) != 0) {
      fprintf(stderr, "cohort ckpt import: --tokenizer %s, but %s holds %s tokens\n", kind,
              a->data, name);
      rc = 2;
    } else if (vocab > V) {
      fprintf(stderr, "cohort ckpt import: %s's %s tokenizer has %" PRId64 " tokens, the model's "
              "vocabulary only %" PRId64 "\n", a->data, name, vocab, V);
      rc = 2;
    }
    kind = name; /* static text */
    ch_tokenizer_destroy(tok);
    if (rc) return rc;
    snprintf(info->data_path, sizeof info->data_path, "%s", a->data);
  }
  if (!kind) kind = V >= 50257 ? "gpt2" : V == 256 ? "byte" : NULL;
  if (!kind) {
    fprintf(stderr, "cohort ckpt import: a vocabulary of %" PRId64 " tokens is neither the byte "
            "tokenizer's (256) nor GPT-2's (50257): name it with --tokenizer byte|gpt2 or "
            "--data DATA.h5\n", V);
    return 2;
  }
  snprintf(info->tokenizer, sizeof info->tokenizer, "%s", kind);
  return 0;
}

/* The stored config (for people and `cohort ckpt inspect`): the defaults with the imported
 * model's keys, and the data path when known. malloc'ed; NULL when out of memory. */
static char *config_text(const ch_ckpt_model_info *info) {
  ch_config cfg;
  ch_config_defaults(&cfg);
  const ch_model_cfg *m = &info->model; /* the GPT's keys; the MLP's keep their defaults */
  cfg.model.type = m->type;
  cfg.model.n_layer = m->n_layer;
  cfg.model.n_head = m->n_head;
  cfg.model.n_embd = m->n_embd;
  cfg.model.context = m->context;
  cfg.model.vocab_size = m->vocab_size;
  snprintf(cfg.data.path, sizeof cfg.data.path, "%s", info->data_path);
  return ch_config_to_yaml(&cfg);
}

int cli_ckpt_import(int argc, char **argv, void (*usage)(FILE *out)) {
  import_args a;
  if (parse(argc, argv, &a)) {
    usage(stderr);
    return 2;
  }
  char **existing = NULL;
  int nexisting = 0;
  if (ch_ckpt_list(a.out, &existing, &nexisting) == CH_OK && nexisting > 0) {
    fprintf(stderr, "cohort ckpt import: %s already holds %d checkpoint%s (%s): import into a new "
            "or empty directory\n", a.out, nexisting, nexisting == 1 ? "" : "s", existing[0]);
    ch_ckpt_list_free(existing, nexisting);
    return 2;
  }
  ch_ckpt_model_info info;
  ch_model *m = NULL;
  float *params = NULL;
  int ignored = 0, rc = 1;
  char *config = NULL;
  ch_status st = ch_ckpt_hf_read(a.src, a.n_head, &info, &m, &params, &ignored);
  if (st != CH_OK) {
    fprintf(stderr, "cohort ckpt import: %s\n", ch_error_message());
    return st == CH_ERR_INVALID ? 2 : 1;
  }
  if ((rc = choose_tokenizer(&a, &info))) goto out;
  rc = 1;
  ch_ckpt_meta meta = {.world_size = 1, .model = info};
  snprintf(meta.strategy, sizeof meta.strategy, "none");
  snprintf(meta.version, sizeof meta.version, "%s", COHORT_VERSION);
  time_t now = time(NULL);
  struct tm tm;
  strftime(meta.created, sizeof meta.created, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
  if (!(meta.config = config = config_text(&info))) {
    fprintf(stderr, "cohort ckpt import: out of memory\n");
    goto out;
  }
  char path[CH_PATH_MAX * 2];
  if (ch_ckpt_commit_params(a.out, ch_model_layout(m), params, &meta, path, sizeof path) != CH_OK) {
    fprintf(stderr, "cohort ckpt import: %s\n", ch_error_message());
    goto out;
  }
  const ch_model_cfg *mc = &info.model;
  printf("imported %s: gpt, n_layer %d, n_head %d, n_embd %d, context %d, vocab %" PRId64
         ", tokenizer %s; %d tensors, %d other tensor%s ignored\n", a.src, mc->n_layer, mc->n_head,
         mc->n_embd, mc->context, mc->vocab_size, info.tokenizer,
         ch_model_layout(m)->nparams, ignored, ignored == 1 ? "" : "s");
  printf("wrote %s (step 0, no optimizer state; train from it with run.init_from=%s)\n", path, a.out);
  rc = 0;
out:
  free(config);
  ch_free_aligned(params);
  ch_model_destroy(m);
  return rc;
}
