/* Helpers shared by the benchmark programs (not part of libcohort). */
#pragma once
#include <stddef.h>

/* The CPU's model name from /proc/cpuinfo ("unknown" if absent). */
void bench_cpu_model(char *buf, size_t len);

/* What a benchmark prints about its machine (rank 0, after MPI_Init). */
typedef struct bench_machine {
  char model[256]; /* bench_cpu_model */
  char mpi[512];   /* MPI_Get_library_version, up to its first newline or comma */
  long cores;      /* online cores */
} bench_machine;
/* Fills *m. */
void bench_machine_get(bench_machine *m);
/* Sorts v[0..n) ascending. */
void bench_sort(double *v, int n);
/* Median of v[0..n) (sorts v in place); NaN when n <= 0. */
double bench_median(double *v, int n);
/* "64", "4k", "16M", "1G" (binary multiples) as a byte count. */
size_t bench_parse_size(const char *s);
