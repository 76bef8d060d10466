/* Subcommands of the `cohort` binary. Each takes argv starting at its own name and returns
 * the process exit code (0 ok, 1 runtime failure, 2 usage or configuration error). */
#pragma once
#include <stddef.h>
#include <stdio.h>
#include "cohort/comm.h"
#include "cohort/config.h"
#include "cohort/runtime.h"

int cli_train(int argc, char **argv);
int cli_data(int argc, char **argv);
int cli_ckpt(int argc, char **argv);
/* `cohort ckpt import ...` (argv[0] is "import"); `usage` prints the ckpt usage. */
int cli_ckpt_import(int argc, char **argv, void (*usage)(FILE *out));
int cli_generate(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_infer(int argc, char **argv);
int cli_estimate(int argc, char **argv);
int cli_plot(int argc, char **argv);

/* The checkpoint a PATH argument names: the file itself, or for a directory the file its
 * `latest` pointer names (relative to the directory). Returns 0, or 1 with a message on stderr
 * prefixed by `cmd`. */
int cli_resolve_checkpoint(const char *cmd, const char *arg, char *out, size_t size);

/* ---- Shared by the subcommands (src/cli/common.c) ---------------------------------------- */

/* Starts the runtime (MPI, binding, logging), BLAS (one thread per bound core) and the world
 * group for a subcommand that runs on every rank. Returns the runtime, or NULL after printing
 * why (exit 1); a BLAS or group failure ends the job. Undo with cli_stop. */
ch_runtime *cli_start(int *argc, char ***argv, int verbose, ch_group *world);
/* Destroys the world group and finalizes the runtime. */
void cli_stop(ch_group *world);

/* When any argument is -h or --help: prints usage(stdout) and returns 1 (the subcommand then
 * exits 0); else returns 0. */
int cli_help(int argc, char **argv, void (*usage)(FILE *out));

/* A config subcommand's arguments (train, estimate): CONFIG.yaml, then key.sub=value overrides
 * in order; every argument starting with '-' goes to `flag`, which consumes it (and may advance
 * *i past a value) and returns 0, or returns 1 for a bad one. */
typedef struct cli_args {
  const char *config;
  const char **overrides;
  int noverrides;
} cli_args;
typedef int (*cli_flag_fn)(void *ctx, int argc, char **argv, int *i);
/* Returns 0 (free `out` with cli_args_free or cli_load_config), or, with `out` freed, 2 after a
 * message prefixed by `cmd` (an unexpected argument, a bad flag, no CONFIG.yaml) and `usage`,
 * or 1 (out of memory). */
int cli_parse_args(const char *cmd, int argc, char **argv, cli_flag_fn flag, void *ctx,
                   void (*usage)(void), cli_args *out);
void cli_args_free(cli_args *a);
/* Loads a's CONFIG.yaml with its overrides into *cfg and frees `a`. Returns 0, or 2 after the
 * error, prefixed by `cmd`, on stderr where `report` is set (rank 0 of a job: the ranks all
 * fail alike); the load's warnings (ch_config_load_warn) go to stderr there too. */
int cli_load_config(const char *cmd, cli_args *a, int report, ch_config *cfg);
