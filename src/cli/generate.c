/* `cohort generate CHECKPOINT --prompt TEXT ...`: text from a trained GPT, one process. The
 * prompt is one incremental step through the KV cache, then each new token one more; with
 * --no-cache every token recomputes the whole sequence instead (the reference the cached path
 * is tested against). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort/ckpt.h"
#include "cohort/kernels.h"
#include "cohort/model.h"
#include "cohort/rng.h"
#include "cohort/runtime.h"
#include "cohort/tokenizer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: cohort generate CHECKPOINT --prompt TEXT [--max-tokens N] [--temperature T]\n"
          "                       [--top-k K] [--top-p P] [--seed S] [--data DATA.h5] [--no-cache]\n"
          "                       [--device cpu|cuda] [--precision fp32|bf16]\n"
          "\n"
          "CHECKPOINT is a GPT checkpoint file or a checkpoint directory (its `latest`). The\n"
          "tokenizer is the one stored in the training data (the checkpoint's data.path, or\n"
          "--data). Defaults: --max-tokens 64, --temperature 1.0, --top-k 0 (all), --top-p 1.0,\n"
          "--seed 0. --temperature 0 is greedy. The generated text goes to stdout (after the\n"
          "prompt), timing to stderr. --precision bf16 rounds GEMM operands to bfloat16 (on cuda,\n"
          "or on a CPU with AVX-512 BF16: docs/cpu-bf16.md).\n");
}

typedef struct gen_opts {
  ch_config cfg; /* its device and precision keys (--device, --precision) */
  const char *ckpt, *prompt, *data;
  int max_tokens, no_cache;
  ch_sampling sampling;
  uint64_t seed;
} gen_opts;

static int parse(int argc, char **argv, gen_opts *o) {
  *o = (gen_opts){.max_tokens = 64, .sampling = {1.0f, 0, 1.0f}};
  ch_config_defaults(&o->cfg);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    char *end = NULL;
    if (!strcmp(a, "--no-cache")) {
      o->no_cache = 1;
      continue;
    }
    if (a[0] != '-') {
      if (o->ckpt) {
        fprintf(stderr, "cohort generate: unexpected argument '%s'\n", a);
        return 2;
      }
      o->ckpt = a;
      continue;
    }
    if (!v) {
      fprintf(stderr, "cohort generate: %s needs a value\n", a);
      return 2;
    }
    i++;
    if (!strcmp(a, "--prompt")) o->prompt = v;
    else if (!strcmp(a, "--data")) o->data = v;
    else if (!strcmp(a, "--max-tokens")) o->max_tokens = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--temperature")) o->sampling.temperature = strtof(v, &end);
    else if (!strcmp(a, "--top-k")) o->sampling.top_k = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--top-p")) o->sampling.top_p = strtof(v, &end);
    else if (!strcmp(a, "--seed")) o->seed = strtoull(v, &end, 10);
    else if (!strcmp(a, "--device") || !strcmp(a, "--precision")) {
      if (ch_config_set_serve_flag(&o->cfg, a, v) != CH_OK) {
        fprintf(stderr, "cohort generate: %s\n", ch_error_message());
        return 2;
      }
    } else {
      fprintf(stderr, "cohort generate: unknown option '%s'\n", a);
      return 2;
    }
    if (end && (*end || end == v)) {
      fprintf(stderr, "cohort generate: %s: not a number: '%s'\n", a, v);
      return 2;
    }
  }
  const char *bad = !o->ckpt ? "a CHECKPOINT is required"
                    : !o->prompt ? "--prompt is required"
                    : o->max_tokens < 0 ? "--max-tokens must be >= 0"
                    : !(o->sampling.temperature >= 0) ? "--temperature must be >= 0"
                    : o->sampling.top_k < 0 ? "--top-k must be >= 0"
                    : !(o->sampling.top_p > 0 && o->sampling.top_p <= 1) ? "--top-p must be in (0, 1]"
                    : NULL;
  if (bad) {
    fprintf(stderr, "cohort generate: %s\n\n", bad);
    usage(stderr);
    return 2;
  }
  return 0;
}

/* Generates after the prompt; the tokens (prompt first) go to *seq (n_prompt + *n_new). */
static ch_status run(ch_model *m, const float *params, const gen_opts *o, int32_t *seq,
                     int n_prompt, int *n_new, double *prefill_s, double *decode_s) {
  int64_t V = ch_model_vocab(m);
  int ctx = ch_model_context(m);
  float *logits = malloc(sizeof *logits * (size_t)V);
  ch_kv_cache *kv = NULL;
  ch_status st = logits ? ch_kv_cache_create(m, 1, &kv) : CH_FAIL(CH_ERR_NOMEM, "logits");
  int n = n_prompt, fed = 0;
  *n_new = 0;
  double t0 = ch_time();
  while (st == CH_OK && *n_new < o->max_tokens && n < ctx) {
    if (o->no_cache) { /* the whole sequence again, from an empty cache */
      ch_kv_cache_reset(kv, 0);
      fed = 0;
    }
    st = ch_model_decode(m, params, kv, 0, seq + fed, n - fed, logits);
    if (st != CH_OK) break;
    fed = n;
    if (*n_new == 0) *prefill_s = ch_time() - t0;
    float u = ch_rng_uniform(o->seed, CH_SAMPLE_STREAM, (uint64_t)*n_new);
    seq[n++] = ch_sample_token(logits, V, &o->sampling, u);
    (*n_new)++;
  }
  *decode_s = ch_time() - t0 - *prefill_s;
  if (*n_new < o->max_tokens && n >= ctx)
    fprintf(stderr, "cohort generate: stopped at the model's context of %d tokens\n", ctx);
  ch_kv_cache_destroy(kv);
  free(logits);
  return st;
}

int cli_generate(int argc, char **argv) {
  if (cli_help(argc, argv, usage)) return 0;
  gen_opts o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc;
  char path[CH_PATH_MAX * 2 + 16];
  if (cli_resolve_checkpoint("cohort generate", o.ckpt, path, sizeof path)) return 1;
  ch_ckpt_model_info info;
  ch_model *m = NULL;
  float *params = NULL;
  ch_device *dev = NULL;
  const ch_backend *be = NULL;
  ch_tokenizer *tok = NULL;
  int32_t *prompt = NULL, *seq = NULL;
  char *text = NULL;
  rc = 1;
  ch_status st = ch_device_open(&o.cfg.device, &dev);
  if (st != CH_OK) { /* CONFIG: a device or precision this machine cannot run (exit 2) */
    fprintf(stderr, "cohort generate: %s\n", ch_error_message());
    rc = st == CH_ERR_CONFIG ? 2 : 1;
    goto out;
  }
  be = ch_device_backend(dev);
  if (ch_ckpt_load_model(path, be, 1, &info, &m, &params) != CH_OK) goto fail;
  if (info.model.type != CH_MODEL_GPT) {
    fprintf(stderr, "cohort generate: %s holds a '%s' model, not a GPT\n", path, ch_model_name(m));
    goto out;
  }
  const char *data = o.data ? o.data : info.data_path;
  if (ch_tokenizer_load(data, &tok) != CH_OK) {
    fprintf(stderr, "cohort generate: the tokenizer comes from the training data %s (use --data "
            "to name another copy): %s\n", data, ch_error_message());
    goto out;
  }
  if (ch_tokenizer_vocab(tok) > ch_model_vocab(m)) {
    fprintf(stderr, "cohort generate: %s's tokenizer has %lld tokens, the model only %lld\n",
            data, (long long)ch_tokenizer_vocab(tok), (long long)ch_model_vocab(m));
    goto out;
  }
  o.sampling.vocab_real = ch_tokenizer_vocab(tok); /* a padded vocabulary's extra ids: never */
  int64_t np = 0;
  if (ch_tokenizer_encode(tok, o.prompt, strlen(o.prompt), &prompt, &np) != CH_OK) goto fail;
  int ctx = ch_model_context(m);
  if (np < 1 || np >= ctx) {
    fprintf(stderr, "cohort generate: the prompt is %lld tokens; it must be 1 to %d (the "
            "model's context is %d)\n", (long long)np, ctx - 1, ctx);
    goto out;
  }
  seq = malloc(sizeof *seq * (size_t)ctx);
  if (!seq) goto out;
  memcpy(seq, prompt, sizeof *seq * (size_t)np);
  if (ch_blas_init(0) != CH_OK) goto fail;
  int n_new = 0;
  double prefill = 0, decode = 0;
  if (run(m, params, &o, seq, (int)np, &n_new, &prefill, &decode) != CH_OK) goto fail;
  size_t len = 0;
  if (ch_tokenizer_decode(tok, seq, np + n_new, &text, &len) != CH_OK) goto fail;
  fwrite(text, 1, len, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  fprintf(stderr, "cohort generate: %lld prompt tokens in %.3f s, %d new tokens in %.3f s "
          "(%.1f tokens/s, %s)\n", (long long)np, prefill, n_new, decode,
          n_new > 1 ? (n_new - 1) / decode : 0.0, o.no_cache ? "no cache" : "KV cache");
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "cohort generate: %s\n", ch_error_message());
  rc = 1;
out:
  free(text);
  free(seq);
  free(prompt);
  ch_tokenizer_destroy(tok);
  ch_model_destroy(m);
  if (params) ch_op_free(be, params);
  ch_device_close(dev);
  return rc;
}
