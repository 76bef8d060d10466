/* The log-line rate limit (src/serve/loglimit.c) on a made-up clock: at most max_lines per
 * window, the lines left out reported when the next window begins, and flushed at the end. */
#include "serve/loglimit.h"
#include "testlib.h"

int main(void) {
  serve_loglimit l;
  unsigned long dropped = 99;
  serve_loglimit_init(&l, 3, 60.0);
  for (int i = 0; i < 3; i++)
    CHT_ASSERT(serve_loglimit_take(&l, 100.0 + i, &dropped) && dropped == 0, "line %d", i);
  for (int i = 3; i < 10; i++)
    CHT_ASSERT(!serve_loglimit_take(&l, 100.0 + i, &dropped) && dropped == 0, "line %d left out", i);
  CHT_ASSERT(serve_loglimit_take(&l, 160.0, &dropped) && dropped == 7,
             "a new window: 7 left out to report (%lu)", dropped);
  CHT_ASSERT(serve_loglimit_take(&l, 161.0, &dropped) && dropped == 0, "reported once");
  CHT_ASSERT(serve_loglimit_take(&l, 162.0, &dropped), "third line of the window");
  CHT_ASSERT(!serve_loglimit_take(&l, 163.0, &dropped), "fourth left out");
  CHT_ASSERT(serve_loglimit_flush(&l) == 1 && serve_loglimit_flush(&l) == 0, "flush once");
  serve_loglimit_destroy(&l);
  return 0;
}
