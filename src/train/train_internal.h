/* Pieces of the training loop shared between src/train files. */
#pragma once
#include <stdio.h>
#include "cohort/ckpt.h"
#include "cohort/comm.h"
#include "cohort/config.h"
#include "cohort/data.h"
#include "cohort/model.h"
#include "cohort/optim.h"
#include "cohort/parallel.h"
#include "cohort/train.h"

/* Training or validation samples: dataset rows (MLP) or token windows (GPT), by sample index
 * (src/train/source.c). Open/close/read are collective over the group. */
typedef struct source source;
ch_status source_open(const ch_config *cfg, const ch_group *g, const char *split,
                      source **out);
void source_close(source *s);
int64_t source_samples(const source *s);
int64_t source_features(const source *s); /* float inputs per sample (0 for tokens) */
int64_t source_classes(const source *s);  /* classes, or the vocabulary */
/* Samples into x [n, features] and y [n, ints per sample] (see ch_model_sample_ints). */
ch_status source_read(source *s, const int64_t *samples, int64_t n, float *x, int32_t *y);
/* One line for the startup log. */
void source_describe(const source *s, char *buf, size_t size);
/* What a loader needs of a model trained on `s` (the train split) under cfg: the architecture,
 * the data shape, the tokenizer kind (read from the data file for the GPT) and the data path.
 * Local. Errors: as ch_tokenizer_load. */
ch_status source_model_info(const ch_config *cfg, const source *s, ch_ckpt_model_info *out);

/* Checks, before anything is allocated, that every buffer the trainer and its model size from
 * cfg's keys, the batch plan and the data's shape (info) is a product that neither wraps around
 * nor exceeds 256 TiB (src/train/sizes.c). Local; the same answer on every rank. Errors:
 * CH_ERR_CONFIG naming the keys of the product. */
ch_status trainer_check_sizes(const ch_config *cfg, const ch_batch_plan *plan,
                              const ch_ckpt_model_info *info);

/* State of one training run (src/train/train.c; checkpoint glue in resume.c). */
typedef struct trainer {
  const ch_config *cfg;
  ch_optim_cfg optim;  /* cfg's, with the schedule's end (ch_config_optim) */
  ch_ckpt_cfg ckpt;    /* cfg's, directory resolved (ch_config_ckpt) */
  ch_ckpt_model_info info; /* what checkpoints store about the model */
  const ch_group *g;    /* the job's ranks (host memory: control, checkpoints, data) */
  ch_device *dev;       /* where the model computes (cfg->device) */
  ch_group dg;          /* g's ranks for the strategy's collectives on the device's memory */
  source *train, *val;
  ch_sampler sampler;
  int64_t position;    /* global samples consumed: the sampler's position */
  int64_t step;        /* optimizer steps completed */
  ch_model *model;
  const ch_layout *layout;
  ch_dp *dp;           /* parameters, gradients, optimizer: the data-parallel strategy */
  int64_t local_max;   /* rows of the largest rank part of a global batch */
  int64_t micro;       /* rows per micro-batch */
  int64_t accum;       /* micro-batches per optimizer step */
  int64_t features;    /* floats per sample (x) */
  int64_t ints;        /* int32 per sample (y) */
  float *x;            /* [local_max, features] */
  int32_t *y;          /* [local_max, ints] */
  int64_t *rows;
  /* Summed loss of each step since the last progress line: this rank's part for entries
   * [n_global, n), already summed over ranks for [0, n_global) (restored from a checkpoint, or
   * reduced when one was written). Reducing per step, not per interval, makes the logged loss
   * independent of where a run was interrupted. */
  double *losses;
  int n_losses, n_global;
  int64_t nonfinite_run; /* steps skipped in a row for a non-finite loss or gradient norm */
  int64_t n_skipped;     /* steps skipped since the last progress line */
  FILE *metrics;
  struct tb_writer *tb;  /* rank 0 with run.tensorboard, else NULL (tb_open) */
} trainer;

/* Non-finite steps (src/train/nonfinite.c). */
/* Starts the agreement on this step's loss: after ch_comm_wait(req), *bad is 1 when the loss
 * of some rank is not finite. Collective. */
ch_status trainer_loss_vote(trainer *t, double loss, int32_t *bad, ch_request *req);
/* Counts a skipped step (bad_loss from the vote, or a non-finite norm: the same on every rank)
 * and warns on rank 0 naming the step. Errors: CH_ERR_INVALID naming the step once
 * train.max_nonfinite_steps steps in a row were skipped (on every rank alike). */
ch_status trainer_skip_step(trainer *t, int32_t bad_loss, double norm);
/* Checks that everything a checkpoint would hold (parameters, optimizer state) is finite on
 * every rank. Collective. Errors: CH_ERR_INVALID naming the step and the parameter. */
ch_status trainer_check_finite(trainer *t);

/* Sums entries [n_global, n_losses) of t->losses over the ranks (collective). */
ch_status trainer_reduce_losses(trainer *t);

/* Restores the state of the checkpoint chosen by run.resume (none / auto / a path) into `t`,
 * whose parameters and optimizer already exist. Sets *resumed. Collective. Errors: CH_ERR_IO,
 * CH_ERR_FORMAT (a named checkpoint that is unreadable), CH_ERR_CONFIG (it does not fit the
 * model). With auto, unreadable checkpoints are skipped with a warning. */
ch_status trainer_resume(trainer *t, int *resumed);
/* run.init_from, after trainer_resume: unless the run resumed, reads the model weights of that
 * checkpoint (file, or directory meaning its `latest`) into the parameters, leaving the
 * optimizer fresh and the step 0; the checkpoint's model must be this run's (family, shape,
 * vocabulary, data shape). Collective; every rank returns the same status. Errors:
 * CH_ERR_CONFIG naming each mismatched key with both values, as ch_ckpt_read. */
ch_status trainer_init_from(trainer *t, int resumed);

/* Writes and commits a checkpoint of the current state (collective). *path gets its file. */
ch_status trainer_checkpoint(trainer *t, char *path, size_t size);

/* Opens run.dir/metrics.jsonl (rank 0): truncated for a fresh run; for a resumed one, lines
 * past the resumed step are dropped so that the file reads as one uninterrupted run. */
ch_status trainer_open_metrics(trainer *t, int resumed);

/* Validation over the whole split: each rank evaluates its contiguous part in chunks of the
 * model's max batch (every rank the same number of chunks, some empty, so that `hook`'s
 * collectives match); results are summed over the group. Loss and accuracy are per target
 * (per token for the GPT). */
ch_status train_evaluate(ch_model *m, const float *params, const ch_unit_hook *hook,
                         source *val, const ch_group *g, float *xbuf, int32_t *ybuf,
                         double *loss, double *acc);

/* One logged step, as printed and as written to metrics.jsonl. val_* are NaN when not
 * evaluated at this step. */
typedef struct progress {
  int64_t step, total_steps;
  double epoch;            /* fractional epochs of the training split consumed */
  double loss, lr, grad_norm, samples_per_s, eta_seconds;
  double val_loss, val_acc;
  int64_t targets;         /* predictions per sample: tokens/s = samples/s x targets */
  int64_t skipped;         /* steps skipped (non-finite) since the last line; loss is the mean
                            * over the others (NaN when none) */
} progress;

/* One number of a logged step: its metrics.jsonl key, its TensorBoard tag (NULL: not a
 * TensorBoard scalar) and its value as written: %.9g (decimals < 0; null in JSON and left out of
 * TensorBoard when not finite) or rounded to `decimals` fixed decimals, so that metrics.jsonl and
 * the event file hold the same numbers (docs/monitoring.md lists them). */
typedef struct progress_scalar {
  const char *key, *tag;
  double value;
  int decimals;
} progress_scalar;
#define PROGRESS_MAX_SCALARS 12
/* Fills out[] (PROGRESS_MAX_SCALARS entries) with p's numbers in metrics.jsonl order; returns
 * how many. */
int progress_scalars(const progress *p, progress_scalar *out);

/* Prints the progress line (rank 0's stdout via the logger). */
void progress_print(const progress *p);
/* Appends one JSON object line to `f` and flushes it. */
void progress_write_json(FILE *f, const progress *p);

/* TensorBoard event file of a run (run.tensorboard; src/train/tensorboard.c), rank 0 only. A
 * failure to create or write it warns once and turns the writer off: training goes on. */
typedef struct tb_writer tb_writer;
/* Creates run_dir/events.out.tfevents.<unix seconds>.<host>.<pid> (a new file per process
 * start, as TensorBoard expects) and writes its file_version record and a SessionLog START at
 * step + 1 (`step`: where the run starts or resumed), which makes TensorBoard drop the points
 * of earlier files past `step`, as metrics.jsonl drops its lines (all of them when a run
 * starts over in the same run.dir). Returns NULL after a warning when the file cannot be made;
 * tb_write and tb_close accept NULL. */
tb_writer *tb_open(const char *run_dir, int64_t step);
/* Appends one Event holding p's scalars that have a tag (progress_scalars) at p->step, and
 * flushes it (a user may be watching). On a write error: one warning, then nothing more. */
void tb_write(tb_writer *w, const progress *p);
/* Appends one Event of the per-rank memory (memory.json's params, grads, optim, comm and
 * activations, in MiB, tags memory/<name>_mib) at `step` (the run's last), and flushes it. */
void tb_write_memory(tb_writer *w, int64_t step, const char *const *names, const double *mib,
                     int n);
/* Closes the file and frees `w`. */
void tb_close(tb_writer *w);
