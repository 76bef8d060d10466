/* `cohort serve CHECKPOINT [options]`: serve a checkpoint from every rank of the job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort/log.h"
#include "cohort/runtime.h"
#include "cohort/serve.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: [mpirun -n N | srun -n N] cohort serve CHECKPOINT [options]\n"
          "\n"
          "CHECKPOINT is a checkpoint file or directory (its `latest`), written by any number of\n"
          "ranks; each of the N ranks loads its tensor-parallel slice, rank 0 answers HTTP.\n"
          "  --host ADDR               bind address (default 127.0.0.1)\n"
          "  --port P                  port (default 8000; 0 = any free port)\n"
          "  --model-name NAME         name in the URLs (default: mlp or gpt)\n"
          "  --api-key KEY             require \"Authorization: Bearer KEY\" (health stays open)\n"
          "  --max-batch-size B        V2 rows per batch / sequences generated at once (8)\n"
          "  --max-queue-delay-us U    how long a V2 batch may wait to fill (2000)\n"
          "  --max-queue-size Q        waiting requests before 503 (256)\n"
          "  --timeout S               seconds a request may take before 504 (60)\n"
          "  --max-body-bytes N        larger bodies get 413 (16777216)\n"
          "  --max-connections C       concurrent connections (256)\n"
          "  --data DATA.h5            GPT tokenizer source (default: the config's data.path)\n"
          "  --port-file FILE          write the bound port to FILE\n"
          "SIGTERM or SIGINT: stop accepting (503), finish accepted requests, exit 0.\n");
}

/* Parses "--opt value" pairs into o. Returns 0, or 2 with a message. */
static int parse(int argc, char **argv, ch_serve_opts *o, const char **ckpt) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (a[0] != '-') {
      if (*ckpt) {
        fprintf(stderr, "cohort serve: unexpected argument '%s'\n", a);
        return 2;
      }
      *ckpt = a;
      continue;
    }
    if (!v) {
      fprintf(stderr, "cohort serve: %s needs a value\n", a);
      return 2;
    }
    i++;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    int num = end && !*end && end != v;
    if (!strcmp(a, "--host")) snprintf(o->host, sizeof o->host, "%s", v);
    else if (!strcmp(a, "--model-name")) snprintf(o->model_name, sizeof o->model_name, "%s", v);
    else if (!strcmp(a, "--api-key")) snprintf(o->api_key, sizeof o->api_key, "%s", v);
    else if (!strcmp(a, "--data")) snprintf(o->data_path, sizeof o->data_path, "%s", v);
    else if (!strcmp(a, "--port-file")) snprintf(o->port_file, sizeof o->port_file, "%s", v);
    else if (!strcmp(a, "--timeout") && (o->request_timeout = strtod(v, &end)) > 0 && !*end) {
    } else if (!num) {
      fprintf(stderr, "cohort serve: %s: expected a number, got '%s'\n", a, v);
      return 2;
    } else if (!strcmp(a, "--port") && n >= 0 && n < 65536) o->port = (int)n;
    else if (!strcmp(a, "--max-batch-size") && n >= 1 && n <= 4096) o->max_batch_size = (int)n;
    else if (!strcmp(a, "--max-queue-delay-us") && n >= 0) o->max_queue_delay_us = n;
    else if (!strcmp(a, "--max-queue-size") && n >= 1) o->max_queue_size = (int)n;
    else if (!strcmp(a, "--max-body-bytes") && n >= 64) o->max_body_bytes = (size_t)n;
    else if (!strcmp(a, "--max-connections") && n >= 1) o->max_connections = (int)n;
    else {
      fprintf(stderr, "cohort serve: unknown option, or value out of range: %s %s\n", a, v);
      return 2;
    }
  }
  if (!*ckpt) {
    usage(stderr);
    return 2;
  }
  return 0;
}

int ch_cli_serve(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    }
  ch_serve_opts o;
  ch_serve_opts_default(&o);
  const char *ckpt = NULL;
  int rc = parse(argc, argv, &o, &ckpt);
  if (rc) return rc;
  ch_runtime_opts ro = {.bind_cores = 1};
  ch_runtime *rt;
  if (ch_runtime_init(&argc, &argv, &ro, &rt) != CH_OK) {
    fprintf(stderr, "cohort: runtime initialisation failed: %s\n", ch_error_message());
    return 1;
  }
  ch_group world;
  ch_cli_world(rt, &world);
  ch_status st = ch_serve_checkpoint(&world, ckpt, &o);
  if (st != CH_OK) {
    /* Loading and startup failures are agreed: every rank gets here with the same outcome. */
    if (rt->world_rank == 0) fprintf(stderr, "cohort serve: %s\n", ch_error_message());
    ch_group_destroy(&world);
    ch_runtime_finalize();
    return 1;
  }
  ch_group_destroy(&world);
  ch_runtime_finalize();
  return 0;
}
