/* zero3's evaluation (parallel.eval_keep_mb) against ddp on the same N ranks, on the Shakespeare
 * GPT of test_zero.c evaluated every 2 steps:
 *  - validation loss and accuracy equal ddp's within 1e-5 relative (the parameters differ only
 *    in fp32 summation order), whatever is kept: the whole model (the default), half of it, or
 *    nothing (every unit gathered per batch, the schedule before eval_keep_mb);
 *  - the final parameters equal ddp's within 1e-5: units an evaluation kept are dropped before
 *    training goes on, so no step reads stale parameters;
 *  - bytes gathered by the last evaluation (ch_dp_stats.eval_bytes, per rank as a ring sends):
 *    with the whole model kept, exactly one gather of the layout, (N-1)/N of it; with nothing
 *    kept, one per evaluation batch; half kept lies in between. */
#include <math.h>
#include <stdio.h>

#include "cohort/config.h"
#include "cohort/kernels.h"
#include "cohort/model.h"
#include "cohort/parallel.h"
#include "cohort/runtime.h"
#include "cohort/train.h"
#include "testlib.h"
#include "train_data.h"

#define TOL 1e-5

static void run(ch_config *c, int strategy, double keep_mb, const ch_group *g, const char *name,
                ch_train_result *r) {
  c->parallel.strategy = strategy;
  c->parallel.eval_keep_mb = keep_mb;
  CHT_OK(ch_train_run(c, g, 1, r));
  CHT_ASSERT(isfinite(r->val_loss) && isfinite(r->val_acc), "%s: no evaluation", name);
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-2); }

int main(int argc, char **argv) {
  ch_runtime *rt;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  CHT_OK(ch_blas_init(rt->ncores));
  CHT_ASSERT(argc >= 3, "usage: test_zero3_eval DIGITS.csv.gz TEXT.txt.gz");
  ch_group world;
  CHT_OK(ch_group_world(&world));
  cht_train_data td;
  cht_train_data_make(&world, argv[1], argv[2], &td);
  ch_config c;
  cht_mlp_config(&c, td.text, td.dir, "gpt", 16, 0.5, 2);
  cht_gpt(&c.model, 2, 2, 32, 32);
  c.train.steps = 4;
  c.optim.lr = 5e-4;
  c.optim.eps = 1e-6; /* as test_zero.c: rounding-level gradients stay rounding-level */

  ch_model *m;
  ch_train_result rd, rz[3];
  run(&c, CH_STRATEGY_DDP, 1024, &world, "ddp", &rd);
  CHT_OK(ch_model_create(ch_backend_cpu(), &c.model, rd.model.features, rd.model.classes, 0, &m));
  size_t n = (size_t)world.size, layout = ch_model_layout(m)->numel * sizeof(float);
  size_t once = layout / n * (n - 1); /* one gather of every unit, as ch_dp_get_stats counts */
  const double keep[3] = {1024, (double)layout / 2 / 1048576.0, 0};
  const char *names[3] = {"zero3 keep all", "zero3 keep half", "zero3 keep none"};
  for (int k = 0; k < 3; k++) {
    run(&c, CH_STRATEGY_ZERO3, keep[k], &world, names[k], &rz[k]);
    double dl = rel(rz[k].val_loss, rd.val_loss), da = rel(rz[k].val_acc, rd.val_acc);
    double dp = cht_max_rel_err(rz[k].params, rd.params, rd.numel, 1e-2);
    if (world.rank == 0)
      printf("%s on %zu ranks: val_loss %.6f (ddp %.6f), val_acc %.6f (ddp %.6f), params max rel "
             "diff %.3g; the last evaluation gathered %zu bytes per rank (one layout: %zu)\n",
             names[k], n, rz[k].val_loss, rd.val_loss, rz[k].val_acc, rd.val_acc, dp,
             rz[k].comm.eval_bytes, once);
    CHT_ASSERT(dl <= TOL && da <= TOL && dp <= TOL, "%s: val_loss %g, val_acc %g, params %g off",
               names[k], dl, da, dp);
    CHT_ASSERT(rd.comm.eval_bytes == 0, "ddp gathered %zu bytes to evaluate", rd.comm.eval_bytes);
  }
  if (n > 1) {
    CHT_ASSERT(rz[0].comm.eval_bytes == once, "keep all: %zu bytes, one layout is %zu",
               rz[0].comm.eval_bytes, once);
    CHT_ASSERT(rz[2].comm.eval_bytes >= 2 * once, "keep none: %zu bytes: one batch only?",
               rz[2].comm.eval_bytes);
    CHT_ASSERT(rz[1].comm.eval_bytes > once && rz[1].comm.eval_bytes < rz[2].comm.eval_bytes,
               "keep half: %zu bytes, not between %zu and %zu", rz[1].comm.eval_bytes, once,
               rz[2].comm.eval_bytes);
  }
  for (int k = 0; k < 3; k++) ch_train_result_free(&rz[k]);
  ch_train_result_free(&rd);
  ch_model_destroy(m);
  cht_world_tmpdir_remove(td.dir);
  ch_group_destroy(&world);
  ch_runtime_finalize();
  return 0;
}
