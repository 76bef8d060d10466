/* The API key check (serve_bearer_ok, src/serve/route.c): "Bearer KEY" exactly, over the
 * header's whole length. A C-string compare (the check before issue 12) passed
 * "Bearer KEY\0junk" and "Bearer KEY\0"; those must fail, as must a longer, shorter or empty
 * key, another scheme and no header. One process, no MPI, no HTTP (libmicrohttpd 0.9.75 cuts a
 * header at a NUL before the server sees it; this checks the compare itself). */
#include <string.h>

#include "serve/server.h"
#include "testlib.h"

static int ok(const char *h, size_t n) { return serve_bearer_ok(h, n, "s3cret"); }

int main(void) {
  const char good[] = "Bearer s3cret", nul[] = "Bearer s3cret\0junk", nul_end[] = "Bearer s3cret";
  CHT_ASSERT(ok(good, strlen(good)), "the key");
  CHT_ASSERT(!ok(nul, sizeof nul - 1), "the key, a NUL, then more bytes");
  CHT_ASSERT(!ok(nul_end, sizeof nul_end), "the key and a trailing NUL");
  CHT_ASSERT(!ok("Bearer s3cretX", 14) && !ok("Bearer s3cre", 12) && !ok("Bearer ", 7),
             "longer, shorter, empty key");
  CHT_ASSERT(!ok("Basic s3cret", 12) && !ok("bearer s3cret", 13) && !ok("Bearer", 6),
             "another scheme");
  CHT_ASSERT(!ok(NULL, 0), "no header");
  CHT_ASSERT(!ok("Bearer s3cre\0", 13), "a NUL in place of the key's last byte");
  return 0;
}
