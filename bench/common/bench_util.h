/* Helpers shared by the benchmark programs (not part of libcohort). */
#pragma once
#include <stddef.h>

/* The CPU's model name from /proc/cpuinfo ("unknown" if absent). */
void bench_cpu_model(char *buf, size_t len);
/* Sorts v[0..n) ascending. */
void bench_sort(double *v, int n);
/* Median of v[0..n) (sorts v in place); NaN when n <= 0. */
double bench_median(double *v, int n);
/* "64", "4k", "16M", "1G" (binary multiples) as a byte count. */
size_t bench_parse_size(const char *s);
