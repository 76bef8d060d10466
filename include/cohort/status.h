/* Status codes and error propagation (docs/architecture.md).
 * Library functions return ch_status; CH_CHECK propagates a failure upward, adding the
 * file:line of each hop to a per-thread trace; CH_FAIL records the first message. */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks a function of the public API: libcohort is built with -fvisibility=hidden and exports
 * only what carries CH_API (every function declared in include/cohort/). */
#define CH_API __attribute__((visibility("default")))

/* Longest file path a config or checkpoint field holds (bytes, with the terminator). */
#define CH_PATH_MAX 512

typedef enum ch_status {
  CH_OK = 0,
  CH_ERR_INVALID,     /* bad argument or value */
  CH_ERR_CONFIG,      /* bad configuration key or value */
  CH_ERR_NOMEM,       /* allocation failed */
  CH_ERR_IO,          /* file system or HDF5 failure */
  CH_ERR_FORMAT,      /* malformed input file */
  CH_ERR_MPI,         /* an MPI call failed */
  CH_ERR_UNSUPPORTED, /* feature not available in this build or on this machine */
  CH_ERR_INTERNAL,    /* broken invariant: a bug in cohort */
} ch_status;

/* Short, static name of a status ("invalid argument"). Never NULL. */
CH_API const char *ch_status_str(ch_status s);

/* Records `s` with a formatted message and the caller's location as the current error of this
 * thread (replacing any earlier one) and returns `s`. Use through CH_FAIL. */
CH_API ch_status ch_error_set(ch_status s, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends "file:line" to the current error's propagation trace. Use through CH_CHECK. */
CH_API void ch_error_trace(const char *file, int line);

/* The current error message of this thread ("" when none), with its trace. Valid until the
 * next ch_error_set on this thread. */
CH_API const char *ch_error_message(void);

/* Forgets the current error of this thread. */
CH_API void ch_error_clear(void);

#define CH_FAIL(status, ...) ch_error_set((status), __FILE__, __LINE__, __VA_ARGS__)

#define CH_CHECK(expr)                       \
  do {                                       \
    ch_status ch_s_ = (expr);                \
    if (ch_s_ != CH_OK) {                    \
      ch_error_trace(__FILE__, __LINE__);    \
      return ch_s_;                          \
    }                                        \
  } while (0)

/* Stores the status in `st` and jumps to `label` on failure (cleanup paths). */
#define CH_CHECK_GOTO(expr, st, label)       \
  do {                                       \
    (st) = (expr);                           \
    if ((st) != CH_OK) {                     \
      ch_error_trace(__FILE__, __LINE__);    \
      goto label;                            \
    }                                        \
  } while (0)

/* 64-byte aligned, zeroed allocation of `bytes` (freed with ch_free_aligned). */
CH_API void *ch_alloc_aligned(size_t bytes);
CH_API void ch_free_aligned(void *p);

#ifdef __cplusplus
}
#endif
