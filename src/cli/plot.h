/* `cohort plot`'s view of a run: the numbers of its metrics.jsonl as series over steps
 * (src/cli/plot_data.c); the command and its gnuplot script are src/cli/plot.c. */
#pragma once
#include "cohort/status.h"

/* One key of metrics.jsonl: the steps at which a record has a number for it (records where it
 * is null or absent are left out) and those numbers. */
typedef struct plot_series {
  char *key;
  int n, cap;
  double *step, *value;
} plot_series;

typedef struct plot_run {
  char path[CH_PATH_MAX + 32]; /* RUN_DIR/metrics.jsonl */
  int records;
  int nseries;
  plot_series *series;
} plot_run;

/* Reads dir/metrics.jsonl into *run: every numeric key but "step" and "epoch" becomes a series.
 * Returns 0, or 2 after one line on stderr prefixed "cohort plot: " naming the file: it cannot be
 * opened (is dir a run directory?), it holds no record, or a line is not a JSON object with an
 * integer "step" (path:line), or 1 (out of memory). A last line without its newline that does
 * not parse is skipped: the trainer is writing it. Free with plot_run_free either way. */
int plot_read_run(const char *dir, plot_run *run);
void plot_run_free(plot_run *run);
/* The series of `key`, or NULL when no record of the run has a number for it. */
const plot_series *plot_find(const plot_run *run, const char *key);
