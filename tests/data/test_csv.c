/* CSV converter: plain and gzipped inputs, header or not, label column anywhere; every value read
 * back with plain HDF5; the stratified split; errors naming file:line; the digits example. */
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cohort/data.h"
#include "cohort/rng.h"
#include "testlib.h"

static char g_dir[64];

static void path_in(char *out, const char *name) { snprintf(out, 256, "%s/%s", g_dir, name); }

static void write_file(const char *path, const char *text, int gz) {
  if (gz) {
    gzFile f = gzopen(path, "wb");
    CHT_ASSERT(f && gzwrite(f, text, (unsigned)strlen(text)) == (int)strlen(text), "gzwrite %s", path);
    gzclose(f);
  } else {
    FILE *f = fopen(path, "w");
    CHT_ASSERT(f && fwrite(text, 1, strlen(text), f) == strlen(text), "write %s", path);
    fclose(f);
  }
}

/* Feature j of original row r: distinct for every (r, j), exactly representable in float32,
 * with a random fractional part (never a round number). */
static float feature(int r, int j) {
  return (float)(r * 16 + j) + 0.125f * (float)(1 + ch_rng_below(3, 1, (uint64_t)(r * 16 + j), 7));
}

typedef struct table_spec {
  int rows, d, label_col, header, crlf, blanks;
  const int *labels; /* per row */
} table_spec;

/* CSV text of a spec (caller frees). */
static char *make_csv(const table_spec *t) {
  size_t cap = (size_t)(t->rows + 2) * (size_t)(t->d + 1) * 24 + 256, len = 0;
  char *s = malloc(cap);
  const char *eol = t->crlf ? "\r\n" : "\n";
  if (t->header) {
    for (int c = 0; c <= t->d; c++)
      len += (size_t)snprintf(s + len, cap - len, "%s%s", c ? "," : "", c == t->label_col ? "label" : "pixel");
    len += (size_t)snprintf(s + len, cap - len, "%s", eol);
  }
  for (int r = 0; r < t->rows; r++) {
    if (t->blanks && r % 5 == 2) len += (size_t)snprintf(s + len, cap - len, "%s%s", r % 2 ? "  \t" : "", eol);
    for (int c = 0, j = 0; c <= t->d; c++) {
      const char *sep = c ? (r % 3 == 0 ? " , " : ",") : "";
      if (c == t->label_col) len += (size_t)snprintf(s + len, cap - len, "%s%d", sep, t->labels[r]);
      else len += (size_t)snprintf(s + len, cap - len, "%s%.3f", sep, (double)feature(r, j++));
    }
    len += (size_t)snprintf(s + len, cap - len, "%s", eol);
  }
  return s;
}

typedef struct split_data {
  float *x;
  int32_t *y;
  hsize_t rows, cols;
} split_data;

static void read_split(hid_t f, const char *name, split_data *s) {
  char px[32], py[32];
  snprintf(px, sizeof px, "/%s/x", name);
  snprintf(py, sizeof py, "/%s/y", name);
  hid_t dx = H5Dopen2(f, px, H5P_DEFAULT), dy = H5Dopen2(f, py, H5P_DEFAULT);
  CHT_ASSERT(dx >= 0 && dy >= 0, "missing %s or %s", px, py);
  hid_t sx = H5Dget_space(dx), sy = H5Dget_space(dy);
  CHT_ASSERT(H5Sget_simple_extent_ndims(sx) == 2 && H5Sget_simple_extent_ndims(sy) == 1, "%s ranks", name);
  hsize_t dxs[2], dys[1];
  H5Sget_simple_extent_dims(sx, dxs, NULL);
  H5Sget_simple_extent_dims(sy, dys, NULL);
  CHT_ASSERT(dxs[0] == dys[0], "%s: x has %llu rows, y %llu", name, (unsigned long long)dxs[0], (unsigned long long)dys[0]);
  hid_t tx = H5Dget_type(dx), ty = H5Dget_type(dy);
  CHT_ASSERT(H5Tequal(tx, H5T_IEEE_F32LE) > 0 && H5Tequal(ty, H5T_STD_I32LE) > 0, "%s dtypes", name);
  H5Tclose(tx);
  H5Tclose(ty);
  s->rows = dxs[0];
  s->cols = dxs[1];
  s->x = malloc(sizeof(float) * (dxs[0] * dxs[1] + 1));
  s->y = malloc(sizeof(int32_t) * (dxs[0] + 1));
  if (s->rows) {
    CHT_ASSERT(H5Dread(dx, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->x) >= 0, "read %s", px);
    CHT_ASSERT(H5Dread(dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->y) >= 0, "read %s", py);
  }
  H5Sclose(sx);
  H5Sclose(sy);
  H5Dclose(dx);
  H5Dclose(dy);
}

static int64_t read_attr_i64(hid_t f, const char *name) {
  int64_t v = -1;
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  CHT_ASSERT(a >= 0 && H5Aread(a, H5T_NATIVE_INT64, &v) >= 0, "attribute %s", name);
  H5Aclose(a);
  return v;
}

static void read_attr_str(hid_t f, const char *name, char *out, size_t cap) {
  hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  CHT_ASSERT(a >= 0, "attribute %s", name);
  hid_t t = H5Aget_type(a);
  CHT_ASSERT(H5Tget_class(t) == H5T_STRING && H5Tget_size(t) < cap, "attribute %s type", name);
  memset(out, 0, cap);
  CHT_ASSERT(H5Aread(a, t, out) >= 0, "read attribute %s", name);
  H5Tclose(t);
  H5Aclose(a);
}

/* Expected val rows of a class of nc rows (the documented stratification rule). */
static int expected_val(int nc, double f) {
  if (f <= 0 || nc < 2) return 0;
  int v = (int)floor(f * nc + 0.5);
  return v < 1 ? 1 : v > nc - 1 ? nc - 1 : v;
}

/* Converts `t` (written as `name`) and checks every value of the output; returns a fingerprint
 * of the val set (sum of hashed row ids) to compare splits. */
static uint64_t convert_and_check(const table_spec *t, const char *name, int gz, double f, uint64_t seed,
                                  int classes) {
  char in[256], out[256], partial[300];
  path_in(in, name);
  path_in(out, "out.h5");
  char *text = make_csv(t);
  write_file(in, text, gz);
  free(text);
  ch_csv_opts o = {.label_column = t->label_col == t->d ? -1 : t->label_col, .val_fraction = f, .seed = seed};
  ch_csv_stats st;
  CHT_OK(ch_data_csv_convert(in, out, &o, &st));
  snprintf(partial, sizeof partial, "%s.partial", out);
  CHT_ASSERT(access(partial, F_OK) != 0, "%s left behind", partial);

  int *per_class = calloc((size_t)classes, sizeof *per_class), *val_class = calloc((size_t)classes, sizeof *val_class);
  for (int r = 0; r < t->rows; r++) per_class[t->labels[r]]++;
  int want_val = 0;
  for (int c = 0; c < classes; c++) want_val += expected_val(per_class[c], f);
  CHT_ASSERT(st.rows == t->rows && st.features == t->d && st.num_classes == classes && st.val_rows == want_val &&
                 st.train_rows == t->rows - want_val,
             "%s: stats rows %lld train %lld val %lld features %lld classes %d", name, (long long)st.rows,
             (long long)st.train_rows, (long long)st.val_rows, (long long)st.features, st.num_classes);

  hid_t fh = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHT_ASSERT(fh >= 0, "open %s", out);
  CHT_ASSERT(read_attr_i64(fh, "num_features") == t->d, "num_features");
  CHT_ASSERT(read_attr_i64(fh, "num_classes") == classes, "num_classes");
  char src[128];
  read_attr_str(fh, "source", src, sizeof src);
  CHT_ASSERT(!strcmp(src, name), "source attribute '%s', expected '%s'", src, name);
  split_data sp[2];
  read_split(fh, "train", &sp[0]);
  read_split(fh, "val", &sp[1]);
  H5Fclose(fh);

  int *seen = calloc((size_t)t->rows, sizeof *seen);
  uint64_t fp = 0;
  for (int s = 0; s < 2; s++) {
    CHT_ASSERT(sp[s].cols == (hsize_t)t->d, "%s: %llu columns", name, (unsigned long long)sp[s].cols);
    int prev = -1;
    for (hsize_t i = 0; i < sp[s].rows; i++) {
      const float *x = sp[s].x + i * sp[s].cols;
      int id = (int)(x[0] / 16.0f);
      CHT_ASSERT(id >= 0 && id < t->rows, "%s: row %llu has unknown features", name, (unsigned long long)i);
      CHT_ASSERT(id > prev, "%s: split %d not in file order at row %llu", name, s, (unsigned long long)i);
      prev = id;
      for (int j = 0; j < t->d; j++)
        CHT_ASSERT(x[j] == feature(id, j), "%s: row %d feature %d = %.9g, expected %.9g", name, id, j,
                   (double)x[j], (double)feature(id, j));
      CHT_ASSERT(sp[s].y[i] == t->labels[id], "%s: row %d label %d, expected %d", name, id, sp[s].y[i], t->labels[id]);
      seen[id]++;
      if (s == 1) {
        val_class[t->labels[id]]++;
        fp += ch_rng_u64(0, 0, (uint64_t)id);
      }
    }
  }
  for (int r = 0; r < t->rows; r++) CHT_ASSERT(seen[r] == 1, "%s: row %d appears %d times", name, r, seen[r]);
  for (int c = 0; c < classes; c++) {
    CHT_ASSERT(val_class[c] == expected_val(per_class[c], f), "%s: class %d has %d val rows, expected %d", name, c,
               val_class[c], expected_val(per_class[c], f));
    if (f > 0 && per_class[c] >= 2) CHT_ASSERT(val_class[c] >= 1, "%s: class %d missing from val", name, c);
  }
  for (int s = 0; s < 2; s++) {
    free(sp[s].x);
    free(sp[s].y);
  }
  free(seen);
  free(per_class);
  free(val_class);
  return fp;
}

static void check_conversions(void) {
  int labels[64];
  /* Skewed classes (2, 3, 10, rest) so that rounding and the at-least-one rule both matter. */
  for (int r = 0; r < 64; r++) labels[r] = r < 2 ? 3 : r < 5 ? 1 : r < 15 ? 2 : 0;
  for (int r = 0; r < 64; r++) { /* interleave so classes are not contiguous in the file */
    int k = (r * 37) % 64, t = labels[r];
    labels[r] = labels[k];
    labels[k] = t;
  }
  table_spec plain = {.rows = 64, .d = 4, .label_col = 4, .labels = labels};
  uint64_t a = convert_and_check(&plain, "plain.csv", 0, 0.2, 7, 4);
  uint64_t b = convert_and_check(&plain, "plain.csv", 0, 0.2, 7, 4);
  uint64_t c = convert_and_check(&plain, "plain.csv", 0, 0.2, 8, 4);
  CHT_ASSERT(a == b, "same seed must give the same split");
  CHT_ASSERT(a != c, "seeds 7 and 8 gave the same split");

  table_spec hdr = {.rows = 64, .d = 5, .label_col = 2, .header = 1, .crlf = 1, .blanks = 1, .labels = labels};
  convert_and_check(&hdr, "header_mid.csv.gz", 1, 0.1, 3, 4);
  table_spec gz_nohdr = {.rows = 64, .d = 3, .label_col = 0, .blanks = 1, .labels = labels};
  convert_and_check(&gz_nohdr, "first.csv.gz", 1, 0.5, 11, 4);
  table_spec plain_hdr = {.rows = 64, .d = 2, .label_col = 1, .header = 1, .labels = labels};
  convert_and_check(&plain_hdr, "plain_hdr.csv", 0, 0.3, 0, 4);
  /* No val rows: empty datasets of the right shapes. */
  convert_and_check(&plain, "noval.csv", 0, 0.0, 1, 4);
  /* A class with one row stays in train; classes absent from the file still count. */
  int sparse[6] = {0, 0, 5, 0, 5, 2};
  table_spec sp = {.rows = 6, .d = 2, .label_col = 2, .labels = sparse};
  convert_and_check(&sp, "sparse.csv", 0, 0.2, 5, 6);
}

/* Converting `text` fails with `want` and a message containing each of `needles`. */
static void expect_error(const char *name, const char *text, int gz, int label_col, ch_status want,
                         const char *n1, const char *n2) {
  char in[256], out[256], partial[300];
  path_in(in, name);
  path_in(out, "bad.h5");
  if (text) write_file(in, text, gz);
  ch_csv_opts o = {.label_column = label_col, .val_fraction = 0.2, .seed = 0};
  ch_status s = ch_data_csv_convert(in, out, &o, NULL);
  const char *msg = ch_error_message();
  CHT_ASSERT(s == want, "%s: status %s, expected %s (%s)", name, ch_status_str(s), ch_status_str(want), msg);
  CHT_ASSERT(strstr(msg, n1) && (!n2 || strstr(msg, n2)), "%s: message '%s' lacks '%s' / '%s'", name, msg, n1,
             n2 ? n2 : "");
  snprintf(partial, sizeof partial, "%s.partial", out);
  CHT_ASSERT(access(out, F_OK) != 0 && access(partial, F_OK) != 0, "%s: output left behind", name);
  ch_error_clear();
}

static void check_errors(void) {
  char gzname[300];
  expect_error("num.csv", "1,2,0\n3,4,1\n5,abc,1\n", 0, -1, CH_ERR_FORMAT, "num.csv:3", "'abc' is not a number");
  expect_error("cols.csv", "a,b,c\n1,2,0\n\n3,4\n", 0, -1, CH_ERR_FORMAT, "cols.csv:4", "expected 3 columns, found 2");
  expect_error("neg.csv.gz", "1,2,0\n1,2,-1\n", 1, -1, CH_ERR_FORMAT, "neg.csv.gz:2", "negative");
  expect_error("frac.csv", "1,2,0\n1,2,1.5\n", 0, -1, CH_ERR_FORMAT, "frac.csv:2", "not an integer");
  expect_error("labmid.csv", "1,0,2\nx,1,2\n", 0, 1, CH_ERR_FORMAT, "labmid.csv:2", "column 1: 'x' is not a number");
  expect_error("empty.csv", "1,2,0\n1,,0\n", 0, -1, CH_ERR_FORMAT, "empty.csv:2: column 2", "missing value (empty)");
  expect_error("na.csv", "1,2,0\n1, NA ,0\n", 0, -1, CH_ERR_FORMAT, "na.csv:2: column 2", "missing value ('NA')");
  expect_error("nolabel.csv", "1,2,0\n1,2,?\n", 0, -1, CH_ERR_FORMAT, "nolabel.csv:2: column 3", "the label is missing");
  expect_error("quote.csv", "1,2,0\n1,\"2\nx,0\n", 0, -1, CH_ERR_FORMAT, "quote.csv:2: column 2", "never closes");
  expect_error("after.csv", "1,2,0\n1,\"2\"x,0\n", 0, -1, CH_ERR_FORMAT, "after.csv:2: column 2", "after the closing quote");
  expect_error("labneg.csv", "1,2,0\n", 0, -4, CH_ERR_INVALID, "labneg.csv", "label column -4 is out of range");
  expect_error("inf.csv", "1,2,0\ninf,2,0\n", 0, -1, CH_ERR_FORMAT, "inf.csv:2", "finite");
  expect_error("big.csv", "1,2,0\n1e39,2,0\n", 0, -1, CH_ERR_FORMAT, "big.csv:2", "float32");
  expect_error("hdrcols.csv", "a,b\n1,2,0\n", 0, -1, CH_ERR_FORMAT, "hdrcols.csv:1", "header has 2 columns");
  expect_error("onlyhdr.csv", "a,b,c\n\n", 0, -1, CH_ERR_FORMAT, "onlyhdr.csv", "no data rows");
  expect_error("onecol.csv", "1\n2\n", 0, -1, CH_ERR_FORMAT, "onecol.csv:1", "at least 2");
  expect_error("labcol.csv", "1,2,0\n", 0, 3, CH_ERR_INVALID, "labcol.csv", "label column 3");
  expect_error("missing.csv", NULL, 0, -1, CH_ERR_IO, "missing.csv", "No such file");

  /* A truncated gzip stream is a read error, not silently fewer rows. */
  char text[20000];
  size_t len = 0;
  for (int r = 0; r < 1000; r++) len += (size_t)snprintf(text + len, sizeof text - len, "%d,%d,%d\n", r, r * 7, r % 3);
  path_in(gzname, "trunc.csv.gz");
  write_file(gzname, text, 1);
  struct stat sb;
  CHT_ASSERT(stat(gzname, &sb) == 0 && truncate(gzname, sb.st_size / 2) == 0, "truncate %s", gzname);
  expect_error("trunc.csv.gz", NULL, 0, -1, CH_ERR_IO, "trunc.csv.gz", NULL);

  /* The output directory does not exist. */
  char in[256];
  path_in(in, "ok.csv");
  write_file(in, "1,2,0\n3,4,1\n", 0);
  ch_status s = ch_data_csv_convert(in, "/nonexistent-cohort-dir/out.h5", NULL, NULL);
  CHT_ASSERT(s == CH_ERR_IO && strstr(ch_error_message(), "/nonexistent-cohort-dir/out.h5.partial"),
             "unwritable output: %s: %s", ch_status_str(s), ch_error_message());
  ch_error_clear();
  ch_csv_opts o = {.label_column = -1, .val_fraction = 1.0};
  char out[256];
  path_in(out, "x.h5");
  CHT_ASSERT(ch_data_csv_convert(in, out, &o, NULL) == CH_ERR_INVALID, "val fraction 1 must be rejected");
}

/* Class names of a converted file (NULL-terminated list in `out`, at most cap - 1). */
static int read_class_names(hid_t f, char out[][32], int cap) {
  if (H5Lexists(f, "class_names", H5P_DEFAULT) <= 0) return 0;
  hid_t d = H5Dopen2(f, "class_names", H5P_DEFAULT), sp = H5Dget_space(d), t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(sp, &n, NULL);
  CHT_ASSERT((int)n < cap, "%llu class names", (unsigned long long)n);
  char *v[16];
  CHT_ASSERT(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0, "read class_names");
  for (hsize_t i = 0; i < n; i++) snprintf(out[i], 32, "%s", v[i]);
  H5Dvlen_reclaim(t, sp, H5P_DEFAULT, v);
  H5Tclose(t);
  H5Sclose(sp);
  H5Dclose(d);
  return (int)n;
}

/* The builder's decisions through the public API: the same table as CSV (quoted, CR line ends,
 * a byte order mark, a header) and as JSON Lines gives the same datasets; the stats report the
 * header, the string labels, the filled values and the continuous-label warning. */
static void check_table_rules(void) {
  char csv[256], jsonl[256], o1[256], o2[256];
  path_in(csv, "rules.csv");
  path_in(jsonl, "rules.jsonl");
  path_in(o1, "rules_csv.h5");
  path_in(o2, "rules_jsonl.h5");
  write_file(csv, "\xEF\xBB\xBF" "a,\"b\",kind\r1.5,\"2\",\"dog, big\"\r3,,cat\r5,6,\"dog, big\"\r7,NA,cat\r", 0);
  write_file(jsonl, "{\"a\":1.5,\"b\":\"2\",\"kind\":\"dog, big\"}\n{\"kind\":\"cat\",\"a\":3}\n"
                    "{\"a\":5,\"b\":6,\"kind\":\"dog, big\"}\n{\"a\":7,\"b\":null,\"kind\":\"cat\"}\n", 1);
  ch_csv_opts o = {.label_name = "kind", .fill = 1, .fill_value = -2, .val_fraction = 0.5, .seed = 4};
  ch_csv_stats s1, s2;
  CHT_OK(ch_data_csv_convert(csv, o1, &o, &s1));
  CHT_OK(ch_data_jsonl_convert(jsonl, o2, &o, &s2));
  CHT_ASSERT(s1.rows == 4 && s1.header && s1.named_classes && s1.label_column == 2 && s1.filled == 2 &&
                 s1.num_classes == 2 && !s1.warning[0] && strstr(s1.header_note, "header: yes (auto"),
             "csv stats: rows %lld header %d named %d label %d filled %lld note '%s' warning '%s'",
             (long long)s1.rows, s1.header, s1.named_classes, s1.label_column, (long long)s1.filled,
             s1.header_note, s1.warning);
  CHT_ASSERT(s2.rows == 4 && s2.header && s2.named_classes && s2.filled == 2 && s2.val_rows == s1.val_rows,
             "jsonl stats");
  hid_t f1 = H5Fopen(o1, H5F_ACC_RDONLY, H5P_DEFAULT), f2 = H5Fopen(o2, H5F_ACC_RDONLY, H5P_DEFAULT);
  CHT_ASSERT(f1 >= 0 && f2 >= 0, "open outputs");
  char n1[4][32], n2[4][32];
  CHT_ASSERT(read_class_names(f1, n1, 4) == 2 && read_class_names(f2, n2, 4) == 2, "two class names");
  CHT_ASSERT(!strcmp(n1[0], "cat") && !strcmp(n1[1], "dog, big") && !strcmp(n2[0], "cat") &&
                 !strcmp(n2[1], "dog, big"), "class names '%s' '%s'", n1[0], n1[1]);
  const float want_x[4][2] = {{1.5f, 2}, {3, -2}, {5, 6}, {7, -2}};
  const int32_t want_y[4] = {1, 0, 1, 0};
  for (int sp = 0; sp < 2; sp++) {
    split_data a, b;
    read_split(f1, sp ? "val" : "train", &a);
    read_split(f2, sp ? "val" : "train", &b);
    CHT_ASSERT(a.rows == b.rows && a.rows == 2 && a.cols == 2, "split %d: %llu / %llu rows", sp,
               (unsigned long long)a.rows, (unsigned long long)b.rows);
    CHT_ASSERT(!memcmp(a.x, b.x, sizeof(float) * 4) && !memcmp(a.y, b.y, sizeof(int32_t) * 2),
               "split %d: CSV and JSON Lines differ", sp);
    for (int i = 0; i < 2; i++) { /* each row is one of the table's, with its label */
      int r = 0;
      while (r < 4 && !(a.x[2 * i] == want_x[r][0] && a.x[2 * i + 1] == want_x[r][1])) r++;
      CHT_ASSERT(r < 4 && a.y[i] == want_y[r], "split %d row %d: %g %g -> %d", sp, i, (double)a.x[2 * i],
                 (double)a.x[2 * i + 1], a.y[i]);
    }
    free(a.x), free(a.y), free(b.x), free(b.y);
  }
  H5Fclose(f1);
  H5Fclose(f2);

  /* Label last by default on a file whose last column is a measurement: a warning, not silence. */
  char text[4096];
  size_t len = 0;
  for (int r = 0; r < 40; r++) len += (size_t)snprintf(text + len, sizeof text - len, "%d,%d.5,%d\n", r % 3, r, 500 + r);
  path_in(csv, "wine.csv");
  write_file(csv, text, 0);
  ch_csv_opts w = {.label_column = -1};
  CHT_OK(ch_data_csv_convert(csv, o1, &w, &s1));
  CHT_ASSERT(s1.num_classes == 540 && strstr(s1.warning, "looks continuous") && !s1.header,
             "wine: classes %d warning '%s'", s1.num_classes, s1.warning);
  w.label_column = 0;
  CHT_OK(ch_data_csv_convert(csv, o1, &w, &s1));
  CHT_ASSERT(s1.num_classes == 3 && !s1.warning[0] && s1.label_column == 0, "wine label 0: %d classes", s1.num_classes);
}

/* The shipped example: 1797 rows, 64 pixels, 10 classes, every class in val. */
static void check_digits(void) {
  char out[256];
  path_in(out, "digits.h5");
  ch_csv_opts o = {.label_column = -1, .val_fraction = 0.2, .seed = 0};
  ch_csv_stats st;
  CHT_OK(ch_data_csv_convert(COHORT_SOURCE_DIR "/examples/digits/digits.csv.gz", out, &o, &st));
  CHT_ASSERT(st.rows == 1797 && st.features == 64 && st.num_classes == 10, "digits: %lld rows %lld features %d classes",
             (long long)st.rows, (long long)st.features, st.num_classes);
  CHT_ASSERT(st.val_rows > 340 && st.val_rows < 380 && st.train_rows + st.val_rows == 1797, "digits split %lld/%lld",
             (long long)st.train_rows, (long long)st.val_rows);
  hid_t fh = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
  split_data v;
  read_split(fh, "val", &v);
  int cls[10] = {0};
  for (hsize_t i = 0; i < v.rows; i++) cls[v.y[i]]++;
  for (int c = 0; c < 10; c++) CHT_ASSERT(cls[c] >= 30, "digits: class %d has %d val rows", c, cls[c]);
  float mx = 0;
  for (hsize_t i = 0; i < v.rows * v.cols; i++) mx = v.x[i] > mx ? v.x[i] : mx;
  CHT_ASSERT(mx == 16.0f, "digits: max pixel %g", (double)mx);
  free(v.x);
  free(v.y);
  H5Fclose(fh);
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  closedir(d);
  rmdir(dir);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/cohort_test_csv_XXXXXX");
  CHT_ASSERT(mkdtemp(g_dir), "mkdtemp");
  check_conversions();
  check_errors();
  check_table_rules();
  check_digits();
  remove_dir(g_dir);
  H5close();
  return 0;
}
