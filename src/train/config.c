/* The training config's keys: k_keys below is the single source of truth for every key's
 * name, field, default, range and help, and k_rules for the cross-key rules; the generic engine
 * (src/runtime/keys.c) does the parsing, checking and dumping. */
#include "cohort/config.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/fs.h"
#include "cohort/keys.h"

#define FIELD(f) offsetof(ch_config, f), sizeof(((ch_config *)0)->f)
/* Every integer key has an upper bound that means something (what a buffer, a counter or a
 * product of keys can hold: docs/configuration.md), so no value is ever cut to fit a field. */
#define K_INT_MAX(k, f, d, lo, hi, h) {k, CH_KEY_INT, FIELD(f), d, NULL, lo, hi, 0, 0, 0, h, NULL}
#define K_FLOAT(k, f, d, lo, hi, op, h) \
  {k, CH_KEY_FLOAT, FIELD(f), d, NULL, 0, 0, lo, hi, op, h, NULL}
#define K_BOOL(k, f, d, h) {k, CH_KEY_BOOL, FIELD(f), d, NULL, 0, 0, 0, 0, 0, h, NULL}
#define K_ENUM(k, f, d, c, h) {k, CH_KEY_ENUM, FIELD(f), d, c, 0, 0, 0, 0, 0, h, NULL}
#define K_ENUM_ALIAS(k, f, d, c, a, h) {k, CH_KEY_ENUM, FIELD(f), d, c, 0, 0, 0, 0, 0, h, a}
#define K_STR(k, f, d, h) {k, CH_KEY_STRING, FIELD(f), d, NULL, 0, 0, 0, 0, 0, h, NULL}

/* Steps and samples: train.steps x train.batch_size, the sampler's position, stays far below
 * 2^63 (2^40 x 2^22 = 2^62). */
#define MAX_STEPS 1000000000000LL
#define MAX_BATCH (1LL << 22)

/* Keys of one section must be contiguous: the YAML dump opens each section once. */
static const ch_key_row k_keys[] = {
  K_ENUM("device", device.kind, "cpu", "cpu|cuda",
         "where to compute: cpu, or cuda (one GPU per rank, by local rank; docs/cuda.md)"),
  K_ENUM("precision", device.precision, "fp32", "fp32|bf16",
         "GEMM arithmetic: fp32, or bf16 operands with fp32 accumulation (cuda, or a cpu with "
         "AVX-512 BF16; weights, optimizer state and loss stay fp32)"),
  K_ENUM("model.type", model.type, "mlp", "mlp|gpt", "model family"),
  K_INT_MAX("model.depth", model.depth, "2", 0, 1024, "hidden layers (MLP)"),
  K_INT_MAX("model.hidden", model.hidden, "128", 1, 1 << 20, "hidden width (MLP)"),
  K_ENUM("model.activation", model.activation, "relu", "relu|gelu", "hidden activation (MLP)"),
  K_INT_MAX("model.n_layer", model.n_layer, "4", 1, 1024, "transformer blocks (GPT)"),
  K_INT_MAX("model.n_head", model.n_head, "4", 1, 1024,
            "attention heads, dividing model.n_embd (GPT)"),
  K_INT_MAX("model.n_embd", model.n_embd, "128", 1, 1 << 16, "width (GPT)"),
  K_INT_MAX("model.context", model.context, "64", 1, 1 << 20, "context length in tokens (GPT)"),
  K_INT_MAX("model.vocab_size", model.vocab_size, "0", 0, 1 << 24,
            "vocabulary (GPT); 0 = the dataset's, else >= the dataset's"),
  K_STR("data.path", data.path, "examples/digits/digits.h5", "HDF5 file made by `cohort data`"),
  K_ENUM("optim.type", optim.type, "adamw", "sgd|adamw", "optimizer"),
  K_FLOAT("optim.lr", optim.lr, "1e-3", 0, INFINITY, CH_KEY_LO_OPEN, "peak learning rate"),
  K_FLOAT("optim.weight_decay", optim.weight_decay, "0.0", 0, INFINITY, 0, "weight decay"),
  K_FLOAT("optim.momentum", optim.momentum, "0.9", 0, 1, CH_KEY_HI_OPEN, "SGD momentum"),
  K_FLOAT("optim.beta1", optim.beta1, "0.9", 0, 1, CH_KEY_HI_OPEN, "AdamW first-moment decay"),
  K_FLOAT("optim.beta2", optim.beta2, "0.999", 0, 1, CH_KEY_HI_OPEN, "AdamW second-moment decay"),
  K_FLOAT("optim.eps", optim.eps, "1e-8", 0, INFINITY, CH_KEY_LO_OPEN, "AdamW denominator epsilon"),
  K_FLOAT("optim.grad_clip", optim.grad_clip, "0", 0, INFINITY, 0,
          "max global gradient L2 norm; 0 = off"),
  K_ENUM("optim.schedule", optim.schedule, "constant", "constant|cosine",
         "learning-rate schedule after warmup"),
  K_INT_MAX("optim.warmup_steps", optim.warmup_steps, "0", 0, MAX_STEPS,
            "linear warmup steps (<= train.steps)"),
  K_FLOAT("optim.min_lr", optim.min_lr, "0", 0, INFINITY, 0, "cosine floor (<= optim.lr)"),
  K_INT_MAX("train.steps", train.steps, "100", 1, MAX_STEPS, "optimizer steps"),
  K_INT_MAX("train.batch_size", train.batch_size, "64", 1, MAX_BATCH,
            "global samples per optimizer step"),
  K_INT_MAX("train.micro_batch_size", train.micro_batch_size, "0", 0, MAX_BATCH,
            "samples per rank per micro-step; 0 = no accumulation"),
  K_INT_MAX("train.seed", train.seed, "1234", 0, INT64_MAX, "seed of initialisation and sampling"),
  K_INT_MAX("train.log_every", train.log_every, "10", 1, 1000000, "log every N steps"),
  K_INT_MAX("train.eval_every", train.eval_every, "0", 0, MAX_STEPS,
            "evaluate every N steps; 0 = at the end"),
  K_INT_MAX("train.max_nonfinite_steps", train.max_nonfinite_steps, "5", 1, 1000000,
            "stop with an error after N steps in a row whose loss or gradient norm is not "
            "finite (each is skipped, with a warning)"),
  K_ENUM_ALIAS("parallel.strategy", parallel.strategy, "ddp", "ddp|zero1|zero2|zero3", "fsdp=zero3",
               "data-parallel strategy: replicated (ddp) or ZeRO stage 1/2/3 sharded (fsdp = zero3)"),
  K_FLOAT("parallel.bucket_mb", parallel.bucket_mb, "25", 0, INFINITY, CH_KEY_LO_OPEN,
          "DDP gradient bucket size, MiB"),
  K_FLOAT("parallel.first_bucket_mb", parallel.first_bucket_mb, "1", 0, INFINITY, CH_KEY_LO_OPEN,
          "first bucket size, MiB (small: communication starts early)"),
  K_BOOL("parallel.overlap", parallel.overlap, "true", "allreduce buckets during backward"),
  K_BOOL("parallel.reshard_after_forward", parallel.reshard_after_forward, "true",
         "zero3: drop a unit's gathered parameters after its forward (gather again for backward)"),
  K_INT_MAX("parallel.prefetch", parallel.prefetch, "1", 0, 1,
            "zero3: gather the next unit while the current one computes (0 = off)"),
  K_FLOAT("parallel.eval_keep_mb", parallel.eval_keep_mb, "1024", 0, 1e9, 0,
          "zero3: MiB of gathered parameters an evaluation keeps across its batches (units "
          "beyond are gathered per batch; 0 = every unit per batch)"),
  K_STR("run.dir", run.dir, "runs/default", "run directory: logs, checkpoints"),
  K_STR("run.resume", run.resume, "none",
        "none (start fresh; refused over existing checkpoints) | never (start fresh even then; "
        "their files are kept) | auto (newest valid checkpoint; none there: start fresh; none "
        "readable: refused) | PATH of a checkpoint file"),
  K_STR("run.init_from", run.init_from, "",
        "checkpoint file or directory (its `latest`) whose model weights start this run: fresh "
        "optimizer, step 0, any ranks or strategy; the model keys must match it. A checkpoint "
        "run.resume finds wins (a restarted fine-tune continues); empty = none"),
  K_FLOAT("run.watchdog_timeout", run.watchdog_timeout, "300", 0, INFINITY, 0,
          "seconds a rank may wait in one collective before the job is aborted; 0 = off"),
  K_BOOL("run.tensorboard", run.tensorboard, "false",
         "rank 0 also writes the logged scalars as a TensorBoard event file in run.dir "
         "(docs/monitoring.md)"),
  K_INT_MAX("run.checkpoint.every", run.checkpoint.every, "0", 0, MAX_STEPS,
            "write a checkpoint every N steps (and at the end); 0 = only on preemption"),
  K_INT_MAX("run.checkpoint.keep_last", run.checkpoint.keep_last, "3", 1, 1000000,
            "keep the newest N checkpoints"),
  K_INT_MAX("run.checkpoint.keep_every", run.checkpoint.keep_every, "0", 0, MAX_STEPS,
            "also keep every checkpoint whose step is a multiple of N; 0 = none"),
  K_STR("run.checkpoint.dir", run.checkpoint.dir, "",
        "checkpoint directory; empty = <run.dir>/checkpoints"),
  K_BOOL("serve.after", serve.after, "false",
         "when training ends, serve the trained weights from the same ranks (cohort serve)"),
  K_STR("serve.host", serve.opts.host, "127.0.0.1", "bind address"),
  K_INT_MAX("serve.port", serve.opts.port, "8000", 0, 65535, "port; 0 = any free port"),
  K_STR("serve.model_name", serve.opts.model_name, "", "name in the URLs; empty = the model type"),
  K_STR("serve.api_key", serve.opts.api_key, "", "require Authorization: Bearer KEY; empty = open"),
  K_BOOL("serve.metrics_need_key", serve.opts.metrics_need_key, "false",
         "/metrics requires the API key too (health and readiness never do)"),
  K_INT_MAX("serve.max_batch_size", serve.opts.max_batch_size, "8", 1, 4096,
            "V2 rows per batch, sequences generated at once"),
  K_INT_MAX("serve.max_queue_delay_us", serve.opts.max_queue_delay_us, "2000", 0, 60000000,
            "how long a V2 batch may wait to fill, microseconds"),
  K_INT_MAX("serve.max_queue_size", serve.opts.max_queue_size, "256", 1, 1 << 20,
            "waiting requests before 503"),
  K_FLOAT("serve.timeout", serve.opts.request_timeout, "60", 0, INFINITY, CH_KEY_LO_OPEN,
          "seconds a request may take before 504"),
  K_INT_MAX("serve.max_connections_per_client", serve.opts.max_connections_per_client, "0", 0,
            1 << 20, "connections one client IP address may hold; 0 = half of --max-connections"),
  K_FLOAT("serve.read_deadline", serve.opts.read_deadline, "30", 0, INFINITY, 0,
          "seconds a request's headers and body may take to arrive; slower ones are cut; 0 = off"),
  K_FLOAT("serve.watchdog_timeout", serve.opts.watchdog_timeout, "300", 0, INFINITY, 0,
          "seconds a serving rank may wait in one collective before the job is aborted; 0 = off"),
  K_STR("serve.model_repository", serve.opts.model_repository, "",
        "directory the repository load endpoint may read checkpoints from; empty = the served "
        "checkpoint's directory"),
  K_STR("serve.tls_cert", serve.opts.tls_cert, "",
        "PEM certificate (chain) to serve HTTPS with; empty = plain HTTP (with serve.tls_key)"),
  K_STR("serve.tls_key", serve.opts.tls_key, "",
        "the certificate's unencrypted PEM private key (with serve.tls_cert)"),
  K_STR("serve.access_log", serve.opts.access_log, "",
        "one JSON line per request to this file (- = stderr); empty = none"),
};

/* Cross-key rules, checked after all overrides: value(lo) <= value(hi). */
static const ch_key_rule k_rules[] = {
  {"optim.min_lr", "optim.lr"},
  {"optim.warmup_steps", "train.steps"},
};

/* Each model family's keys: set to other than the default under the other family, they change
 * nothing, and loading warns (not an error: a config may keep both families' settings, as the
 * dump of a resolved config does). */
static const ch_key_scope k_scopes[] = {
  {"model.depth", "model.type", "mlp"},     {"model.hidden", "model.type", "mlp"},
  {"model.activation", "model.type", "mlp"}, {"model.n_layer", "model.type", "gpt"},
  {"model.n_head", "model.type", "gpt"},    {"model.n_embd", "model.type", "gpt"},
  {"model.context", "model.type", "gpt"},   {"model.vocab_size", "model.type", "gpt"},
};

static const ch_key_table k_table = {
  k_keys, (int)(sizeof k_keys / sizeof k_keys[0]),
  k_rules, (int)(sizeof k_rules / sizeof k_rules[0]),
  sizeof(ch_config), "cohort run configuration",
  k_scopes, (int)(sizeof k_scopes / sizeof k_scopes[0]),
};

void ch_config_defaults(ch_config *cfg) {
  memset(cfg, 0, sizeof *cfg); /* whole struct, so equal configs compare equal with memcmp */
  ch_serve_opts_default(&cfg->serve.opts); /* the options that are flags, not keys */
  ch_keys_defaults(&k_table, cfg);
}

ch_status ch_config_set(ch_config *cfg, const char *assignment, const char *origin) {
  CH_CHECK(ch_keys_set(&k_table, cfg, assignment, origin, NULL));
  return CH_OK;
}

ch_status ch_config_validate(const ch_config *cfg) {
  CH_CHECK(ch_keys_validate(&k_table, cfg));
  return CH_OK;
}

ch_status ch_config_load_warn(const char *path, const char *const *overrides, int noverrides,
                              ch_config *cfg, ch_key_warn_fn warn, void *ctx) {
  ch_config tmp;
  ch_config_defaults(&tmp);
  CH_CHECK(ch_keys_load_file(&k_table, &tmp, path, overrides, noverrides, warn, ctx));
  *cfg = tmp;
  return CH_OK;
}

ch_status ch_config_load(const char *path, const char *const *overrides, int noverrides,
                         ch_config *cfg) {
  CH_CHECK(ch_config_load_warn(path, overrides, noverrides, cfg, NULL, NULL));
  return CH_OK;
}

char *ch_config_to_yaml(const ch_config *cfg) { return ch_keys_to_yaml(&k_table, cfg); }

ch_status ch_config_write(const ch_config *cfg, const char *path) {
  char *text = ch_config_to_yaml(cfg);
  if (!text) return CH_FAIL(CH_ERR_NOMEM, "out of memory writing '%s'", path);
  ch_status st = ch_write_file_atomic(path, text, strlen(text));
  free(text);
  return st;
}

ch_optim_cfg ch_config_optim(const ch_config *cfg) {
  ch_optim_cfg o = cfg->optim;
  o.total_steps = cfg->train.steps;
  return o;
}

ch_ckpt_cfg ch_config_ckpt(const ch_config *cfg) {
  ch_ckpt_cfg c;
  memset(&c, 0, sizeof c);
  if (cfg->run.checkpoint.dir[0]) snprintf(c.dir, sizeof c.dir, "%s", cfg->run.checkpoint.dir);
  else snprintf(c.dir, sizeof c.dir, "%s/checkpoints", cfg->run.dir);
  c.every = cfg->run.checkpoint.every;
  c.keep_last = cfg->run.checkpoint.keep_last;
  c.keep_every = cfg->run.checkpoint.keep_every;
  return c;
}

ch_status ch_config_set_serve_flag(ch_config *cfg, const char *flag, const char *value) {
  char key[64];
  const char *name = flag + strspn(flag, "-");
  /* The device keys are the job's, not serving's: the same rows as `device` / `precision`. */
  int top = !strcmp(name, "device") || !strcmp(name, "precision");
  int n = snprintf(key, sizeof key, "%s%s", top ? "" : "serve.", name);
  for (char *c = key; n > 0 && n < (int)sizeof key && *c; c++) *c = *c == '-' ? '_' : *c;
  const ch_key_row *row = n > 0 && n < (int)sizeof key ? ch_keys_find(&k_table, key) : NULL;
  if (!row || !strcmp(key, "serve.after"))
    return CH_FAIL(CH_ERR_CONFIG, "%s: unknown option", flag);
  CH_CHECK(ch_keys_set_text(&k_table, cfg, key, value, flag));
  return CH_OK;
}
