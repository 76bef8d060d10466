/* Token windows on 1..4 ranks: a random byte text converted with the byte tokenizer, so token
 * j of a split is a known byte; every rank reads its own random windows (unsorted, repeats,
 * runs, none at all) for several contexts and gets exactly tokens [w*C, w*C+C+1). A bad window
 * on one rank fails the call on every rank; open errors; a token outside the vocabulary; the
 * tokenizer loads while the file is open for reading. */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/comm_mpi.h"
#include "cohort/comm.h"
#include "cohort/data.h"
#include "cohort/rng.h"
#include "cohort/runtime.h"
#include "cohort/tokenizer.h"
#include "testlib.h"

#define SEED 977u
#define TEXT_LEN 30011

static uint8_t text_byte(int64_t i) { return (uint8_t)ch_rng_below(SEED, 1, (uint64_t)i, 256); }

static void write_text(const char *path) {
  FILE *f = fopen(path, "wb");
  CHT_ASSERT(f, "cannot write %s", path);
  for (int64_t i = 0; i < TEXT_LEN; i++) fputc(text_byte(i), f);
  fclose(f);
}

/* Tokens of a split: train = bytes [0, ntrain), val = the rest. */
static void check_windows(const ch_group *g, const char *path, const char *split, int64_t first, int64_t count,
                          int context) {
  ch_tokens *t;
  CHT_OK(ch_tokens_open(g, path, split, context, &t));
  int64_t nw = (count - 1) / context, w1 = context + 1;
  CHT_ASSERT(ch_tokens_count(t) == count && ch_tokens_windows(t) == nw && ch_tokens_vocab(t) == 256,
             "%s C=%d: count %lld windows %lld vocab %lld", split, context, (long long)ch_tokens_count(t),
             (long long)ch_tokens_windows(t), (long long)ch_tokens_vocab(t));
  int64_t cap = nw + 64;
  int64_t *win = malloc(sizeof *win * (size_t)cap);
  int32_t *out = malloc(sizeof *out * (size_t)(cap * w1));
  for (int it = 0; it < 12; it++) {
    uint64_t stream = (uint64_t)(context * 1000 + it * 8 + g->rank);
    int64_t n = (it + g->rank) % 4 == 0 ? 0 : 1 + (int64_t)ch_rng_below(SEED, stream, 0, 40);
    if (it == 1) { /* every window, reversed, on rank 0 only */
      n = g->rank == 0 ? nw : 0;
      for (int64_t i = 0; i < n; i++) win[i] = nw - 1 - i;
    } else if (it == 2) { /* sorted runs of consecutive windows with gaps */
      n = 0;
      for (int64_t w = g->rank; w < nw && n < cap; w++)
        if ((w / 3) % 2 == 0) win[n++] = w;
    } else {
      for (int64_t i = 0; i < n; i++) {
        win[i] = (int64_t)ch_rng_below(SEED, stream, (uint64_t)i + 1, (uint64_t)nw);
        if (i >= 2 && i % 5 == 0) win[i] = win[i / 2];                  /* repeats */
        if (it % 3 == 0 && i > 0) win[i] = (win[i - 1] + 1) % nw;       /* runs */
      }
    }
    for (int64_t i = 0; i < n * w1; i++) out[i] = -7;
    CHT_OK(ch_tokens_read(t, n ? win : NULL, n, n ? out : NULL));
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = 0; k < w1; k++) {
        int64_t j = win[i] * context + k;
        CHT_ASSERT(out[i * w1 + k] == text_byte(first + j), "%s C=%d: window %lld token %lld = %d, expected %d", split,
                   context, (long long)win[i], (long long)k, (int)out[i * w1 + k], (int)text_byte(first + j));
      }
  }

  /* A bad window on the last rank: every rank fails, nobody hangs, the handle still works. */
  int last = g->size - 1;
  win[0] = 0;
  win[1] = g->rank == last ? nw : 0;
  ch_status s = ch_tokens_read(t, win, 2, out);
  CHT_ASSERT(s == CH_ERR_INVALID, "window past the end: %s", ch_status_str(s));
  if (g->rank == last) CHT_ASSERT(strstr(ch_error_message(), "out of range"), "message: %s", ch_error_message());
  else CHT_ASSERT(strstr(ch_error_message(), "another rank"), "message: %s", ch_error_message());
  ch_error_clear();
  win[1] = g->rank == 0 ? -1 : 1;
  CHT_ASSERT(ch_tokens_read(t, win, 2, out) == CH_ERR_INVALID, "negative window");
  ch_error_clear();
  win[0] = nw - 1;
  CHT_OK(ch_tokens_read(t, win, 1, out));
  CHT_ASSERT(out[context] == text_byte(first + (nw - 1) * context + context), "last window after an error");
  free(win);
  free(out);
  ch_tokens_close(t);
}

/* A file with vocab_size 10: /train/tokens int64 with a 12 at position 37, /val/tokens float. */
static void write_bad_file(const char *path) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  int64_t vocab = 10, tok[100];
  float ft[100];
  for (int i = 0; i < 100; i++) tok[i] = (int64_t)ch_rng_below(SEED, 9, (uint64_t)i, 10), ft[i] = (float)i;
  tok[37] = 12;
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, "vocab_size", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, &vocab);
  H5Aclose(a);
  H5Sclose(sp);
  hsize_t dims[1] = {100};
  sp = H5Screate_simple(1, dims, NULL);
  hid_t gt = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t gv = H5Gcreate2(f, "val", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t d = H5Dcreate2(gt, "tokens", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  CHT_ASSERT(d >= 0 && H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tok) >= 0, "write %s", path);
  H5Dclose(d);
  d = H5Dcreate2(gv, "tokens", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  CHT_ASSERT(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ft) >= 0, "write %s", path);
  H5Dclose(d);
  H5Gclose(gt);
  H5Gclose(gv);
  H5Sclose(sp);
  H5Fclose(f);
}

static void check_errors(const ch_group *g, const char *dir, const char *h5, const char *txt, const char *bad,
                         int64_t ntrain) {
  ch_tokens *t = (ch_tokens *)1;
  char missing[300];
  snprintf(missing, sizeof missing, "%s/nothing.h5", dir);
  ch_status s = ch_tokens_open(g, missing, "train", 8, &t);
  CHT_ASSERT(s == CH_ERR_IO && t == NULL && strstr(ch_error_message(), missing), "missing file: %s: %s",
             ch_status_str(s), ch_error_message());
  s = ch_tokens_open(g, txt, "train", 8, &t);
  CHT_ASSERT(s == CH_ERR_FORMAT && strstr(ch_error_message(), "not an HDF5 file"), "text file: %s", ch_error_message());
  s = ch_tokens_open(g, h5, "test", 8, &t);
  CHT_ASSERT(s == CH_ERR_FORMAT && strstr(ch_error_message(), "test"), "missing split: %s", ch_error_message());
  CHT_ASSERT(ch_tokens_open(g, h5, "train", 0, &t) == CH_ERR_INVALID, "context 0");
  /* context + 1 tokens are needed: ntrain - 1 is too long, ntrain - 2 just fits */
  char want[128];
  snprintf(want, sizeof want, "has %lld tokens, too few for context %lld", (long long)ntrain, (long long)ntrain);
  s = ch_tokens_open(g, h5, "train", (int)ntrain, &t);
  CHT_ASSERT(s == CH_ERR_FORMAT && strstr(ch_error_message(), want), "long context: %s", ch_error_message());
  CHT_OK(ch_tokens_open(g, h5, "train", (int)ntrain - 1, &t));
  CHT_ASSERT(ch_tokens_windows(t) == 1, "one window");
  ch_tokens_close(t);
  s = ch_tokens_open(g, bad, "val", 4, &t);
  CHT_ASSERT(s == CH_ERR_FORMAT && strstr(ch_error_message(), "integers"), "float tokens: %s", ch_error_message());
  /* int64 tokens are read (converted); window 9 of context 4 holds token 37 = 12 >= vocab 10 */
  CHT_OK(ch_tokens_open(g, bad, "train", 4, &t));
  int64_t win[2] = {g->rank % 2 ? 3 : 20, 9};
  int32_t out[10];
  CHT_OK(ch_tokens_read(t, win, 1, out));
  s = ch_tokens_read(t, win, 2, out);
  CHT_ASSERT(s == CH_ERR_FORMAT && strstr(ch_error_message(), "token 37 is 12"), "token outside vocab: %s: %s",
             ch_status_str(s), ch_error_message());
  ch_error_clear();
  ch_tokens_close(t);
  ch_tokens_close(NULL);
}

int main(int argc, char **argv) {
  ch_runtime *rt;
  ch_runtime_opts ro = {.verbose = 0, .bind_cores = 0};
  CHT_OK(ch_runtime_init(&argc, &argv, &ro, &rt));
  ch_group g;
  CHT_OK(ch_group_world(&g));
  char dir[64] = "/tmp/cohort_test_tokens_XXXXXX", txt[128], h5[128], bad[128];
  cht_world_tmpdir(dir, sizeof dir);
  snprintf(txt, sizeof txt, "%s/text.bin", dir);
  snprintf(h5, sizeof h5, "%s/tokens.h5", dir);
  snprintf(bad, sizeof bad, "%s/bad.h5", dir);
  const double frac = 0.25;
  int64_t nval = (int64_t)(frac * TEXT_LEN + 0.5), ntrain = TEXT_LEN - nval;
  if (g.rank == 0) {
    write_text(txt);
    const char *in[1] = {txt};
    ch_text_opts o = {.val_fraction = frac, .tok = NULL};
    ch_text_stats st;
    CHT_OK(ch_data_text_convert(in, 1, h5, &o, &st));
    CHT_ASSERT(st.train_tokens == ntrain && st.val_tokens == nval, "split %lld + %lld", (long long)st.train_tokens,
               (long long)st.val_tokens);
    write_bad_file(bad);
  }
  MPI_Barrier(ch_group_mpi_comm(&g));

  const int contexts[] = {1, 7, 64, 333};
  for (size_t c = 0; c < sizeof contexts / sizeof *contexts; c++) {
    check_windows(&g, h5, "train", 0, ntrain, contexts[c]);
    check_windows(&g, h5, "val", ntrain, nval, contexts[c]);
  }
  check_errors(&g, dir, h5, txt, bad, ntrain);

  /* The tokenizer loads (serial HDF5) while the file is open with MPI-IO on every rank. */
  ch_tokens *t;
  CHT_OK(ch_tokens_open(&g, h5, "val", 16, &t));
  ch_tokenizer *tok;
  CHT_OK(ch_tokenizer_load(h5, &tok));
  CHT_ASSERT(!strcmp(ch_tokenizer_name(tok), "byte") && ch_tokenizer_vocab(tok) == ch_tokens_vocab(t),
             "loaded tokenizer");
  ch_tokenizer_destroy(tok);
  ch_tokens_close(t);

  cht_world_tmpdir_remove(dir);
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return 0;
}
