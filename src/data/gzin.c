/* Checked reading of gzip or plain input for the converters (gzin.h). */
#include "data/gzin.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

ch_status gzin_open(const char *path, gzFile *out) {
  errno = 0;
  *out = gzopen(path, "rb");
  if (!*out)
    return CH_FAIL(CH_ERR_IO, "cannot open %s: %s", path, errno ? strerror(errno) : "out of memory");
  gzbuffer(*out, 1 << 17);
  return CH_OK;
}

/* After a read that returned nothing: the end of the input, or zlib's error. Z_BUF_ERROR is
 * zlib's "unexpected end of file": the stream stopped before its end (gzread returns 0 for it,
 * so that a file still being written can be read on). */
static ch_status check_end(gzFile f, const char *path) {
  int err = Z_OK;
  const char *msg = gzerror(f, &err);
  if (err == Z_OK) return CH_OK;
  size_t n = strlen(path); /* zlib's message starts with the path given to gzopen */
  if (!strncmp(msg, path, n) && !strncmp(msg + n, ": ", 2)) msg += n + 2;
  if (err == Z_ERRNO) return CH_FAIL(CH_ERR_IO, "%s: read failed: %s", path, strerror(errno));
  if (err == Z_BUF_ERROR) return CH_FAIL(CH_ERR_IO, "%s: truncated gzip file (%s)", path, msg);
  return CH_FAIL(CH_ERR_IO, "%s: corrupt gzip data (%s)", path, msg);
}

ch_status gzin_read(gzFile f, const char *path, void *buf, size_t n, size_t *got) {
  *got = 0;
  int r = gzread(f, buf, (unsigned)(n > INT_MAX ? INT_MAX : n));
  if (r > 0) {
    *got = (size_t)r;
    return CH_OK;
  }
  return check_end(f, path);
}
