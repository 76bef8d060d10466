/* `cohort serve CHECKPOINT [options]`: serve a checkpoint from every rank of the job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort/config.h"
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
          "  --api-key KEY             require \"Authorization: Bearer KEY\" (health and\n"
          "                            readiness probes stay open)\n"
          "  --metrics-need-key true|false\n"
          "                            /metrics requires the API key too (false: open)\n"
          "  --tls-cert FILE           serve HTTPS with this PEM certificate (chain) ...\n"
          "  --tls-key FILE            ... and its unencrypted PEM private key (both or neither)\n"
          "  --access-log FILE         one JSON line per request to FILE (- = stderr)\n"
          "  --max-batch-size B        V2 rows per batch / sequences generated at once (8)\n"
          "  --max-queue-delay-us U    how long a V2 batch may wait to fill (2000)\n"
          "  --max-queue-size Q        waiting requests before 503 (256)\n"
          "  --timeout S               seconds a request may take before 504 (60)\n"
          "  --max-body-bytes N        larger bodies get 413 (16777216)\n"
          "  --max-connections C       concurrent connections (256)\n"
          "  --max-connections-per-client C\n"
          "                            connections one client address may hold (0 = half of\n"
          "                            --max-connections)\n"
          "  --read-deadline S         seconds a request's headers and body may take to arrive\n"
          "                            before the connection is closed (30; 0 = off)\n"
          "  --model-repository DIR    the directory repository loads may read from (default:\n"
          "                            the served checkpoint's directory)\n"
          "  --watchdog-timeout S      seconds a rank may wait in one collective before the job\n"
          "                            is aborted naming the hung rank (300; 0 = off)\n"
          "  --device cpu|cuda         where each rank computes its slice (cpu; cuda: the GPU\n"
          "                            of its local rank)\n"
          "  --precision fp32|bf16     GEMM arithmetic (fp32; bf16: cuda, or a CPU with\n"
          "                            AVX-512 BF16)\n"
          "  --data DATA.h5            GPT tokenizer source (default: the config's data.path)\n"
          "  --port-file FILE          write the bound port to FILE\n"
          "SIGTERM to any rank: stop accepting (503), finish accepted requests, exit 0.\n");
}

/* Parses "--opt value" pairs into cfg->serve.opts: the flags of serve.* keys through the key
 * rows (same ranges and messages as the YAML keys), the others here. Returns 0, or 2 with a
 * message. */
static int parse(int argc, char **argv, ch_config *cfg, const char **ckpt) {
  ch_serve_opts *o = &cfg->serve.opts;
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
    if (!strcmp(a, "--data")) snprintf(o->data_path, sizeof o->data_path, "%s", v);
    else if (!strcmp(a, "--port-file")) snprintf(o->port_file, sizeof o->port_file, "%s", v);
    else if (!strcmp(a, "--max-body-bytes") && num && n >= 64) o->max_body_bytes = (size_t)n;
    else if (!strcmp(a, "--max-connections") && num && n >= 1 && n <= 1 << 20)
      o->max_connections = (int)n;
    else if (strcmp(a, "--max-body-bytes") && strcmp(a, "--max-connections")) {
      if (ch_config_set_serve_flag(cfg, a, v) != CH_OK) {
        fprintf(stderr, "cohort serve: %s\n", ch_error_message());
        return 2;
      }
    } else {
      fprintf(stderr, "cohort serve: %s: expected an integer >= %d, got '%s'\n", a,
              strcmp(a, "--max-body-bytes") ? 1 : 64, v);
      return 2;
    }
  }
  if (!*ckpt) {
    usage(stderr);
    return 2;
  }
  return 0;
}

int cli_serve(int argc, char **argv) {
  if (cli_help(argc, argv, usage)) return 0;
  ch_config cfg; /* its serve.* defaults are the options' defaults */
  ch_config_defaults(&cfg);
  const char *ckpt = NULL;
  int rc = parse(argc, argv, &cfg, &ckpt);
  if (rc) return rc;
  ch_group world;
  ch_runtime *rt = cli_start(&argc, &argv, 0, &world);
  if (!rt) return 1;
  cfg.serve.opts.device = cfg.device; /* --device / --precision */
  ch_status st = ch_serve_checkpoint(&world, ckpt, &cfg.serve.opts);
  /* Loading and startup failures are agreed: every rank gets here with the same outcome. */
  if (st != CH_OK && rt->world_rank == 0) fprintf(stderr, "cohort serve: %s\n", ch_error_message());
  cli_stop(&world);
  /* CONFIG: an option this job cannot run with (a bad TLS file, precision=bf16 on a CPU without
   * AVX-512 BF16), exit 2 as `cohort train` does; anything else 1. */
  return st == CH_OK ? 0 : st == CH_ERR_CONFIG ? 2 : 1;
}
