/* `cohort data ...`: dataset tools. Serial; does not initialise MPI. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cohort/data.h"

static void data_usage(FILE *out) {
  fprintf(out,
          "usage: cohort data csv IN.csv[.gz] OUT.h5 [--label-column K] [--val-fraction F] [--seed S]\n"
          "\n"
          "Converts a comma-separated file (optionally gzipped, optional header line) into a cohort\n"
          "dataset: /train/x, /train/y, /val/x, /val/y with a stratified, seeded train/val split.\n"
          "\n"
          "  --label-column K   0-based column holding the integer class label (default: last)\n"
          "  --val-fraction F   fraction of each class put in the validation split, 0 <= F < 1\n"
          "                     (default 0.2)\n"
          "  --seed S           seed of the split (default 0)\n");
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "cohort data csv: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(run 'cohort data csv --help' for usage)\n");
  return 2;
}

/* Parses the value of option `name`; returns 0 on success. */
static int parse_int(const char *s, int *v) {
  char *end;
  errno = 0;
  long x = strtol(s, &end, 10);
  if (!*s || *end || errno || x < -1 || x > INT_MAX) return 1;
  *v = (int)x;
  return 0;
}

static int parse_frac(const char *s, double *v) {
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  if (!*s || *end || errno || !(x >= 0 && x < 1)) return 1;
  *v = x;
  return 0;
}

static int parse_u64(const char *s, uint64_t *v) {
  char *end;
  errno = 0;
  if (!*s || *s == '-') return 1;
  unsigned long long x = strtoull(s, &end, 0);
  if (*end || errno) return 1;
  *v = (uint64_t)x;
  return 0;
}

static int cli_data_csv(int argc, char **argv) {
  ch_csv_opts o = {.label_column = -1, .val_fraction = 0.2, .seed = 0};
  const char *pos[2] = {NULL, NULL};
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      data_usage(stdout);
      return 0;
    }
    if (a[0] == '-' && a[1] == '-') {
      /* --opt VALUE or --opt=VALUE */
      const char *eq = strchr(a, '=');
      size_t len = eq ? (size_t)(eq - a) : strlen(a);
      const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
      int is_label = len == 14 && !strncmp(a, "--label-column", len);
      int is_frac = len == 14 && !strncmp(a, "--val-fraction", len);
      int is_seed = len == 6 && !strncmp(a, "--seed", len);
      if (!is_label && !is_frac && !is_seed) return usage_error("unknown option '%s'", a);
      if (!val) return usage_error("option '%s' needs a value", a);
      if (!eq) i++;
      if (is_label && parse_int(val, &o.label_column))
        return usage_error("--label-column: '%s' is not a column index (0-based, or -1 for the last)", val);
      if (is_frac && parse_frac(val, &o.val_fraction))
        return usage_error("--val-fraction: '%s' is not a number in [0, 1)", val);
      if (is_seed && parse_u64(val, &o.seed))
        return usage_error("--seed: '%s' is not a non-negative integer", val);
      continue;
    }
    if (npos == 2) return usage_error("unexpected argument '%s'", a);
    pos[npos++] = a;
  }
  if (npos < 2) {
    data_usage(stderr);
    return 2;
  }
  ch_csv_stats s;
  ch_status st = ch_data_csv_convert(pos[0], pos[1], &o, &s);
  if (st != CH_OK) {
    fprintf(stderr, "cohort data csv: %s: %s\n", ch_status_str(st), ch_error_message());
    return st == CH_ERR_INVALID ? 2 : 1; /* INVALID: an option does not fit the file */
  }
  printf("wrote %s\n"
         "  rows      %" PRId64 " (train %" PRId64 ", val %" PRId64 ")\n"
         "  features  %" PRId64 "\n"
         "  classes   %d\n",
         pos[1], s.rows, s.train_rows, s.val_rows, s.features, s.num_classes);
  return 0;
}

int ch_cli_data(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    data_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "csv")) return cli_data_csv(argc - 1, argv + 1);
  fprintf(stderr, "cohort data: unknown subcommand '%s' (expected: csv)\n", argv[1]);
  return 2;
}
