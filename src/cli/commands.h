/* Subcommands of the `cohort` binary. Each takes argv starting at its own name and returns
 * the process exit code (0 ok, 1 runtime failure, 2 usage or configuration error). */
#pragma once

int ch_cli_train(int argc, char **argv);
int ch_cli_data(int argc, char **argv);
int ch_cli_ckpt(int argc, char **argv);
