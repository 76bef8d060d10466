/* The HTTP transport on rank 0 (libmicrohttpd, one thread per connection): the listening
 * socket, the connection limits (total, per client, the deadline for a request to arrive:
 * conns.c), request bodies within --max-body-bytes (decoded when sent with a Content-Encoding:
 * encoding.c), responses, the end of each connection (and its access log line: access_log.c),
 * HTTPS (tls.c), and libmicrohttpd's log lines (rate-limited: clients cause them). What a
 * request means is route.c's; what each API does is v2_api.c's and openai_api.c's. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/log.h"
#include "cohort/runtime.h"
#include "serve/access_log.h"
#include "serve/conns.h"
#include "serve/encoding.h"
#include "serve/server.h"
#include "serve/tls.h"
#include "serve/v2.h"

#if MHD_VERSION < 0x00097002
typedef int mhd_result;
#else
typedef enum MHD_Result mhd_result;
#endif

_Static_assert(SERVE_STREAM_END == MHD_CONTENT_READER_END_OF_STREAM, "stream end");
_Static_assert(SERVE_STREAM_ERROR == MHD_CONTENT_READER_END_WITH_ERROR, "stream error");

/* A connection's request: the call the routes see, and its body as it arrives. */
typedef struct conn {
  serve_call call;
  char *body;
  size_t len, cap;
  int too_large;
  serve_access access; /* for the access log, from the headers' arrival */
} conn;

/* ---- responses -------------------------------------------------------------------------- */

const char *serve_call_header(serve_call *k, const char *name) {
  return MHD_lookup_connection_value(k->c, MHD_HEADER_KIND, name);
}

const char *serve_call_header_n(serve_call *k, const char *name, size_t *len) {
  const char *v = NULL;
  *len = 0;
  if (MHD_lookup_connection_value_n(k->c, MHD_HEADER_KIND, name, strlen(name), &v, len) != MHD_YES)
    return NULL;
  return v;
}

int serve_reply_bytes(serve_call *k, int status, char *data, size_t len,
                      const char *content_type, const char *header, const char *value) {
  if (!data) {
    status = 500;
    content_type = "application/json";
    data = strdup("{\"error\": \"out of memory\"}");
    if (!data) return MHD_NO;
    len = strlen(data);
    header = NULL;
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(data);
    return MHD_NO;
  }
  k->bytes = len;
  MHD_add_response_header(r, "Content-Type", content_type);
  if (header) MHD_add_response_header(r, header, value);
  mhd_result ret = MHD_queue_response(k->c, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

int serve_reply(serve_call *k, int status, char *text, const char *content_type) {
  return serve_reply_bytes(k, status, text, text ? strlen(text) : 0, content_type, NULL, NULL);
}

int serve_reply_json(serve_call *k, int status, char *json) {
  return serve_reply(k, status, json, "application/json");
}

int serve_reply_error_hdr(serve_call *k, int status, const char *msg, const char *name,
                          const char *value) {
  char *e = v2_error(msg);
  return serve_reply_bytes(k, status, e, e ? strlen(e) : 0, "application/json", name, value);
}

int serve_reply_error(serve_call *k, int status, const char *msg) {
  return serve_reply_error_hdr(k, status, msg, NULL, NULL);
}

/* A stream's reader that counts the bytes it hands libmicrohttpd into its call (the access
 * log's): reads run only while the request is open, so the call is alive then. */
typedef struct counted {
  ssize_t (*read)(void *cls, uint64_t pos, char *buf, size_t max);
  void *cls;
  void (*done)(void *cls);
  uint64_t *bytes;
} counted;

static ssize_t counted_read(void *cls, uint64_t pos, char *buf, size_t max) {
  counted *w = cls;
  ssize_t n = w->read(w->cls, pos, buf, max);
  if (n > 0) *w->bytes += (uint64_t)n;
  return n;
}

static void counted_done(void *cls) {
  counted *w = cls;
  w->done(w->cls);
  free(w);
}

int serve_reply_sse(serve_call *k, ssize_t (*read)(void *cls, uint64_t pos, char *buf, size_t max),
                    void *cls, void (*done)(void *cls)) {
  counted *w = malloc(sizeof *w);
  if (!w) {
    done(cls);
    return MHD_NO;
  }
  *w = (counted){read, cls, done, &k->bytes};
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, counted_read, w, counted_done);
  if (!resp) {
    counted_done(w);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "Cache-Control", "no-cache");
  mhd_result ret = MHD_queue_response(k->c, 200, resp);
  MHD_destroy_response(resp);
  return ret;
}

void serve_count(serve_state *s, const char *endpoint, int status, double t0) {
  char code[8];
  snprintf(code, sizeof code, "%d", status);
  serve_facts f = serve_facts_get(s);
  const char *lv[] = {s->model_name, f.version, endpoint, code};
  metric_inc(s->m_requests, lv, 1);
  const char *lv2[] = {s->model_name, f.version, endpoint};
  metric_observe(s->m_latency, lv2, ch_time() - t0);
}

/* ---- connections ------------------------------------------------------------------------ */

/* Keeps body data, or only counts it once past the limit (the route answers 413). */
static int take_body(serve_state *s, conn *cn, const char *data, size_t n) {
  if (!cn->too_large && cn->len + n > s->opts.max_body_bytes) {
    cn->too_large = 1;
    free(cn->body);
    cn->body = NULL;
    cn->len = cn->cap = 0;
  }
  if (cn->too_large) return 0;
  if (cn->len + n + 1 > cn->cap) {
    size_t cap = (cn->len + n + 1) * 2;
    char *b = realloc(cn->body, cap);
    if (!b) return -1;
    cn->body = b;
    cn->cap = cap;
  }
  memcpy(cn->body + cn->len, data, n);
  cn->len += n;
  cn->body[cn->len] = '\0';
  return 0;
}

/* The body as the routes see it (the call's body_status and body_err): too large (413), or
 * decoded from its Content-Encoding (the decoded size within the same limit), or refused. */
static void decode_body(serve_state *s, conn *cn, const char *coding) {
  serve_call *k = &cn->call;
  if (cn->too_large) {
    k->body_status = 413;
    snprintf(k->body_err, sizeof k->body_err, "request body exceeds %zu bytes",
             s->opts.max_body_bytes);
    return;
  }
  char *dec = NULL;
  size_t n = 0;
  k->body_status = serve_body_decode(coding, cn->body ? cn->body : "", cn->len,
                                     s->opts.max_body_bytes, &dec, &n, k->body_err,
                                     sizeof k->body_err);
  if (dec) { /* the decoded body replaces the one received (freed with the connection) */
    free(cn->body);
    cn->body = dec;
    cn->len = n;
    cn->cap = n + 1;
  }
}

/* Content-Length headers seen: the first value, and whether another one differs. */
typedef struct lengths {
  const char *first;
  size_t first_len;
  int conflict;
} lengths;

static mhd_result each_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_len,
                              const char *value, size_t value_len) {
  (void)kind;
  (void)key_len;
  lengths *l = cls;
  if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0 || !value) return MHD_YES;
  if (!l->first) {
    l->first = value;
    l->first_len = value_len;
  } else if (value_len != l->first_len || memcmp(value, l->first, value_len) != 0) {
    l->conflict = 1;
  }
  return MHD_YES;
}

/* Two different Content-Length headers make the body's end ambiguous (libmicrohttpd takes one
 * of them; a proxy in front may take the other): such a request is refused (RFC 9112, 6.3). */
static int lengths_conflict(struct MHD_Connection *c) {
  lengths l = {0};
  MHD_get_connection_values_n(c, MHD_HEADER_KIND, each_header, &l);
  return l.conflict;
}

static mhd_result on_request(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **ctx) {
  (void)version;
  serve_state *s = cls;
  conn *cn = *ctx;
  if (!cn) { /* first call: headers only */
    cn = calloc(1, sizeof *cn);
    if (!cn) return MHD_NO;
    *ctx = cn;
    if (s->access_log) serve_access_begin(&cn->access, c, method, url);
    if (lengths_conflict(c)) { /* answered at once; the body is not read */
      cn->call = (serve_call){.c = c, .body = "", .t0 = ch_time()};
      return (mhd_result)serve_reply_error(&cn->call, 400, "conflicting Content-Length headers");
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (take_body(s, cn, upload, *upload_size) != 0) return MHD_NO;
    *upload_size = 0;
    return MHD_YES;
  }
  if (s->conns) serve_conns_arrived(s->conns, c, 1); /* no deadline while it is answered */
  double t0 = ch_time();
  decode_body(s, cn, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding"));
  cn->call.c = c;
  cn->call.body = cn->body ? cn->body : "";
  cn->call.len = cn->len;
  cn->call.t0 = t0;
  return (mhd_result)serve_route(s, &cn->call, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode code) {
  serve_state *s = cls;
  conn *cn = *ctx;
  if (s->conns) serve_conns_arrived(s->conns, c, 0); /* the next request's deadline starts */
  if (cn && cn->call.accepted) serve_call_closed(s, code == MHD_REQUEST_TERMINATED_COMPLETED_OK);
  if (cn && s->access_log) {
    const union MHD_ConnectionInfo *st =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
    serve_access_write(s->access_log, &cn->access, st ? (int)st->http_status : 0, cn->call.bytes,
                       code == MHD_REQUEST_TERMINATED_COMPLETED_OK);
  }
  if (cn) {
    free(cn->body);
    free(cn);
  }
  *ctx = NULL;
}

/* libmicrohttpd's messages (one per malformed request, per refused connection, ...): at most
 * HTTP_LOG_LINES a minute, then a count of the lines left out. */
#define HTTP_LOG_LINES 10
static void log_dropped(unsigned long dropped) {
  if (dropped) CH_WARN("http: %lu similar message(s) left out", dropped);
}

static void on_log(void *cls, const char *fmt, va_list ap) {
  serve_state *s = cls;
  unsigned long dropped;
  if (!serve_loglimit_take(&s->http_log, ch_time(), &dropped)) return;
  log_dropped(dropped);
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  line[strcspn(line, "\r\n")] = '\0';
  CH_WARN("http: %s", line);
}

/* What serve_http_start set up besides the daemon (after it stopped, or when it failed). */
static void serve_http_release(serve_state *s) {
  serve_conns_stop(s->conns);
  s->conns = NULL;
  serve_loglimit_destroy(&s->http_log);
  serve_access_log_close(s->access_log);
  s->access_log = NULL;
  serve_tls_free(s->tls);
  s->tls = NULL;
}

ch_status serve_http_start(serve_state *s) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)s->opts.port);
  if (inet_pton(AF_INET, s->opts.host, &addr.sin_addr) != 1)
    return CH_FAIL(CH_ERR_INVALID, "--host %s: not an IPv4 address", s->opts.host);
  serve_loglimit_init(&s->http_log, HTTP_LOG_LINES, 60.0);
  /* HTTPS and the access log: a bad file stops the start (never a silent plain HTTP). */
  ch_status st = serve_tls_load(&s->opts, &s->tls);
  if (st == CH_OK) st = serve_access_log_open(s->opts.access_log, &s->access_log);
  if (st == CH_OK && s->opts.read_deadline > 0 &&
      !(s->conns = serve_conns_start(s->opts.read_deadline)))
    st = CH_FAIL(CH_ERR_NOMEM, "cannot start the connection sweeper");
  if (st != CH_OK) {
    serve_http_release(s);
    return st;
  }
  struct MHD_OptionItem tls_items[3];
  unsigned tls_flags = serve_tls_mhd(s->tls, tls_items);
  /* One client may hold half the slots by default, so one slow or greedy client never holds
   * them all. */
  int per = s->opts.max_connections_per_client > 0 ? s->opts.max_connections_per_client
                                                   : (s->opts.max_connections + 1) / 2;
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
          tls_flags,
      (uint16_t)s->opts.port, NULL, NULL, on_request, s,
      MHD_OPTION_EXTERNAL_LOGGER, on_log, s, /* first: it applies to the options that follow */
      MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_ARRAY, tls_items,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)s->opts.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)per,
      MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)(s->opts.request_timeout > 1 ? s->opts.request_timeout : 1),
      s->conns ? MHD_OPTION_NOTIFY_CONNECTION : MHD_OPTION_END, serve_conns_notify, s->conns,
      MHD_OPTION_END);
  if (!d) {
    serve_http_release(s);
    return CH_FAIL(CH_ERR_IO, "cannot listen on %s:%d (in use, or not permitted)", s->opts.host,
                   s->opts.port);
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  if (info) s->opts.port = info->port;
  s->http = d;
  return CH_OK;
}

void serve_http_stop(serve_state *s) {
  if (!s->http) return;
  /* Every accepted request is answered before the executor stops, but its response may still
   * be on its way out: let those connections finish (up to 10 s) before closing them all. */
  serve_drain(s, 10.0);
  MHD_stop_daemon(s->http); /* joins the connection threads */
  s->http = NULL;
  log_dropped(serve_loglimit_flush(&s->http_log));
  serve_http_release(s);
  serve_report_answers(s);
}
