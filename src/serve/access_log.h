/* The access log (--access-log FILE, or - for stderr; serve.access_log): one JSON line per
 * request, written once its response is over (libmicrohttpd's request-completed callback):
 *   {"time": "2026-12-03T17:35:42.123Z", "peer": "127.0.0.1", "method": "POST",
 *    "path": "/v2/models/mlp/infer", "status": 200, "bytes": 312, "duration_ms": 1.482,
 *    "key_id": "9f86d081", "completed": true}
 * time: the request's arrival (RFC 3339, UTC, milliseconds); status: null when no response was
 * queued (the client left first); bytes: the response body's bytes sent (0 for HEAD);
 * duration_ms: arrival to the response's end; key_id: the first 8 hex digits of the SHA-256 of
 * the bearer token the client sent (null when it sent no Authorization header): it tells keys
 * apart, never holds the key; completed: whether the response went out in full. Lines from
 * concurrent requests never interleave (one write each, under a lock). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cohort/status.h"

struct MHD_Connection;
struct sockaddr;
typedef struct serve_access_log serve_access_log;

/* Opens the log: "-" = stderr, else FILE appended to (created with mode 0640). *out = NULL for
 * "" (no log). Errors name the file. */
ch_status serve_access_log_open(const char *path, serve_access_log **out);
/* Closes it (stderr stays open). NULL is a no-op. */
void serve_access_log_close(serve_access_log *l);

/* What the log keeps of a request from its arrival to its end. */
typedef struct serve_access {
  struct timespec wall; /* arrival, wall clock */
  double t0;            /* arrival, ch_time() */
  char method[16];
  char peer[48];        /* the client's IP address; "" when unknown */
  char key_id[9];       /* "" when no Authorization header was sent */
  char path[1024];      /* cut at 1023 bytes */
} serve_access;

/* Fills a at a request's arrival from its parts: the peer's socket address (may be NULL) and
 * the Authorization header's value h[0..n) (h NULL: none). The "Bearer " prefix is not part of
 * the key id's input. */
void serve_access_init(serve_access *a, const char *method, const char *path,
                       const struct sockaddr *peer, const char *h, size_t n);
/* The same from a libmicrohttpd connection whose headers have arrived. */
void serve_access_begin(serve_access *a, struct MHD_Connection *c, const char *method,
                        const char *url);

/* The line for a (with its '\n'; caller frees; NULL when out of memory): status 0 = none
 * queued; `end` = ch_time() when the response ended. */
char *serve_access_line(const serve_access *a, int status, uint64_t bytes, int completed,
                        double end);
/* Writes a's line to l (NULL: no log). Thread-safe; a failed write is warned about once. */
void serve_access_write(serve_access_log *l, const serve_access *a, int status, uint64_t bytes,
                        int completed);
