/* Tiny assertion helpers shared by the test programs. A failed check prints where and why
 * and the program exits 1 (after MPI_Abort in multi-rank tests, so no rank hangs). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "cohort/model.h"

/* Fails the test with a message (aborting all ranks when MPI is initialised). */
_Noreturn void cht_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHT_ASSERT(cond, ...) \
  do { if (!(cond)) cht_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
/* Asserts a ch_status call returned CH_OK, printing the error message otherwise. */
#define CHT_OK(expr) \
  do { ch_status s_ = (expr); if (s_ != CH_OK) cht_fail(__FILE__, __LINE__, "%s -> %s: %s", #expr, ch_status_str(s_), ch_error_message()); } while (0)

/* Max over i of |a[i]-b[i]| / max(|b[i]|, floor): relative error with an absolute floor for
 * values near zero. */
double cht_max_rel_err(const float *a, const float *b, size_t n, double floor);

/* A fresh directory shared by every rank of MPI_COMM_WORLD: rank 0 makes it from the mkdtemp
 * template in dir ("...XXXXXX", replaced by the name) and sends the name. Collective. */
void cht_world_tmpdir(char *dir, size_t size);
/* Collective over MPI_COMM_WORLD: once every rank is done with it, rank 0 removes the
 * directory and everything in it. */
void cht_world_tmpdir_remove(const char *dir);

/* Makes m a GPT of the given shape (n_layer blocks of n_head heads, n_embd wide, `context`
 * tokens), leaving its other fields as they are. */
void cht_gpt(ch_model_cfg *m, int n_layer, int n_head, int n_embd, int context);

/* Fills x with values from U(-1, 1) drawn from (seed, stream). */
void cht_fill_uniform(float *x, size_t n, uint64_t seed, uint64_t stream);
