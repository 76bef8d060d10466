/* Lines of a converter's input (linein.c): gzip or plain, any of the three line ends (LF, CRLF,
 * and the old Mac's lone CR), a UTF-8 byte order mark at the start removed, every read checked
 * through gzin.h; not installed. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>
#include "cohort/status.h"

typedef struct linein {
  gzFile f;
  const char *path;
  unsigned char *buf; /* read-ahead */
  size_t pos, len;
  int eof, started, skip_lf; /* skip_lf: the last line ended with '\r' (a '\n' next is its CRLF) */
  char *line;               /* the current line, NUL-terminated, no line end */
  size_t line_len, line_cap;
  int64_t lineno;           /* 1-based number of the current line */
} linein;

/* Opens `path` (gzip or plain). Errors: CH_ERR_IO naming it. Close with linein_close. */
ch_status linein_open(const char *path, linein *li);
/* Reads the next line into li->line / li->line_len (its number in li->lineno); *got is 0 at the
 * end of the input. A line may hold NUL bytes (line_len counts them). Errors: as gzin_read,
 * CH_ERR_NOMEM. */
ch_status linein_next(linein *li, int *got);
/* Closes the file and frees the buffers. */
void linein_close(linein *li);
