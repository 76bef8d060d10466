/* `cohort train CONFIG.yaml [key.sub=value ...] [--verbose]` */
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

int ch_cli_train(int argc, char **argv) {
  const char *config_path = NULL;
  const char **overrides = calloc((size_t)argc, sizeof *overrides);
  int noverrides = 0, verbose = 0, bad_usage = 0, print_config = 0;
  if (!overrides) return 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) verbose = 1;
    else if (!strcmp(argv[i], "--print-config")) print_config = 1;
    else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) bad_usage = 1;
    else if (strchr(argv[i], '=')) overrides[noverrides++] = argv[i];
    else if (!config_path) config_path = argv[i];
    else {
      fprintf(stderr, "cohort train: unexpected argument '%s' (overrides are key.sub=value)\n", argv[i]);
      bad_usage = 1;
    }
  }
  if (bad_usage || !config_path) {
    usage();
    free(overrides);
    return 2;
  }
  if (print_config) { /* no MPI needed: resolve, print, exit */
    ch_config cfg;
    ch_status st = ch_config_load(config_path, overrides, noverrides, &cfg);
    free(overrides);
    if (st != CH_OK) {
      fprintf(stderr, "cohort train: %s\n", ch_error_message());
      return 2;
    }
    char *yaml = ch_config_to_yaml(&cfg);
    if (!yaml) return 1;
    fputs(yaml, stdout);
    free(yaml);
    return 0;
  }
  ch_runtime_opts opts = {.verbose = verbose, .bind_cores = 1};
  ch_runtime *rt;
  if (ch_runtime_init(&argc, &argv, &opts, &rt) != CH_OK) {
    fprintf(stderr, "cohort: runtime initialisation failed: %s\n", ch_error_message());
    free(overrides);
    return 1;
  }
  /* Every rank parses the same file and arguments, so a bad config fails identically everywhere
   * and all ranks exit 2 without a collective being left waiting. */
  ch_config cfg;
  ch_status st = ch_config_load(config_path, overrides, noverrides, &cfg);
  free(overrides);
  if (st != CH_OK) {
    if (rt->world_rank == 0) fprintf(stderr, "cohort train: %s\n", ch_error_message());
    ch_runtime_finalize();
    return 2;
  }
  ch_group world;
  ch_cli_world(rt, &world);
  ch_train_result res;
  st = ch_train_run(&cfg, &world, cfg.serve.after, &res);
  if (st == CH_ERR_CONFIG) {
    /* Configuration checks happen before any collective that could diverge, on every rank. */
    if (rt->world_rank == 0) fprintf(stderr, "cohort train: %s\n", ch_error_message());
    ch_group_destroy(&world);
    ch_runtime_finalize();
    return 2;
  }
  if (st != CH_OK) ch_runtime_fatal(st, "training failed");
  if (rt->world_rank == 0)
    CH_INFO("done: %lld steps in %.1f s (%.0f samples/s), final loss %.4f, val_loss %.4f, "
            "val_acc %.2f%%; run dir %s",
            (long long)res.steps, res.seconds, res.samples_per_s, res.train_loss, res.val_loss,
            100.0 * res.val_acc, cfg.run.dir);
  /* serve.after: the same processes serve the weights they hold, re-laid out into
   * tensor-parallel slices (no file round trip), unless a signal preempted the run. */
  if (cfg.serve.after && !res.preempted) {
    ch_serve_opts so;
    ch_serve_opts_from_config(&cfg, &so);
    st = ch_serve_params(&world, &cfg, res.params, res.features, res.classes, res.step, &so);
    if (st != CH_OK) ch_runtime_fatal(st, "serving failed");
  }
  ch_train_result_free(&res);
  ch_group_destroy(&world);
  ch_runtime_finalize();
  return 0;
}
