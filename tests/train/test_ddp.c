/* DDP equivalence on real data (UCI digits for the MLP, Shakespeare for the GPT):
 *  - N ranks and 1 rank at the same GLOBAL batch reach the same parameters after 20 steps,
 *    including a batch that N does not divide (ranks hold unequal parts);
 *  - k accumulation micro-steps equal one step with a k-times batch;
 *  - overlap on and off give bit-identical results (same sums, only timing differs);
 *  - the GPT: N ranks and 1 rank, batch 10 sequences (unequal parts on 3 and 4 ranks), SGD
 *    with momentum and clipping, and with k >= 2 accumulation micro-steps.
 * Tolerance: the runs differ only in fp32 summation order (GEMM blocking over each rank's rows
 * and the allreduce's order), about 1e-7 relative per gradient element per step. AdamW's and
 * SGD's updates are Lipschitz in the gradient, so after 20 steps the parameters agree to about
 * 20 * lr * 1e-7 absolute; 1e-5 relative (with a floor of 1e-2 for parameters near zero, where
 * relative error is meaningless) holds with margin and still fails on any real bug (a lost
 * bucket, a wrong weighting of unequal parts: those give >= 1e-3). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/comm_mpi.h"
#include "cohort/config.h"
#include "cohort/kernels.h"
#include "cohort/runtime.h"
#include "cohort/train.h"
#include "testlib.h"
#include "train_data.h"

#define TOL 1e-5

static char g_dir[256];

static void base_config(ch_config *c, const char *data, const char *name) {
  cht_mlp_config(c, data, g_dir, name, 50, 1.0, 0);
}

static void gpt_config(ch_config *c, const char *data, const char *name) {
  base_config(c, data, name);
  cht_gpt(&c->model, 2, 2, 32, 32);
  /* SGD, not AdamW: AdamW divides each element's step by its own gradient scale, so elements
   * whose gradients are tiny (rare tokens' embedding rows) turn fp32 summation-order noise into
   * steps of size lr, and N-rank and 1-rank runs part by ~1e-4 after a few steps however
   * correct the sums are. SGD's update is Lipschitz in the gradient, which keeps the runs
   * within the bound derived above. (test_gpt_torch.py checks AdamW on the GPT.) */
  c->optim.type = CH_OPTIM_SGD;
  c->optim.lr = 0.1;
  c->optim.momentum = 0.9;
  c->optim.weight_decay = 1e-3;
  c->train.steps = 10;
  c->train.batch_size = 10;
  c->parallel.bucket_mb = 0.02;
}

static float *train(const ch_config *c, const ch_group *g, size_t *numel) {
  ch_train_result r;
  CHT_OK(ch_train_run(c, g, 1, &r));
  CHT_ASSERT(isfinite(r.train_loss), "training loss not finite");
  *numel = r.numel;
  return r.params;
}

/* Runs `multi` on every rank of the world and `single` on rank 0 alone, compares on rank 0. */
static void compare(const char *what, const ch_config *multi, const ch_config *single,
                    const ch_group *world, const ch_group *self, double tol) {
  size_t n1 = 0, n2 = 0;
  float *a = train(multi, world, &n1);
  float *b = NULL;
  if (world->rank == 0) b = train(single, self, &n2);
  MPI_Barrier(ch_group_mpi_comm(world));
  if (world->rank == 0) {
    CHT_ASSERT(n1 == n2, "%s: parameter counts differ", what);
    double err = cht_max_rel_err(a, b, n1, 1e-2);
    int differ = memcmp(a, b, n1 * sizeof *a) != 0;
    printf("%s: %d ranks vs 1: max rel diff %.3g (bitwise %s)\n", what, world->size, err,
           differ ? "different" : "identical");
    CHT_ASSERT(err <= tol, "%s: max rel diff %g > %g", what, err, tol);
  }
  free(a);
  free(b);
}

int main(int argc, char **argv) {
  ch_runtime *rt;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  CHT_OK(ch_blas_init(rt->ncores)); /* BLAS threads are the caller's, not runtime's */
  CHT_ASSERT(argc >= 3, "usage: test_ddp DIGITS.csv.gz TEXT.txt.gz");
  ch_group world, self;
  CHT_OK(ch_group_world(&world));
  CHT_OK(ch_group_split(&world, world.rank, 0, &self));
  cht_train_data td;
  cht_train_data_make(&world, argv[1], argv[2], &td);
  snprintf(g_dir, sizeof g_dir, "%s", td.dir);
  const char *data = td.digits, *text = td.text;

  ch_config multi, single;
  /* Unequal parts: 50 rows over 3 or 4 ranks. */
  base_config(&multi, data, "multi");
  base_config(&single, data, "single");
  compare("adamw+clip+cosine, batch 50", &multi, &single, &world, &self, TOL);

  /* SGD with momentum and weight decay, relu. */
  multi.optim.type = single.optim.type = CH_OPTIM_SGD;
  multi.optim.lr = single.optim.lr = 0.05;
  multi.optim.weight_decay = single.optim.weight_decay = 1e-3;
  multi.model.activation = single.model.activation = CH_ACT_RELU;
  compare("sgd+momentum, batch 50", &multi, &single, &world, &self, TOL);

  /* Accumulation: batch 48 as k micro-steps per rank vs one 48-row step on one rank. */
  base_config(&multi, data, "accum");
  base_config(&single, data, "single48");
  multi.train.batch_size = single.train.batch_size = 48;
  int64_t local = (48 + world.size - 1) / world.size;
  multi.train.micro_batch_size = local % 4 == 0 ? local / 4 : (local % 3 == 0 ? local / 3 : local / 2);
  if (world.size == 1) multi.train.micro_batch_size = 12;
  if (world.rank == 0)
    printf("accumulation: %lld micro-steps of %lld rows per rank\n",
           (long long)(local / multi.train.micro_batch_size), (long long)multi.train.micro_batch_size);
  CHT_ASSERT(local / multi.train.micro_batch_size >= 2, "accumulation test needs k >= 2");
  compare("accumulation, batch 48", &multi, &single, &world, &self, TOL);

  /* Overlap on vs off: exactly the same sums in the same order. */
  base_config(&multi, data, "overlap");
  size_t n1, n2;
  float *on = train(&multi, &world, &n1);
  multi.parallel.overlap = 0;
  float *off = train(&multi, &world, &n2);
  CHT_ASSERT(n1 == n2 && memcmp(on, off, n1 * sizeof *on) == 0, "overlap on/off differ");
  free(on);
  free(off);

  /* The GPT: 10 sequences of 32 tokens per step over N ranks vs 1. */
  gpt_config(&multi, text, "gpt");
  gpt_config(&single, text, "gpt1");
  compare("gpt sgd+clip, batch 10", &multi, &single, &world, &self, TOL);
  /* Accumulation: ceil(10 / N) sequences per rank in k >= 2 micro-steps. */
  int64_t gl = (10 + world.size - 1) / world.size;
  multi.train.micro_batch_size = gl % 2 == 0 ? gl / 2 : 1;
  compare("gpt accumulation, batch 10", &multi, &single, &world, &self, TOL);

  cht_world_tmpdir_remove(td.dir);
  if (world.rank == 0) {
    printf("ddp equivalence: all checks passed on %d ranks\n", world.size);
  }
  ch_group_destroy(&self);
  ch_group_destroy(&world);
  ch_runtime_finalize();
  return 0;
}
