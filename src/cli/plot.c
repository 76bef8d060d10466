/* `cohort plot RUN_DIR... [-o OUT.png] [--metric K,...] [--size WxH]`: the curves of one or
 * several runs' metrics.jsonl as a PNG, drawn by gnuplot (run as a child on a script and data
 * files in a temporary directory). One panel per metric, stacked, one line per run; log-scale
 * y for a loss whose values are all positive. Serial; does not initialise MPI. */
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/plot.h"

extern char **environ;

#define MAX_METRICS 16
static const char *const DEFAULT_METRICS = "loss,val_loss";

static void usage(FILE *out) {
  fprintf(out,
          "usage: cohort plot RUN_DIR [RUN_DIR...] [-o OUT.png] [--metric KEY[,KEY...]]\n"
          "                   [--size WxH]\n"
          "  draws each run's metrics.jsonl against the step, one panel per metric, one line\n"
          "  per run (named by its directory), with gnuplot (Debian: gnuplot-nox)\n"
          "  -o OUT.png   where to write; default RUN_DIR/loss.png for one run, ./loss.png for\n"
          "               several\n"
          "  --metric     metrics.jsonl keys, default loss,val_loss (also lr, grad_norm,\n"
          "               val_acc, samples_per_s, tokens_per_s, epoch_float)\n"
          "  --size WxH   image size in pixels, default 900 x 300 per panel\n");
}

typedef struct plot_args {
  const char **runs;
  int nruns;
  const char *out;
  char metric_text[512];
  const char *metrics[MAX_METRICS];
  int nmetrics, explicit_metrics;
  long width, height;
} plot_args;

static int parse_size(const char *s, long *w, long *h) {
  char *end;
  errno = 0;
  *w = strtol(s, &end, 10);
  if (errno || *end != 'x' || *w < 64 || *w > 10000) return 1;
  *h = strtol(end + 1, &end, 10);
  return errno || *end || *h < 64 || *h > 10000;
}

static int parse_args(int argc, char **argv, plot_args *a) {
  memset(a, 0, sizeof *a);
  a->runs = calloc((size_t)argc, sizeof *a->runs);
  if (!a->runs) return 1;
  const char *metrics = DEFAULT_METRICS;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    int value = i + 1 < argc;
    if (!strcmp(arg, "-o") || !strcmp(arg, "--output")) {
      if (!value) goto missing;
      a->out = argv[++i];
    } else if (!strcmp(arg, "--metric") || !strcmp(arg, "--metrics")) {
      if (!value) goto missing;
      metrics = argv[++i];
      a->explicit_metrics = 1;
    } else if (!strcmp(arg, "--size")) {
      if (!value) goto missing;
      if (parse_size(argv[++i], &a->width, &a->height)) {
        fprintf(stderr, "cohort plot: --size %s: expected WxH, each 64 .. 10000 pixels\n", argv[i]);
        return 2;
      }
    } else if (arg[0] == '-' && arg[1]) {
      fprintf(stderr, "cohort plot: unknown option '%s'\n", arg);
      usage(stderr);
      return 2;
    } else {
      a->runs[a->nruns++] = arg;
    }
    continue;
  missing:
    fprintf(stderr, "cohort plot: %s needs a value\n", arg);
    return 2;
  }
  if (a->nruns == 0) {
    fprintf(stderr, "cohort plot: no RUN_DIR given\n");
    usage(stderr);
    return 2;
  }
  if (strlen(metrics) >= sizeof a->metric_text) {
    fprintf(stderr, "cohort plot: --metric: too long\n");
    return 2;
  }
  snprintf(a->metric_text, sizeof a->metric_text, "%s", metrics);
  for (char *save = NULL, *k = strtok_r(a->metric_text, ",", &save); k;
       k = strtok_r(NULL, ",", &save)) {
    if (a->nmetrics == MAX_METRICS) {
      fprintf(stderr, "cohort plot: --metric: at most %d metrics\n", MAX_METRICS);
      return 2;
    }
    a->metrics[a->nmetrics++] = k;
  }
  if (a->nmetrics == 0) {
    fprintf(stderr, "cohort plot: --metric: no metric named\n");
    return 2;
  }
  return 0;
}

static void last_component(const char *path, char *out, size_t size) {
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') len--;
  size_t start = len;
  while (start > 0 && path[start - 1] != '/') start--;
  snprintf(out, size, "%.*s", (int)(len - start), path + start);
}

/* A legend name: the directory's last component, or the argument itself when another run has
 * the same last component. */
static void run_name(const plot_args *a, int r, char *out, size_t size) {
  char mine[CH_PATH_MAX], other[CH_PATH_MAX];
  last_component(a->runs[r], mine, sizeof mine);
  for (int j = 0; j < a->nruns; j++) {
    if (j == r) continue;
    last_component(a->runs[j], other, sizeof other);
    if (!strcmp(mine, other)) {
      snprintf(out, size, "%s", a->runs[r]);
      return;
    }
  }
  snprintf(out, size, "%s", mine);
}

/* `s` as a gnuplot single-quoted string (no escapes inside; a quote is doubled). */
static void put_quoted(FILE *f, const char *s) {
  fputc('\'', f);
  for (; *s; s++) {
    if (*s == '\'') fputc('\'', f);
    fputc(*s, f);
  }
  fputc('\'', f);
}

/* Writes the data files and the script into `tmp`; 0 or 1 after a message. */
static int write_script(const plot_args *a, const plot_run *runs, const char *tmp, const char *out,
                        const int *used, int npanels) {
  char path[CH_PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/plot.gp", tmp);
  FILE *gp = fopen(path, "w");
  if (!gp) {
    fprintf(stderr, "cohort plot: cannot write %s: %s\n", path, strerror(errno));
    return 1;
  }
  long w = a->width ? a->width : 900, h = a->height ? a->height : 300L * npanels;
  fprintf(gp,
          "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
          "  set terminal pngcairo size %ld,%ld noenhanced font ',10'\n"
          "} else {\n"
          "  set terminal png size %ld,%ld noenhanced\n"
          "}\n"
          "set output ",
          w, h, w, h);
  put_quoted(gp, out);
  /* Every panel on one step axis (from 0 to the last step any run logged), so a val point sits
   * under the train points of its step. */
  double last = 0;
  for (int r = 0; r < a->nruns; r++)
    for (int m = 0; m < a->nmetrics; m++) {
      const plot_series *s = used[m] ? plot_find(&runs[r], a->metrics[m]) : NULL;
      if (s && s->n && s->step[s->n - 1] > last) last = s->step[s->n - 1];
    }
  fprintf(gp, "\nset multiplot layout %d,1\nset grid\nset key top right\nset xlabel 'step'\n",
          npanels);
  if (last > 0) fprintf(gp, "set xrange [0:%.17g]\n", last);
  fprintf(gp, "set lmargin 10\n"); /* the panels' plot areas aligned, whatever their y labels */
  int rc = 0;
  for (int m = 0; m < a->nmetrics && !rc; m++) {
    if (!used[m]) continue;
    const char *key = a->metrics[m];
    int positive = 1;
    for (int r = 0; r < a->nruns; r++) {
      const plot_series *s = plot_find(&runs[r], key);
      for (int i = 0; s && i < s->n; i++) positive &= s->value[i] > 0;
    }
    fprintf(gp, "set title ");
    put_quoted(gp, key);
    fprintf(gp, "\n%s\nplot ", positive && strstr(key, "loss") ? "set logscale y" : "unset logscale y");
    int first = 1;
    for (int r = 0; r < a->nruns && !rc; r++) {
      const plot_series *s = plot_find(&runs[r], key);
      if (!s) continue;
      char data[CH_PATH_MAX + 64], name[CH_PATH_MAX];
      snprintf(data, sizeof data, "%s/r%d_m%d.dat", tmp, r, m);
      FILE *f = fopen(data, "w");
      for (int i = 0; f && i < s->n; i++) fprintf(f, "%.17g %.17g\n", s->step[i], s->value[i]);
      if (!f || fclose(f) != 0) {
        fprintf(stderr, "cohort plot: cannot write %s: %s\n", data, strerror(errno));
        rc = 1;
        break;
      }
      run_name(a, r, name, sizeof name);
      fprintf(gp, "%s", first ? "" : ", \\\n     ");
      put_quoted(gp, data);
      fprintf(gp, " using 1:2 with linespoints linetype %d linewidth 2 pointtype 7 "
              "pointsize 0.6 title ", r + 1);
      put_quoted(gp, name);
      first = 0;
    }
    fprintf(gp, "\n");
  }
  fprintf(gp, "unset multiplot\nset output\n");
  if (fclose(gp) != 0 && !rc) {
    fprintf(stderr, "cohort plot: cannot write %s: %s\n", path, strerror(errno));
    rc = 1;
  }
  return rc;
}

/* Runs `gnuplot SCRIPT` (its own messages go to our stderr); 0, or 1 after a message. */
static int run_gnuplot(const char *tmp) {
  char script[CH_PATH_MAX + 64];
  snprintf(script, sizeof script, "%s/plot.gp", tmp);
  char *argv[] = {"gnuplot", script, NULL};
  pid_t pid;
  int err = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
  if (err == ENOENT) {
    fprintf(stderr, "cohort plot: gnuplot is not installed (or not in PATH); install it "
            "(Debian, Ubuntu: apt-get install gnuplot-nox)\n");
    return 1;
  }
  if (err) {
    fprintf(stderr, "cohort plot: cannot start gnuplot: %s\n", strerror(err));
    return 1;
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) {
      fprintf(stderr, "cohort plot: waiting for gnuplot: %s\n", strerror(errno));
      return 1;
    }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  fprintf(stderr, "cohort plot: gnuplot failed (%s %d); its script is %s\n",
          WIFEXITED(status) ? "exit" : "signal",
          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), script);
  return 1;
}

/* Removes the temporary directory's files (the names write_script uses) and itself. */
static void remove_tmp(const char *tmp, const plot_args *a) {
  char path[CH_PATH_MAX + 64];
  for (int r = 0; r < a->nruns; r++)
    for (int m = 0; m < a->nmetrics; m++) {
      snprintf(path, sizeof path, "%s/r%d_m%d.dat", tmp, r, m);
      unlink(path);
    }
  snprintf(path, sizeof path, "%s/plot.gp", tmp);
  unlink(path);
  rmdir(tmp);
}

/* Which metrics get a panel: every one some run has; a metric named with --metric that no run
 * has is an error (2), a default one is left out. Returns 0 with *npanels >= 1, or 2. */
static int choose_panels(const plot_args *a, const plot_run *runs, int *used, int *npanels) {
  *npanels = 0;
  for (int m = 0; m < a->nmetrics; m++) {
    used[m] = 0;
    for (int r = 0; r < a->nruns; r++) used[m] |= plot_find(&runs[r], a->metrics[m]) != NULL;
    if (!used[m] && a->explicit_metrics) {
      fprintf(stderr, "cohort plot: no run has a value of '%s'; %s has:", a->metrics[m],
              runs[0].path);
      for (int i = 0; i < runs[0].nseries; i++) fprintf(stderr, " %s", runs[0].series[i].key);
      fprintf(stderr, "\n");
      return 2;
    }
    *npanels += used[m];
  }
  if (*npanels == 0) {
    fprintf(stderr, "cohort plot: no run has any of %s\n", DEFAULT_METRICS);
    return 2;
  }
  return 0;
}

/* The output's directory must exist and be writable (checked before gnuplot, whose own
 * message would come after the work); 0 or 2 after a message. */
static int check_output(const char *out) {
  char dir[CH_PATH_MAX + 32];
  snprintf(dir, sizeof dir, "%s", out);
  char *slash = strrchr(dir, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == dir) dir[1] = '\0';
  else *slash = '\0';
  if (access(dir, W_OK) == 0) return 0;
  fprintf(stderr, "cohort plot: cannot write %s: %s: %s\n", out, dir, strerror(errno));
  return 2;
}

int cli_plot(int argc, char **argv) {
  if (cli_help(argc, argv, usage)) return 0;
  plot_args a;
  int rc = parse_args(argc, argv, &a);
  plot_run *runs = rc ? NULL : calloc((size_t)a.nruns, sizeof *runs);
  if (!rc && !runs) rc = 1;
  for (int r = 0; !rc && r < a.nruns; r++) rc = plot_read_run(a.runs[r], &runs[r]);
  int used[MAX_METRICS], npanels = 0;
  if (!rc) rc = choose_panels(&a, runs, used, &npanels);
  char out[CH_PATH_MAX + 32];
  if (a.out) snprintf(out, sizeof out, "%s", a.out);
  else if (a.nruns == 1) snprintf(out, sizeof out, "%s/loss.png", a.runs[0]);
  else snprintf(out, sizeof out, "loss.png");
  if (!rc) rc = check_output(out);
  if (!rc) {
    const char *dir = getenv("TMPDIR");
    char tmp[CH_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/cohort-plot-XXXXXX", dir && dir[0] ? dir : "/tmp");
    if (!mkdtemp(tmp)) {
      fprintf(stderr, "cohort plot: cannot make a directory %s: %s\n", tmp, strerror(errno));
      rc = 1;
    } else {
      rc = write_script(&a, runs, tmp, out, used, npanels);
      if (!rc) rc = run_gnuplot(tmp);
      if (!rc) remove_tmp(tmp, &a); /* kept on failure, for the script gnuplot's error names */
    }
  }
  struct stat st;
  if (!rc && (stat(out, &st) != 0 || st.st_size == 0)) {
    fprintf(stderr, "cohort plot: gnuplot wrote no image to %s\n", out);
    rc = 1;
  }
  if (!rc) {
    printf("cohort plot: wrote %s (", out);
    for (int m = 0, k = 0; m < a.nmetrics; m++)
      if (used[m]) printf("%s%s", k++ ? ", " : "", a.metrics[m]);
    printf(" of %d run%s)\n", a.nruns, a.nruns == 1 ? "" : "s");
  }
  for (int r = 0; runs && r < a.nruns; r++) plot_run_free(&runs[r]);
  free(runs);
  free(a.runs);
  return rc;
}
