/* Request Content-Encoding (encoding.h): gzip and deflate through zlib, the decoded size
 * bounded by the body limit as it grows. */
#include "serve/encoding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* Whether the blank-trimmed value v is the coding name `name` (case-insensitive). */
static int is_coding(const char *v, const char *name) {
  while (*v == ' ' || *v == '\t') v++;
  size_t n = strlen(v), k = strlen(name);
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  return n == k && strncasecmp(v, name, k) == 0;
}

/* Inflates in[0..n) with zlib's windowBits `wbits` into a buffer of at most limit bytes.
 * Returns 0 (*out NULL for an empty body), 413, 400 (corrupt, truncated, trailing bytes) or
 * 500. */
static int inflate_all(const char *in, size_t n, int wbits, size_t limit, char **out,
                       size_t *outlen, char *err, size_t errn) {
  if (n == 0) return 0; /* no body at all: nothing to decode (a GET's, say) */
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, wbits) != Z_OK) {
    snprintf(err, errn, "out of memory decoding the request body");
    return 500;
  }
  /* Room for one byte past the limit: a stream that fills it is too large, while one of
   * exactly `limit` bytes can still reach its end. */
  size_t most = limit + 1, cap = n * 4 + 64 < most ? n * 4 + 64 : most, len = 0;
  char *buf = malloc(cap + 1);
  int status = buf ? 0 : 500, zr = Z_OK;
  z.next_in = (Bytef *)in;
  z.avail_in = 0;
  size_t fed = 0;
  while (!status && zr != Z_STREAM_END) {
    if (z.avail_in == 0 && fed < n) { /* zlib counts in uInt: feed large bodies in pieces */
      size_t piece = n - fed > (1u << 30) ? (1u << 30) : n - fed;
      z.next_in = (Bytef *)(in + fed);
      z.avail_in = (uInt)piece;
      fed += piece;
    }
    if (len == cap) {
      if (cap == most) { status = 413; break; }
      size_t ncap = cap * 2 < most ? cap * 2 : most;
      char *b = realloc(buf, ncap + 1);
      if (!b) { status = 500; break; }
      buf = b, cap = ncap;
    }
    size_t room = cap - len > (1u << 30) ? (1u << 30) : cap - len;
    z.next_out = (Bytef *)(buf + len);
    z.avail_out = (uInt)room;
    zr = inflate(&z, Z_NO_FLUSH);
    len += room - z.avail_out;
    if (zr == Z_BUF_ERROR && z.avail_in == 0 && fed == n) status = 400; /* truncated */
    else if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) status = 400;
  }
  if (!status && (z.avail_in > 0 || fed < n)) status = 400; /* bytes after the stream's end */
  if (!status && len > limit) status = 413;
  inflateEnd(&z);
  if (status == 413) snprintf(err, errn, "request body exceeds %zu bytes once decoded", limit);
  else if (status == 400) snprintf(err, errn, "the request body is not a valid %s stream",
                                   wbits > 15 ? "gzip" : "deflate");
  else if (status) snprintf(err, errn, "out of memory decoding the request body");
  if (status) {
    free(buf);
    return status;
  }
  buf[len] = '\0';
  *out = buf;
  *outlen = len;
  return 0;
}

int serve_body_decode(const char *coding, const char *in, size_t n, size_t limit, char **out,
                      size_t *outlen, char *err, size_t errn) {
  *out = NULL;
  *outlen = n;
  if (!coding || is_coding(coding, "") || is_coding(coding, "identity")) return 0;
  if (is_coding(coding, "gzip") || is_coding(coding, "x-gzip"))
    return inflate_all(in, n, 16 + MAX_WBITS, limit, out, outlen, err, errn);
  if (is_coding(coding, "deflate")) {
    /* The zlib format is what the name means (RFC 9110); a raw stream is told apart by its
     * first two bytes, a zlib header (RFC 1950: method 8, CMF*256+FLG a multiple of 31). */
    int zlib_header = n >= 2 && ((unsigned char)in[0] & 0x0f) == 8 &&
                      (((unsigned char)in[0] << 8) | (unsigned char)in[1]) % 31 == 0;
    return inflate_all(in, n, zlib_header ? MAX_WBITS : -MAX_WBITS, limit, out, outlen, err,
                       errn);
  }
  snprintf(err, errn, "Content-Encoding '%.64s' is not supported: send gzip, deflate or "
           "identity", coding);
  return 415;
}
