/* Request bodies sent with a Content-Encoding (tritonclient's request_compression_algorithm,
 * curl --data-binary of a gzip file): decoded before routing, within the body limit. A pure
 * function over zlib: no HTTP, no globals. */
#pragma once
#include <stddef.h>

/* Decodes n bytes of body `in` sent with the Content-Encoding value `coding` (NULL, "" or
 * "identity": nothing to do; "gzip" / "x-gzip": gzip; "deflate": the zlib format of RFC 9110,
 * or a raw deflate stream, which some clients send under that name; names case-insensitive,
 * surrounding blanks ignored; an empty body needs no decoding). Returns 0 with *out NULL when
 * the body is usable as it is, or a malloc'ed decoded copy (NUL-terminated after *outlen
 * bytes; the caller frees it). Otherwise an HTTP status with a message in err (errn bytes):
 * 413 when the decoded body would exceed `limit` bytes (decoding stops there, so a small body
 * that inflates to gigabytes costs at most `limit` bytes of memory), 415 for any other coding
 * (a list of codings included), 400 for a corrupt or truncated stream or bytes after its end,
 * 500 when out of memory. */
int serve_body_decode(const char *coding, const char *in, size_t n, size_t limit, char **out,
                      size_t *outlen, char *err, size_t errn);
