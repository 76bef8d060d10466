/* The table builder of the row converters (table.h): header decision, label column, missing
 * values, label ids and every value check, for rows of text fields from any parser. */
#include "data/table.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LABEL (INT32_MAX - 1) /* so that num_classes = max label + 1 fits an int */

void table_init(table *t, const char *path, const ch_csv_opts *o) {
  memset(t, 0, sizeof *t);
  t->path = path;
  t->o = *o;
}

static void free_strs(char **v, int n) {
  for (int i = 0; v && i < n; i++) free(v[i]);
  free(v);
}

void table_free(table *t) {
  free_strs(t->names, t->ncols);
  for (int i = 0; i < t->npend; i++) free_strs(t->pend[i].f, t->pend[i].n);
  free(t->pend);
  free_strs(t->labels, t->nlabels);
  free_strs(t->class_names, t->class_names ? t->num_classes : 0);
  free(t->label_line);
  free(t->hash);
  free(t->x);
  free(t->y);
  memset(t, 0, sizeof *t);
}

/* The field's text without the blanks around it: [*b, *b + *n). */
static void trim(const char *s, const char **b, size_t *n) {
  while (*s == ' ' || *s == '\t') s++;
  size_t len = strlen(s);
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
  *b = s;
  *n = len;
}

int table_is_missing(const tab_field *f) {
  static const char *const tokens[] = {"NA", "N/A", "NaN", "?"};
  if (f->null) return 1;
  const char *b;
  size_t n;
  trim(f->s, &b, &n);
  if (n == 0) return 1;
  for (size_t i = 0; i < sizeof tokens / sizeof *tokens; i++)
    if (strlen(tokens[i]) == n && !strncasecmp(b, tokens[i], n)) return 1;
  return 0;
}

/* Whether the field is a number (blanks around allowed); its value in *v. */
static int field_number(const tab_field *f, double *v) {
  if (f->null) return 0;
  const char *b;
  size_t n;
  trim(f->s, &b, &n);
  if (n == 0) return 0;
  char *end;
  errno = 0;
  *v = strtod(b, &end);
  return end == b + n;
}

/* Text: neither missing nor a number (a column name, a string label). */
static int field_text(const tab_field *f) {
  double v;
  return !table_is_missing(f) && !field_number(f, &v);
}

/* " ('name')" for messages when the columns have names, else "". */
static const char *col_name(const table *t, int c, char *buf, size_t size) {
  buf[0] = '\0';
  if (t->names && c < t->ncols) snprintf(buf, size, " ('%.60s')", t->names[c]);
  return buf;
}

static char **copy_fields(const tab_field *f, int n) {
  char **v = calloc((size_t)n + 1, sizeof *v);
  for (int i = 0; v && i < n; i++) {
    const char *b;
    size_t len;
    trim(f[i].null ? "" : f[i].s, &b, &len);
    if (!(v[i] = strndup(b, len))) {
      free_strs(v, i);
      return NULL;
    }
  }
  return v;
}

/* The column count and the label column, from the first row (or the header) of n fields, the
 * first `first`. */
static ch_status fix_columns(table *t, int n, const char *first, int64_t line) {
  if (n < 2) {
    const char *sep = strchr(first, ';') ? "';'" : strchr(first, '\t') ? "a tab" : NULL;
    return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: found %d column; need at least 2 (features and a label)%s%s%s",
                   t->path, (long long)line, n, sep ? "; the separator looks like " : "", sep ? sep : "",
                   sep ? ", but fields are separated by commas" : "");
  }
  if (t->o.label_name) {
    if (!t->names)
      return CH_FAIL(CH_ERR_INVALID, "%s: --label-column '%s' is a column name, but the file has no "
                     "header (%s)", t->path, t->o.label_name, t->header_note);
    int k = 0;
    while (k < n && strcmp(t->names[k], t->o.label_name)) k++;
    if (k == n) {
      char list[256] = "";
      for (int c = 0, len = 0; c < n && len < (int)sizeof list - 8; c++)
        len += snprintf(list + len, sizeof list - (size_t)len, "%s'%s'", c ? ", " : "", t->names[c]);
      return CH_FAIL(CH_ERR_INVALID, "%s: --label-column '%s' is not a column of the header on line "
                     "%lld: %s", t->path, t->o.label_name, (long long)t->header_line, list);
    }
    t->label_col = k;
  } else {
    int k = t->o.label_column;
    if (k >= n || k < -n)
      return CH_FAIL(CH_ERR_INVALID, "%s: label column %d is out of range: the file has %d columns "
                     "(0..%d, or -1..-%d from the end)", t->path, k, n, n - 1, n);
    t->label_col = k < 0 ? n + k : k;
  }
  t->ncols = n;
  return CH_OK;
}

static ch_status set_header(table *t, char **names, int n, int64_t line) {
  t->names = names; /* owned from here, also on failure: ncols counts them once fixed */
  t->has_header = 1;
  t->header_line = line;
  ch_status st = fix_columns(t, n, n ? names[0] : "", line);
  if (st != CH_OK) {
    free_strs(t->names, n);
    t->names = NULL;
  }
  return st;
}

ch_status table_set_names(table *t, const char *const *names, int n, int64_t line, const char *how) {
  if (t->o.header != CH_HEADER_AUTO)
    return CH_FAIL(CH_ERR_INVALID, "%s: --header does not apply: %s", t->path, how);
  tab_field *f = calloc((size_t)n + 1, sizeof *f);
  if (!f) return CH_FAIL(CH_ERR_NOMEM, "%s: column names", t->path);
  for (int i = 0; i < n; i++) f[i].s = names[i];
  char **v = copy_fields(f, n);
  free(f);
  if (!v) return CH_FAIL(CH_ERR_NOMEM, "%s: column names", t->path);
  snprintf(t->header_note, sizeof t->header_note, "header: yes (%s)", how);
  return set_header(t, v, n, line);
}

static ch_status grow(table *t) {
  int64_t ncap = t->cap ? t->cap * 2 : 1024;
  size_t d = (size_t)(t->ncols - 1);
  float *x = realloc(t->x, (size_t)ncap * d * sizeof *x);
  if (x) t->x = x;
  int32_t *y = realloc(t->y, (size_t)ncap * sizeof *y);
  if (y) t->y = y;
  if (!x || !y)
    return CH_FAIL(CH_ERR_NOMEM, "%s: table of %lld rows x %zu features", t->path, (long long)ncap, d);
  t->cap = ncap;
  return CH_OK;
}

static uint32_t hash_str(const char *s, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

static ch_status rehash(table *t) {
  int cap = t->hash_cap ? t->hash_cap * 2 : 64;
  int32_t *h = malloc(sizeof *h * (size_t)cap);
  if (!h) return CH_FAIL(CH_ERR_NOMEM, "%s: label table", t->path);
  for (int i = 0; i < cap; i++) h[i] = -1;
  for (int i = 0; i < t->nlabels; i++) {
    uint32_t k = hash_str(t->labels[i], strlen(t->labels[i])) & (uint32_t)(cap - 1);
    while (h[k] >= 0) k = (k + 1) & (uint32_t)(cap - 1);
    h[k] = i;
  }
  free(t->hash);
  t->hash = h;
  t->hash_cap = cap;
  return CH_OK;
}

/* The slot of label text [s, s + n): an existing one, or a new one first seen on `line`. */
static ch_status intern(table *t, const char *s, size_t n, int64_t line, int32_t *slot) {
  if (2 * (t->nlabels + 1) > t->hash_cap) CH_CHECK(rehash(t));
  uint32_t mask = (uint32_t)(t->hash_cap - 1), k = hash_str(s, n) & mask;
  for (; t->hash[k] >= 0; k = (k + 1) & mask) {
    const char *l = t->labels[t->hash[k]];
    if (strlen(l) == n && !memcmp(l, s, n)) {
      *slot = t->hash[k];
      return CH_OK;
    }
  }
  if (t->nlabels == t->labels_cap) {
    int cap = t->labels_cap ? 2 * t->labels_cap : 64;
    char **l = realloc(t->labels, sizeof *l * (size_t)cap);
    if (l) t->labels = l;
    int64_t *ll = realloc(t->label_line, sizeof *ll * (size_t)cap);
    if (ll) t->label_line = ll;
    if (!l || !ll) return CH_FAIL(CH_ERR_NOMEM, "%s: %d labels", t->path, cap);
    t->labels_cap = cap;
  }
  if (!(t->labels[t->nlabels] = strndup(s, n))) return CH_FAIL(CH_ERR_NOMEM, "%s: label", t->path);
  t->label_line[t->nlabels] = line;
  t->hash[k] = t->nlabels;
  *slot = t->nlabels++;
  return CH_OK;
}

static ch_status data_row(table *t, const tab_field *f, int n, int64_t line) {
  if (n != t->ncols) {
    if (t->has_header && t->rows == 0)
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: header has %d columns but the first data line (%lld) has %d",
                     t->path, (long long)t->header_line, t->ncols, (long long)line, n);
    return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: expected %d columns, found %d", t->path, (long long)line,
                   t->ncols, n);
  }
  if (t->rows == t->cap) CH_CHECK(grow(t));
  float *xr = t->x + (size_t)t->rows * (size_t)(t->ncols - 1);
  char nm[80];
  for (int c = 0, j = 0; c < n; c++) {
    if (table_is_missing(&f[c])) {
      if (c == t->label_col)
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d%s: the label is missing (rows are never "
                       "dropped: fix or remove the row)", t->path, (long long)line, c + 1,
                       col_name(t, c, nm, sizeof nm));
      if (!t->o.fill) {
        const char *b;
        size_t len;
        trim(f[c].null ? "" : f[c].s, &b, &len);
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d%s: missing value (%s%.*s%s); --fill VALUE "
                       "replaces missing values", t->path, (long long)line, c + 1,
                       col_name(t, c, nm, sizeof nm), f[c].null ? "null or no key" : len ? "'" : "empty",
                       (int)(len > 20 ? 20 : len), b, len ? "'" : "");
      }
      xr[j++] = (float)t->o.fill_value;
      t->filled++;
      continue;
    }
    if (c == t->label_col) {
      const char *b;
      size_t len;
      trim(f[c].s, &b, &len);
      CH_CHECK(intern(t, b, len, line, &t->y[t->rows]));
      continue;
    }
    double v;
    if (!field_number(&f[c], &v))
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d%s: '%.40s' is not a number", t->path,
                     (long long)line, c + 1, col_name(t, c, nm, sizeof nm), f[c].s);
    if (!isfinite(v))
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d%s: '%.40s' is not a finite number", t->path,
                     (long long)line, c + 1, col_name(t, c, nm, sizeof nm), f[c].s);
    if (fabs(v) > FLT_MAX)
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d%s: '%.40s' is out of float32 range", t->path,
                     (long long)line, c + 1, col_name(t, c, nm, sizeof nm), f[c].s);
    xr[j++] = (float)v;
  }
  t->rows++;
  return CH_OK;
}

/* AUTO looks at most this many rows below row 1 for a column's first value. */
enum { HEADER_LOOKAHEAD = 64 };

/* AUTO: row 1 names the columns iff some column holds text in row 1 (not a number, not a
 * missing value) above a number: the first value below it that is not missing. A data row never
 * does: its features are numbers or missing, and a string label has a string label below it.
 * Returns 1 (header) or 0 (data) with the reason in header_note, or -1 while the kept rows
 * cannot tell yet (a text column with only missing values below it so far; `final`: no more
 * rows come). */
static int decide_header(table *t, int final) {
  const tab_row *r1 = &t->pend[0];
  int open = 0;
  for (int c = 0; c < r1->n; c++) {
    if (!field_text(&(tab_field){r1->f[c], 0})) continue;
    int i = 1;
    while (i < t->npend && (c >= t->pend[i].n || table_is_missing(&(tab_field){t->pend[i].f[c], 0}))) i++;
    double v;
    if (i == t->npend) open++;
    else if (field_number(&(tab_field){t->pend[i].f[c], 0}, &v)) {
      snprintf(t->header_note, sizeof t->header_note,
               "header: yes (auto: line %lld has '%.40s' in column %d where line %lld has a number; "
               "--header no keeps it as data)", (long long)r1->line, r1->f[c], c + 1,
               (long long)t->pend[i].line);
      return 1;
    }
  }
  if (open && !final && t->npend <= HEADER_LOOKAHEAD) return -1;
  if (t->npend == 1) { /* a single row: a header only when it is all text */
    int text = 1;
    for (int c = 0; c < r1->n; c++) text &= field_text(&(tab_field){r1->f[c], 0});
    snprintf(t->header_note, sizeof t->header_note, "header: %s (auto: line %lld is the only row%s)",
             text ? "yes" : "no", (long long)r1->line, text ? " and all text" : "");
    return text;
  }
  snprintf(t->header_note, sizeof t->header_note,
           "header: no (auto: no field of line %lld is text above a number; --header yes takes it "
           "as the column names)", (long long)r1->line);
  return 0;
}

/* The kept rows, once decided: row 1 the header or data, the others data, in order. */
static ch_status settle(table *t, int header) {
  ch_status st = CH_OK;
  tab_field *f = NULL;
  for (int i = 0; i < t->npend && st == CH_OK; i++) {
    tab_row *r = &t->pend[i];
    if (i == 0 && header) {
      st = set_header(t, r->f, r->n, r->line); /* takes the names */
      r->f = NULL;
      continue;
    }
    if (!(f = realloc(f, sizeof *f * ((size_t)r->n + 1)))) {
      st = CH_FAIL(CH_ERR_NOMEM, "%s: row", t->path);
      break;
    }
    for (int c = 0; c < r->n; c++) f[c] = (tab_field){r->f[c], 0};
    if (t->ncols == 0) st = fix_columns(t, r->n, r->n ? r->f[0] : "", r->line);
    if (st == CH_OK) st = data_row(t, f, r->n, r->line);
  }
  free(f);
  for (int i = 0; i < t->npend; i++) free_strs(t->pend[i].f, t->pend[i].f ? t->pend[i].n : 0);
  free(t->pend);
  t->pend = NULL;
  t->npend = t->cap_pend = 0;
  return st;
}

/* AUTO, undecided: keeps a copy of the row. */
static ch_status keep_row(table *t, const tab_field *f, int n, int64_t line) {
  if (t->npend == t->cap_pend) {
    int cap = t->cap_pend ? 2 * t->cap_pend : 8;
    tab_row *p = realloc(t->pend, sizeof *p * (size_t)cap);
    if (!p) return CH_FAIL(CH_ERR_NOMEM, "%s: rows", t->path);
    t->pend = p;
    t->cap_pend = cap;
  }
  char **v = copy_fields(f, n);
  if (!v) return CH_FAIL(CH_ERR_NOMEM, "%s: row", t->path);
  t->pend[t->npend++] = (tab_row){v, n, line};
  return CH_OK;
}

ch_status table_add_row(table *t, const tab_field *f, int n, int64_t line) {
  if (t->ncols == 0) {
    if (t->o.header == CH_HEADER_YES && !t->has_header) {
      char **v = copy_fields(f, n);
      if (!v) return CH_FAIL(CH_ERR_NOMEM, "%s: header", t->path);
      snprintf(t->header_note, sizeof t->header_note, "header: yes (--header yes: line %lld)",
               (long long)line);
      return set_header(t, v, n, line);
    }
    if (t->o.header == CH_HEADER_AUTO) {
      CH_CHECK(keep_row(t, f, n, line));
      int header = t->npend > 1 ? decide_header(t, 0) : -1;
      return header < 0 ? CH_OK : settle(t, header);
    }
    snprintf(t->header_note, sizeof t->header_note, "header: no (--header no)");
    CH_CHECK(fix_columns(t, n, n && !f[0].null ? f[0].s : "", line));
  }
  return data_row(t, f, n, line);
}

typedef struct named {
  const char *s;
  int slot;
} named;

static int cmp_named(const void *a, const void *b) {
  return strcmp(((const named *)a)->s, ((const named *)b)->s);
}

/* Integer labels: every distinct label a number; they must be integers in [0, MAX_LABEL]. */
static ch_status numeric_labels(table *t, const double *val) {
  char nm[80];
  int32_t max = 0;
  int32_t *id = malloc(sizeof *id * ((size_t)t->nlabels + 1));
  if (!id) return CH_FAIL(CH_ERR_NOMEM, "%s: labels", t->path);
  for (int i = 0; i < t->nlabels; i++) {
    double v = val[i];
    const char *why = !isfinite(v) ? "is not a finite number" : v != floor(v) ? "is not an integer"
                      : v < 0 ? "is negative (labels are integers >= 0 or names)"
                      : v > MAX_LABEL ? "is too large" : NULL;
    if (why) {
      free(id);
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d%s: label '%.40s' %s%s", t->path,
                     (long long)t->label_line[i], t->label_col + 1, col_name(t, t->label_col, nm, sizeof nm),
                     t->labels[i], why, v != floor(v) && isfinite(v)
                         ? ": the column looks continuous, not a class; choose the class column "
                           "with --label-column INDEX|NAME" : "");
    }
    id[i] = (int32_t)v;
    if (id[i] > max) max = id[i];
  }
  for (int64_t r = 0; r < t->rows; r++) t->y[r] = id[t->y[r]];
  free(id);
  t->num_classes = max + 1;
  return CH_OK;
}

/* String labels: class ids in byte order of the names (as scikit-learn's LabelEncoder). */
static ch_status named_labels(table *t) {
  int n = t->nlabels;
  named *order = malloc(sizeof *order * ((size_t)n + 1));
  int32_t *id = malloc(sizeof *id * ((size_t)n + 1));
  char **names = calloc((size_t)n + 1, sizeof *names);
  if (!order || !id || !names) {
    free(order), free(id), free(names);
    return CH_FAIL(CH_ERR_NOMEM, "%s: %d class names", t->path, n);
  }
  for (int i = 0; i < n; i++) order[i] = (named){t->labels[i], i};
  qsort(order, (size_t)n, sizeof *order, cmp_named);
  for (int k = 0; k < n; k++) {
    id[order[k].slot] = k;
    names[k] = t->labels[order[k].slot];
  }
  for (int64_t r = 0; r < t->rows; r++) t->y[r] = id[t->y[r]];
  free(t->labels); /* the strings moved to names */
  t->labels = NULL;
  t->nlabels = 0;
  t->class_names = names;
  t->num_classes = n;
  free(order);
  free(id);
  return CH_OK;
}

ch_status table_finish(table *t) {
  if (t->npend) CH_CHECK(settle(t, decide_header(t, 1)));
  if (t->rows == 0) {
    if (t->has_header)
      return CH_FAIL(CH_ERR_FORMAT, "%s: no data rows: only the header on line %lld (%s)", t->path,
                     (long long)t->header_line, t->header_note);
    return CH_FAIL(CH_ERR_FORMAT, "%s: no data rows: the file is empty or blank", t->path);
  }
  int n = t->nlabels, numeric = 1;
  int64_t distinct = n;
  double *val = malloc(sizeof *val * ((size_t)n + 1));
  if (!val) return CH_FAIL(CH_ERR_NOMEM, "%s: labels", t->path);
  for (int i = 0; i < n && numeric; i++) numeric = field_number(&(tab_field){t->labels[i], 0}, &val[i]);
  ch_status st = numeric ? numeric_labels(t, val) : named_labels(t);
  free(val);
  CH_CHECK(st);
  /* Many distinct values for the rows: a measurement, not a class (the wine data's last column
   * taken for the label gives "classes 1681"). */
  if (distinct > 20 && 2 * distinct > t->rows) {
    char nm[80];
    snprintf(t->warning, sizeof t->warning,
             "warning: the label column (--label-column %d%s) looks %s, not a class: %lld "
             "distinct values in %lld rows, %d classes; choose the class column with --label-column "
             "INDEX|NAME", t->label_col, col_name(t, t->label_col, nm, sizeof nm),
             t->class_names ? "like an id" : "continuous", (long long)distinct,
             (long long)t->rows, t->num_classes);
  }
  return CH_OK;
}
