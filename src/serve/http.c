/* The HTTP transport on rank 0 (libmicrohttpd, one thread per connection): the listening
 * socket, request bodies within --max-body-bytes, responses, and the end of each connection.
 * What a request means is route.c's; what each API does is v2_api.c's and openai_api.c's. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/log.h"
#include "cohort/runtime.h"
#include "serve/server.h"
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
} conn;

/* ---- responses -------------------------------------------------------------------------- */

const char *serve_call_header(serve_call *k, const char *name) {
  return MHD_lookup_connection_value(k->c, MHD_HEADER_KIND, name);
}

int serve_reply(serve_call *k, int status, char *text, const char *content_type) {
  if (!text) {
    status = 500;
    content_type = "application/json";
    text = strdup("{\"error\": \"out of memory\"}");
    if (!text) return MHD_NO;
  }
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", content_type);
  mhd_result ret = MHD_queue_response(k->c, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

int serve_reply_json(serve_call *k, int status, char *json) {
  return serve_reply(k, status, json, "application/json");
}

int serve_reply_error(serve_call *k, int status, const char *msg) {
  return serve_reply_json(k, status, v2_error(msg));
}

int serve_reply_sse(serve_call *k, ssize_t (*read)(void *cls, uint64_t pos, char *buf, size_t max),
                    void *cls, void (*done)(void *cls)) {
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, read, cls, done);
  if (!resp) {
    done(cls);
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
  const char *lv[] = {s->model_name, endpoint, code};
  metric_inc(s->m_requests, lv, 1);
  const char *lv2[] = {s->model_name, endpoint};
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
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (take_body(s, cn, upload, *upload_size) != 0) return MHD_NO;
    *upload_size = 0;
    return MHD_YES;
  }
  cn->call = (serve_call){.c = c, .body = cn->body ? cn->body : "", .len = cn->len,
                          .t0 = ch_time()};
  return (mhd_result)serve_route(s, &cn->call, url, method, cn->too_large);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode code) {
  (void)c;
  serve_state *s = cls;
  conn *cn = *ctx;
  if (cn && cn->call.accepted) serve_call_closed(s, code == MHD_REQUEST_TERMINATED_COMPLETED_OK);
  if (cn) {
    free(cn->body);
    free(cn);
  }
  *ctx = NULL;
}

ch_status serve_http_start(serve_state *s) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)s->opts.port);
  if (inet_pton(AF_INET, s->opts.host, &addr.sin_addr) != 1)
    return CH_FAIL(CH_ERR_INVALID, "--host %s: not an IPv4 address", s->opts.host);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
      (uint16_t)s->opts.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)s->opts.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)(s->opts.request_timeout > 1 ? s->opts.request_timeout : 1), MHD_OPTION_END);
  if (!d)
    return CH_FAIL(CH_ERR_IO, "cannot listen on %s:%d (in use, or not permitted)", s->opts.host,
                   s->opts.port);
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
  serve_report_answers(s);
}
