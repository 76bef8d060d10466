/* The CPU kernels' thread pool (kernels/cpu/pool.c): threads for the work that is not a GEMM
 * (LayerNorm, GELU, adds, cross-entropy, the optimizer), which OpenBLAS does not thread.
 *
 * One process-wide pool, made on first use, joined at exit. Its size follows the BLAS thread
 * count (ch_blas_init tells it; COHORT_KERNEL_THREADS in the environment overrides). The caller
 * works too: a pool of n threads runs n - 1 workers. Results never depend on the thread count:
 * cpu_parallel_for hands out disjoint ranges (for work whose result does not depend on where
 * it is cut), and the reductions cut at fixed points and add the pieces in a fixed order.
 *
 * Safe from several threads at once (the server's): the pool runs one caller's work at a
 * time, and a caller that finds it busy (another thread, or a call made from inside a worker)
 * runs its work inline on its own thread. */
#pragma once
#include <stdint.h>

/* Runs the elements [begin, end) of a job. */
typedef void (*cpu_range_fn)(void *ctx, int64_t begin, int64_t end);
/* Returns the partial sum of the elements [begin, end) of a reduction. */
typedef double (*cpu_sum_fn)(void *ctx, int64_t begin, int64_t end);

/* Sets the pool to n threads in all (n >= 1; 1 runs everything inline). The workers change at
 * the next parallel call. COHORT_KERNEL_THREADS, when set to a count >= 1, wins. */
void cpu_pool_set_threads(int n);
/* The thread count parallel calls use now (the caller included). */
int cpu_pool_threads(void);

/* Calls fn(ctx, begin, end) on contiguous ranges that cover [0, n) exactly once, in parallel,
 * and returns when all are done. Each range holds at least `grain` elements: n < 2 grain runs
 * inline as fn(ctx, 0, n), so a small op never pays a wake-up. Pick grain so that `grain`
 * elements take several microseconds. */
void cpu_parallel_for(int64_t n, int64_t grain, cpu_range_fn fn, void *ctx);

/* fn over the ranges [0, n) cut every `chunk` elements, the same ranges whatever the thread
 * count; runs them in parallel when there are two or more. For reductions that keep one
 * partial result per chunk (chunk index = begin / chunk) and combine them in chunk order. */
void cpu_parallel_chunks(int64_t n, int64_t chunk, cpu_range_fn fn, void *ctx);

/* The sum of fn over the chunks of cpu_parallel_chunks, added in chunk order in double: the
 * same bits for any thread count. n <= chunk is a single fn(ctx, 0, n). */
double cpu_parallel_sum(int64_t n, int64_t chunk, cpu_sum_fn fn, void *ctx);
