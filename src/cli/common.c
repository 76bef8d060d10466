/* What the subcommands share: runtime, BLAS and world-group start-up and shutdown, and config
 * arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort/kernels.h"
#include "cohort/log.h"

ch_runtime *cli_start(int *argc, char ***argv, int verbose, ch_group *world) {
  ch_runtime_opts ro = {.verbose = verbose, .bind_cores = 1};
  ch_runtime *rt;
  if (ch_runtime_init(argc, argv, &ro, &rt) != CH_OK) {
    fprintf(stderr, "cohort: runtime initialisation failed: %s\n", ch_error_message());
    return NULL;
  }
  /* BLAS belongs to the kernels layer, not to runtime: one BLAS thread per core this rank was
   * bound to, so ranks sharing a node do not oversubscribe it. The non-GEMM kernels (LayerNorm,
   * GELU, cross-entropy, the optimizer) run on as many threads of cohort's own pool
   * (kernels/cpu/pool.h), unless COHORT_KERNEL_THREADS says otherwise. */
  if (ch_blas_init(rt->ncores) != CH_OK)
    ch_runtime_fatal(CH_ERR_UNSUPPORTED, "cannot load OpenBLAS");
  int kt = ch_kernel_threads();
  char threads[64];
  if (kt == rt->ncores)
    snprintf(threads, sizeof threads, "%d BLAS and kernel thread%s", kt, kt == 1 ? "" : "s");
  else
    snprintf(threads, sizeof threads, "%d BLAS thread%s and %d kernel thread%s", rt->ncores,
             rt->ncores == 1 ? "" : "s", kt, kt == 1 ? "" : "s");
  ch_log(rt->verbose ? CH_LOG_INFO : CH_LOG_DEBUG, "%s, OpenBLAS kernels %s%s", threads,
         ch_blas_corename(), ch_blas_coretype_choice() ? " (chosen by cohort)" : "");
  if (ch_group_world(world) != CH_OK) ch_runtime_fatal(CH_ERR_MPI, "cannot create the world group");
  return rt;
}

void cli_stop(ch_group *world) {
  ch_group_destroy(world);
  ch_runtime_finalize();
}

int cli_help(int argc, char **argv, void (*usage)(FILE *out)) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 1;
    }
  return 0;
}

static int parse_args(const char *cmd, int argc, char **argv, cli_flag_fn flag, void *ctx,
                      cli_args *out) {
  memset(out, 0, sizeof *out);
  out->overrides = calloc((size_t)argc + 1, sizeof *out->overrides);
  if (!out->overrides) return 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] == '-') {
      if (flag(ctx, argc, argv, &i)) return 2;
    } else if (strchr(a, '=')) {
      out->overrides[out->noverrides++] = a;
    } else if (!out->config) {
      out->config = a;
    } else {
      fprintf(stderr, "%s: unexpected argument '%s' (overrides are key.sub=value)\n", cmd, a);
      return 2;
    }
  }
  return out->config ? 0 : 2;
}

int cli_parse_args(const char *cmd, int argc, char **argv, cli_flag_fn flag, void *ctx,
                   void (*usage)(void), cli_args *out) {
  int rc = parse_args(cmd, argc, argv, flag, ctx, out);
  if (rc) {
    if (rc == 2) usage();
    cli_args_free(out);
  }
  return rc;
}

void cli_args_free(cli_args *a) {
  free(a->overrides);
  a->overrides = NULL;
}

/* Prints a warning of the config load, prefixed by the command (ctx). */
static void print_warning(void *ctx, const char *message) {
  fprintf(stderr, "%s: warning: %s\n", (const char *)ctx, message);
}

int cli_load_config(const char *cmd, cli_args *a, int report, ch_config *cfg) {
  ch_status st = ch_config_load_warn(a->config, a->overrides, a->noverrides, cfg,
                                     report ? print_warning : NULL, (void *)cmd);
  cli_args_free(a);
  if (st == CH_OK) return 0;
  if (report) fprintf(stderr, "%s: %s\n", cmd, ch_error_message());
  return 2;
}
