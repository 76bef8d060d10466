/* The process runtime (include/cohort/runtime.h): rank discovery against plain MPI, node
 * discovery against host names, core binding against the kernel's affinity masks, the
 * OpenBLAS kernel choice, and log-level filtering.
 *
 * Environment knobs (set by tests/runtime/CMakeLists.txt for some instances):
 *   CHT_EXPECT_CORETYPE=X  OPENBLAS_CORETYPE=X was set by the user: cohort must leave it alone
 *                          and OpenBLAS must run the X kernels. */
#define _GNU_SOURCE
#include <hwloc.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cohort/kernels.h"
#include "cohort/log.h"
#include "cohort/runtime.h"
#include "testlib.h"

static void test_ranks(const ch_runtime *rt) {
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CHT_ASSERT(rt->world_rank == rank && rt->world_size == size, "world %d/%d, MPI says %d/%d",
             rt->world_rank, rt->world_size, rank, size);
  int cmp = MPI_UNEQUAL;
  MPI_Comm_compare(rt->world, MPI_COMM_WORLD, &cmp);
  CHT_ASSERT(cmp == MPI_CONGRUENT, "rt->world is not a duplicate of MPI_COMM_WORLD (%d)", cmp);

  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
  int lrank, lsize;
  MPI_Comm_rank(local, &lrank);
  MPI_Comm_size(local, &lsize);
  CHT_ASSERT(rt->local_rank == lrank && rt->local_size == lsize, "local %d/%d, expected %d/%d",
             rt->local_rank, rt->local_size, lrank, lsize);
  MPI_Comm_compare(rt->local, local, &cmp);
  CHT_ASSERT(cmp == MPI_CONGRUENT, "rt->local differs from a SHARED split (%d)", cmp);
  MPI_Comm_free(&local);

  int provided = -1;
  MPI_Query_thread(&provided);
  CHT_ASSERT(provided >= MPI_THREAD_FUNNELED && rt->thread_level == provided,
             "thread level %d, MPI reports %d", rt->thread_level, provided);
  CHT_ASSERT(ch_runtime_get() == rt, "ch_runtime_get does not return the context");
  CHT_ASSERT(rt->hostname[0] != '\0', "empty host name");
  CHT_ASSERT(rt->launcher && rt->launcher[0], "no launcher string");
}

/* Node count and id from host names: node k is the k-th distinct host in world-rank order. */
static void test_nodes(const ch_runtime *rt) {
  int size = rt->world_size;
  char name[MPI_MAX_PROCESSOR_NAME] = "";
  gethostname(name, sizeof name - 1);
  char *names = calloc((size_t)size, sizeof name);
  CHT_ASSERT(names, "out of memory");
  MPI_Allgather(name, (int)sizeof name, MPI_CHAR, names, (int)sizeof name, MPI_CHAR,
                MPI_COMM_WORLD);
  int distinct = 0, my_node = -1;
  for (int r = 0; r < size; r++) {
    int seen = 0;
    for (int q = 0; q < r && !seen; q++)
      seen = !strcmp(names + (size_t)q * sizeof name, names + (size_t)r * sizeof name);
    if (!seen) {
      if (!strcmp(names + (size_t)r * sizeof name, name)) my_node = distinct;
      distinct++;
    }
  }
  free(names);
  CHT_ASSERT(rt->node_count == distinct, "node_count %d, but ranks run on %d hosts",
             rt->node_count, distinct);
  CHT_ASSERT(rt->node_id == my_node, "node_id %d, expected %d", rt->node_id, my_node);
  /* The test machines run every rank on one host. */
  if (distinct == 1)
    CHT_ASSERT(rt->node_count == 1 && rt->node_id == 0, "one host: node %d/%d", rt->node_id,
               rt->node_count);
}

/* Units (cores, or PUs where hwloc sees no cores) with at least one CPU of `set`. */
static int units_covering(hwloc_topology_t topo, hwloc_const_bitmap_t set, hwloc_obj_type_t unit) {
  int n = 0;
  for (hwloc_obj_t o = NULL; (o = hwloc_get_next_obj_covering_cpuset_by_type(topo, set, unit, o));)
    n++;
  return n;
}

/* Bound cores: from the kernel's mask (sched_getaffinity), counted as hwloc cores. Local ranks
 * get disjoint sets inside the CPU set they inherited (CHT_INHERITED, a list of OS CPU ids, when
 * the test runs under taskset; else the whole machine) that together cover it when there are
 * enough cores; otherwise one core each. The runtime reports the mask in OS ids. */
static void test_binding(const ch_runtime *rt) {
  CHT_ASSERT(rt->ncores >= 1, "ncores %d", rt->ncores);
  CHT_ASSERT(rt->cpuset[0] != '\0', "empty cpuset string");

  hwloc_topology_t topo;
  CHT_ASSERT(hwloc_topology_init(&topo) == 0 && hwloc_topology_load(topo) == 0, "hwloc");
  hwloc_obj_type_t unit = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE
                                                                            : HWLOC_OBJ_PU;
  hwloc_bitmap_t inherited = hwloc_bitmap_dup(hwloc_topology_get_allowed_cpuset(topo));
  const char *inh = getenv("CHT_INHERITED");
  if (inh) CHT_ASSERT(hwloc_bitmap_list_sscanf(inherited, inh) == 0, "CHT_INHERITED=%s", inh);
  int total = units_covering(topo, inherited, unit);
  CHT_ASSERT(total > 0, "hwloc found no cores");

  cpu_set_t mask;
  CPU_ZERO(&mask);
  CHT_ASSERT(sched_getaffinity(0, sizeof mask, &mask) == 0, "sched_getaffinity");
  CHT_ASSERT(CPU_COUNT(&mask) >= 1, "empty affinity mask");
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &mask)) hwloc_bitmap_set(set, (unsigned)c);
  int cores_in_mask = units_covering(topo, set, unit);
  /* hwloc's own view of the binding must agree with the kernel's. */
  hwloc_bitmap_t hw = hwloc_bitmap_alloc();
  CHT_ASSERT(hwloc_get_cpubind(topo, hw, HWLOC_CPUBIND_PROCESS) == 0, "hwloc_get_cpubind");
  CHT_ASSERT(hwloc_bitmap_isequal(hw, set), "hwloc and sched_getaffinity disagree");
  /* Never widened: the binding stays inside what the process inherited. */
  CHT_ASSERT(hwloc_bitmap_isincluded(set, inherited), "bound to %s, outside the inherited %s",
             rt->cpuset, inh ? inh : "machine");
  /* The printed set is the kernel's mask in OS ids (what Cpus_allowed_list shows). */
  hwloc_bitmap_t printed = hwloc_bitmap_alloc();
  CHT_ASSERT(hwloc_bitmap_list_sscanf(printed, rt->cpuset) == 0, "cpuset '%s'", rt->cpuset);
  char kernel[128];
  hwloc_bitmap_list_snprintf(kernel, sizeof kernel, set);
  CHT_ASSERT(hwloc_bitmap_isequal(printed, set), "runtime prints cpus %s, the kernel says %s",
             rt->cpuset, kernel);
  hwloc_bitmap_free(printed);
  hwloc_bitmap_free(hw);
  hwloc_bitmap_free(set);
  hwloc_bitmap_free(inherited);
  hwloc_topology_destroy(topo);

  CHT_ASSERT(cores_in_mask == rt->ncores, "bound to %d cores, runtime says ncores = %d (%s)",
             cores_in_mask, rt->ncores, rt->cpuset);

  int lsize = rt->local_size;
  cpu_set_t *masks = calloc((size_t)lsize, sizeof *masks);
  CHT_ASSERT(masks, "out of memory");
  MPI_Allgather(&mask, (int)sizeof mask, MPI_BYTE, masks, (int)sizeof mask, MPI_BYTE, rt->local);
  int sum_cores = 0;
  MPI_Allreduce(&rt->ncores, &sum_cores, 1, MPI_INT, MPI_SUM, rt->local);
  if (lsize <= total) {
    for (int q = 0; q < lsize; q++) {
      if (q == rt->local_rank) continue;
      cpu_set_t both;
      CPU_AND(&both, &mask, &masks[q]);
      CHT_ASSERT(CPU_COUNT(&both) == 0, "local ranks %d and %d share %d CPUs", rt->local_rank, q,
                 CPU_COUNT(&both));
    }
    CHT_ASSERT(sum_cores == total, "local ranks own %d cores together, the node has %d",
               sum_cores, total);
  } else {
    CHT_ASSERT(rt->ncores == 1, "oversubscribed (%d ranks, %d cores) but ncores = %d", lsize,
               total, rt->ncores);
    /* Wrapping round-robin: ranks q and q+total share a core, neighbours do not. */
    int next = (rt->local_rank + 1) % lsize;
    cpu_set_t both;
    CPU_AND(&both, &mask, &masks[next]);
    if (total > 1 && next % total != rt->local_rank % total)
      CHT_ASSERT(CPU_COUNT(&both) == 0, "local ranks %d and %d should be on different cores",
                 rt->local_rank, next);
  }
  free(masks);
}

static void test_blas(const char *coretype_before) {
  const char *name = ch_blas_corename();
  CHT_ASSERT(name && name[0], "ch_blas_corename() is empty after ch_blas_init");
  const char *expect = getenv("CHT_EXPECT_CORETYPE");
  if (expect && expect[0]) {
    /* The user's choice wins and cohort records that it chose nothing. */
    CHT_ASSERT(coretype_before && !strcmp(coretype_before, expect), "test setup: "
               "OPENBLAS_CORETYPE should be %s before start", expect);
    CHT_ASSERT(ch_blas_coretype_choice() == NULL, "cohort overrode the user's OPENBLAS_CORETYPE "
               "with %s", ch_blas_coretype_choice());
    CHT_ASSERT(!strcasecmp(name, expect), "OPENBLAS_CORETYPE=%s but OpenBLAS runs %s", expect,
               name);
    return;
  }
  __builtin_cpu_init();
  if (!coretype_before && __builtin_cpu_supports("avx512f")) {
    /* The reason ch_blas_init exists: Debian's OpenBLAS 0.3.21 calls these CPUs Prescott. */
    CHT_ASSERT(strcmp(name, "Prescott") != 0, "AVX-512 CPU but OpenBLAS runs the Prescott "
               "kernels: the OPENBLAS_CORETYPE choice did not reach the library");
    const char *choice = ch_blas_coretype_choice();
    CHT_ASSERT(choice != NULL, "OPENBLAS_CORETYPE was unset on an AVX-512 CPU, cohort chose none");
    CHT_ASSERT(!strcasecmp(name, choice), "cohort chose %s, OpenBLAS runs %s", choice, name);
  }
}

/* Runs ch_log at every level with stderr and stdout redirected to files and returns, per
 * level, whether the message appeared with this rank's prefix. */
static void log_capture(int rank, int printed[4]) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/cht_log_%d_%d.txt", (int)getpid(), rank);
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1), saved_err = dup(2);
  FILE *cap = fopen(path, "w");
  CHT_ASSERT(cap && saved_out >= 0 && saved_err >= 0, "cannot capture output in %s", path);
  dup2(fileno(cap), 1);
  dup2(fileno(cap), 2);
  ch_log(CH_LOG_DEBUG, "msg-debug-%d", rank);
  ch_log(CH_LOG_INFO, "msg-info-%d", rank);
  ch_log(CH_LOG_WARN, "msg-warn-%d", rank);
  ch_log(CH_LOG_ERROR, "msg-error-%d", rank);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  fclose(cap);
  FILE *f = fopen(path, "r");
  CHT_ASSERT(f, "reopen %s", path);
  char text[4096] = "";
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  unlink(path);
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (int l = 0; l < 4; l++) {
    char msg[64];
    snprintf(msg, sizeof msg, "msg-%s-%d", names[l], rank);
    char *at = strstr(text, msg);
    printed[l] = at != NULL;
    if (at) {
      char prefix[32];
      snprintf(prefix, sizeof prefix, "[cohort r%d] ", rank);
      char *line = at;
      while (line > text && line[-1] != '\n') line--;
      CHT_ASSERT(!strncmp(line, prefix, strlen(prefix)), "log line lacks the '%s' prefix: %.*s",
                 prefix, (int)(strchr(at, '\n') ? strchr(at, '\n') - line : 20), line);
    }
  }
}

static void expect_levels(int rank, const char *env, const char *ranks_env, int verbose,
                          const int want[4]) {
  if (env) setenv("COHORT_LOG", env, 1); else unsetenv("COHORT_LOG");
  if (ranks_env) setenv("COHORT_LOG_RANKS", ranks_env, 1); else unsetenv("COHORT_LOG_RANKS");
  ch_log_configure(rank, verbose);
  int got[4];
  log_capture(rank, got);
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (int l = 0; l < 4; l++) {
    CHT_ASSERT(got[l] == want[l], "COHORT_LOG=%s COHORT_LOG_RANKS=%s verbose=%d rank %d: %s "
               "message %s", env ? env : "(unset)", ranks_env ? ranks_env : "(unset)", verbose,
               rank, names[l], got[l] ? "printed" : "not printed");
    CHT_ASSERT(ch_log_enabled((ch_log_level)l) == want[l], "ch_log_enabled(%s) disagrees",
               names[l]);
  }
}

static void test_logging(const ch_runtime *rt) {
  int r = rt->world_rank;
  int lead = r == 0;
  const char *log0 = getenv("COHORT_LOG"), *ranks0 = getenv("COHORT_LOG_RANKS");
  char *save_log = log0 ? strdup(log0) : NULL, *save_ranks = ranks0 ? strdup(ranks0) : NULL;
  /* Default: info on rank 0; other ranks quiet (warnings and errors only). */
  expect_levels(r, NULL, NULL, 0, (int[]){0, lead, 1, 1});
  expect_levels(r, "debug", NULL, 0, (int[]){lead, lead, 1, 1});
  expect_levels(r, "debug", "all", 0, (int[]){1, 1, 1, 1});
  expect_levels(r, "warn", "all", 0, (int[]){0, 0, 1, 1});
  expect_levels(r, "ERROR", NULL, 0, (int[]){0, 0, 0, 1});
  expect_levels(r, NULL, NULL, 1, (int[]){0, 1, 1, 1}); /* verbose: info on every rank */
  /* Restore the test's own settings. */
  if (save_log) setenv("COHORT_LOG", save_log, 1); else unsetenv("COHORT_LOG");
  if (save_ranks) setenv("COHORT_LOG_RANKS", save_ranks, 1); else unsetenv("COHORT_LOG_RANKS");
  free(save_log);
  free(save_ranks);
  ch_log_configure(r, rt->verbose);
}

int main(int argc, char **argv) {
  const char *ct = getenv("OPENBLAS_CORETYPE");
  char *coretype_before = ct ? strdup(ct) : NULL;
  const char *expect = getenv("CHT_EXPECT_CORETYPE");
  if (expect && !strcasecmp(expect, "Haswell")) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) return 77; /* forcing Haswell kernels would crash */
  }
  ch_runtime *rt = NULL;
  CHT_OK(ch_runtime_init(&argc, &argv, NULL, &rt));
  CHT_OK(ch_blas_init(rt->ncores)); /* BLAS threads are the caller's, not runtime's */
  struct { const char *name; void (*fn)(const ch_runtime *); } tests[] = {
      {"ranks", test_ranks}, {"nodes", test_nodes}, {"binding", test_binding},
      {"logging", test_logging},
  };
  for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
    tests[i].fn(rt);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rt->world_rank == 0) printf("ok %s (%d ranks)\n", tests[i].name, rt->world_size);
  }
  test_blas(coretype_before);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rt->world_rank == 0) printf("ok blas (%s)\n", ch_blas_corename());
  free(coretype_before);
  ch_runtime_finalize();
  return 0;
}
