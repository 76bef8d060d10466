#include "bench_util.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bench_cpu_model(char *buf, size_t len) {
  snprintf(buf, len, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) == 0 && colon) {
      colon += colon[1] == ' ' ? 2 : 1;
      colon[strcspn(colon, "\n")] = '\0';
      snprintf(buf, len, "%s", colon);
      break;
    }
  }
  fclose(f);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_sort(double *v, int n) {
  if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_double);
}

double bench_median(double *v, int n) {
  if (n <= 0) return NAN;
  bench_sort(v, n);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

size_t bench_parse_size(const char *s) {
  char *end;
  double v = strtod(s, &end);
  switch (*end) {
    case 'k': case 'K': v *= 1024; break;
    case 'm': case 'M': v *= 1024 * 1024; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
  }
  return (size_t)v;
}

void bench_machine_get(bench_machine *m) {
  bench_cpu_model(m->model, sizeof m->model);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int vlen = 0;
  MPI_Get_library_version(version, &vlen);
  version[strcspn(version, "\n,")] = '\0';
  snprintf(m->mpi, sizeof m->mpi, "%s", version);
  m->cores = sysconf(_SC_NPROCESSORS_ONLN);
}
