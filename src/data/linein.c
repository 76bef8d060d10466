/* Line reader of the table converters (linein.h). */
#include "data/linein.h"

#include <stdlib.h>
#include <string.h>

#include "data/gzin.h"

enum { READ_AHEAD = 1 << 17 };

ch_status linein_open(const char *path, linein *li) {
  memset(li, 0, sizeof *li);
  li->path = path;
  li->buf = malloc(READ_AHEAD);
  if (!li->buf) return CH_FAIL(CH_ERR_NOMEM, "%s: read buffer", path);
  ch_status st = gzin_open(path, &li->f);
  if (st != CH_OK) {
    free(li->buf);
    li->buf = NULL;
  }
  return st;
}

/* The next byte (0..255), or -1 at the end of the input. */
static ch_status next_byte(linein *li, int *c) {
  if (li->pos == li->len) {
    li->pos = li->len = 0;
    if (!li->eof) CH_CHECK(gzin_read(li->f, li->path, li->buf, READ_AHEAD, &li->len));
    if (li->len == 0) {
      li->eof = 1;
      *c = -1;
      return CH_OK;
    }
  }
  *c = li->buf[li->pos++];
  return CH_OK;
}

static ch_status append(linein *li, char ch) {
  if (li->line_len + 2 > li->line_cap) {
    size_t cap = li->line_cap ? li->line_cap * 2 : 4096;
    char *nl = realloc(li->line, cap);
    if (!nl) return CH_FAIL(CH_ERR_NOMEM, "%s:%lld: line of %zu bytes", li->path, (long long)li->lineno, cap);
    li->line = nl;
    li->line_cap = cap;
  }
  li->line[li->line_len++] = ch;
  return CH_OK;
}

ch_status linein_next(linein *li, int *got) {
  *got = 0;
  li->line_len = 0;
  int c;
  CH_CHECK(next_byte(li, &c));
  if (li->skip_lf && c == '\n') CH_CHECK(next_byte(li, &c));
  li->skip_lf = 0;
  if (c < 0) return CH_OK;
  li->lineno++;
  while (c >= 0 && c != '\n' && c != '\r') {
    CH_CHECK(append(li, (char)c));
    CH_CHECK(next_byte(li, &c));
  }
  li->skip_lf = c == '\r';
  CH_CHECK(append(li, '\0'));
  li->line_len--;
  if (!li->started) { /* the byte order mark EF BB BF, whatever follows */
    li->started = 1;
    if (li->line_len >= 3 && !memcmp(li->line, "\xEF\xBB\xBF", 3)) {
      memmove(li->line, li->line + 3, li->line_len - 2);
      li->line_len -= 3;
    }
  }
  *got = 1;
  return CH_OK;
}

void linein_close(linein *li) {
  if (li->f) gzclose(li->f);
  free(li->buf);
  free(li->line);
  memset(li, 0, sizeof *li);
}
