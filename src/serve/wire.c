/* The executor's wire format (wire.h): headers and payloads broadcast from the leader. */
#include "serve/wire.h"

#include <time.h>

#include "cohort/status.h" /* CH_PATH_MAX */
#include "cohort/runtime.h"
#include "cohort/watchdog.h"

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

/* Non-blocking on both sides: MPI never matches a blocking collective with a non-blocking one. */
ch_status serve_wire_send(const ch_group *g, const serve_op *h) {
  ch_request req;
  serve_op copy = *h;
  CH_CHECK(ch_comm_broadcast(g, &copy, 4, CH_I64, 0, &req));
  return ch_comm_wait(&req);
}

ch_status serve_wire_recv(const ch_group *g, serve_op *h) {
  ch_request req;
  CH_CHECK(ch_comm_broadcast(g, h, 4, CH_I64, 0, &req));
  long nap = 50;
  ch_status st = CH_OK;
  ch_watchdog_enter("wait");
  for (int done = 0; st == CH_OK && !done;) {
    st = ch_comm_test(&req, &done);
    if (st != CH_OK || done) break;
    sleep_us(nap);
    nap = nap < 2000 ? nap * 2 : 2000;
  }
  ch_watchdog_leave();
  return st;
}

ch_status serve_wire_infer(const ch_group *g, float *x, int64_t rows, int64_t features) {
  return ch_comm_broadcast(g, x, (size_t)(rows * features), CH_F32, 0, NULL);
}

ch_status serve_wire_gen(const ch_group *g, int32_t *buf, int64_t entries, int64_t tokens) {
  return ch_comm_broadcast(g, buf, (size_t)(3 * entries + tokens), CH_I32, 0, NULL);
}

ch_status serve_wire_path(const ch_group *g, char *path) {
  return ch_comm_broadcast(g, path, CH_PATH_MAX, CH_U8, 0, NULL);
}
