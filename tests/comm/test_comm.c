/* The MPI comm layer (include/cohort/comm.h) against a plain-MPI reference.
 *
 * Every rank draws its own random input (seeded by its rank), the reference gathers all ranks'
 * inputs with MPI_Allgather on MPI_COMM_WORLD and reduces them in rank order in double
 * precision (int64 for integer types), and each collective is run blocking, non-blocking with
 * ch_comm_wait, and non-blocking with a ch_comm_test polling loop. Counts include 0, 1, N-1,
 * N+1, 7 and 1000003 so that the 1/N partition of reduce_scatter / allgather is uneven.
 * Output buffers carry a guard zone after the payload that must stay untouched. */
#include <math.h>
#include <mpi.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohort/comm_mpi.h"
#include "cohort/rng.h"
#include "cohort/runtime.h"
#include "cohort/tensor.h"
#include "testlib.h"

enum { M_BLOCK = 0, M_WAIT, M_TEST, M_COUNT };
static const char *mode_name[] = {"blocking", "wait", "test"};
static const char *op_name[] = {"SUM", "AVG", "MAX", "MIN"};

#define GUARD_BYTES 64
#define GUARD_BYTE 0xA5

static int g_rank, g_size;

/* Tolerances against the double-precision reference, relative with an absolute floor of 1.0
 * (the inputs are U(-1,1), so 1.0 is their scale; a sum of N random values can cancel to
 * near zero, where a pure relative error is meaningless).
 * fp32: MPI adds N <= 4 fp32 terms in some order; each of the N-1 additions rounds by at
 * most 2^-24 times a partial sum bounded by sum|x_i| <= N, so |err| <= 3 * 2^-24 * 4 ~ 7.2e-7
 * for SUM. AVG divides by N and multiplies by fl(1/N) (two more roundings of a value <= 1):
 * |err| <= 7.2e-7/N + 2 * 2^-24 < 1e-6. Dropping or doubling any rank's term, or a wrong
 * partition offset, changes values by O(0.1), far above this.
 * fp64: the same bound with 2^-53, ~1e-15; 1e-13 leaves room and still catches data that
 * went through fp32 (errors ~1e-8). Integers and MAX/MIN are exact. */
#define TOL_F32 1e-6
#define TOL_F64 1e-13
#define REL_FLOOR 1.0

static int is_float(ch_dtype t) { return t == CH_F32 || t == CH_F64; }

static double get_f(const void *b, ch_dtype t, size_t i) {
  return t == CH_F32 ? (double)((const float *)b)[i] : ((const double *)b)[i];
}

static int64_t get_i(const void *b, ch_dtype t, size_t i) {
  switch (t) {
    case CH_I32: return ((const int32_t *)b)[i];
    case CH_I64: return ((const int64_t *)b)[i];
    case CH_U8: return ((const uint8_t *)b)[i];
    default: return 0;
  }
}

/* Random values per (rank, stream): fp32 U(-1,1); fp64 U(-1,1) with 53 random bits; int32 in
 * [-10^6, 10^6] (sums of 4 stay far from overflow); int64 in [-2^40, 2^40], beyond 32 bits so
 * that a 32-bit transport would show; uint8 any byte. */
static void gen(void *buf, size_t n, ch_dtype t, int rank, uint64_t stream) {
  uint64_t seed = 0xC0407ULL + 7919ULL * (uint64_t)rank;
  switch (t) {
    case CH_F32: cht_fill_uniform(buf, n, seed, stream); break;
    case CH_F64:
      for (size_t i = 0; i < n; i++)
        ((double *)buf)[i] = 2.0 * (double)(ch_rng_u64(seed, stream, i) >> 11) * 0x1p-53 - 1.0;
      break;
    case CH_I32:
      for (size_t i = 0; i < n; i++)
        ((int32_t *)buf)[i] = (int32_t)ch_rng_below(seed, stream, i, 2000001) - 1000000;
      break;
    case CH_I64:
      for (size_t i = 0; i < n; i++)
        ((int64_t *)buf)[i] = (int64_t)ch_rng_below(seed, stream, i, (1ULL << 41) + 1) - (1LL << 40);
      break;
    case CH_U8:
      for (size_t i = 0; i < n; i++) ((uint8_t *)buf)[i] = (uint8_t)ch_rng_u64(seed, stream, i);
      break;
    default: CHT_ASSERT(0, "gen: dtype %d", (int)t);
  }
}

/* One random input per rank plus every rank's input (the reference), gathered with plain MPI. */
typedef struct input {
  ch_dtype t;
  size_t count, esz;
  void *mine; /* count elements */
  void *all;  /* g_size * count elements, rank-major */
} input;

static void input_make(input *in, ch_dtype t, size_t count, uint64_t stream) {
  in->t = t;
  in->count = count;
  in->esz = ch_dtype_size(t);
  size_t bytes = count * in->esz;
  in->mine = malloc(bytes + 1);
  in->all = malloc(bytes * (size_t)g_size + 1);
  CHT_ASSERT(in->mine && in->all, "out of memory for %zu elements", count);
  gen(in->mine, count, t, g_rank, stream);
  CHT_ASSERT(bytes <= INT32_MAX, "reference gather too large");
  CHT_ASSERT(MPI_Allgather(in->mine, (int)bytes, MPI_BYTE, in->all, (int)bytes, MPI_BYTE,
                           MPI_COMM_WORLD) == MPI_SUCCESS, "reference MPI_Allgather");
}

static void input_free(input *in) {
  free(in->mine);
  free(in->all);
}

/* Element j of rank r's input. */
static const void *input_at(const input *in, int r, size_t j) {
  return (const char *)in->all + ((size_t)r * in->count + j) * in->esz;
}

/* An output buffer of `n` elements followed by a guard zone. */
static void *out_alloc(size_t n, size_t esz) {
  unsigned char *p = malloc(n * esz + GUARD_BYTES);
  CHT_ASSERT(p, "out of memory");
  memset(p + n * esz, GUARD_BYTE, GUARD_BYTES);
  return p;
}

static void guard_check(const void *buf, size_t n, size_t esz, const char *what) {
  const unsigned char *g = (const unsigned char *)buf + n * esz;
  for (int i = 0; i < GUARD_BYTES; i++)
    CHT_ASSERT(g[i] == GUARD_BYTE, "%s: wrote past the end of its %zu-element output (byte %d)",
               what, n, i);
}

/* Checks got[k] against the reference reduction of element off+k over all ranks. */
static void check_reduced(const char *what, const void *got, size_t len, size_t off,
                          const input *in, ch_redop op) {
  ch_dtype t = in->t;
  for (size_t k = 0; k < len; k++) {
    size_t j = off + k;
    if (is_float(t)) {
      double ref = get_f(input_at(in, 0, j), t, 0);
      for (int r = 1; r < g_size; r++) {
        double x = get_f(input_at(in, r, j), t, 0);
        if (op == CH_SUM || op == CH_AVG) ref += x;
        else if (op == CH_MAX) ref = x > ref ? x : ref;
        else ref = x < ref ? x : ref;
      }
      if (op == CH_AVG) ref /= g_size;
      double g = get_f(got, t, k);
      if (op == CH_MAX || op == CH_MIN) {
        CHT_ASSERT(g == ref, "%s: element %zu is %.9g, expected exactly %.9g", what, j, g, ref);
      } else {
        double err = fabs(g - ref) / fmax(fabs(ref), REL_FLOOR);
        double tol = t == CH_F32 ? TOL_F32 : TOL_F64;
        CHT_ASSERT(err <= tol, "%s: element %zu is %.17g, expected %.17g (rel err %.3g > %.3g)",
                   what, j, g, ref, err, tol);
      }
    } else {
      int64_t ref = get_i(input_at(in, 0, j), t, 0);
      for (int r = 1; r < g_size; r++) {
        int64_t x = get_i(input_at(in, r, j), t, 0);
        if (op == CH_SUM || op == CH_AVG) ref += x;
        else if (op == CH_MAX) ref = x > ref ? x : ref;
        else ref = x < ref ? x : ref;
      }
      /* Integer AVG: the exact sum divided by N, truncated toward zero (C division). */
      if (op == CH_AVG) ref /= g_size;
      int64_t g = get_i(got, t, k);
      CHT_ASSERT(g == ref, "%s: element %zu is %lld, expected %lld", what, j, (long long)g,
                 (long long)ref);
    }
  }
}

static ch_request *req_for(int mode, ch_request *r) {
  memset(r, 0, sizeof *r);
  return mode == M_BLOCK ? NULL : r;
}

/* Completes a non-blocking request in the given mode. Returns how many ch_comm_test calls
 * reported "not done" (0 in the other modes). */
static long finish(int mode, ch_request *r, const char *what) {
  long pending = 0;
  if (mode == M_BLOCK) return 0;
  CHT_ASSERT(r->active, "%s: non-blocking call returned an inactive request", what);
  if (mode == M_WAIT) {
    CHT_OK(ch_comm_wait(r));
  } else {
    double t0 = ch_time();
    int done = 0;
    for (;;) {
      CHT_OK(ch_comm_test(r, &done));
      if (done) break;
      pending++;
      CHT_ASSERT(ch_time() - t0 < 60, "%s: ch_comm_test never reported completion", what);
      sched_yield(); /* ranks may outnumber cores */
    }
  }
  CHT_ASSERT(!r->active, "%s: request still active after completion", what);
  return pending;
}

/* After completion, waiting or testing again must be a no-op (no second AVG scaling). */
static void finish_again(int mode, ch_request *r) {
  if (mode == M_BLOCK) return;
  int done = 0;
  CHT_OK(ch_comm_test(r, &done));
  CHT_ASSERT(done == 1, "ch_comm_test on a completed request reports not done");
  CHT_OK(ch_comm_wait(r));
}

static const ch_dtype reduce_types[] = {CH_F32, CH_F64, CH_I32, CH_I64};
#define NREDUCE_TYPES 4

static const ch_dtype all_types[] = {CH_F32, CH_F64, CH_I32, CH_I64, CH_U8};
#define NALL_TYPES 5

/* Runs one_case on an input of each of types[0..ntypes) and each count (empty, fewer and more
 * elements than ranks, one large), input streams seed + 16 * type index + count index. */
static void for_each_input(const ch_group *g, const ch_dtype *types, int ntypes, uint64_t seed,
                           void (*one_case)(const ch_group *g, const input *in)) {
  size_t n = (size_t)g_size;
  const size_t counts[] = {0, 1, n - 1, n + 1, 7, 1000003};
  for (int ti = 0; ti < ntypes; ti++)
    for (int ci = 0; ci < (int)(sizeof counts / sizeof *counts); ci++) {
      input in;
      input_make(&in, types[ti], counts[ci], seed + (uint64_t)(ti * 16 + ci));
      one_case(g, &in);
      input_free(&in);
    }
}

static void allreduce_case(const ch_group *g, const input *in) {
  void *buf = out_alloc(in->count, in->esz);
  for (int op = CH_SUM; op <= CH_MIN; op++) {
    for (int mode = 0; mode < M_COUNT; mode++) {
      char what[160];
      snprintf(what, sizeof what, "allreduce %s %s count %zu %s", ch_dtype_name(in->t),
               op_name[op], in->count, mode_name[mode]);
      memcpy(buf, in->mine, in->count * in->esz);
      ch_request r;
      CHT_OK(ch_comm_allreduce(g, buf, in->count, in->t, (ch_redop)op, req_for(mode, &r)));
      finish(mode, &r, what);
      check_reduced(what, buf, in->count, 0, in, (ch_redop)op);
      finish_again(mode, &r);
      check_reduced(what, buf, in->count, 0, in, (ch_redop)op);
      guard_check(buf, in->count, in->esz, what);
    }
  }
  free(buf);
}

static void test_allreduce(const ch_group *g) {
  for_each_input(g, reduce_types, NREDUCE_TYPES, 100, allreduce_case);
}

static void reduce_scatter_case(const ch_group *g, const input *in) {
  size_t off = ch_part_offset(in->count, g_size, g_rank);
  size_t mine = ch_part_count(in->count, g_size, g_rank);
  void *recv = out_alloc(mine, in->esz);
  void *send = malloc(in->count * in->esz + 1);
  CHT_ASSERT(send, "out of memory");
  for (int op = CH_SUM; op <= CH_AVG; op++) {
    for (int mode = 0; mode < M_COUNT; mode++) {
      char what[160];
      snprintf(what, sizeof what, "reduce_scatter %s %s total %zu (part %zu at %zu) %s",
               ch_dtype_name(in->t), op_name[op], in->count, mine, off, mode_name[mode]);
      memcpy(send, in->mine, in->count * in->esz);
      memset(recv, 0x5A, mine * in->esz);
      ch_request r;
      CHT_OK(ch_comm_reduce_scatter(g, send, recv, in->count, in->t, (ch_redop)op,
                                    req_for(mode, &r)));
      finish(mode, &r, what);
      check_reduced(what, recv, mine, off, in, (ch_redop)op);
      finish_again(mode, &r);
      check_reduced(what, recv, mine, off, in, (ch_redop)op);
      guard_check(recv, mine, in->esz, what);
      CHT_ASSERT(memcmp(send, in->mine, in->count * in->esz) == 0, "%s: modified its send buffer",
                 what);
    }
  }
  free(send);
  free(recv);
}

static void test_reduce_scatter(const ch_group *g) {
  for_each_input(g, reduce_types, NREDUCE_TYPES, 200, reduce_scatter_case);
}

/* recv must hold, at every rank r's part, rank r's input at those positions. */
static void check_gathered(const char *what, const void *recv, const input *in) {
  for (int r = 0; r < g_size; r++) {
    size_t off = ch_part_offset(in->count, g_size, r), n = ch_part_count(in->count, g_size, r);
    const char *got = (const char *)recv + off * in->esz;
    if (n && memcmp(got, input_at(in, r, off), n * in->esz) != 0) {
      for (size_t k = 0; k < n; k++)
        CHT_ASSERT(memcmp(got + k * in->esz, input_at(in, r, off + k), in->esz) == 0,
                   "%s: element %zu (part of rank %d) differs", what, off + k, r);
    }
  }
}

static void allgather_case(const ch_group *g, const input *in) {
  size_t off = ch_part_offset(in->count, g_size, g_rank);
  size_t mine = ch_part_count(in->count, g_size, g_rank);
  void *recv = out_alloc(in->count, in->esz);
  void *send = malloc(mine * in->esz + 1);
  CHT_ASSERT(send, "out of memory");
  for (int inplace = 0; inplace <= 1; inplace++) {
    for (int mode = 0; mode < M_COUNT; mode++) {
      char what[160];
      snprintf(what, sizeof what, "allgather %s total %zu%s %s", ch_dtype_name(in->t), in->count,
               inplace ? " in place" : "", mode_name[mode]);
      memset(recv, 0x5A, in->count * in->esz);
      const void *src;
      if (inplace) {
        memcpy((char *)recv + off * in->esz, (const char *)in->mine + off * in->esz,
               mine * in->esz);
        src = (char *)recv + off * in->esz;
      } else {
        memcpy(send, (const char *)in->mine + off * in->esz, mine * in->esz);
        src = send;
      }
      ch_request r;
      CHT_OK(ch_comm_allgather(g, src, recv, in->count, in->t, req_for(mode, &r)));
      finish(mode, &r, what);
      check_gathered(what, recv, in);
      guard_check(recv, in->count, in->esz, what);
      if (!inplace)
        CHT_ASSERT(memcmp(send, (const char *)in->mine + off * in->esz, mine * in->esz) == 0,
                   "%s: modified its send buffer", what);
    }
  }
  free(send);
  free(recv);
}

static void test_allgather(const ch_group *g) {
  for_each_input(g, all_types, NALL_TYPES, 300, allgather_case);
}

static void broadcast_case(const ch_group *g, const input *in) {
  void *buf = out_alloc(in->count, in->esz);
  for (int root = 0; root < g_size; root++) {
    for (int mode = 0; mode < M_COUNT; mode++) {
      char what[160];
      snprintf(what, sizeof what, "broadcast %s count %zu root %d %s", ch_dtype_name(in->t),
               in->count, root, mode_name[mode]);
      memcpy(buf, in->mine, in->count * in->esz); /* every rank starts from its own data */
      ch_request r;
      CHT_OK(ch_comm_broadcast(g, buf, in->count, in->t, root, req_for(mode, &r)));
      finish(mode, &r, what);
      if (in->count && memcmp(buf, input_at(in, root, 0), in->count * in->esz) != 0) {
        for (size_t k = 0; k < in->count; k++)
          CHT_ASSERT(memcmp((char *)buf + k * in->esz, input_at(in, root, k), in->esz) == 0,
                     "%s: element %zu differs from the root's", what, k);
      }
      guard_check(buf, in->count, in->esz, what);
    }
  }
  free(buf);
}

static void test_broadcast(const ch_group *g) {
  for_each_input(g, all_types, NALL_TYPES, 400, broadcast_case);
}

/* The last rank arrives 0.5 s late; nobody may leave the barrier before it arrives. Times
 * come from CLOCK_MONOTONIC on each rank, so the check measures each rank's own wait. */
static void test_barrier(const ch_group *g) {
  const double late = 0.5;
  for (int mode = 0; mode < M_COUNT; mode++) {
    MPI_Barrier(MPI_COMM_WORLD);
    int sleeper = g_rank == g_size - 1;
    if (sleeper) usleep((useconds_t)(late * 1e6));
    double t0 = ch_time();
    ch_request r;
    CHT_OK(ch_comm_barrier(g, req_for(mode, &r)));
    long pending = finish(mode, &r, mode_name[mode]);
    double waited = ch_time() - t0;
    if (g_size > 1 && !sleeper) {
      CHT_ASSERT(waited > 0.5 * late, "barrier (%s) returned after %.3f s, before the last rank "
                 "arrived (%.1f s late)", mode_name[mode], waited, late);
      if (mode == M_TEST)
        CHT_ASSERT(pending > 0, "ch_comm_test reported the barrier done before all ranks arrived");
    }
  }
}

/* Even and odd world ranks form two groups that run collectives at the same time. */
static void test_split(const ch_group *g) {
  int color = g_rank % 2;
  ch_group sub;
  CHT_OK(ch_group_split(g, color, g_rank, &sub));
  int expect_size = color == 0 ? (g_size + 1) / 2 : g_size / 2;
  CHT_ASSERT(sub.size == expect_size, "split: size %d, expected %d", sub.size, expect_size);
  CHT_ASSERT(sub.rank == g_rank / 2, "split: rank %d, expected %d", sub.rank, g_rank / 2);

  /* int64 SUM of each rank's values within its half only. */
  input in;
  size_t n = 1001;
  input_make(&in, CH_I64, n, 500);
  int64_t *buf = malloc(n * sizeof *buf);
  CHT_ASSERT(buf, "out of memory");
  for (int mode = 0; mode < M_COUNT; mode++) {
    memcpy(buf, in.mine, n * sizeof *buf);
    ch_request r;
    CHT_OK(ch_comm_allreduce(&sub, buf, n, CH_I64, CH_SUM, req_for(mode, &r)));
    finish(mode, &r, "split allreduce");
    for (size_t j = 0; j < n; j++) {
      int64_t ref = 0;
      for (int q = color; q < g_size; q += 2) ref += *(const int64_t *)input_at(&in, q, j);
      CHT_ASSERT(buf[j] == ref, "split allreduce (%s, color %d): element %zu is %lld, expected "
                 "%lld", mode_name[mode], color, j, (long long)buf[j], (long long)ref);
    }
  }
  /* fp32 allgather within the half: part r of the result comes from world rank 2r+color. */
  input fin;
  size_t total = 13;
  input_make(&fin, CH_F32, total, 501);
  float *all = malloc(total * sizeof *all);
  CHT_ASSERT(all, "out of memory");
  size_t off = ch_part_offset(total, sub.size, sub.rank);
  CHT_OK(ch_comm_allgather(&sub, (const float *)fin.mine + off, all, total, CH_F32, NULL));
  for (int r = 0; r < sub.size; r++) {
    size_t o = ch_part_offset(total, sub.size, r), c = ch_part_count(total, sub.size, r);
    for (size_t k = o; k < o + c; k++)
      CHT_ASSERT(all[k] == *(const float *)input_at(&fin, 2 * r + color, k),
                 "split allgather: element %zu differs from world rank %d's", k, 2 * r + color);
  }
  free(all);
  input_free(&fin);
  free(buf);
  input_free(&in);
  ch_group_destroy(&sub);
  CHT_ASSERT(ch_group_mpi_comm(&sub) == MPI_COMM_NULL, "ch_group_destroy left a communicator behind");

  /* Color MPI_UNDEFINED (as in MPI_Comm_split): rank 0 joins no group, the rest form one. */
  ch_group part;
  CHT_OK(ch_group_split(g, g_rank == 0 ? MPI_UNDEFINED : 1, g_rank, &part));
  if (g_rank == 0) {
    CHT_ASSERT(ch_group_mpi_comm(&part) == MPI_COMM_NULL && part.size == 0, "MPI_UNDEFINED: got a group of %d",
               part.size);
    int32_t v = 5;
    ch_status s = ch_comm_allreduce(&part, &v, 1, CH_I32, CH_SUM, NULL);
    CHT_ASSERT(s == CH_ERR_INVALID, "collective on a null group returned %s", ch_status_str(s));
  } else {
    CHT_ASSERT(part.size == g_size - 1 && part.rank == g_rank - 1, "split without rank 0: %d/%d",
               part.rank, part.size);
    int32_t v = g_rank;
    CHT_OK(ch_comm_allreduce(&part, &v, 1, CH_I32, CH_SUM, NULL));
    CHT_ASSERT(v == g_size * (g_size - 1) / 2, "allreduce without rank 0: %d", v);
  }
  ch_group_destroy(&part);
}

/* Five collectives in flight on one group, completed in reverse order, mixing wait and test. */
static void test_outstanding(const ch_group *g) {
  size_t big = 1000003, small = 7;
  input a, b, c, d;
  input_make(&a, CH_F64, big, 600);   /* allreduce SUM */
  input_make(&b, CH_F32, big, 601);   /* reduce_scatter AVG */
  input_make(&c, CH_I32, small, 602); /* allgather */
  input_make(&d, CH_I64, big, 603);   /* broadcast from the last rank */
  size_t boff = ch_part_offset(big, g_size, g_rank), bn = ch_part_count(big, g_size, g_rank);
  size_t coff = ch_part_offset(small, g_size, g_rank);
  void *abuf = out_alloc(big, a.esz), *brecv = out_alloc(bn, b.esz);
  void *cbuf = out_alloc(small, c.esz), *dbuf = out_alloc(big, d.esz);
  memcpy(abuf, a.mine, big * a.esz);
  memcpy(cbuf, c.mine, small * c.esz); /* in place: own part already there, rest is garbage */
  memcpy(dbuf, d.mine, big * d.esz);
  ch_request ra, rb, rc, rd, re;
  int root = g_size - 1;
  CHT_OK(ch_comm_allreduce(g, abuf, big, CH_F64, CH_SUM, &ra));
  CHT_OK(ch_comm_reduce_scatter(g, b.mine, brecv, big, CH_F32, CH_AVG, &rb));
  CHT_OK(ch_comm_allgather(g, (char *)cbuf + coff * c.esz, cbuf, small, CH_I32, &rc));
  CHT_OK(ch_comm_broadcast(g, dbuf, big, CH_I64, root, &rd));
  CHT_OK(ch_comm_barrier(g, &re));
  finish(M_TEST, &re, "outstanding barrier");
  finish(M_WAIT, &rd, "outstanding broadcast");
  finish(M_TEST, &rc, "outstanding allgather");
  finish(M_WAIT, &rb, "outstanding reduce_scatter");
  finish(M_TEST, &ra, "outstanding allreduce");
  check_reduced("outstanding allreduce", abuf, big, 0, &a, CH_SUM);
  check_reduced("outstanding reduce_scatter", brecv, bn, boff, &b, CH_AVG);
  check_gathered("outstanding allgather", cbuf, &c);
  CHT_ASSERT(memcmp(dbuf, input_at(&d, root, 0), big * d.esz) == 0,
             "outstanding broadcast: result differs from the root's data");
  guard_check(abuf, big, a.esz, "outstanding allreduce");
  guard_check(brecv, bn, b.esz, "outstanding reduce_scatter");
  guard_check(cbuf, small, c.esz, "outstanding allgather");
  guard_check(dbuf, big, d.esz, "outstanding broadcast");
  free(abuf), free(brecv), free(cbuf), free(dbuf);
  input_free(&a), input_free(&b), input_free(&c), input_free(&d);
}

static void test_errors(const ch_group *g) {
  float x[4] = {1, 2, 3, 4}, y[4];
  ch_request r;
  int bad_roots[] = {-1, g_size, g_size + 5};
  for (int i = 0; i < 3; i++) {
    for (int mode = 0; mode < 2; mode++) {
      ch_error_clear();
      ch_request *rp = req_for(mode ? M_WAIT : M_BLOCK, &r);
      ch_status s = ch_comm_broadcast(g, x, 4, CH_F32, bad_roots[i], rp);
      CHT_ASSERT(s == CH_ERR_INVALID, "broadcast from root %d of %d returned %s, expected %s",
                 bad_roots[i], g_size, ch_status_str(s), ch_status_str(CH_ERR_INVALID));
      CHT_ASSERT(ch_error_message()[0] != '\0', "invalid root: no error message");
      CHT_ASSERT(!r.active, "invalid root: request left active");
    }
  }
  CHT_ASSERT(x[0] == 1 && x[3] == 4, "failed broadcast touched the buffer");

  ch_status s = ch_comm_allreduce(g, x, 2, CH_BF16, CH_SUM, NULL);
  CHT_ASSERT(s == CH_ERR_UNSUPPORTED, "bf16 allreduce returned %s, expected %s", ch_status_str(s),
             ch_status_str(CH_ERR_UNSUPPORTED));
  memset(&r, 0, sizeof r);
  s = ch_comm_allreduce(g, x, 2, CH_BF16, CH_AVG, &r);
  CHT_ASSERT(s == CH_ERR_UNSUPPORTED && !r.active, "non-blocking bf16 allreduce returned %s",
             ch_status_str(s));
  s = ch_comm_reduce_scatter(g, x, y, 4, CH_BF16, CH_SUM, NULL);
  CHT_ASSERT(s == CH_ERR_UNSUPPORTED, "bf16 reduce_scatter returned %s, expected %s",
             ch_status_str(s), ch_status_str(CH_ERR_UNSUPPORTED));
  CHT_ASSERT(x[0] == 1 && x[1] == 2, "failed bf16 allreduce touched the buffer");

  /* Counts beyond MPI's int limit are refused before any MPI call (the buffer is not read). */
  s = ch_comm_allreduce(g, x, (size_t)INT32_MAX + 1, CH_F32, CH_SUM, NULL);
  CHT_ASSERT(s == CH_ERR_INVALID, "allreduce of 2^31 elements returned %s", ch_status_str(s));

  /* Waiting on or testing a request that is not active is a no-op. */
  memset(&r, 0, sizeof r);
  CHT_OK(ch_comm_wait(&r));
  CHT_OK(ch_comm_wait(NULL));
  int done = 0;
  CHT_OK(ch_comm_test(&r, &done));
  CHT_ASSERT(done == 1, "ch_comm_test on an inactive request reports not done");
  ch_error_clear();
  /* Every rank is still in step: a collective after the failed calls works. */
  int32_t one = 1;
  CHT_OK(ch_comm_allreduce(g, &one, 1, CH_I32, CH_SUM, NULL));
  CHT_ASSERT(one == g_size, "allreduce after errors: %d, expected %d", one, g_size);
}

/* The backend seam: MPI access through comm_mpi.h, no-color groups, zeroed groups and
 * requests, and requests kept in a caller-owned array and reused. */
static void test_backend(const ch_group *g) {
  CHT_ASSERT(g->ops && g->ops->name && !strcmp(g->ops->name, "mpi"), "world group backend %s",
             g->ops && g->ops->name ? g->ops->name : "(none)");
  CHT_ASSERT(ch_group_mpi_comm(NULL) == MPI_COMM_NULL, "null group has a communicator");
  ch_group zero;
  memset(&zero, 0, sizeof zero);
  CHT_ASSERT(ch_group_mpi_comm(&zero) == MPI_COMM_NULL, "zeroed group has a communicator");
  ch_group_destroy(&zero); /* a no-op */
  int32_t v = 1;
  ch_status s = ch_comm_barrier(&zero, NULL);
  CHT_ASSERT(s == CH_ERR_INVALID, "barrier on a zeroed group returned %s", ch_status_str(s));

  /* ch_group_from_mpi duplicates the communicator it is given. */
  ch_group dup;
  CHT_OK(ch_group_from_mpi(ch_group_mpi_comm(g), &dup));
  int cmp = MPI_UNEQUAL;
  MPI_Comm_compare(ch_group_mpi_comm(&dup), ch_group_mpi_comm(g), &cmp);
  CHT_ASSERT(cmp == MPI_CONGRUENT, "ch_group_from_mpi should duplicate (compare = %d)", cmp);
  CHT_OK(ch_comm_allreduce(&dup, &v, 1, CH_I32, CH_SUM, NULL));
  CHT_ASSERT(v == g_size, "allreduce on the duplicate: %d, expected %d", v, g_size);
  ch_group_destroy(&dup);
  CHT_ASSERT(dup.ops == NULL && ch_group_mpi_comm(&dup) == MPI_COMM_NULL, "destroy left a backend");

  /* CH_GROUP_NO_COLOR: the last rank joins no group. */
  ch_group part;
  CHT_OK(ch_group_split(g, g_rank == g_size - 1 ? CH_GROUP_NO_COLOR : 0, g_rank, &part));
  if (g_rank == g_size - 1) {
    CHT_ASSERT(part.ops == NULL && part.rank == -1 && part.size == 0, "no color: group %d/%d",
               part.rank, part.size);
  } else {
    CHT_ASSERT(part.size == g_size - 1 && part.rank == g_rank, "no color split: %d/%d",
               part.rank, part.size);
  }
  ch_group_destroy(&part);

  /* A calloc'ed array of requests, started, completed and started again. */
  enum { NREQ = 4 };
  ch_request *reqs = calloc(NREQ, sizeof *reqs);
  int32_t vals[NREQ];
  CHT_ASSERT(reqs, "out of memory");
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < NREQ; i++) {
      CHT_ASSERT(!reqs[i].active, "request %d active before start", i);
      vals[i] = i + round;
      CHT_OK(ch_comm_allreduce(g, &vals[i], 1, CH_I32, CH_SUM, &reqs[i]));
    }
    for (int i = NREQ - 1; i >= 0; i--) CHT_OK(ch_comm_wait(&reqs[i]));
    for (int i = 0; i < NREQ; i++)
      CHT_ASSERT(vals[i] == (i + round) * g_size, "request %d round %d: %d", i, round, vals[i]);
  }
  free(reqs);
}

int main(int argc, char **argv) {
  ch_runtime *rt = NULL;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  ch_group g;
  CHT_OK(ch_group_world(&g));
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  CHT_ASSERT(g.rank == g_rank && g.size == g_size, "group rank/size %d/%d, world %d/%d", g.rank,
             g.size, g_rank, g_size);
  int cmp = MPI_UNEQUAL;
  MPI_Comm_compare(ch_group_mpi_comm(&g), MPI_COMM_WORLD, &cmp);
  CHT_ASSERT(cmp == MPI_CONGRUENT, "ch_group_world should duplicate world (compare = %d)", cmp);

  struct { const char *name; void (*fn)(const ch_group *); } tests[] = {
      {"allreduce", test_allreduce},   {"reduce_scatter", test_reduce_scatter},
      {"allgather", test_allgather},   {"broadcast", test_broadcast},
      {"barrier", test_barrier},       {"split", test_split},
      {"outstanding", test_outstanding}, {"errors", test_errors},
      {"backend", test_backend},
  };
  for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
    double t0 = ch_time();
    tests[i].fn(&g);
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) printf("ok %s (%d ranks, %.2f s)\n", tests[i].name, g_size, ch_time() - t0);
  }
  ch_group_destroy(&g);
  ch_runtime_finalize();
  return 0;
}
