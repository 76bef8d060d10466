/* Triton's statistics extension (GET /v2/models[/{m}[/versions/{v}]]/stats): cumulative counts
 * and durations of the served model, per version, since the server started. A store with its
 * own lock and no knowledge of HTTP, MPI or the queue: the server's observation hooks
 * (observe.c) feed it, route.c asks it for JSON. Safe to call from any thread; it never takes
 * another lock while holding its own, so callers may hold theirs (the queue's). */
#pragma once
#include <stdint.h>

typedef struct serve_stats serve_stats;

/* The moments of one request's life (ch_time() seconds): created (its body parsed and checked,
 * the request made), enqueued, started (taken by the executor), done (the executor finished
 * it), ended (its answer built and the request released). A moment it never reached is 0. */
typedef struct serve_req_times {
  double created, enqueued, started, done, ended;
  int ok; /* answered with 200 */
} serve_req_times;

/* A new, empty store; NULL when out of memory. Free with serve_stats_destroy (NULL is a
 * no-op). */
serve_stats *serve_stats_create(void);
void serve_stats_destroy(serve_stats *st);

/* One inference request of `version` ended. A successful one adds to "success" (created ->
 * ended) and to its phases, which sum to it: compute_input (created -> enqueued: copying the
 * parsed input into the request), queue (enqueued -> started), compute_infer (started -> done,
 * the executor steps it took part in) and compute_output (done -> ended: writing the answer).
 * A failed one (an error status, a timeout, a refusal by the queue) adds to "fail" only. */
void serve_stats_request(serve_stats *st, const char *version, const serve_req_times *t);

/* One executor step of `version` ran `batch` rows (V2) or sequences (generation) in `seconds`:
 * execution_count += 1, inference_count += batch (so inference_count / execution_count is the
 * average batch size), and the batch size's batch_stats entry. The step is timed as a whole:
 * its compute_infer holds the time, its compute_input and compute_output count the step with
 * 0 ns. */
void serve_stats_execution(serve_stats *st, const char *version, int64_t batch, double seconds);

/* {"model_stats": [...]} with one entry per version in versions[0..n) (zeros for a version
 * never observed), each with Triton's fields: name, version, last_inference (ms since the
 * epoch, 0 = never), inference_count, execution_count, inference_stats {success, fail, queue,
 * compute_input, compute_infer, compute_output, cache_hit, cache_miss: {count, ns}} and
 * batch_stats [{batch_size, compute_input, compute_infer, compute_output}] by ascending batch
 * size. Malloc'ed; NULL when out of memory. */
char *serve_stats_json(serve_stats *st, const char *model, const char *const *versions, int n);
