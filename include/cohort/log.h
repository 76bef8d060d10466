/* Rank-prefixed logging. Threshold from COHORT_LOG=debug|info|warn|error (default info).
 * Ranks other than 0 print only warnings and errors unless COHORT_LOG_RANKS=all. */
#pragma once
#include "cohort/status.h" /* CH_API */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ch_log_level { CH_LOG_DEBUG = 0, CH_LOG_INFO, CH_LOG_WARN, CH_LOG_ERROR } ch_log_level;

/* Reads COHORT_LOG / COHORT_LOG_RANKS and remembers this process's world rank for prefixes.
 * `verbose` forces info on every rank. Safe to call again (e.g. after MPI init). */
CH_API void ch_log_configure(int world_rank, int verbose);

/* Whether a message at `level` would be printed by this rank. */
CH_API int ch_log_enabled(ch_log_level level);

/* Prints "[cohort r<rank>] LEVEL: message" to stderr (stdout for info on rank 0). Thread safe. */
CH_API void ch_log(ch_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CH_DEBUG(...) ch_log(CH_LOG_DEBUG, __VA_ARGS__)
#define CH_INFO(...) ch_log(CH_LOG_INFO, __VA_ARGS__)
#define CH_WARN(...) ch_log(CH_LOG_WARN, __VA_ARGS__)
#define CH_ERROR(...) ch_log(CH_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
