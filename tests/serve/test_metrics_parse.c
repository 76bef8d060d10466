/* Strict parser of the Prometheus text format 0.0.4 for the metrics tests (see the header). */
#include "test_metrics_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

typedef struct {
  const char *p, *end; /* the rest of the current line */
  int line;
  char *err;
  size_t errsz;
} cursor;

static int fail(cursor *c, const char *fmt, ...) {
  char msg[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(c->err, c->errsz, "line %d: %s", c->line, msg);
  return -1;
}

static int name_char(char ch, int first, int colon) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
         (colon && ch == ':') || (!first && ch >= '0' && ch <= '9');
}

/* Scans a metric (colon) or label name; NULL when there is none. */
static char *scan_name(cursor *c, int colon) {
  const char *s = c->p;
  while (c->p < c->end && name_char(*c->p, c->p == s, colon)) c->p++;
  return c->p > s ? strndup(s, (size_t)(c->p - s)) : NULL;
}

/* Unescapes [s, e): \\ and \n always, \" only when `quote`; NULL on another escape. */
static char *unescape(const char *s, const char *e, int quote) {
  char *out = malloc((size_t)(e - s) + 1), *o = out;
  for (; s < e; s++) {
    if (*s != '\\') {
      *o++ = *s;
      continue;
    }
    if (++s == e) break;
    if (*s == '\\') *o++ = '\\';
    else if (*s == 'n') *o++ = '\n';
    else if (*s == '"' && quote) *o++ = '"';
    else break;
  }
  if (s < e) {
    free(out);
    return NULL;
  }
  *o = '\0';
  return out;
}

static int parse_value(cursor *c, cht_sample *s) {
  size_t n = (size_t)(c->end - c->p);
  s->value_text = strndup(c->p, n);
  if (!strcmp(s->value_text, "+Inf")) s->value = 1.0 / 0.0;
  else if (!strcmp(s->value_text, "-Inf")) s->value = -1.0 / 0.0;
  else if (!strcmp(s->value_text, "NaN")) s->value = 0.0 / 0.0;
  else {
    if (!n || strspn(s->value_text, "0123456789+-.eE") != n)
      return fail(c, "bad value '%s'", s->value_text);
    char *endp;
    s->value = strtod(s->value_text, &endp);
    if (*endp) return fail(c, "bad value '%s'", s->value_text);
  }
  return 0;
}

static int parse_labels(cursor *c, cht_sample *s) {
  c->p++; /* '{' */
  for (;;) {
    char *key = scan_name(c, 0);
    if (!key) return fail(c, "expected a label name");
    s->keys = realloc(s->keys, sizeof *s->keys * (size_t)(s->nlabels + 1));
    s->vals = realloc(s->vals, sizeof *s->vals * (size_t)(s->nlabels + 1));
    s->keys[s->nlabels] = key, s->vals[s->nlabels] = NULL;
    s->nlabels++;
    if (c->end - c->p < 2 || c->p[0] != '=' || c->p[1] != '"') return fail(c, "expected =\"");
    const char *v = c->p += 2;
    while (c->p < c->end && *c->p != '"') c->p += (*c->p == '\\') ? 2 : 1;
    if (c->p >= c->end) return fail(c, "unterminated label value");
    if (!(s->vals[s->nlabels - 1] = unescape(v, c->p, 1)))
      return fail(c, "bad escape in label value");
    c->p++;
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      continue;
    }
    if (c->p < c->end && *c->p == '}') {
      c->p++;
      return 0;
    }
    return fail(c, "expected , or } after a label");
  }
}

/* 1 when sample name `n` belongs to family f. */
static int in_family(const char *n, const cht_family *f) {
  size_t l = strlen(f->name);
  if (strncmp(n, f->name, l)) return 0;
  if (!n[l]) return strcmp(f->type, "histogram") != 0;
  return !strcmp(f->type, "histogram") &&
         (!strcmp(n + l, "_bucket") || !strcmp(n + l, "_sum") || !strcmp(n + l, "_count"));
}

static int parse_line(cursor *c, cht_prom *p) {
  int is_help = c->end - c->p >= 7 && !strncmp(c->p, "# HELP ", 7);
  int is_type = c->end - c->p >= 7 && !strncmp(c->p, "# TYPE ", 7);
  if (is_help || is_type) {
    c->p += 7;
    char *name = scan_name(c, 1);
    if (!name) return fail(c, "no metric name");
    if (c->p >= c->end || *c->p != ' ') {
      free(name);
      return fail(c, "expected a space");
    }
    c->p++;
    if (is_help) {
      p->fams = realloc(p->fams, sizeof *p->fams * (size_t)(p->nfams + 1));
      cht_family *f = &p->fams[p->nfams++];
      f->name = name, f->type = NULL;
      if (!(f->help = unescape(c->p, c->end, 0))) return fail(c, "bad escape in help");
      return 0;
    }
    cht_family *f = p->nfams ? &p->fams[p->nfams - 1] : NULL;
    int same = f && !f->type && !strcmp(f->name, name);
    free(name);
    if (!same) return fail(c, "TYPE does not follow the HELP of the same family");
    f->type = strndup(c->p, (size_t)(c->end - c->p));
    if (strcmp(f->type, "counter") && strcmp(f->type, "gauge") && strcmp(f->type, "histogram"))
      return fail(c, "unexpected type '%s'", f->type);
    return 0;
  }
  if (!p->nfams || !p->fams[p->nfams - 1].type) return fail(c, "sample before HELP and TYPE");
  p->samples = realloc(p->samples, sizeof *p->samples * (size_t)(p->nsamples + 1));
  cht_sample *s = &p->samples[p->nsamples++];
  memset(s, 0, sizeof *s);
  s->family = p->nfams - 1;
  if (!(s->name = scan_name(c, 1))) return fail(c, "expected a sample name");
  if (!in_family(s->name, &p->fams[s->family]))
    return fail(c, "sample %s outside family %s", s->name, p->fams[s->family].name);
  if (c->p < c->end && *c->p == '{' && parse_labels(c, s)) return -1;
  if (c->p >= c->end || *c->p != ' ') return fail(c, "expected a space before the value");
  c->p++;
  return parse_value(c, s);
}

int cht_prom_parse(const char *text, size_t len, cht_prom *p, char *err, size_t errsz) {
  memset(p, 0, sizeof *p);
  cursor c = {.p = text, .end = text, .line = 0, .err = err, .errsz = errsz};
  const char *end = text + len;
  if (strlen(text) != len) return fail(&c, "NUL inside the text or wrong length");
  for (const char *pos = text; pos < end; pos = c.end + 1) {
    c.line++;
    c.p = pos;
    c.end = memchr(pos, '\n', (size_t)(end - pos));
    if (!c.end) return fail(&c, "no final newline");
    if (parse_line(&c, p)) return -1;
  }
  for (int i = 0; i < p->nfams; i++)
    if (!p->fams[i].type) return fail(&c, "family %s has no TYPE", p->fams[i].name);
  return 0;
}

void cht_prom_free(cht_prom *p) {
  for (int i = 0; i < p->nfams; i++)
    free(p->fams[i].name), free(p->fams[i].help), free(p->fams[i].type);
  for (int i = 0; i < p->nsamples; i++) {
    cht_sample *s = &p->samples[i];
    for (int j = 0; j < s->nlabels; j++) free(s->keys[j]), free(s->vals[j]);
    free(s->keys), free(s->vals), free(s->name), free(s->value_text);
  }
  free(p->fams), free(p->samples);
  memset(p, 0, sizeof *p);
}

int cht_prom_find(const cht_prom *p, int from, const char *name, const char *const *kv) {
  int n = 0;
  while (kv && kv[2 * n]) n++;
  for (int i = from; i < p->nsamples; i++) {
    const cht_sample *s = &p->samples[i];
    if (strcmp(s->name, name) || s->nlabels != n) continue;
    int j = 0;
    while (j < n && !strcmp(s->keys[j], kv[2 * j]) && !strcmp(s->vals[j], kv[2 * j + 1])) j++;
    if (j == n) return i;
  }
  return -1;
}

void cht_prom_render(metrics *m, char **text, cht_prom *p) {
  size_t len = 0;
  char err[256];
  *text = metrics_render(m, &len);
  CHT_ASSERT(*text, "render failed: %s", ch_error_message());
  CHT_ASSERT(strlen(*text) == len, "render length %zu != strlen %zu", len, strlen(*text));
  CHT_ASSERT(!cht_prom_parse(*text, len, p, err, sizeof err), "parse: %s\n%s", err, *text);
}

double cht_prom_value(const cht_prom *p, const char *name, const char *const *kv) {
  int i = cht_prom_find(p, 0, name, kv);
  CHT_ASSERT(i >= 0, "no sample %s", name);
  CHT_ASSERT(cht_prom_find(p, i + 1, name, kv) < 0, "sample %s rendered twice", name);
  return p->samples[i].value;
}
