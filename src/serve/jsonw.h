/* A small JSON writer shared by the V2 and OpenAI codecs: it escapes any bytes into valid JSON
 * (cJSON's printer passes invalid UTF-8 through and prints floats its own way). */
#pragma once
#include <stddef.h>

/* A growing text buffer; zero-initialise. After an allocation fails every call is a no-op and
 * jsonw_finish returns NULL, so builders check once at the end. */
typedef struct jsonw {
  char *buf;
  size_t len, cap;
  int failed;
} jsonw;

/* Appends n bytes verbatim. */
void jsonw_raw(jsonw *w, const char *s, size_t n);
/* Appends printf-formatted text verbatim. */
void jsonw_fmt(jsonw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string: '"', '\\' and control bytes escaped, valid UTF-8 kept,
 * each byte of an invalid or truncated UTF-8 sequence replaced by U+FFFD. s may be NULL (n 0). */
void jsonw_str(jsonw *w, const char *s, size_t n);
/* Appends a float as %.9g (reads back bit-exact as float32), or null when not finite. */
void jsonw_f32(jsonw *w, float v);
/* Returns the NUL-terminated text (caller frees) and resets w; NULL if anything failed. */
char *jsonw_finish(jsonw *w);

/* Length of the UTF-8 sequence at s (avail bytes left): 1-4 for a complete well-formed one
 * (no overlongs, surrogates or values above U+10FFFF), 0 if s[0] cannot start one or a later
 * byte breaks it, -1 if the bytes so far are a valid but incomplete start (avail too short). */
int jsonw_utf8_seq(const unsigned char *s, size_t avail);
