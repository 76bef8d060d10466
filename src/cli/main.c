/* The `cohort` command: dispatches to subcommands. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort_build.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: cohort <command> [args]\n"
          "\n"
          "commands:\n"
          "  train CONFIG.yaml [key.sub=value ...]   train a model (under mpirun or srun)\n"
          "  estimate CONFIG.yaml [key.sub=value ...] --ranks N [--json]\n"
          "                                          per-rank memory and traffic of ddp/zero1-3\n"
          "  data csv IN.csv[.gz] OUT.h5 [--label-column K] [--val-fraction F] [--seed S]\n"
          "                                          convert a CSV into a cohort dataset\n"
          "  data text IN[.gz]... OUT.h5 [--val-fraction F] [--tokenizer byte|gpt2\n"
          "            --vocab encoder.json --merges vocab.bpe]\n"
          "                                          tokenize text into a token dataset\n"
          "  ckpt inspect PATH                       show a checkpoint and verify its checksums\n"
          "  ckpt export PATH OUT_DIR|OUT.safetensors\n"
          "                                          its model tensors as safetensors (a GPT: with\n"
          "                                          a Hugging Face GPT-2 config.json)\n"
          "  ckpt import HF_DIR|FILE.safetensors OUT_DIR [--n-head N] [--tokenizer K] [--data D]\n"
          "                                          a Hugging Face GPT-2 as a step-0 checkpoint\n"
          "  generate CHECKPOINT --prompt TEXT [...]  text from a trained GPT (KV cache)\n"
          "  serve CHECKPOINT [--port P ...]         serve it over HTTP from every rank (KServe V2,\n"
          "                                          OpenAI completions, Prometheus metrics)\n"
          "  infer CHECKPOINT IN.h5 OUT.h5           offline predictions, rows split over ranks\n"
          "  plot RUN_DIR... [-o OUT.png] [--metric K,...]\n"
          "                                          draw runs' metrics.jsonl curves (gnuplot)\n"
          "  version                                 print version and build facts\n"
          "\n"
          "Environment: COHORT_LOG=debug|info|warn|error, COHORT_LOG_RANKS=all.\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
    /* MPI_Get_library_version is one of the calls allowed before MPI_Init. */
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    MPI_Get_library_version(mpi, &len);
    char *nl = strchr(mpi, '\n');
    if (nl) *nl = '\0';
    printf("cohort %s (built with %s; %s)\n", COHORT_VERSION, COHORT_MPI_FLAVOR, mpi);
    return 0;
  }
  if (!strcmp(argv[1], "train")) return cli_train(argc - 1, argv + 1);
  if (!strcmp(argv[1], "estimate")) return cli_estimate(argc - 1, argv + 1);
  if (!strcmp(argv[1], "data")) return cli_data(argc - 1, argv + 1);
  if (!strcmp(argv[1], "ckpt")) return cli_ckpt(argc - 1, argv + 1);
  if (!strcmp(argv[1], "generate")) return cli_generate(argc - 1, argv + 1);
  if (!strcmp(argv[1], "serve")) return cli_serve(argc - 1, argv + 1);
  if (!strcmp(argv[1], "infer")) return cli_infer(argc - 1, argv + 1);
  if (!strcmp(argv[1], "plot")) return cli_plot(argc - 1, argv + 1);
  fprintf(stderr, "cohort: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
