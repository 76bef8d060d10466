/* `cohort train CONFIG.yaml [key.sub=value ...] [--verbose]` */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort/config.h"
#include "cohort/log.h"
#include "cohort/runtime.h"
#include "cohort/serve.h"
#include "cohort/train.h"

static void usage(void) {
  fprintf(stderr,
          "usage: cohort train CONFIG.yaml [key.sub=value ...] [--verbose] [--print-config]\n"
          "  e.g. mpirun -n 2 cohort train configs/mlp-digits.yaml train.steps=200 optim.lr=3e-3\n"
          "  --print-config  print the resolved config (every key, with its help) and exit\n");
}

typedef struct train_flags {
  int verbose, print_config;
} train_flags;

static int train_flag(void *ctx, int argc, char **argv, int *i) {
  train_flags *f = ctx;
  const char *a = argv[*i];
  (void)argc;
  if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) f->verbose = 1;
  else if (!strcmp(a, "--print-config")) f->print_config = 1;
  else return 1; /* -h, --help and unknown flags: usage */
  return 0;
}

/* The end-of-run line: only figures this run measured (no loss when no step ran, no
 * validation figures without a validation split). */
static void print_summary(const ch_train_result *res, const ch_config *cfg) {
  if (res->steps == 0) {
    CH_INFO("done: no step to run: the run is at step %lld and train.steps is %lld; run dir %s",
            (long long)res->step, (long long)cfg->train.steps, cfg->run.dir);
    return;
  }
  char val[96] = "";
  if (!isnan(res->val_loss))
    snprintf(val, sizeof val, ", val_loss %.4f, val_acc %.2f%%", res->val_loss, 100.0 * res->val_acc);
  CH_INFO("done: %lld steps in %.1f s (%.0f samples/s), final loss %.4f%s; run dir %s",
          (long long)res->steps, res->seconds, res->samples_per_s, res->train_loss, val,
          cfg->run.dir);
}

int cli_train(int argc, char **argv) {
  train_flags fl = {0, 0};
  cli_args args;
  int rc = cli_parse_args("cohort train", argc, argv, train_flag, &fl, usage, &args);
  if (rc) return rc;
  if (fl.print_config) { /* no MPI needed: resolve, print, exit */
    ch_config cfg;
    if (cli_load_config("cohort train", &args, 1, &cfg)) return 2;
    char *yaml = ch_config_to_yaml(&cfg);
    if (!yaml) return 1;
    fputs(yaml, stdout);
    free(yaml);
    return 0;
  }
  ch_group world;
  ch_runtime *rt = cli_start(&argc, &argv, fl.verbose, &world);
  if (!rt) {
    cli_args_free(&args);
    return 1;
  }
  /* Every rank parses the same file and arguments, so a bad config fails identically everywhere
   * and all ranks exit 2 without a collective being left waiting. */
  ch_config cfg;
  if (cli_load_config("cohort train", &args, rt->world_rank == 0, &cfg)) {
    cli_stop(&world);
    return 2;
  }
  ch_train_result res;
  ch_status st = ch_train_run(&cfg, &world, cfg.serve.after, &res);
  if (st == CH_ERR_CONFIG) {
    /* Configuration checks happen before any collective that could diverge, on every rank. */
    if (rt->world_rank == 0) fprintf(stderr, "cohort train: %s\n", ch_error_message());
    cli_stop(&world);
    return 2;
  }
  if (st != CH_OK && res.nonfinite_stop) {
    /* Every rank stopped at the same step with the same error: no collective is left waiting. */
    if (rt->world_rank == 0) fprintf(stderr, "cohort train: %s\n", ch_error_message());
    cli_stop(&world);
    return 1;
  }
  if (st != CH_OK) ch_runtime_fatal(st, "training failed");
  if (rt->world_rank == 0) print_summary(&res, &cfg);
  /* serve.after: the same processes serve the weights they hold, re-laid out into
   * tensor-parallel slices (no file round trip), unless a signal preempted the run. */
  if (cfg.serve.after && !res.preempted) {
    ch_ckpt_cfg cc = ch_config_ckpt(&cfg);
    cfg.serve.opts.device = cfg.device; /* serving computes where training did */
    st = ch_serve_params(&world, &res.model, res.params, res.step, cc.dir, &cfg.serve.opts);
    if (st != CH_OK) ch_runtime_fatal(st, "serving failed");
  }
  ch_train_result_free(&res);
  cli_stop(&world);
  return 0;
}
