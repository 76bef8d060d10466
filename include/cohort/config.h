/* Run configuration: YAML file + Hydra-style `key.sub=value` overrides, validated against one
 * table of keys (src/train/config.c). Every key has a type, a default and a check; an unknown
 * key or a bad value is an error naming the key and its file:line. */
#pragma once
#include <stdint.h>
#include "cohort/ckpt.h"
#include "cohort/data.h"
#include "cohort/device.h"
#include "cohort/keys.h"
#include "cohort/model.h"
#include "cohort/optim.h"
#include "cohort/parallel.h"
#include "cohort/serve.h"
#include "cohort/status.h"

/* Each layer's own settings are its struct (model.h, optim.h, parallel.h, data.h, serve.h);
 * the training config composes them with the train.* and run.* keys. Field names follow the
 * keys (model.depth is cfg.model.depth) except serve.* (cfg.serve.opts) and serve.after. */
typedef struct ch_config {
  ch_device_cfg device; /* device, precision */
  ch_model_cfg model;
  ch_data_cfg data;
  ch_optim_cfg optim;  /* optim.total_steps is not a key: ch_config_optim fills it */
  struct {
    int64_t steps;
    int64_t batch_size;       /* GLOBAL samples per optimizer step */
    int64_t micro_batch_size; /* per rank per micro-step; 0 = no accumulation */
    int64_t seed;
    int64_t log_every, eval_every; /* eval_every 0 = only at the end */
    int64_t max_nonfinite_steps;   /* non-finite steps in a row (each skipped) that stop the run */
  } train;
  ch_parallel_cfg parallel;
  struct {
    char dir[CH_PATH_MAX];
    char resume[CH_PATH_MAX]; /* "none", "auto" or a checkpoint file */
    char init_from[CH_PATH_MAX]; /* a checkpoint (file or directory) whose model weights start
                                  * a fresh run; empty: none */
    double watchdog_timeout;  /* seconds in one collective before aborting; 0 = off */
    int tensorboard;          /* rank 0 writes a TensorBoard event file in dir */
    struct {
      int64_t every;          /* steps between checkpoints; 0 = only on preemption */
      int64_t keep_last, keep_every;
      char dir[CH_PATH_MAX];  /* empty: <run.dir>/checkpoints */
    } checkpoint;
  } run;
  struct {
    int after;                /* serve the trained weights when training ends */
    ch_serve_opts opts;       /* serve.host, serve.port, ...: the serve layer's options */
  } serve;
} ch_config;

/* Fills `cfg` with every key's default (and the serve options that are not keys with
 * ch_serve_opts_default's). */
CH_API void ch_config_defaults(ch_config *cfg);

/* Loads `path` (YAML, nested mappings of scalars; NULL: no file) over the defaults, then applies
 * `noverrides` "key.sub=value" strings in order, then checks cross-key rules. On error returns CH_ERR_CONFIG
 * (or CH_ERR_IO when the file cannot be read) with a message such as
 * "configs/x.yaml:7: optim.lr: expected a number, got 'fast'" or
 * "configs/x.yaml:3: unknown key 'optim.lrr'" or "override 'train.steps=-1': train.steps: must be
 * >= 1". `cfg` is written only on success. */
CH_API ch_status ch_config_load(const char *path, const char *const *overrides, int noverrides,
                         ch_config *cfg);

/* ch_config_load, and then `warn` (may be NULL) gets each warning: a file that sets no key,
 * and a key of the other model family set to other than its default (it has no effect), e.g.
 * "configs/x.yaml:5: model.hidden has no effect: it is a key of model.type mlp, and model.type
 * is gpt". ch_config_load drops them (a stored config is not the user's to fix). */
CH_API ch_status ch_config_load_warn(const char *path, const char *const *overrides, int noverrides,
                                     ch_config *cfg, ch_key_warn_fn warn, void *ctx);

/* Applies one "key.sub=value" override (value parsed as a YAML scalar) to `cfg`. `origin` prefixes
 * error messages; NULL means "override '<assignment>'". Checks the key's own range but not the
 * cross-key rules (ch_config_load / ch_config_validate do). Errors: CH_ERR_CONFIG (no '=',
 * unknown key, a section, bad value); `cfg` is unchanged on error. */
CH_API ch_status ch_config_set(ch_config *cfg, const char *assignment, const char *origin);

/* Checks every field of `cfg` against its key's range and the cross-key rules
 * (optim.min_lr <= optim.lr, optim.warmup_steps <= train.steps), e.g. for a config built in
 * code. Errors: CH_ERR_CONFIG naming the key ("config: train.steps: must be >= 1, got 0"). */
CH_API ch_status ch_config_validate(const ch_config *cfg);

/* The resolved config as YAML text (every key, nested), malloc'ed; NULL on allocation failure. */
CH_API char *ch_config_to_yaml(const ch_config *cfg);

/* Writes ch_config_to_yaml to `path` atomically: `path`.tmp, fsync, rename, fsync of the
 * directory. Errors: CH_ERR_IO naming the file (the temporary file is removed), CH_ERR_NOMEM. */
CH_API ch_status ch_config_write(const ch_config *cfg, const char *path);

/* ---- The layers' views of a config -------------------------------------------------------- */

/* cfg->optim with total_steps = train.steps (the cosine schedule's end). */
CH_API ch_optim_cfg ch_config_optim(const ch_config *cfg);

/* The checkpoint settings, with the directory resolved (run.checkpoint.dir, or
 * <run.dir>/checkpoints). */
CH_API ch_ckpt_cfg ch_config_ckpt(const ch_config *cfg);

/* Applies the option `flag` ("--max-batch-size") of `cohort serve` with argument `value` to
 * cfg->serve.opts through the row of the matching serve.* key (serve.max_batch_size), so that
 * flags and YAML keys share names, ranges and messages ("--max-batch-size: serve.max_batch_size:
 * must be <= 4096, got 5000"). Errors: CH_ERR_CONFIG (also for a flag with no serve.* key). */
CH_API ch_status ch_config_set_serve_flag(ch_config *cfg, const char *flag, const char *value);
