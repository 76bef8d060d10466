/* Real data for the multi-rank training tests (test_ddp, test_zero): rank 0 converts the
 * shipped UCI digits CSV and Shakespeare text into a fresh temporary directory, every rank gets
 * the paths. */
#pragma once
#include "cohort/comm.h"
#include "cohort/config.h"

typedef struct cht_train_data {
  char dir[256];     /* the temporary directory (remove it with cht_world_tmpdir_remove) */
  char digits[300];  /* digits.h5: 64 features, 10 classes, 20% validation */
  char text[300];    /* text.h5: byte tokens */
} cht_train_data;

/* Collective over `world`. csv and txt: the argv paths of the shipped files. */
void cht_train_data_make(const ch_group *world, const char *csv, const char *txt,
                         cht_train_data *d);

/* The MLP run both tests start from: a 2 x 48 GELU MLP on `data`, AdamW with a cosine schedule
 * (5 warmup steps), clipping at grad_clip, 20 steps of `batch` samples, logging every 10, small
 * buckets (several for this model), run.dir <dir>/<name>. Each test adjusts the rest. */
void cht_mlp_config(ch_config *c, const char *data, const char *dir, const char *name,
                    int64_t batch, double grad_clip, int64_t eval_every);
