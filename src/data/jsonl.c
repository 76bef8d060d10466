/* JSON Lines -> HDF5 dataset converter (`cohort data jsonl`): each line's object or array
 * becomes a row of text fields for the table builder (table.h), as a CSV row would. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohort/data.h"
#include "data/linein.h"
#include "data/table.h"

enum { NUM_TEXT = 32 }; /* "%.17g" of a double fits */

typedef struct jrow {
  char **keys;      /* the first object's keys, in order */
  int nkeys;
  int kind;         /* 0 unknown, 1 objects, 2 arrays */
  int64_t first_line;
  tab_field *f;
  char (*num)[NUM_TEXT];
  int cap;
} jrow;

static ch_status reserve(jrow *r, int n, const char *path) {
  if (n <= r->cap) return CH_OK;
  tab_field *f = realloc(r->f, sizeof *f * (size_t)n);
  if (f) r->f = f;
  char(*num)[NUM_TEXT] = realloc(r->num, sizeof *num * (size_t)n);
  if (num) r->num = num;
  if (!f || !num) return CH_FAIL(CH_ERR_NOMEM, "%s: row of %d fields", path, n);
  r->cap = n;
  return CH_OK;
}

/* Field c from JSON value v (NULL: a missing key). Numbers print with 17 digits, which read
 * back to the same double, so a row gives the values of the same row in CSV. */
static ch_status field(jrow *r, int c, const cJSON *v, const char *path, int64_t line) {
  tab_field *f = &r->f[c];
  *f = (tab_field){"", 0};
  if (!v || cJSON_IsNull(v)) f->null = 1;
  else if (cJSON_IsString(v)) f->s = v->valuestring;
  else if (cJSON_IsNumber(v)) {
    snprintf(r->num[c], NUM_TEXT, "%.17g", v->valuedouble);
    f->s = r->num[c];
  } else {
    const char *what = cJSON_IsBool(v) ? "true/false" : cJSON_IsArray(v) ? "an array" : "an object";
    return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: column %d%s%s%s: %s is not a value (numbers, strings or "
                   "null)", path, (long long)line, c + 1, v->string ? " ('" : "",
                   v->string ? v->string : "", v->string ? "')" : "", what);
  }
  return CH_OK;
}

static ch_status first_object(jrow *r, const cJSON *obj, table *t, const char *path, int64_t line) {
  int n = cJSON_GetArraySize(obj);
  if (!(r->keys = calloc((size_t)n + 1, sizeof *r->keys))) return CH_FAIL(CH_ERR_NOMEM, "%s: keys", path);
  const cJSON *v;
  cJSON_ArrayForEach(v, obj) {
    for (int k = 0; k < r->nkeys; k++)
      if (!strcmp(r->keys[k], v->string))
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: key '%s' appears twice", path, (long long)line, v->string);
    if (!(r->keys[r->nkeys] = strdup(v->string))) return CH_FAIL(CH_ERR_NOMEM, "%s: keys", path);
    r->nkeys++;
  }
  r->first_line = line;
  return table_set_names(t, (const char *const *)r->keys, r->nkeys, line,
                         "the keys of the JSON objects name the columns");
}

static ch_status object_row(jrow *r, const cJSON *obj, const char *path, int64_t line) {
  CH_CHECK(reserve(r, r->nkeys, path));
  const cJSON *v;
  cJSON_ArrayForEach(v, obj) { /* every key must be a column: nothing is dropped silently */
    int k = 0;
    while (k < r->nkeys && strcmp(r->keys[k], v->string)) k++;
    if (k == r->nkeys)
      return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: key '%s' is not a column (the columns are the keys of "
                     "the first object, line %lld)", path, (long long)line, v->string,
                     (long long)r->first_line);
  }
  int present = 0;
  for (int k = 0; k < r->nkeys; k++) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, r->keys[k]);
    present += item != NULL;
    CH_CHECK(field(r, k, item, path, line));
  }
  if (present != cJSON_GetArraySize(obj)) /* a key given twice: which value would count? */
    cJSON_ArrayForEach(v, obj) for (const cJSON *w = v->next; w; w = w->next)
      if (!strcmp(v->string, w->string))
        return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: key '%s' appears twice", path, (long long)line, v->string);
  return CH_OK;
}

static ch_status json_line(jrow *r, const cJSON *j, table *t, const char *path, int64_t line, int *n) {
  int kind = cJSON_IsObject(j) ? 1 : cJSON_IsArray(j) ? 2 : 0;
  if (!kind)
    return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: a line must hold a JSON object or array", path, (long long)line);
  if (r->kind && kind != r->kind)
    return CH_FAIL(CH_ERR_FORMAT, "%s:%lld: an %s, but the lines before hold %ss", path, (long long)line,
                   kind == 1 ? "object" : "array", r->kind == 1 ? "object" : "array");
  if (!r->kind && kind == 1) CH_CHECK(first_object(r, j, t, path, line));
  r->kind = kind;
  if (kind == 1) {
    *n = r->nkeys;
    return object_row(r, j, path, line);
  }
  *n = cJSON_GetArraySize(j);
  CH_CHECK(reserve(r, *n, path));
  int c = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, j) CH_CHECK(field(r, c++, v, path, line));
  return CH_OK;
}

static ch_status parse_jsonl(const char *path, table *t) {
  linein li;
  CH_CHECK(linein_open(path, &li));
  jrow r = {0};
  ch_status st = CH_OK;
  for (;;) {
    int got, n = 0;
    CH_CHECK_GOTO(linein_next(&li, &got), st, done);
    if (!got) break;
    const char *s = li.line;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) continue;
    /* the whole line: a second value after the first is an error, not dropped */
    cJSON *j = cJSON_ParseWithOpts(li.line, NULL, 1);
    if (!j) {
      const char *at = cJSON_GetErrorPtr();
      long col = at && at >= li.line && at <= li.line + li.line_len ? (long)(at - li.line) + 1 : 0;
      st = CH_FAIL(CH_ERR_FORMAT, "%s:%lld:%ld: not valid JSON", path, (long long)li.lineno, col);
      goto done;
    }
    st = json_line(&r, j, t, path, li.lineno, &n);
    if (st == CH_OK) st = table_add_row(t, r.f, n, li.lineno);
    cJSON_Delete(j); /* the fields point into it */
    if (st != CH_OK) goto done;
  }
done:
  for (int k = 0; k < r.nkeys; k++) free(r.keys[k]);
  free(r.keys);
  free(r.f);
  free(r.num);
  linein_close(&li);
  return st;
}

ch_status ch_data_jsonl_convert(const char *in_path, const char *out_path, const ch_csv_opts *opts,
                                ch_csv_stats *stats) {
  return table_convert(in_path, out_path, opts, stats, parse_jsonl);
}
