#include "train_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cohort/comm_mpi.h"
#include "cohort/data.h"
#include "testlib.h"

void cht_train_data_make(const ch_group *world, const char *csv, const char *txt,
                         cht_train_data *d) {
  snprintf(d->dir, sizeof d->dir, "/tmp/cohort-test-train-XXXXXX");
  cht_world_tmpdir(d->dir, sizeof d->dir);
  if (world->rank == 0) {
    snprintf(d->digits, sizeof d->digits, "%s/digits.h5", d->dir);
    ch_csv_opts o = {.label_column = -1, .val_fraction = 0.2, .seed = 0};
    CHT_OK(ch_data_csv_convert(csv, d->digits, &o, NULL));
    snprintf(d->text, sizeof d->text, "%s/text.h5", d->dir);
    const char *in[1] = {txt};
    CHT_OK(ch_data_text_convert(in, 1, d->text, NULL, NULL));
  }
  MPI_Bcast(d, sizeof *d, MPI_CHAR, 0, ch_group_mpi_comm(world));
}

void cht_mlp_config(ch_config *c, const char *data, const char *dir, const char *name,
                    int64_t batch, double grad_clip, int64_t eval_every) {
  ch_config_defaults(c);
  snprintf(c->data.path, sizeof c->data.path, "%s", data);
  snprintf(c->run.dir, sizeof c->run.dir, "%s/%s", dir, name);
  c->model.depth = 2;
  c->model.hidden = 48;
  c->model.activation = CH_ACT_GELU;
  c->optim.type = CH_OPTIM_ADAMW;
  c->optim.lr = 2e-3;
  c->optim.weight_decay = 0.01;
  c->optim.grad_clip = grad_clip;
  c->optim.schedule = CH_SCHED_COSINE;
  c->optim.warmup_steps = 5;
  c->train.steps = 20;
  c->train.batch_size = batch;
  c->train.log_every = 10;
  c->train.eval_every = eval_every;
  c->parallel.bucket_mb = 0.01;
  c->parallel.first_bucket_mb = 0.002;
}
