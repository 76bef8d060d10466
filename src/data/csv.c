/* CSV -> HDF5 dataset converter (`cohort data csv`): RFC 4180 fields, handed row by row to the
 * table builder (table.h), which owns every rule about their contents. */
#include <stdlib.h>
#include <string.h>

#include "cohort/data.h"
#include "data/linein.h"
#include "data/table.h"

/* The fields of one row, back to back in buf, each NUL-terminated at offsets start[i]. */
typedef struct csv_row {
  char *buf;
  size_t len, cap;
  size_t *start;
  int n, cap_fields;
  tab_field *f;
} csv_row;

static ch_status put(csv_row *r, char c, const char *path) {
  if (r->len == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 4096;
    char *b = realloc(r->buf, cap);
    if (!b) return CH_FAIL(CH_ERR_NOMEM, "%s: row of %zu bytes", path, cap);
    r->buf = b;
    r->cap = cap;
  }
  r->buf[r->len++] = c;
  return CH_OK;
}

static ch_status start_field(csv_row *r, const char *path) {
  if (r->n == r->cap_fields) {
    int cap = r->cap_fields ? 2 * r->cap_fields : 64;
    size_t *s = realloc(r->start, sizeof *s * (size_t)cap);
    if (s) r->start = s;
    tab_field *f = realloc(r->f, sizeof *f * (size_t)cap);
    if (f) r->f = f;
    if (!s || !f) return CH_FAIL(CH_ERR_NOMEM, "%s: row of %d fields", path, cap);
    r->cap_fields = cap;
  }
  r->start[r->n++] = r->len;
  return CH_OK;
}

static int blank(const char *s) {
  while (*s == ' ' || *s == '\t') s++;
  return !*s;
}

/* Splits the row starting at li's current line into r; a quoted field may go on over the next
 * lines (its line ends become '\n'). */
static ch_status split_row(linein *li, csv_row *r) {
  const char *path = li->path;
  int64_t line = li->lineno;
  const char *p = li->line;
  r->n = 0;
  r->len = 0;
  for (;;) {
    CH_CHECK(start_field(r, path));
    const char *q = p;
    while (*q == ' ' || *q == '\t') q++;
    if (*q == '"') {
      for (p = q + 1;;) {
        if (!*p) { /* the line ended inside the quotes: the field goes on */
          int got;
          CH_CHECK(linein_next(li, &got));
          if (!got)
            return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d: the quoted field never closes", path,
                           (long long)line, r->n);
          CH_CHECK(put(r, '\n', path));
          p = li->line;
          continue;
        }
        if (*p == '"' && p[1] != '"') break;
        p += *p == '"'; /* "" is one quote */
        CH_CHECK(put(r, *p++, path));
      }
      p++;
      while (*p == ' ' || *p == '\t') p++;
      if (*p && *p != ',')
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d: text after the closing quote ('%.20s')",
                       path, (long long)li->lineno, r->n, p);
    } else {
      while (*p && *p != ',') CH_CHECK(put(r, *p++, path));
    }
    CH_CHECK(put(r, '\0', path));
    if (*p != ',') break;
    p++;
  }
  for (int i = 0; i < r->n; i++) r->f[i] = (tab_field){r->buf + r->start[i], 0};
  return CH_OK;
}

static ch_status parse_csv(const char *path, table *t) {
  linein li;
  CH_CHECK(linein_open(path, &li));
  csv_row r = {0};
  ch_status st = CH_OK;
  for (;;) {
    int got;
    CH_CHECK_GOTO(linein_next(&li, &got), st, done);
    if (!got) break;
    if (blank(li.line)) continue;
    int64_t line = li.lineno;
    CH_CHECK_GOTO(split_row(&li, &r), st, done);
    CH_CHECK_GOTO(table_add_row(t, r.f, r.n, line), st, done);
  }
done:
  free(r.buf);
  free(r.start);
  free(r.f);
  linein_close(&li);
  return st;
}

ch_status ch_data_csv_convert(const char *in_path, const char *out_path, const ch_csv_opts *opts,
                              ch_csv_stats *stats) {
  return table_convert(in_path, out_path, opts, stats, parse_csv);
}
