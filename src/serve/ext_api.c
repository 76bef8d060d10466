/* Triton's extensions around inference on rank 0 (server.h): statistics (stats.h's store) and
 * the model repository's index and unload (its load is v2_api.c's). cohort serves one model:
 * the index lists it, and unloading it stops it being served (503, not ready) until a load
 * succeeds, while its weights stay on the ranks (a load replaces them; see docs/serving.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "serve/jsonw.h"
#include "serve/server.h"
#include "serve/stats.h"

int serve_ext_stats(serve_state *s, serve_call *k, const char *model) {
  (void)model; /* every model, or the one named (checked by the router): the same one */
  serve_facts f = serve_facts_get(s);
  const char *versions[] = {f.version};
  return serve_reply_json(k, 200, serve_stats_json(s->stats, s->model_name, versions, 1));
}

/* The optional JSON object of a repository request: 0 and *out (NULL for an empty body; the
 * caller frees it), or -1 when the body is not a JSON object. */
static int parse_object(serve_call *k, cJSON **out) {
  *out = NULL;
  if (k->len == 0) return 0;
  cJSON *j = cJSON_ParseWithLength(k->body, k->len);
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return -1;
  }
  *out = j;
  return 0;
}

int serve_ext_index(serve_state *s, serve_call *k) {
  cJSON *j;
  if (parse_object(k, &j))
    return serve_reply_error(k, 400, "expected an empty body or {\"ready\": true|false}");
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "ready");
  int only_ready = cJSON_IsTrue(r);
  int bad = r && !cJSON_IsBool(r);
  cJSON_Delete(j);
  if (bad) return serve_reply_error(k, 400, "\"ready\": expected true or false");
  serve_facts f = serve_facts_get(s);
  pthread_mutex_lock(&s->lock);
  int unloaded = s->unloaded, ready = serve_ready_locked(s) && !unloaded;
  pthread_mutex_unlock(&s->lock);
  jsonw w = {0};
  jsonw_raw(&w, "[", 1);
  if (ready || !only_ready) {
    jsonw_raw(&w, "{\"name\":", 8);
    jsonw_str(&w, s->model_name, strlen(s->model_name));
    jsonw_raw(&w, ",\"version\":", 11);
    jsonw_str(&w, f.version, strlen(f.version));
    jsonw_fmt(&w, ",\"state\":\"%s\",\"reason\":\"%s\"}", ready ? "READY" : "UNAVAILABLE",
              ready ? "" : unloaded ? "unloaded" : "the server is not ready");
  }
  jsonw_raw(&w, "]", 1);
  return serve_reply_json(k, 200, jsonw_finish(&w));
}

int serve_ext_unload(serve_state *s, serve_call *k) {
  cJSON *j; /* {"parameters": {"unload_dependents": ...}}: a model with no dependents */
  if (parse_object(k, &j)) {
    serve_count(s, "unload", 400, k->t0);
    return serve_reply_error(k, 400, "expected an empty body or {\"parameters\": {...}}");
  }
  cJSON_Delete(j);
  serve_unload(s);
  serve_count(s, "unload", 200, k->t0);
  jsonw w = {0};
  jsonw_raw(&w, "{\"name\":", 8);
  jsonw_str(&w, s->model_name, strlen(s->model_name));
  jsonw_raw(&w, ",\"unloaded\":true}", 17);
  return serve_reply_json(k, 200, jsonw_finish(&w));
}
