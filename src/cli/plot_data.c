/* metrics.jsonl read back for `cohort plot`: one JSON object per line (src/train/progress.c
 * writes them), parsed with cJSON into a series per numeric key. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/plot.h"

static plot_series *series_of(plot_run *run, const char *key) {
  for (int i = 0; i < run->nseries; i++)
    if (!strcmp(run->series[i].key, key)) return &run->series[i];
  plot_series *s = realloc(run->series, sizeof *s * (size_t)(run->nseries + 1));
  if (!s) return NULL;
  run->series = s;
  s = &run->series[run->nseries];
  memset(s, 0, sizeof *s);
  if (!(s->key = strdup(key))) return NULL;
  run->nseries++;
  return s;
}

static int append(plot_series *s, double step, double value) {
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    double *a = realloc(s->step, sizeof *a * (size_t)cap);
    if (a) s->step = a;
    double *b = a ? realloc(s->value, sizeof *b * (size_t)cap) : NULL;
    if (b) s->value = b;
    if (!a || !b) return 1;
    s->cap = cap;
  }
  s->step[s->n] = step;
  s->value[s->n++] = value;
  return 0;
}

/* One record; 0, 2 (not an object with an integer step), 1 (memory). */
static int add_record(plot_run *run, const char *line) {
  cJSON *o = cJSON_Parse(line);
  const cJSON *step = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
  if (!cJSON_IsNumber(step) || step->valuedouble != floor(step->valuedouble)) {
    cJSON_Delete(o);
    return 2;
  }
  int rc = 0;
  for (const cJSON *it = o->child; it && !rc; it = it->next) {
    if (!cJSON_IsNumber(it) || !strcmp(it->string, "step") || !strcmp(it->string, "epoch")) continue;
    plot_series *s = series_of(run, it->string);
    rc = !s || append(s, step->valuedouble, it->valuedouble);
  }
  cJSON_Delete(o);
  return rc;
}

int plot_read_run(const char *dir, plot_run *run) {
  memset(run, 0, sizeof *run);
  snprintf(run->path, sizeof run->path, "%s/metrics.jsonl", dir);
  FILE *f = fopen(run->path, "r");
  if (!f) {
    fprintf(stderr, "cohort plot: %s: %s (is %s a run directory of `cohort train`?)\n", run->path,
            strerror(errno), dir);
    return 2;
  }
  char *line = NULL;
  size_t cap = 0;
  int rc = 0;
  long lineno = 0;
  ssize_t len;
  while (!rc && (len = getline(&line, &cap, f)) >= 0) {
    lineno++;
    if (line[strspn(line, " \t\r\n")] == '\0') continue; /* a blank line holds no record */
    rc = add_record(run, line);
    if (rc == 0) run->records++;
    else if (rc == 2 && line[len - 1] != '\n') rc = 0; /* the last line, being written now */
    else if (rc == 2)
      fprintf(stderr, "cohort plot: %s:%ld: not a metrics record (a JSON object with an integer "
              "\"step\")\n", run->path, lineno);
    else fprintf(stderr, "cohort plot: out of memory reading %s\n", run->path);
  }
  if (!rc && ferror(f)) {
    fprintf(stderr, "cohort plot: %s: read error: %s\n", run->path, strerror(errno));
    rc = 2;
  }
  free(line);
  fclose(f);
  if (!rc && run->records == 0) {
    fprintf(stderr, "cohort plot: %s: no records (empty file: has the run logged a step yet?)\n",
            run->path);
    rc = 2;
  }
  return rc;
}

void plot_run_free(plot_run *run) {
  for (int i = 0; i < run->nseries; i++) {
    free(run->series[i].key);
    free(run->series[i].step);
    free(run->series[i].value);
  }
  free(run->series);
  memset(run, 0, sizeof *run);
}

const plot_series *plot_find(const plot_run *run, const char *key) {
  for (int i = 0; i < run->nseries; i++)
    if (!strcmp(run->series[i].key, key) && run->series[i].n > 0) return &run->series[i];
  return NULL;
}
