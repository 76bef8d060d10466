/* Routing on rank 0: which handler a request is for, the API key, the methods, the body's
 * status, and the small GET endpoints. Routes (HEAD wherever GET):
 *   GET  /v2                                             (server metadata, extensions)
 *   GET  /v2/health/live, /v2/health/ready               (probes: no key)
 *   GET  /v2/models/{m}[/versions/{v}], .../ready (probe: no key), .../stats, .../config
 *   POST /v2/models/{m}[/versions/{v}]/infer             (KServe V2)
 *   GET  /v2/models/stats                                (Triton's statistics extension)
 *   POST /v2/repository/index, /v2/repository/models/{m}/load, .../unload
 *   POST /v1/completions, /v1/chat/completions, GET /v1/models[/{id}]
 *                                                        (OpenAI; SSE when "stream": true)
 *   GET  /metrics                    (Prometheus; no key unless --metrics-need-key)
 * Errors are {"error": "..."} (under /v1/, the OpenAI API's error object): 400 bad input, 401 key (with WWW-Authenticate: Bearer), 404
 * unknown route/model/version, 405 method (with Allow), 413 body too large (also once
 * decoded), 415 unknown Content-Encoding, 503 not ready/unloaded/overloaded/shutting down, 504
 * timed out. A reload of another model family, or of a path outside the model repository, is
 * a 400. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cohort_build.h"
#include "serve/openai.h"
#include "serve/server.h"
#include "serve/v2.h"

/* What /v2 says cohort implements of Triton's protocol extensions. */
static const char *const k_extensions[] = {"binary_tensor_data", "model_configuration",
                                           "model_repository", "statistics"};

int serve_bearer_ok(const char *h, size_t n, const char *key) {
  size_t nk = strlen(key);
  if (!h || n < 7 || memcmp(h, "Bearer ", 7) != 0) return 0;
  h += 7;
  n -= 7;
  unsigned char diff = n != nk;
  for (size_t i = 0; i < nk; i++) diff |= (unsigned char)((i < n ? h[i] : 0) ^ key[i]);
  return diff == 0;
}

/* The request's target: its URL and, for model routes, the model and version it names
 * (v2model: a V2 model or repository route, whose model serve_route checks before the handler). */
typedef struct target {
  const char *url;
  char model[128], version[32];
  int v2model;
} target;

enum { M_GET = 1, M_POST = 2 };            /* the methods a route takes (HEAD is GET's) */
/* KEYED: the API key when one is set; OPEN: never (probes); METRICS: --metrics-need-key. */
typedef enum { KEYED, OPEN, METRICS } route_access;

typedef struct route {
  const char *path;     /* the whole path, or the tail after a model's prefix */
  unsigned methods;
  route_access acc;
  const char *endpoint; /* cohort_requests_total's endpoint for a refused key */
  int (*fn)(serve_state *s, serve_call *k, const target *t);
} route;

/* ---- handlers ----------------------------------------------------------------------------- */

static int live(serve_state *s, serve_call *k, const target *t) {
  (void)s, (void)t;
  return serve_reply_json(k, 200, strdup("{\"live\": true}"));
}

static int ready(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  int ok = serve_ready(s);
  return serve_reply_json(k, ok ? 200 : 503, strdup(ok ? "{\"ready\": true}" : "{\"ready\": false}"));
}

static int server_metadata(serve_state *s, serve_call *k, const target *t) {
  (void)s, (void)t;
  int n = (int)(sizeof k_extensions / sizeof *k_extensions);
  return serve_reply_json(k, 200, v2_server_metadata("cohort", COHORT_VERSION, k_extensions, n));
}

static int metrics_text(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  serve_observe_pending(s);
  return serve_reply(k, 200, metrics_render(s->metrics, NULL), "text/plain; version=0.0.4");
}

static int models_list(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  const char *names[] = {s->model_name};
  return serve_reply_json(k, 200, oai_models(names, 1, (long)time(NULL)));
}

static int completions(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  return serve_oai_generate(s, k, 0);
}

static int chat_completions(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  return serve_oai_generate(s, k, 1);
}

static int model_object(serve_state *s, serve_call *k, const target *t) {
  return serve_oai_model(s, k, t->model);
}

static int stats_all(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  return serve_ext_stats(s, k, NULL);
}

static int repo_index(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  return serve_ext_index(s, k);
}

/* Whether t names the served model (and its served version, when it names one); if not, the
 * 404 message in msg[n]. */
static int known(serve_state *s, const target *t, char *msg, size_t n) {
  if (strcmp(t->model, s->model_name) != 0) {
    snprintf(msg, n, "unknown model '%s' (serving '%s')", t->model, s->model_name);
    return 0;
  }
  serve_facts f = serve_facts_get(s);
  if (t->version[0] && strcmp(t->version, f.version) != 0) {
    snprintf(msg, n, "unknown version '%s' (serving version %s)", t->version, f.version);
    return 0;
  }
  return 1;
}

static int model_metadata(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  return serve_v2_metadata(s, k);
}

static int model_ready(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  char body[192];
  int ok = serve_model_ready(s);
  snprintf(body, sizeof body, "{\"name\": \"%s\", \"ready\": %s}", s->model_name,
           ok ? "true" : "false");
  return serve_reply_json(k, ok ? 200 : 503, strdup(body));
}

static int model_infer(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  return serve_v2_infer(s, k);
}

static int model_config(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  return serve_v2_config(s, k);
}

static int model_stats(serve_state *s, serve_call *k, const target *t) {
  return serve_ext_stats(s, k, t->model);
}

static int repo_load(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  return serve_v2_load(s, k);
}

static int repo_unload(serve_state *s, serve_call *k, const target *t) {
  (void)t;
  return serve_ext_unload(s, k);
}

/* ---- the tables ----------------------------------------------------------------------------- */

static const route k_exact[] = {
  {"/v2/health/live", M_GET, OPEN, "health", live},
  {"/v2/health/ready", M_GET, OPEN, "health", ready},
  {"/v2", M_GET, KEYED, "metadata", server_metadata},
  {"/metrics", M_GET, METRICS, "metrics", metrics_text},
  {"/v1/models", M_GET, KEYED, "models", models_list},
  {"/v1/completions", M_POST, KEYED, "completions", completions},
  {"/v1/chat/completions", M_POST, KEYED, "chat_completions", chat_completions},
  {"/v2/models/stats", M_GET, KEYED, "stats", stats_all},
  {"/v2/repository/index", M_POST, KEYED, "repository", repo_index},
};

/* After /v2/models/{m}[/versions/{v}]. */
static const route k_model[] = {
  {"", M_GET, KEYED, "metadata", model_metadata},
  {"/ready", M_GET, OPEN, "health", model_ready},
  {"/infer", M_POST, KEYED, "infer", model_infer},
  {"/stats", M_GET, KEYED, "stats", model_stats},
  {"/config", M_GET, KEYED, "config", model_config},
};

/* After /v2/repository/models/{m}. */
static const route k_repo[] = {
  {"/load", M_POST, KEYED, "load", repo_load},
  {"/unload", M_POST, KEYED, "unload", repo_unload},
};

#define NROUTES(t) (int)(sizeof t / sizeof *t)

static const route *find(const route *table, int n, const char *path) {
  for (int i = 0; i < n; i++)
    if (!strcmp(table[i].path, path)) return &table[i];
  return NULL;
}

/* Copies the path segment at *p (up to '/') into out[n] and moves past it: 0, or -1 when it
 * is empty or too long. */
static int segment(const char **p, char *out, size_t n) {
  size_t len = strcspn(*p, "/");
  if (len == 0 || len >= n) return -1;
  memcpy(out, *p, len);
  out[len] = '\0';
  *p += len;
  return 0;
}

/* The route of url, filling t; NULL when none. */
static const route *match(const char *url, target *t) {
  const route *r = find(k_exact, NROUTES(k_exact), url);
  if (r) return r;
  const char *p = url;
  if (!strncmp(p, "/v2/models/", 11)) {
    p += 11;
    t->v2model = 1;
    if (segment(&p, t->model, sizeof t->model)) return NULL;
    if (!strncmp(p, "/versions/", 10)) {
      p += 10;
      if (segment(&p, t->version, sizeof t->version)) return NULL;
    }
    return find(k_model, NROUTES(k_model), p);
  }
  if (!strncmp(p, "/v2/repository/models/", 22)) {
    p += 22;
    t->v2model = 1;
    if (segment(&p, t->model, sizeof t->model)) return NULL;
    return find(k_repo, NROUTES(k_repo), p);
  }
  if (!strncmp(p, "/v1/models/", 11)) { /* an OpenAI model id is the rest of the path */
    static const route model = {"", M_GET, KEYED, "models", model_object};
    p += 11;
    size_t n = strlen(p);
    if (n == 0 || n >= sizeof t->model) return NULL;
    memcpy(t->model, p, n + 1);
    return &model;
  }
  return NULL;
}

/* An error in the shape of the API that url belongs to: the OpenAI API's error object under
 * /v1/, V2's {"error": "..."} elsewhere; with one more header when name is not NULL. */
static int route_error(serve_call *k, const char *url, int status, const char *msg,
                       const char *name, const char *value) {
  if (strncmp(url, "/v1/", 4) != 0) return serve_reply_error_hdr(k, status, msg, name, value);
  char *e = oai_error(status, msg, NULL, status == 401 ? "invalid_api_key" : NULL, 0);
  return serve_reply_bytes(k, status, e, e ? strlen(e) : 0, "application/json", name, value);
}

/* The Allow header's value for a route's methods. */
static const char *allow(unsigned methods) {
  return methods == M_GET ? "GET, HEAD" : methods == M_POST ? "POST" : "GET, HEAD, POST";
}

int serve_route(serve_state *s, serve_call *k, const char *url, const char *method) {
  unsigned m = !strcmp(method, "GET") || !strcmp(method, "HEAD") ? M_GET
               : !strcmp(method, "POST")                         ? M_POST
                                                                 : 0;
  target t = {.url = url};
  const route *r = match(url, &t);
  int open = r && (r->acc == OPEN || (r->acc == METRICS && !s->opts.metrics_need_key));
  if (!open && s->opts.api_key[0]) {
    size_t n = 0;
    const char *h = serve_call_header_n(k, "Authorization", &n);
    if (!serve_bearer_ok(h, n, s->opts.api_key)) {
      serve_count(s, r ? r->endpoint : "other", 401, k->t0);
      /* RFC 6750: the scheme, and invalid_token when a credential was sent but is wrong. */
      return route_error(k, url, 401, "missing or wrong API key (Authorization: Bearer KEY)",
                         "WWW-Authenticate",
                         h ? "Bearer realm=\"cohort\", error=\"invalid_token\""
                           : "Bearer realm=\"cohort\"");
    }
  }
  if (!r) {
    char msg[300];
    snprintf(msg, sizeof msg, "no route %.200s", url);
    return route_error(k, url, 404, msg, NULL, NULL);
  }
  if (!(r->methods & m)) {
    char msg[64];
    snprintf(msg, sizeof msg, "use %s", allow(r->methods));
    return route_error(k, url, 405, msg, "Allow", allow(r->methods));
  }
  char msg[320];
  if (t.v2model && !known(s, &t, msg, sizeof msg)) return serve_reply_error(k, 404, msg);
  if (k->body_status) return route_error(k, url, k->body_status, k->body_err, NULL, NULL);
  return r->fn(s, k, &t);
}
