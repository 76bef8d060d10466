/* Subcommands of the `cohort` binary. Each takes argv starting at its own name and returns
 * the process exit code (0 ok, 1 runtime failure, 2 usage or configuration error). */
#pragma once
#include <stddef.h>

#include "cohort/comm.h"
#include "cohort/runtime.h"

int ch_cli_train(int argc, char **argv);
int ch_cli_data(int argc, char **argv);
int ch_cli_ckpt(int argc, char **argv);
int ch_cli_generate(int argc, char **argv);
int ch_cli_serve(int argc, char **argv);
int ch_cli_infer(int argc, char **argv);
int ch_cli_estimate(int argc, char **argv);

/* The checkpoint a PATH argument names: the file itself, or for a directory the file its
 * `latest` pointer names (relative to the directory). Returns 0, or 1 with a message on stderr
 * prefixed by `cmd`. */
int ch_cli_resolve_checkpoint(const char *cmd, const char *arg, char *out, size_t size);

/* After ch_runtime_init: sets one BLAS thread per bound core (logging the BLAS facts) and
 * creates the world group in `*world`. Ends the job (ch_runtime_fatal) on failure. */
void ch_cli_world(const ch_runtime *rt, ch_group *world);
