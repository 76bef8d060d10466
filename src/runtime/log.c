/* Rank-prefixed, level-filtered logging to stdout/stderr. */
#include "cohort/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int g_rank = -1;
static ch_log_level g_threshold = CH_LOG_INFO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static ch_log_level parse_level(const char *s, ch_log_level dflt) {
  if (!s || !*s) return dflt;
  if (!strcasecmp(s, "debug")) return CH_LOG_DEBUG;
  if (!strcasecmp(s, "info")) return CH_LOG_INFO;
  if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning")) return CH_LOG_WARN;
  if (!strcasecmp(s, "error")) return CH_LOG_ERROR;
  fprintf(stderr, "cohort: COHORT_LOG='%s' is not one of debug|info|warn|error; using info\n", s);
  return dflt;
}

void ch_log_configure(int world_rank, int verbose) {
  g_rank = world_rank;
  ch_log_level level = parse_level(getenv("COHORT_LOG"), CH_LOG_INFO);
  const char *ranks = getenv("COHORT_LOG_RANKS");
  int all_ranks = verbose || (ranks && !strcasecmp(ranks, "all"));
  /* Quiet by default on ranks other than 0: only warnings and errors. */
  if (world_rank > 0 && !all_ranks && level < CH_LOG_WARN) level = CH_LOG_WARN;
  g_threshold = level;
}

int ch_log_enabled(ch_log_level level) { return level >= g_threshold; }

void ch_log(ch_log_level level, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  if (!ch_log_enabled(level)) return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  FILE *out = (level == CH_LOG_INFO && g_rank <= 0) ? stdout : stderr;
  pthread_mutex_lock(&g_lock);
  if (g_rank >= 0)
    fprintf(out, "[cohort r%d] %s%s%s\n", g_rank, level == CH_LOG_INFO ? "" : names[level],
            level == CH_LOG_INFO ? "" : ": ", msg);
  else
    fprintf(out, "[cohort] %s%s%s\n", level == CH_LOG_INFO ? "" : names[level],
            level == CH_LOG_INFO ? "" : ": ", msg);
  fflush(out);
  pthread_mutex_unlock(&g_lock);
}
