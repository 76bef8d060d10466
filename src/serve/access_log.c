/* The access log (src/serve/access_log.h): one JSON line per request, after its response. */
#include "serve/access_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/log.h"
#include "cohort/runtime.h"
#include "serve/jsonw.h"

struct serve_access_log {
  FILE *f;
  int own;                /* 0 for stderr */
  int warned;             /* a failed write was reported (once: the log may be a full disk) */
  pthread_mutex_t lock;   /* one line at a time */
};

ch_status serve_access_log_open(const char *path, serve_access_log **out) {
  *out = NULL;
  if (!path[0]) return CH_OK;
  serve_access_log *l = calloc(1, sizeof *l);
  if (!l) return CH_FAIL(CH_ERR_NOMEM, "access log");
  if (!strcmp(path, "-")) {
    l->f = stderr;
  } else {
    /* 0640: the log holds clients' addresses and key ids, not for every user to read. */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    l->f = fd >= 0 ? fdopen(fd, "a") : NULL;
    if (!l->f) {
      int err = errno;
      if (fd >= 0) close(fd);
      free(l);
      return CH_FAIL(CH_ERR_CONFIG, "access log (--access-log) %s: %s", path, strerror(err));
    }
    l->own = 1;
  }
  pthread_mutex_init(&l->lock, NULL);
  *out = l;
  return CH_OK;
}

void serve_access_log_close(serve_access_log *l) {
  if (!l) return;
  if (l->own) fclose(l->f);
  else fflush(l->f);
  pthread_mutex_destroy(&l->lock);
  free(l);
}

/* First 8 hex digits of SHA-256(key[0..n)) into out[9]. */
static void key_id(const char *key, size_t n, char out[9]) {
  unsigned char d[32];
  if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key, n, d) < 0) {
    snprintf(out, 9, "????????");
    return;
  }
  snprintf(out, 9, "%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
}

void serve_access_init(serve_access *a, const char *method, const char *path,
                       const struct sockaddr *peer, const char *h, size_t n) {
  memset(a, 0, sizeof *a);
  clock_gettime(CLOCK_REALTIME, &a->wall);
  a->t0 = ch_time();
  snprintf(a->method, sizeof a->method, "%s", method ? method : "");
  snprintf(a->path, sizeof a->path, "%s", path ? path : "");
  if (peer && peer->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, a->peer, sizeof a->peer);
  else if (peer && peer->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, a->peer, sizeof a->peer);
  if (h) {
    if (n >= 7 && !memcmp(h, "Bearer ", 7)) h += 7, n -= 7;
    key_id(h, n, a->key_id);
  }
}

void serve_access_begin(serve_access *a, struct MHD_Connection *c, const char *method,
                        const char *url) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const char *h = NULL;
  size_t n = 0;
  if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
                                    strlen(MHD_HTTP_HEADER_AUTHORIZATION), &h, &n) != MHD_YES)
    h = NULL;
  serve_access_init(a, method, url, ci ? ci->client_addr : NULL, h, n);
}

char *serve_access_line(const serve_access *a, int status, uint64_t bytes, int completed,
                        double end) {
  struct tm tm;
  char when[40];
  gmtime_r(&a->wall.tv_sec, &tm);
  size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + w, sizeof when - w, ".%03ldZ", a->wall.tv_nsec / 1000000);
  double ms = (end - a->t0) * 1e3;
  jsonw j = {0};
  jsonw_fmt(&j, "{\"time\": \"%s\", \"peer\": ", when);
  jsonw_str(&j, a->peer, strlen(a->peer));
  jsonw_raw(&j, ", \"method\": ", 12);
  jsonw_str(&j, a->method, strlen(a->method));
  jsonw_raw(&j, ", \"path\": ", 10);
  jsonw_str(&j, a->path, strlen(a->path));
  if (status > 0) jsonw_fmt(&j, ", \"status\": %d", status);
  else jsonw_fmt(&j, ", \"status\": null");
  jsonw_fmt(&j, ", \"bytes\": %llu, \"duration_ms\": %.3f, \"key_id\": ",
            (unsigned long long)bytes, ms > 0 ? ms : 0.0);
  if (a->key_id[0]) jsonw_fmt(&j, "\"%s\"", a->key_id);
  else jsonw_raw(&j, "null", 4);
  jsonw_fmt(&j, ", \"completed\": %s}\n", completed ? "true" : "false");
  return jsonw_finish(&j);
}

void serve_access_write(serve_access_log *l, const serve_access *a, int status, uint64_t bytes,
                        int completed) {
  if (!l) return;
  if (!strcmp(a->method, "HEAD")) bytes = 0; /* its body is never sent */
  char *line = serve_access_line(a, status, bytes, completed, ch_time());
  pthread_mutex_lock(&l->lock);
  int ok = line && fputs(line, l->f) >= 0 && fflush(l->f) == 0;
  if (!ok && !l->warned) {
    l->warned = 1;
    CH_WARN("access log: a line could not be written (%s); later failures are not reported",
            line ? strerror(errno) : "out of memory");
  }
  pthread_mutex_unlock(&l->lock);
  free(line);
}
