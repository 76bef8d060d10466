/* Triton's statistics (src/serve/stats.c), read back with cJSON as tritonclient would:
 *  - a version never observed: every field there, all zero, batch_stats empty;
 *  - successful requests: success = compute_input + queue + compute_infer + compute_output
 *    (count and ns), failures only in fail; last_inference set (ms since the epoch);
 *  - executions: execution_count, inference_count (the batch sizes summed), batch_stats by
 *    ascending batch size with their counts and compute_infer time;
 *  - versions kept apart; the store stays bounded when many versions come and go;
 *  - 4 threads updating at once: the counts add up.
 * One process, no MPI. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "serve/stats.h"
#include "testlib.h"

static cJSON *get(const cJSON *j, const char *path) { /* "a.b.c" */
  char buf[128];
  snprintf(buf, sizeof buf, "%s", path);
  const cJSON *at = j;
  for (char *k = strtok(buf, "."); k && at; k = strtok(NULL, "."))
    at = cJSON_GetObjectItemCaseSensitive(at, k);
  CHT_ASSERT(at, "no %s", path);
  return (cJSON *)at;
}

static double num(const cJSON *j, const char *path) {
  const cJSON *n = get(j, path);
  CHT_ASSERT(cJSON_IsNumber(n), "%s is not a number", path);
  return n->valuedouble;
}

/* The statistics of versions[0..n) as parsed JSON (caller deletes). */
static cJSON *render(serve_stats *st, const char *const *versions, int n) {
  char *s = serve_stats_json(st, "mlp", versions, n);
  CHT_ASSERT(s, "serve_stats_json");
  cJSON *j = cJSON_Parse(s);
  CHT_ASSERT(j && cJSON_GetArraySize(get(j, "model_stats")) == n, "bad JSON: %s", s);
  free(s);
  return j;
}

static void *hammer(void *arg) {
  serve_stats *st = arg;
  serve_req_times t = {.created = 1, .enqueued = 1, .started = 1, .done = 1, .ended = 1, .ok = 1};
  for (int i = 0; i < 10000; i++) {
    serve_stats_request(st, "9", &t);
    serve_stats_execution(st, "9", 1 + i % 4, 0);
  }
  return NULL;
}

int main(void) {
  serve_stats *st = serve_stats_create();
  CHT_ASSERT(st, "create");
  const char *v1[] = {"1"};
  cJSON *j = render(st, v1, 1);
  const cJSON *m = cJSON_GetArrayItem(get(j, "model_stats"), 0);
  CHT_ASSERT(!strcmp(get(m, "name")->valuestring, "mlp") &&
             !strcmp(get(m, "version")->valuestring, "1"), "name, version");
  const char *fields[] = {"success", "fail", "queue", "compute_input", "compute_infer",
                          "compute_output", "cache_hit", "cache_miss"};
  for (int i = 0; i < 8; i++) {
    char p[64];
    snprintf(p, sizeof p, "inference_stats.%s.count", fields[i]);
    CHT_ASSERT(num(m, p) == 0, "%s", p);
    snprintf(p, sizeof p, "inference_stats.%s.ns", fields[i]);
    CHT_ASSERT(num(m, p) == 0, "%s", p);
  }
  CHT_ASSERT(num(m, "last_inference") == 0 && num(m, "inference_count") == 0 &&
             num(m, "execution_count") == 0 && cJSON_GetArraySize(get(m, "batch_stats")) == 0,
             "an unobserved version is all zeros");
  cJSON_Delete(j);

  /* Two successes, one failure. */
  serve_req_times ok = {.created = 10.0, .enqueued = 10.001, .started = 10.003, .done = 10.013,
                        .ended = 10.014, .ok = 1};
  serve_stats_request(st, "1", &ok);
  serve_stats_request(st, "1", &ok);
  serve_req_times bad = {.created = 20.0, .ended = 20.5};
  serve_stats_request(st, "1", &bad);
  /* Executions: batch sizes 4, 1, 4, 16. */
  serve_stats_execution(st, "1", 4, 0.002);
  serve_stats_execution(st, "1", 1, 0.001);
  serve_stats_execution(st, "1", 4, 0.003);
  serve_stats_execution(st, "1", 16, 0.010);
  serve_stats_execution(st, "2", 8, 0.010); /* another version: kept apart */
  j = render(st, v1, 1);
  m = cJSON_GetArrayItem(get(j, "model_stats"), 0);
  double parts = num(m, "inference_stats.compute_input.ns") + num(m, "inference_stats.queue.ns") +
                 num(m, "inference_stats.compute_infer.ns") +
                 num(m, "inference_stats.compute_output.ns");
  CHT_ASSERT(num(m, "inference_stats.success.count") == 2 &&
             num(m, "inference_stats.queue.count") == 2 &&
             num(m, "inference_stats.compute_infer.count") == 2 &&
             num(m, "inference_stats.fail.count") == 1, "counts");
  CHT_ASSERT(parts > 0.9999 * num(m, "inference_stats.success.ns") &&
             parts < 1.0001 * num(m, "inference_stats.success.ns"), "phases sum to success");
  CHT_ASSERT(num(m, "inference_stats.success.ns") > 27.9e6 &&
             num(m, "inference_stats.success.ns") < 28.1e6, "success ns %.0f",
             num(m, "inference_stats.success.ns"));
  CHT_ASSERT(num(m, "inference_stats.compute_infer.ns") > 19.9e6 &&
             num(m, "inference_stats.compute_infer.ns") < 20.1e6, "infer ns");
  CHT_ASSERT(num(m, "inference_stats.fail.ns") > 0.49e9, "fail ns");
  CHT_ASSERT(num(m, "last_inference") > 1.6e12 && num(m, "last_inference") < 1e13,
             "last_inference in ms since the epoch: %.0f", num(m, "last_inference"));
  CHT_ASSERT(num(m, "execution_count") == 4 && num(m, "inference_count") == 25,
             "executions %g, inferences %g", num(m, "execution_count"), num(m, "inference_count"));
  const cJSON *b = get(m, "batch_stats");
  CHT_ASSERT(cJSON_GetArraySize(b) == 3, "three batch sizes");
  const int sizes[] = {1, 4, 16}, counts[] = {1, 2, 1};
  for (int i = 0; i < 3; i++) {
    const cJSON *e = cJSON_GetArrayItem(b, i);
    CHT_ASSERT(num(e, "batch_size") == sizes[i] && num(e, "compute_infer.count") == counts[i] &&
               num(e, "compute_input.count") == counts[i] &&
               num(e, "compute_output.count") == counts[i], "batch_stats[%d]", i);
  }
  CHT_ASSERT(num(cJSON_GetArrayItem(b, 1), "compute_infer.ns") > 4.9e6, "batch 4 time");
  cJSON_Delete(j);
  const char *both[] = {"1", "2"};
  j = render(st, both, 2);
  m = cJSON_GetArrayItem(get(j, "model_stats"), 1);
  CHT_ASSERT(num(m, "execution_count") == 1 && num(m, "inference_count") == 8, "version 2");
  cJSON_Delete(j);

  /* Many versions: bounded, the newest kept. */
  for (int v = 100; v < 200; v++) {
    char name[16];
    snprintf(name, sizeof name, "%d", v);
    serve_stats_execution(st, name, 2, 0.001);
  }
  const char *last[] = {"199"};
  j = render(st, last, 1);
  CHT_ASSERT(num(cJSON_GetArrayItem(get(j, "model_stats"), 0), "execution_count") == 1, "newest");
  cJSON_Delete(j);

  /* Threads. */
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, hammer, st);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  const char *v9[] = {"9"};
  j = render(st, v9, 1);
  m = cJSON_GetArrayItem(get(j, "model_stats"), 0);
  CHT_ASSERT(num(m, "inference_stats.success.count") == 40000 &&
             num(m, "execution_count") == 40000 && num(m, "inference_count") == 100000,
             "threads: %g %g %g", num(m, "inference_stats.success.count"),
             num(m, "execution_count"), num(m, "inference_count"));
  cJSON_Delete(j);
  serve_stats_destroy(st);
  printf("stats: zeros, request phases, executions and batch sizes, versions, threads: ok\n");
  return 0;
}
