/* Reading a converter's input, gzip or plain, with every read checked the same way (gzin.c);
 * not installed. zlib's gzread reports a truncated gzip stream only through gzerror (it returns
 * 0 as at the end of the file), so every end of input goes through one check here. */
#pragma once
#include <stddef.h>
#include <zlib.h>
#include "cohort/status.h"

/* Opens `path` for reading: gzip, or plain (zlib reads it as it is). Errors: CH_ERR_IO naming
 * the file. Close with gzclose. */
ch_status gzin_open(const char *path, gzFile *out);

/* Reads up to n bytes into buf; *got is 0 only at the real end of the input. Errors: CH_ERR_IO
 * naming the file: "truncated gzip file" for a stream that ends early, "corrupt gzip data"
 * for one that does not decode, "read failed" for the system's errors. */
ch_status gzin_read(gzFile f, const char *path, void *buf, size_t n, size_t *got);
