/* TensorBoard event files (src/train/tfevents.c, tensorboard.c): CRC32C against the published
 * vectors (RFC 3720 B.4 and "123456789"), an Event's exact bytes for a few hand-encoded cases,
 * and the writer's file decoded by an independent reader in this test (its own table-driven
 * CRC32C, TFRecord and protobuf decoding): a file_version record first, a SessionLog START one
 * step past the start (or resumed) step, then one Summary per progress line with the tagged
 * scalars of progress_scalars at float32 precision; a directory that cannot hold the file gives
 * a NULL writer, and writes that fail (a file size limit) one warning, never an error. One
 * process, no MPI. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "train/tfevents.h"
#include "train/train_internal.h"

/* ---- the independent reader ---------------------------------------------------------------- */

static uint32_t table[256];

static void make_table(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
}

static uint32_t crc32c_table(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

static uint32_t masked(const uint8_t *p, size_t n) {
  uint32_t c = crc32c_table(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static uint64_t le(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static uint64_t varint(const uint8_t **p, const uint8_t *end) {
  uint64_t v = 0;
  for (int shift = 0; *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
    CHT_ASSERT(shift < 63, "varint too long");
  }
  cht_fail(__FILE__, __LINE__, "truncated varint");
}

/* A decoded Event: what the writer may put in one. */
typedef struct event {
  double wall_time;
  int64_t step;
  char file_version[64];
  int session_status; /* -1: none */
  int n;
  char tags[16][256];
  float values[16];
} event;

/* One protobuf field: *field, *wire, and for LEN fields the bytes in [*sub, *sub + *len); for
 * the others the value in *v. */
static void field(const uint8_t **p, const uint8_t *end, unsigned *f, unsigned *wire, uint64_t *v,
                  const uint8_t **sub, size_t *len) {
  uint64_t key = varint(p, end);
  *f = (unsigned)(key >> 3), *wire = (unsigned)(key & 7);
  switch (*wire) {
  case 0: *v = varint(p, end); break;
  case 1: CHT_ASSERT(end - *p >= 8, "truncated i64"); *v = le(*p, 8); *p += 8; break;
  case 5: CHT_ASSERT(end - *p >= 4, "truncated i32"); *v = le(*p, 4); *p += 4; break;
  case 2:
    *len = (size_t)varint(p, end);
    CHT_ASSERT((size_t)(end - *p) >= *len, "truncated bytes field");
    *sub = *p;
    *p += *len;
    break;
  default: cht_fail(__FILE__, __LINE__, "wire type %u", *wire);
  }
}

static void decode_value(const uint8_t *p, const uint8_t *end, event *e) {
  CHT_ASSERT(e->n < 16, "too many values");
  int have_tag = 0, have_value = 0;
  while (p < end) {
    unsigned f, wire;
    uint64_t v = 0;
    const uint8_t *sub = NULL;
    size_t len = 0;
    field(&p, end, &f, &wire, &v, &sub, &len);
    if (f == 1 && wire == 2) {
      CHT_ASSERT(len < 256, "tag length %zu", len);
      memcpy(e->tags[e->n], sub, len);
      e->tags[e->n][len] = '\0';
      have_tag = 1;
    } else if (f == 2 && wire == 5) {
      uint32_t bits = (uint32_t)v;
      memcpy(&e->values[e->n], &bits, 4);
      have_value = 1;
    } else {
      cht_fail(__FILE__, __LINE__, "unexpected Value field %u (wire %u)", f, wire);
    }
  }
  CHT_ASSERT(have_tag && have_value, "a Value without tag or simple_value");
  e->n++;
}

static void decode_event(const uint8_t *p, size_t n, event *e) {
  const uint8_t *end = p + n;
  memset(e, 0, sizeof *e);
  e->session_status = -1;
  while (p < end) {
    unsigned f, wire;
    uint64_t v = 0;
    const uint8_t *sub = NULL;
    size_t len = 0;
    field(&p, end, &f, &wire, &v, &sub, &len);
    if (f == 1 && wire == 1) memcpy(&e->wall_time, &v, 8);
    else if (f == 2 && wire == 0) e->step = (int64_t)v;
    else if (f == 3 && wire == 2) snprintf(e->file_version, sizeof e->file_version, "%.*s", (int)len, sub);
    else if (f == 7 && wire == 2) {
      const uint8_t *q = sub;
      unsigned sf, sw;
      uint64_t sv = 0;
      const uint8_t *ss;
      size_t sl;
      field(&q, sub + len, &sf, &sw, &sv, &ss, &sl);
      CHT_ASSERT(sf == 1 && sw == 0 && q == sub + len, "SessionLog: field %u", sf);
      e->session_status = (int)sv;
    } else if (f == 5 && wire == 2) {
      const uint8_t *q = sub, *qend = sub + len;
      while (q < qend) {
        unsigned vf, vw;
        uint64_t vv = 0;
        const uint8_t *vs = NULL;
        size_t vl = 0;
        field(&q, qend, &vf, &vw, &vv, &vs, &vl);
        CHT_ASSERT(vf == 1 && vw == 2, "Summary field %u", vf);
        decode_value(vs, vs + vl, e);
      }
    } else {
      cht_fail(__FILE__, __LINE__, "unexpected Event field %u (wire %u)", f, wire);
    }
  }
}

/* Splits a TFRecord stream, checking both CRCs of every record; returns the events. */
static int decode_records(const uint8_t *p, size_t n, event *out, int max) {
  int count = 0;
  while (n > 0) {
    CHT_ASSERT(n >= 12, "truncated record header");
    uint64_t len = le(p, 8);
    CHT_ASSERT(le(p + 8, 4) == masked(p, 8), "record %d: length CRC", count);
    CHT_ASSERT(n >= 16 + len, "record %d: truncated (%llu bytes)", count, (unsigned long long)len);
    CHT_ASSERT(le(p + 12 + len, 4) == masked(p + 12, len), "record %d: data CRC", count);
    CHT_ASSERT(count < max, "too many records");
    decode_event(p + 12, len, &out[count++]);
    p += 16 + len, n -= 16 + len;
  }
  return count;
}

/* ---- the checks ---------------------------------------------------------------------------- */

static void check_crc(void) {
  CHT_ASSERT(tfevents_crc32c("123456789", 9) == 0xE3069283u, "CRC32C(123456789) = %08x",
             tfevents_crc32c("123456789", 9));
  CHT_ASSERT(tfevents_crc32c("", 0) == 0, "CRC32C of nothing");
  uint8_t buf[32];
  memset(buf, 0, 32); /* RFC 3720 B.4 */
  CHT_ASSERT(tfevents_crc32c(buf, 32) == 0x8A9136AAu, "32 zeros: %08x", tfevents_crc32c(buf, 32));
  memset(buf, 0xff, 32);
  CHT_ASSERT(tfevents_crc32c(buf, 32) == 0x62A8AB43u, "32 0xff: %08x", tfevents_crc32c(buf, 32));
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
  CHT_ASSERT(tfevents_crc32c(buf, 32) == 0x46DD794Eu, "0..31: %08x", tfevents_crc32c(buf, 32));
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)(31 - i);
  CHT_ASSERT(tfevents_crc32c(buf, 32) == 0x113FDB5Cu, "31..0: %08x", tfevents_crc32c(buf, 32));
  uint8_t big[1000];
  for (int i = 0; i < 1000; i++) big[i] = (uint8_t)(i * 7 + 3);
  CHT_ASSERT(tfevents_crc32c(big, 1000) == crc32c_table(big, 1000), "bitwise vs table");
  CHT_ASSERT(tfevents_mask_crc(0) == 0xa282ead8u, "mask of 0");
  CHT_ASSERT(tfevents_mask_crc(0x12345678u) == (((0x12345678u >> 15) | (0x12345678u << 17)) + 0xa282ead8u),
             "mask");
}

static void expect_bytes(const uint8_t *got, size_t n, const uint8_t *want, size_t m, const char *what) {
  CHT_ASSERT(n == m, "%s: %zu bytes, expected %zu", what, n, m);
  for (size_t i = 0; i < n; i++)
    CHT_ASSERT(got[i] == want[i], "%s: byte %zu is %02x, expected %02x", what, i, got[i], want[i]);
}

static void check_encoding(void) {
  uint8_t buf[512];
  /* wall_time 1.5 = 0x3FF8000000000000; step 3; Summary { Value { tag "a", simple_value 2.0 } } */
  static const uint8_t scalar[] = {0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x10, 0x03, 0x2A, 0x0A,
                                   0x0A, 0x08, 0x0A, 0x01, 'a', 0x15, 0x00, 0x00, 0x00, 0x40};
  tfevents_scalar a = {"a", 2.0f};
  size_t n = tfevents_event(1.5, 3, NULL, 0, &a, 1, NULL);
  CHT_ASSERT(n == sizeof scalar, "counted %zu bytes", n);
  expect_bytes(buf, tfevents_event(1.5, 3, NULL, 0, &a, 1, buf), scalar, sizeof scalar, "scalar event");
  static const uint8_t version[] = {0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x10, 0x00, 0x1A, 13,
                                    'b', 'r', 'a', 'i', 'n', '.', 'E', 'v', 'e', 'n', 't', ':', '2'};
  expect_bytes(buf, tfevents_event(1.5, 0, "brain.Event:2", 0, NULL, 0, buf), version,
               sizeof version, "file_version event");
  /* step 300 = varint ac 02; SessionLog { status: START } */
  static const uint8_t start[] = {0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x10, 0xAC, 0x02, 0x3A, 0x02,
                                  0x08, 0x01};
  expect_bytes(buf, tfevents_event(1.5, 300, NULL, 1, NULL, 0, buf), start, sizeof start,
               "session start event");

  /* Framing: length, masked CRCs, round trip through the reader. */
  uint8_t rec[600];
  size_t len = tfevents_event(1.5, 3, NULL, 0, &a, 1, buf);
  CHT_ASSERT(tfevents_record(buf, len, NULL) == len + 16, "record size");
  CHT_ASSERT(tfevents_record(buf, len, rec) == len + 16, "record size written");
  CHT_ASSERT(le(rec, 8) == len && !memcmp(rec + 12, buf, len), "record layout");
  event e;
  CHT_ASSERT(decode_records(rec, len + 16, &e, 1) == 1, "one record");
  CHT_ASSERT(e.step == 3 && e.wall_time == 1.5 && e.n == 1 && !strcmp(e.tags[0], "a") &&
             e.values[0] == 2.0f, "decoded scalar event");

  /* A negative step (ten-byte varint), a tag longer than 127 bytes (two-byte length), several
   * values. */
  char tag[200];
  memset(tag, 'x', sizeof tag - 1);
  tag[sizeof tag - 1] = '\0';
  tfevents_scalar many[3] = {{"train/loss", 2.25f}, {tag, -1e-30f}, {"val/acc", 0.875f}};
  len = tfevents_event(1e9, -5, NULL, 0, many, 3, buf);
  CHT_ASSERT(len == tfevents_event(1e9, -5, NULL, 0, many, 3, NULL), "count vs write");
  tfevents_record(buf, len, rec);
  decode_records(rec, len + 16, &e, 1);
  CHT_ASSERT(e.step == -5 && e.wall_time == 1e9 && e.n == 3, "decoded: step %lld, %d values",
             (long long)e.step, e.n);
  for (int i = 0; i < 3; i++)
    CHT_ASSERT(!strcmp(e.tags[i], many[i].tag) && e.values[i] == many[i].value, "value %d", i);
  /* A corrupted byte is caught by the reader's CRC (the test's reader is really checking). */
  rec[12 + 5] ^= 1;
  CHT_ASSERT(masked(rec + 12, len) != (uint32_t)le(rec + 12 + len, 4), "corruption unnoticed");
}

static uint8_t *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  CHT_ASSERT(f, "open %s", path);
  uint8_t *buf = malloc(1 << 20);
  *n = fread(buf, 1, 1 << 20, f);
  fclose(f);
  return buf;
}

static void check_writer(void) {
  char dir[] = "/tmp/cohort-tfevents-XXXXXX";
  CHT_ASSERT(mkdtemp(dir), "mkdtemp");
  progress p[3] = {
    {.step = 10, .total_steps = 30, .epoch = 0.25, .loss = 2.3025851, .lr = 1e-3, .grad_norm = 1.5,
     .samples_per_s = 1234.56, .val_loss = NAN, .val_acc = NAN, .targets = 1},
    {.step = 20, .total_steps = 30, .epoch = 0.5, .loss = NAN, .lr = 5e-4, .grad_norm = INFINITY,
     .samples_per_s = 99.99, .val_loss = 1.75, .val_acc = 0.5, .targets = 64, .skipped = 2},
    {.step = 30, .total_steps = 30, .epoch = 1.0, .loss = 0.125, .lr = 1e-5, .grad_norm = 0.5,
     .samples_per_s = 10, .val_loss = 0.5, .val_acc = 0.9, .targets = 64},
  };
  for (int resumed = 0; resumed < 2; resumed++) {
    tb_writer *w = tb_open(dir, resumed ? 10 : 0);
    CHT_ASSERT(w, "tb_open %s", dir);
    for (int i = 0; i < 3; i++) tb_write(w, &p[i]);
    tb_close(w);
    DIR *d = opendir(dir);
    char path[4096] = "";
    int files = 0;
    for (struct dirent *de; (de = readdir(d));)
      if (!strncmp(de->d_name, "events.out.tfevents.", 20))
        files++, snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    closedir(d);
    CHT_ASSERT(files == 1, "%d event files", files);
    size_t n;
    uint8_t *data = read_all(path, &n);
    unlink(path);
    event ev[8];
    int count = decode_records(data, n, ev, 8);
    free(data);
    int first = 2;
    CHT_ASSERT(count == first + 3, "%d records", count);
    CHT_ASSERT(!strcmp(ev[0].file_version, "brain.Event:2") && ev[0].n == 0, "file_version first");
    CHT_ASSERT(ev[1].session_status == 1 && ev[1].step == (resumed ? 11 : 1),
               "SessionLog START at step %lld", (long long)ev[1].step);
    for (int i = 0; i < 3; i++) {
      const event *e = &ev[first + i];
      CHT_ASSERT(e->step == p[i].step && e->session_status == -1, "event %d step", i);
      CHT_ASSERT(e->wall_time > 1.6e9, "wall_time %f", e->wall_time);
      progress_scalar s[PROGRESS_MAX_SCALARS];
      int ns = progress_scalars(&p[i], s), k = 0;
      for (int j = 0; j < ns; j++) {
        if (!s[j].tag || !isfinite(s[j].value)) continue;
        CHT_ASSERT(k < e->n && !strcmp(e->tags[k], s[j].tag), "event %d value %d: tag '%s', "
                   "expected '%s'", i, k, k < e->n ? e->tags[k] : "", s[j].tag);
        CHT_ASSERT(e->values[k] == (float)s[j].value, "%s: %.9g vs %.9g", s[j].tag,
                   e->values[k], s[j].value);
        k++;
      }
      CHT_ASSERT(k == e->n, "event %d: %d values, expected %d", i, e->n, k);
    }
  }
  /* The tags of a GPT line with everything in it, and the rounding shared with metrics.jsonl. */
  progress_scalar s[PROGRESS_MAX_SCALARS];
  int ns = progress_scalars(&p[1], s);
  char all[512] = "";
  for (int j = 0; j < ns; j++)
    if (s[j].tag) strcat(all, s[j].tag), strcat(all, " ");
  const char *tags = "train/epoch train/loss train/lr train/grad_norm train/samples_per_s train/tokens_per_s "
         "train/skipped_steps val/loss val/acc ";
  CHT_ASSERT(!strcmp(all, tags), "tags: %s", all);
  CHT_ASSERT(s[5].value == 100.0 && s[6].value == 6399.4, "samples_per_s %.17g, tokens_per_s %.17g",
             s[5].value, s[6].value);

  /* No directory: a NULL writer after a warning; tb_write and tb_close take it. */
  char gone[64];
  snprintf(gone, sizeof gone, "%s/missing", dir);
  tb_writer *w = tb_open(gone, 0);
  CHT_ASSERT(!w, "tb_open in a missing directory");
  tb_write(w, &p[0]);
  tb_close(w);
  rmdir(dir);
}

/* Writes that fail (a file size limit standing in for a full disk): one warning, then silence;
 * the writer never stops its caller. The warning is read back from stderr redirected to a file. */
static void check_write_failure(void) {
  char dir[] = "/tmp/cohort-tfevents-full-XXXXXX";
  CHT_ASSERT(mkdtemp(dir), "mkdtemp");
  char log[128];
  snprintf(log, sizeof log, "%s/stderr.txt", dir);
  fflush(stderr);
  int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHT_ASSERT(saved >= 0 && fd >= 0 && dup2(fd, 2) == 2, "redirect stderr");
  close(fd);
  signal(SIGXFSZ, SIG_IGN); /* past the limit, write() fails with EFBIG instead */
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = 400;
  CHT_ASSERT(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
  progress p = {.step = 1, .total_steps = 9, .epoch = 0.5, .loss = 1.0, .lr = 1e-3,
                .grad_norm = 1.0, .samples_per_s = 1.0, .val_loss = 1.0, .val_acc = 0.5, .targets = 1};
  tb_writer *w = tb_open(dir, 0);
  for (int i = 0; i < 8; i++, p.step++) tb_write(w, &p);
  tb_close(w);
  setrlimit(RLIMIT_FSIZE, &old);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  size_t n;
  uint8_t *text = read_all(log, &n);
  text[n] = '\0';
  const char *hit = strstr((char *)text, "TensorBoard: cannot write");
  CHT_ASSERT(hit && strstr((char *)text, "training goes on without it"), "no warning: '%s'", text);
  CHT_ASSERT(!strstr(hit + 1, "TensorBoard: cannot"), "more than one warning: '%s'", text);
  free(text);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHT_ASSERT(system(cmd) == 0, "%s", cmd);
}

int main(void) {
  make_table();
  check_crc();
  check_encoding();
  check_writer();
  check_write_failure();
  printf("test_tfevents: ok\n");
  return 0;
}
