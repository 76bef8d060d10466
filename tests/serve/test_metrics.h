/* The parts of test_metrics that live in test_metrics_values.c. */
#pragma once

/* Random label values with every special character round-trip through render and parse. */
void test_escaping(void);

/* Cumulative buckets, _sum and _count against a naive count, on random bounds and values. */
void test_histograms(void);

/* 8 threads x 10000 updates (with concurrent series creation, registration and renders) add
 * up exactly. */
void test_threads(void);

/* Writes a random registry's render to `render_path` and what it must contain (hex floats) to
 * `expect_path`, for test_metrics_prom.py; returns the exit code. */
int test_metrics_dump(const char *render_path, const char *expect_path);
