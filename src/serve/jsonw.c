/* The JSON writer shared by the V2 and OpenAI codecs (see jsonw.h). */
#include "serve/jsonw.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for `extra` more bytes plus a NUL; 0 once anything failed. */
static int jw_reserve(jsonw *w, size_t extra) {
  if (w->failed) return 0;
  if (extra > SIZE_MAX / 2 - w->len) return !(w->failed = 1);
  size_t need = w->len + extra + 1;
  if (need <= w->cap) return 1;
  size_t cap = w->cap ? w->cap : 256;
  while (cap < need) cap *= 2;
  char *nb = realloc(w->buf, cap);
  if (!nb) return !(w->failed = 1);
  w->buf = nb;
  w->cap = cap;
  return 1;
}

void jsonw_raw(jsonw *w, const char *s, size_t n) {
  if (!jw_reserve(w, n)) return;
  if (n) memcpy(w->buf + w->len, s, n);
  w->len += n;
  w->buf[w->len] = 0;
}

void jsonw_fmt(jsonw *w, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) {
    w->failed = 1;
  } else if ((size_t)n < sizeof tmp) {
    jsonw_raw(w, tmp, (size_t)n);
  } else if (jw_reserve(w, (size_t)n)) {
    va_start(ap, fmt);
    vsnprintf(w->buf + w->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len += (size_t)n;
  }
}

int jsonw_utf8_seq(const unsigned char *s, size_t avail) {
  unsigned c = s[0];
  int n;
  unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;      /* overlong */
    else if (c == 0xED) hi = 0x9F; /* UTF-16 surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;      /* overlong */
    else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
  } else {
    return 0;
  }
  for (int i = 1; i < n; i++) {
    if ((size_t)i >= avail) return -1;
    unsigned b = s[i];
    if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
  }
  return n;
}

void jsonw_str(jsonw *w, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  if (!s) n = 0;
  jsonw_raw(w, "\"", 1);
  size_t run = 0, i = 0; /* p[run..i) is pending verbatim output */
  while (i < n) {
    unsigned c = p[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    int len = c < 0x80 ? 1 : jsonw_utf8_seq(p + i, n - i);
    if (len > 1) {
      i += (size_t)len;
      continue;
    }
    jsonw_raw(w, (const char *)p + run, i - run);
    if (c == '"') jsonw_raw(w, "\\\"", 2);
    else if (c == '\\') jsonw_raw(w, "\\\\", 2);
    else if (c == '\n') jsonw_raw(w, "\\n", 2);
    else if (c == '\r') jsonw_raw(w, "\\r", 2);
    else if (c == '\t') jsonw_raw(w, "\\t", 2);
    else if (c < 0x20) {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      jsonw_raw(w, u, 6);
    } else {
      jsonw_raw(w, "\xEF\xBF\xBD", 3); /* U+FFFD REPLACEMENT CHARACTER */
    }
    run = ++i;
  }
  jsonw_raw(w, (const char *)p + run, i - run);
  jsonw_raw(w, "\"", 1);
}

void jsonw_f32(jsonw *w, float v) {
  if (isfinite(v)) jsonw_fmt(w, "%.9g", (double)v);
  else jsonw_raw(w, "null", 4);
}

char *jsonw_finish(jsonw *w) {
  char *s = w->buf;
  if (!w->failed && !s) s = calloc(1, 1);
  if (w->failed) {
    free(s);
    s = NULL;
  }
  memset(w, 0, sizeof *w);
  return s;
}
