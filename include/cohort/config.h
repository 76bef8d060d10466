/* Run configuration: YAML file + Hydra-style `key.sub=value` overrides, validated against one
 * table of keys (src/train/config.c). Every key has a type, a default and a check; an unknown
 * key or a bad value is an error naming the key and its file:line. */
#pragma once
#include <stdint.h>
#include "cohort/status.h"

#define CH_PATH_MAX 512

typedef enum ch_model_type { CH_MODEL_MLP = 0, CH_MODEL_GPT } ch_model_type;
typedef enum ch_activation { CH_ACT_RELU = 0, CH_ACT_GELU } ch_activation;
typedef enum ch_optim_type { CH_OPTIM_SGD = 0, CH_OPTIM_ADAMW } ch_optim_type;
typedef enum ch_schedule { CH_SCHED_CONSTANT = 0, CH_SCHED_COSINE } ch_schedule;
typedef enum ch_strategy {
  CH_STRATEGY_DDP = 0,
  CH_STRATEGY_ZERO1,
  CH_STRATEGY_ZERO2,
  CH_STRATEGY_ZERO3,
} ch_strategy;

/* "ddp", "zero1", "zero2", "zero3". */
const char *ch_strategy_name(int strategy);

typedef struct ch_config {
  struct {
    int type;          /* ch_model_type */
    int depth;         /* hidden layers (MLP) */
    int hidden;        /* hidden width (MLP) */
    int activation;    /* ch_activation (MLP) */
    int n_layer, n_head, n_embd; /* GPT blocks, heads, width */
    int context;       /* GPT context length (tokens) */
    int64_t vocab_size;  /* GPT vocabulary; 0 = the dataset's */
  } model;
  struct {
    char path[CH_PATH_MAX]; /* HDF5 file made by `cohort data` */
  } data;
  struct {
    int type;          /* ch_optim_type */
    double lr, weight_decay, momentum, beta1, beta2, eps;
    double grad_clip;  /* max global L2 norm; 0 disables */
    int schedule;      /* ch_schedule */
    int64_t warmup_steps;
    double min_lr;     /* cosine floor */
  } optim;
  struct {
    int64_t steps;
    int64_t batch_size;       /* GLOBAL samples per optimizer step */
    int64_t micro_batch_size; /* per rank per micro-step; 0 = no accumulation */
    int64_t seed;
    int64_t log_every, eval_every; /* eval_every 0 = only at the end */
  } train;
  struct {
    int strategy;      /* ch_strategy */
    double bucket_mb;  /* DDP gradient bucket size */
    double first_bucket_mb; /* smaller first bucket so communication starts early */
    int overlap;       /* start bucket allreduces during backward (else after it) */
    int reshard_after_forward; /* zero3: gather units again for backward */
    int prefetch;      /* zero3: prefetch the next unit's parameters */
  } parallel;
  struct {
    char dir[CH_PATH_MAX];
    char resume[CH_PATH_MAX]; /* "none", "auto" or a checkpoint file */
    double watchdog_timeout;  /* seconds in one collective before aborting; 0 = off */
    struct {
      int64_t every;          /* steps between checkpoints; 0 = only on preemption */
      int64_t keep_last, keep_every;
      char dir[CH_PATH_MAX];  /* empty: <run.dir>/checkpoints */
    } checkpoint;
  } run;
  struct {
    int after;                /* serve the trained weights when training ends */
    char host[64];
    int64_t port;
    char model_name[128];
    char api_key[128];
    int64_t max_batch_size, max_queue_delay_us, max_queue_size;
    double timeout;
  } serve;
} ch_config;

/* Fills `cfg` with every key's default. */
void ch_config_defaults(ch_config *cfg);

/* Loads `path` (YAML, nested mappings of scalars; NULL: no file) over the defaults, then applies
 * `noverrides` "key.sub=value" strings in order, then checks cross-key rules. On error returns CH_ERR_CONFIG
 * (or CH_ERR_IO when the file cannot be read) with a message such as
 * "configs/x.yaml:7: optim.lr: expected a number, got 'fast'" or
 * "configs/x.yaml:3: unknown key 'optim.lrr'" or "override 'train.steps=-1': train.steps: must be
 * >= 1". `cfg` is written only on success. */
ch_status ch_config_load(const char *path, const char *const *overrides, int noverrides,
                         ch_config *cfg);

/* As ch_config_load for YAML `text` held in memory (a checkpoint's stored config); `name`
 * stands for the file in messages. */
ch_status ch_config_load_text(const char *text, const char *name, ch_config *cfg);

/* Applies one "key.sub=value" override (value parsed as a YAML scalar) to `cfg`. `origin` prefixes
 * error messages; NULL means "override '<assignment>'". Checks the key's own range but not the
 * cross-key rules (ch_config_load / ch_config_validate do). Errors: CH_ERR_CONFIG (no '=',
 * unknown key, a section, bad value); `cfg` is unchanged on error. */
ch_status ch_config_set(ch_config *cfg, const char *assignment, const char *origin);

/* Checks every field of `cfg` against its key's range and the cross-key rules
 * (optim.min_lr <= optim.lr, optim.warmup_steps <= train.steps), e.g. for a config built in
 * code. Errors: CH_ERR_CONFIG naming the key ("config: train.steps: must be >= 1, got 0"). */
ch_status ch_config_validate(const ch_config *cfg);

/* The resolved config as YAML text (every key, nested), malloc'ed; NULL on allocation failure. */
char *ch_config_to_yaml(const ch_config *cfg);

/* Writes ch_config_to_yaml to `path` atomically: `path`.tmp, fsync, rename, fsync of the
 * directory. Errors: CH_ERR_IO naming the file (the temporary file is removed), CH_ERR_NOMEM. */
ch_status ch_config_write(const ch_config *cfg, const char *path);
