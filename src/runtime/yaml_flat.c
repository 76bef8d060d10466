/* YAML nested mappings -> flat (dotted key, value, line) entries, via libyaml events.
 * The event stream of a document of nested mappings is a bracket sequence
 *   MAPPING_START (SCALAR key, (SCALAR value | MAPPING_START ... MAPPING_END))* MAPPING_END
 * so one stack level per open mapping, holding "is the next scalar a key or a value", is all
 * the state needed. Anything else (sequences, aliases, complex keys) is rejected. */
#include "runtime/yaml_flat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define YF_MAX_DEPTH 32
#define YF_MAX_KEY 512

typedef struct flat_state {
  const char *name;
  yaml_flat *out;
  char path[YF_MAX_KEY];       /* dotted key of the current position */
  size_t base[YF_MAX_DEPTH];   /* strlen(path) before the keys of each open mapping */
  int have_key[YF_MAX_DEPTH];  /* a key was read and its value is pending */
  int key_line[YF_MAX_DEPTH];  /* 1-based line of that key */
  int depth;                   /* open mappings */
  int docs;
} flat_state;

/* Records CH_ERR_CONFIG with "name:line: <message>" (line 0: no line). */
static ch_status fail_at(const char *name, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ch_status fail_at(const char *name, int line, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (line > 0) return CH_FAIL(CH_ERR_CONFIG, "%s:%d: %s", name, line, msg);
  return CH_FAIL(CH_ERR_CONFIG, "%s: %s", name, msg);
}

/* Turns libyaml's parser error into a message; `with_line` is 0 for one-line inputs. */
static ch_status parse_error(const yaml_parser_t *p, const char *name, int with_line) {
  if (p->error == YAML_MEMORY_ERROR)
    return CH_FAIL(CH_ERR_NOMEM, "%s: out of memory while parsing YAML", name);
  const char *problem = p->problem ? p->problem : "unknown problem";
  if (p->error == YAML_READER_ERROR)
    return fail_at(name, 0, "cannot read YAML: %s at byte %zu", problem, p->problem_offset);
  int line = with_line ? (int)p->problem_mark.line + 1 : 0;
  if (p->context)
    return fail_at(name, line, "YAML syntax error: %s (%s, line %d)", problem, p->context,
                   (int)p->context_mark.line + 1);
  return fail_at(name, line, "YAML syntax error: %s", problem);
}

int yaml_is_null(const char *value, int quoted) {
  if (quoted) return 0;
  return value[0] == '\0' || !strcmp(value, "~") || !strcasecmp(value, "null");
}

void yaml_flat_free(yaml_flat *f) {
  for (size_t i = 0; i < f->n; i++) {
    free(f->entries[i].key);
    free(f->entries[i].value);
  }
  free(f->entries);
  memset(f, 0, sizeof *f);
}

static char *dup_bytes(const void *p, size_t n) {
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* Appends (s->path, value) as an entry; value NULL marks a section. */
static ch_status add_entry(flat_state *s, const char *value, size_t len, int line, int quoted) {
  yaml_flat *f = s->out;
  for (size_t i = 0; i < f->n; i++)
    if (!strcmp(f->entries[i].key, s->path))
      return fail_at(s->name, line, "duplicate key '%s' (first at line %d)", s->path,
                     f->entries[i].line);
  if (f->n == f->cap) {
    size_t cap = f->cap ? 2 * f->cap : 32;
    yaml_entry *e = realloc(f->entries, cap * sizeof *e);
    if (!e) return CH_FAIL(CH_ERR_NOMEM, "%s: out of memory", s->name);
    f->entries = e;
    f->cap = cap;
  }
  yaml_entry *e = &f->entries[f->n];
  e->key = dup_bytes(s->path, strlen(s->path));
  e->value = value ? dup_bytes(value, len) : NULL;
  e->line = line;
  e->quoted = quoted;
  if (!e->key || (value && !e->value)) {
    free(e->key);
    free(e->value);
    return CH_FAIL(CH_ERR_NOMEM, "%s: out of memory", s->name);
  }
  f->n++;
  return CH_OK;
}

static ch_status on_mapping_start(flat_state *s, int line) {
  if (s->depth >= YF_MAX_DEPTH) return fail_at(s->name, line, "mappings nested too deeply");
  if (s->depth > 0) {
    int d = s->depth - 1;
    if (!s->have_key[d]) return fail_at(s->name, line, "a key must be a scalar, not a mapping");
    CH_CHECK(add_entry(s, NULL, 0, s->key_line[d], 0));
  }
  s->base[s->depth] = strlen(s->path);
  s->have_key[s->depth] = 0;
  s->depth++;
  return CH_OK;
}

static ch_status on_scalar(flat_state *s, const yaml_event_t *ev, int line) {
  const char *v = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  int quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
  if (memchr(v, '\0', len)) return fail_at(s->name, line, "NUL character in a scalar");
  if (s->depth == 0) { /* the whole document is one scalar: fine only when it is null */
    if (yaml_is_null(v, quoted)) return CH_OK;
    return fail_at(s->name, line, "expected a mapping of keys at the top level, got '%.60s'", v);
  }
  int d = s->depth - 1;
  if (s->have_key[d]) {
    s->have_key[d] = 0;
    return add_entry(s, v, len, s->key_line[d], quoted);
  }
  if (len == 0) return fail_at(s->name, line, "empty key");
  size_t base = s->base[d];
  if (base + 1 + len >= sizeof s->path)
    return fail_at(s->name, line, "key '%.60s...' is too long", s->path);
  if (base > 0) s->path[base++] = '.';
  memcpy(s->path + base, v, len);
  s->path[base + len] = '\0';
  s->have_key[d] = 1;
  s->key_line[d] = line;
  return CH_OK;
}

static ch_status on_event(flat_state *s, const yaml_event_t *ev) {
  int line = (int)ev->start_mark.line + 1;
  int d = s->depth - 1;
  switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
      if (++s->docs > 1) return fail_at(s->name, line, "only one YAML document is allowed");
      return CH_OK;
    case YAML_ALIAS_EVENT:
      return fail_at(s->name, line, "aliases (*name) are not supported");
    case YAML_SEQUENCE_START_EVENT:
      if (s->depth == 0)
        return fail_at(s->name, line, "expected a mapping of keys at the top level, got a sequence");
      if (!s->have_key[d]) return fail_at(s->name, line, "a key must be a scalar, not a sequence");
      return fail_at(s->name, s->key_line[d], "%s: expected a value, got a sequence", s->path);
    case YAML_MAPPING_START_EVENT:
      return on_mapping_start(s, line);
    case YAML_MAPPING_END_EVENT:
      s->depth--;
      if (s->depth > 0) s->have_key[s->depth - 1] = 0;
      s->path[s->base[s->depth]] = '\0';
      return CH_OK;
    case YAML_SCALAR_EVENT:
      return on_scalar(s, ev, line);
    default: /* stream start/end, document end, no event */
      return CH_OK;
  }
}

ch_status yaml_flatten(const char *text, size_t len, const char *name, yaml_flat *out) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser))
    return CH_FAIL(CH_ERR_NOMEM, "%s: cannot initialise the YAML parser", name);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  flat_state *s = calloc(1, sizeof *s);
  if (!s) {
    yaml_parser_delete(&parser);
    return CH_FAIL(CH_ERR_NOMEM, "%s: out of memory", name);
  }
  s->name = name;
  s->out = out;
  ch_status st = CH_OK;
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      st = parse_error(&parser, name, 1);
      break;
    }
    int done = ev.type == YAML_STREAM_END_EVENT;
    st = on_event(s, &ev);
    yaml_event_delete(&ev);
    if (st != CH_OK || done) break;
  }
  free(s);
  yaml_parser_delete(&parser);
  return st;
}

ch_status yaml_scalar(const char *text, const char *name, char **value, int *quoted) {
  *value = NULL;
  *quoted = 0;
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser))
    return CH_FAIL(CH_ERR_NOMEM, "%s: cannot initialise the YAML parser", name);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
  ch_status st = CH_OK;
  int docs = 0, done = 0;
  while (!done && st == CH_OK) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      st = parse_error(&parser, name, 0);
      break;
    }
    switch (ev.type) {
      case YAML_STREAM_END_EVENT: done = 1; break;
      case YAML_DOCUMENT_START_EVENT:
        if (++docs > 1) st = fail_at(name, 0, "expected one value, got several documents");
        break;
      case YAML_SEQUENCE_START_EVENT:
        st = fail_at(name, 0, "expected a value, got a sequence");
        break;
      case YAML_MAPPING_START_EVENT:
        st = fail_at(name, 0, "expected a value, got a mapping");
        break;
      case YAML_ALIAS_EVENT: st = fail_at(name, 0, "aliases (*name) are not supported"); break;
      case YAML_SCALAR_EVENT: {
        const char *v = (const char *)ev.data.scalar.value;
        size_t len = ev.data.scalar.length;
        if (memchr(v, '\0', len)) {
          st = fail_at(name, 0, "NUL character in a value");
        } else if (!(*value = dup_bytes(v, len))) {
          st = CH_FAIL(CH_ERR_NOMEM, "%s: out of memory", name);
        }
        *quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        break;
      }
      default: break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  if (st == CH_OK && !*value && !(*value = dup_bytes("", 0)))
    st = CH_FAIL(CH_ERR_NOMEM, "%s: out of memory", name);
  if (st != CH_OK) {
    free(*value);
    *value = NULL;
  }
  return st;
}

/* ---- emitting scalars ------------------------------------------------------------------ */

void yaml_format_double(double x, char *buf, size_t n) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) break;
  }
  if (strpbrk(buf, ".ni")) return; /* has a point, or is inf/nan */
  char *e = strchr(buf, 'e');
  size_t len = strlen(buf);
  if (len + 3 > n) return;
  if (!e) {
    memcpy(buf + len, ".0", 3);
  } else { /* 1e-08 -> 1.0e-08 */
    memmove(e + 2, e, strlen(e) + 1);
    e[0] = '.';
    e[1] = '0';
  }
}

/* Plain is safe for [A-Za-z/_][A-Za-z0-9_./-]* that YAML would not read as a bool or null
 * (YAML 1.1's yes/no/on/off included). Anything else is double-quoted. */
static int plain_is_safe(const char *s) {
  static const char *const words[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"};
  char c = s[0];
  if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '/' || c == '_')) return 0;
  for (const char *p = s; *p; p++) {
    c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '/' || c == '-'))
      return 0;
  }
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (!strcasecmp(s, words[i])) return 0;
  return 1;
}

void yaml_write_string(FILE *out, const char *s) {
  if (plain_is_safe(s)) {
    fputs(s, out);
    return;
  }
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
      case '"': fputs("\\\"", out); break;
      case '\\': fputs("\\\\", out); break;
      case '\n': fputs("\\n", out); break;
      case '\t': fputs("\\t", out); break;
      default:
        if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
  }
  fputc('"', out);
}
