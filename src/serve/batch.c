/* The batching policy (batch.h): pure functions of the queue's state and the clock. */
#include "serve/batch.h"

serve_action serve_batch_decide(const serve_queue_view *q, double now, double *until) {
  *until = now + SERVE_IDLE_POLL;
  if (q->sync_due > 0) {
    if (now >= q->sync_due) return SERVE_DO_SYNC;
    if (q->sync_due < *until) *until = q->sync_due;
  }
  int reload_now = q->reload_waiting && q->gen_running == 0;
  if ((q->gen_running > 0 || (q->gen_waiting > 0 && q->gen_running < q->slots)) && !reload_now)
    return SERVE_DO_GEN;
  if (reload_now) return SERVE_DO_RELOAD;
  if (q->infer_rows > 0) {
    double due = q->infer_oldest + q->max_delay;
    if (q->infer_rows >= q->max_batch || now >= due || !q->accepting || q->queued == q->inflight)
      return SERVE_DO_INFER;
    *until = q->sync_due > 0 && q->sync_due < due ? q->sync_due : due;
    return SERVE_DO_WAIT;
  }
  if (!q->accepting && q->inflight == 0) return SERVE_DO_STOP;
  return SERVE_DO_WAIT;
}

int serve_batch_take(const int *rows, int n, int max_batch) {
  int64_t total = 0;
  int k = 0;
  while (k < n && (k == 0 || total + rows[k] <= max_batch)) total += rows[k++];
  return k;
}
