/* Routing on rank 0: which API a request is for, the API key, the body limit, and the small
 * GET endpoints. Routes:
 *   GET  /v2, /v2/health/live, /v2/health/ready
 *   GET  /v2/models/{m}[/versions/{v}], .../ready       POST .../infer   (KServe V2)
 *   POST /v2/repository/models/{m}/load                 (reload: {"parameters":{"path":P}})
 *   /v1/...: POST /v1/completions, /v1/chat/completions, GET /v1/models[/{id}] (OpenAI,
 *            openai_api.c; SSE when "stream": true; errors in the API's error object)
 *   GET  /metrics                                       (Prometheus text format)
 * Errors are {"error": "..."}: 400 bad input, 401 key, 404 unknown route/model/version,
 * 405 method, 413 body too large, 503 not ready/overloaded/shutting down, 504 timed out. A
 * reload of another model family, or of a path outside the model repository, is a 400. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort_build.h"
#include "serve/server.h"
#include "serve/v2.h"

int serve_bearer_ok(const char *h, size_t n, const char *key) {
  size_t nk = strlen(key);
  if (!h || n < 7 || memcmp(h, "Bearer ", 7) != 0) return 0;
  h += 7;
  n -= 7;
  unsigned char diff = n != nk;
  for (size_t i = 0; i < nk; i++) diff |= (unsigned char)((i < n ? h[i] : 0) ^ key[i]);
  return diff == 0;
}

static int authorized(serve_state *s, serve_call *k) {
  if (!s->opts.api_key[0]) return 1;
  size_t n = 0;
  const char *h = serve_call_header_n(k, "Authorization", &n);
  return serve_bearer_ok(h, n, s->opts.api_key);
}

/* Splits "/v2/models/{m}[/versions/{v}][/tail]": returns 0 when path starts with it. */
static int model_path(const char *path, char *model, size_t msz, char *ver, size_t vsz,
                      const char **tail) {
  const char *p = path + strlen("/v2/models/");
  size_t n = strcspn(p, "/");
  if (n == 0 || n >= msz) return -1;
  memcpy(model, p, n);
  model[n] = '\0';
  p += n;
  ver[0] = '\0';
  if (!strncmp(p, "/versions/", 10)) {
    p += 10;
    n = strcspn(p, "/");
    if (n == 0 || n >= vsz) return -1;
    memcpy(ver, p, n);
    ver[n] = '\0';
    p += n;
  }
  *tail = p;
  return 0;
}

/* /v2/repository/models/{m}/load */
static int route_repository(serve_state *s, serve_call *k, const char *url, int post) {
  const char *p = url + 22;
  size_t n = strcspn(p, "/");
  if (strcmp(p + n, "/load") != 0 || n == 0 || n >= 128) return serve_reply_error(k, 404, "not found");
  if (strncmp(p, s->model_name, n) || s->model_name[n]) return serve_reply_error(k, 404, "unknown model");
  if (!post) return serve_reply_error(k, 405, "use POST");
  return serve_v2_load(s, k);
}

/* /v2/models/{m}[/versions/{v}][/ready | /infer] */
static int route_model(serve_state *s, serve_call *k, const char *url, int get, int post) {
  char model[128], ver[32], msg[320];
  const char *tail;
  if (model_path(url, model, sizeof model, ver, sizeof ver, &tail))
    return serve_reply_error(k, 404, "not found");
  if (strcmp(model, s->model_name) != 0) {
    snprintf(msg, sizeof msg, "unknown model '%s' (serving '%s')", model, s->model_name);
    return serve_reply_error(k, 404, msg);
  }
  serve_facts f = serve_facts_get(s);
  if (ver[0] && strcmp(ver, f.version) != 0) {
    snprintf(msg, sizeof msg, "unknown version '%s' (serving version %s)", ver, f.version);
    return serve_reply_error(k, 404, msg);
  }
  if (!tail[0] && get) return serve_v2_metadata(s, k);
  if (!strcmp(tail, "/ready") && get) {
    int ready = serve_ready(s);
    snprintf(msg, sizeof msg, "{\"name\": \"%s\", \"ready\": %s}", s->model_name, ready ? "true" : "false");
    return serve_reply_json(k, ready ? 200 : 503, strdup(msg));
  }
  if (!strcmp(tail, "/infer")) {
    if (!post) return serve_reply_error(k, 405, "use POST");
    return serve_v2_infer(s, k);
  }
  return serve_reply_error(k, 404, "not found");
}

int serve_route(serve_state *s, serve_call *k, const char *url, const char *method,
                int too_large) {
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
  if (get && !strcmp(url, "/v2/health/live")) return serve_reply_json(k, 200, strdup("{\"live\": true}"));
  if (get && !strcmp(url, "/v2/health/ready")) { /* probes need no key */
    int ready = serve_ready(s);
    return serve_reply_json(k, ready ? 200 : 503,
                            strdup(ready ? "{\"ready\": true}" : "{\"ready\": false}"));
  }
  if (!strncmp(url, "/v1/", 4)) return serve_oai_route(s, k, url, method, authorized(s, k), too_large);
  if (!authorized(s, k))
    return serve_reply_error(k, 401, "missing or wrong API key (Authorization: Bearer KEY)");
  if (too_large) {
    char msg[96];
    snprintf(msg, sizeof msg, "request body exceeds %zu bytes", s->opts.max_body_bytes);
    return serve_reply_error(k, 413, msg);
  }
  if (get && !strcmp(url, "/v2"))
    return serve_reply_json(k, 200, v2_server_metadata("cohort", COHORT_VERSION));
  if (get && !strcmp(url, "/metrics")) {
    size_t len = 0;
    return serve_reply(k, 200, metrics_render(s->metrics, &len), "text/plain; version=0.0.4");
  }
  if (!strncmp(url, "/v2/repository/models/", 22)) return route_repository(s, k, url, post);
  if (!strncmp(url, "/v2/models/", 11)) return route_model(s, k, url, get, post);
  return serve_reply_error(k, 404, "not found");
}
