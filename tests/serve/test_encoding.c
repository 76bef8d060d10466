/* Request Content-Encoding (src/serve/encoding.c, serve_body_decode):
 *  - identity, none, "" and blanks, or no body at all: the body as it is (no copy);
 *  - gzip (and x-gzip, any case), deflate in the zlib format and as a raw stream: the original
 *    bytes back, NUL-terminated, for an empty body, a small one and one that spans zlib's
 *    internal buffers (1 MiB of varied text);
 *  - a decoded body of exactly the limit passes, one byte more is 413; a zip bomb (64 MiB of
 *    zeros in about 64 KiB) is 413 without ever holding more than the limit;
 *  - 400: a corrupt stream, a truncated one, bytes after the end, garbage sent as deflate;
 *  - 415: br, compress, a list of codings ("gzip, identity").
 * One process, no MPI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "serve/encoding.h"
#include "testlib.h"

/* in[0..n) compressed with windowBits wbits (31 gzip, 15 zlib, -15 raw); malloc'ed. */
static char *pack(const char *in, size_t n, int wbits, size_t *out_n) {
  z_stream z;
  memset(&z, 0, sizeof z);
  CHT_ASSERT(deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
  size_t cap = deflateBound(&z, (uLong)n) + 64;
  char *out = malloc(cap);
  CHT_ASSERT(out, "malloc");
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = (Bytef *)out;
  z.avail_out = (uInt)cap;
  CHT_ASSERT(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
  *out_n = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

static int decode(const char *coding, const char *in, size_t n, size_t limit, char **out,
                  size_t *out_n, char *err) {
  err[0] = '\0';
  return serve_body_decode(coding, in, n, limit, out, out_n, err, 192);
}

/* Encodes `text` with each coding and decodes it back. */
static void round_trips(const char *text, size_t n) {
  static const struct { const char *coding; int wbits; } c[] = {
      {"gzip", 31}, {"GZIP", 31}, {" x-gzip ", 31}, {"deflate", 15}, {"Deflate", -15}};
  for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
    size_t zn, dn;
    char *z = pack(text, n, c[i].wbits, &zn), *d, err[192];
    int st = decode(c[i].coding, z, zn, n + 1, &d, &dn, err);
    CHT_ASSERT(st == 0 && d && dn == n && !memcmp(d, text, n) && d[n] == '\0',
               "%s (wbits %d) of %zu bytes: status %d %s", c[i].coding, c[i].wbits, n, st, err);
    free(d);
    free(z);
  }
}

int main(void) {
  char *out, err[192];
  size_t n;
  const char *json = "{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 2], "
                     "\"datatype\": \"FP32\", \"data\": [1, 2]}]}";
  /* As it is. */
  const char *plain[] = {NULL, "", "identity", " Identity "};
  for (int i = 0; i < 4; i++) {
    CHT_ASSERT(decode(plain[i], json, strlen(json), 10, &out, &n, err) == 0 && !out &&
               n == strlen(json), "identity %d", i);
  }
  CHT_ASSERT(decode("gzip", "", 0, 10, &out, &n, err) == 0 && !out && n == 0, "no body");
  /* Round trips. */
  round_trips("", 0);
  round_trips(json, strlen(json));
  size_t big = 1 << 20;
  char *text = malloc(big);
  CHT_ASSERT(text, "malloc");
  for (size_t i = 0; i < big; i++) text[i] = (char)('a' + (i * 7 + i / 13) % 26);
  round_trips(text, big);

  /* The limit on the decoded size. */
  size_t zn;
  char *z = pack(text, 1000, 31, &zn);
  CHT_ASSERT(decode("gzip", z, zn, 1000, &out, &n, err) == 0 && n == 1000, "exactly the limit");
  free(out);
  CHT_ASSERT(decode("gzip", z, zn, 999, &out, &n, err) == 413 && !out && strstr(err, "999"),
             "one byte over: %s", err);
  free(z);
  size_t bomb_n = (size_t)64 << 20;
  char *zeros = calloc(bomb_n, 1);
  CHT_ASSERT(zeros, "calloc");
  z = pack(zeros, bomb_n, 31, &zn);
  free(zeros);
  CHT_ASSERT(zn < 128 * 1024, "the bomb is small: %zu bytes", zn);
  CHT_ASSERT(decode("gzip", z, zn, 16 << 20, &out, &n, err) == 413 && !out, "zip bomb: %s", err);
  free(z);

  /* Corrupt, truncated, trailing bytes. */
  z = pack(json, strlen(json), 31, &zn);
  char *bad = malloc(zn + 8);
  CHT_ASSERT(bad, "malloc");
  memcpy(bad, z, zn);
  bad[zn / 2] ^= 0x55;
  CHT_ASSERT(decode("gzip", bad, zn, 1 << 20, &out, &n, err) == 400 && !out, "corrupt: %s", err);
  CHT_ASSERT(decode("gzip", z, zn - 4, 1 << 20, &out, &n, err) == 400 && !out, "truncated");
  memcpy(bad, z, zn);
  memcpy(bad + zn, "trailing", 8);
  CHT_ASSERT(decode("gzip", bad, zn + 8, 1 << 20, &out, &n, err) == 400 && !out, "trailing");
  CHT_ASSERT(decode("deflate", json, strlen(json), 1 << 20, &out, &n, err) == 400 && !out,
             "plain JSON sent as deflate: %s", err);
  CHT_ASSERT(decode("gzip", json, strlen(json), 1 << 20, &out, &n, err) == 400 && !out,
             "plain JSON sent as gzip");
  free(bad);
  free(z);

  /* Codings cohort does not decode. */
  const char *other[] = {"br", "compress", "gzip, identity", "zstd"};
  for (int i = 0; i < 4; i++)
    CHT_ASSERT(decode(other[i], json, strlen(json), 1 << 20, &out, &n, err) == 415 && !out &&
               strstr(err, other[i]), "%s: %s", other[i], err);
  free(text);
  printf("encoding: identity, gzip, deflate (zlib and raw), limits, zip bomb, errors: ok\n");
  return 0;
}
