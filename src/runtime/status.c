/* Per-thread error state behind CH_FAIL / CH_CHECK. */
#include "cohort/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH_ERROR_MAX 2048

static _Thread_local char g_message[CH_ERROR_MAX];

const char *ch_status_str(ch_status s) {
  switch (s) {
    case CH_OK: return "ok";
    case CH_ERR_INVALID: return "invalid argument";
    case CH_ERR_CONFIG: return "configuration error";
    case CH_ERR_NOMEM: return "out of memory";
    case CH_ERR_IO: return "I/O error";
    case CH_ERR_FORMAT: return "bad file format";
    case CH_ERR_MPI: return "MPI error";
    case CH_ERR_UNSUPPORTED: return "unsupported";
    case CH_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

ch_status ch_error_set(ch_status s, const char *file, int line, const char *fmt, ...) {
  char msg[CH_ERROR_MAX - 256]; /* room left for the location */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *base = strrchr(file, '/');
  snprintf(g_message, sizeof g_message, "%s [at %s:%d", msg, base ? base + 1 : file, line);
  return s;
}

void ch_error_trace(const char *file, int line) {
  if (!g_message[0]) return;
  size_t len = strlen(g_message);
  const char *base = strrchr(file, '/');
  if (len + 32 < sizeof g_message)
    snprintf(g_message + len, sizeof g_message - len, " < %s:%d", base ? base + 1 : file, line);
}

const char *ch_error_message(void) {
  static _Thread_local char out[CH_ERROR_MAX + 2];
  if (!g_message[0]) return "";
  snprintf(out, sizeof out, "%s]", g_message);
  return out;
}

void ch_error_clear(void) { g_message[0] = '\0'; }

void *ch_alloc_aligned(size_t bytes) {
  if (bytes == 0) bytes = 64;
  size_t rounded = (bytes + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, rounded);
  if (p) memset(p, 0, rounded);
  return p;
}

void ch_free_aligned(void *p) { free(p); }
