/* MPI initialisation, rank discovery, and the process context. */
#include "cohort/runtime.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cohort/log.h"
#include "runtime/binding.h"

static ch_runtime g_rt;
static int g_rt_ready;

double ch_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Information only: ranks always come from MPI itself (under srun OMPI_* are absent, under
 * mpirun SLURM_PROCID is absent). */
static const char *detect_launcher(void) {
  if (getenv("SLURM_STEP_ID") || getenv("SLURM_JOB_ID")) {
    if (!getenv("OMPI_COMM_WORLD_SIZE")) return "slurm";
  }
  if (getenv("OMPI_COMM_WORLD_SIZE")) return "openmpi";
  if (getenv("PMI_RANK") || getenv("HYDRA_CONTROL_FD") || getenv("PMI_FD")) return "mpich";
  return "unknown";
}

/* Node id = index of this node's lowest world rank among all nodes' lowest ranks. */
static ch_status discover_nodes(ch_runtime *rt) {
  int leader = rt->local_rank == 0;
  int nodes = 0, before = 0;
  if (MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, rt->world) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "MPI_Allreduce(node count) failed");
  if (MPI_Exscan(&leader, &before, 1, MPI_INT, MPI_SUM, rt->world) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "MPI_Exscan(node id) failed");
  if (rt->world_rank == 0) before = 0; /* Exscan leaves rank 0's result undefined */
  int id = before; /* a leader's id: the number of leaders with lower world ranks */
  /* Non-leaders take their node leader's id. */
  if (MPI_Bcast(&id, 1, MPI_INT, 0, rt->local) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "MPI_Bcast(node id) failed");
  rt->node_id = id;
  rt->node_count = nodes;
  return CH_OK;
}

ch_status ch_runtime_init(int *argc, char ***argv, const ch_runtime_opts *opts, ch_runtime **out) {
  ch_runtime_opts defaults = {.verbose = 0, .bind_cores = 1};
  if (!opts) opts = &defaults;
  ch_runtime *rt = &g_rt;
  memset(rt, 0, sizeof *rt);
  rt->verbose = opts->verbose;
  rt->launcher = detect_launcher();
  gethostname(rt->hostname, sizeof rt->hostname - 1);

  /* Open MPI's non-blocking collectives malloc and free multi-MiB scratch buffers per call;
   * with glibc's default thresholds each one is an mmap/munmap or a heap trim, i.e. thousands
   * of page faults per training step (measured: 10-15% of step time at 2 ranks). Raise both
   * thresholds unless the user tuned them through glibc's own variables. */
  if (!getenv("MALLOC_TRIM_THRESHOLD_") && !getenv("MALLOC_MMAP_THRESHOLD_")) {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
  int inited = 0;
  MPI_Initialized(&inited);
#if defined(OMPI_MAJOR_VERSION) && OMPI_MAJOR_VERSION == 4 && OMPI_MINOR_VERSION == 1 && \
    OMPI_RELEASE_VERSION < 5
  /* Open MPI 4.1.0-4.1.4 return wrong data from some collective reads when the posix fbtl
   * sieves data (open-mpi/ompi#10546, fixed in 4.1.5); seen with HDF5 on 4 ranks. MCA settings
   * are read once at init, so this must precede MPI_Init. A user's own setting wins. */
  if (!inited) setenv("OMPI_MCA_fbtl_posix_read_datasieving", "0", 0);
#endif
#ifdef OMPI_MAJOR_VERSION
  /* ompio picks a shared-file-pointer component at every MPI_File_open. When the ranks span
   * nodes its choice is "lockedfile", which creates FILE-<jobid>-<pid>.lock beside the file
   * (the dataset, each checkpoint) and removes it only at close: a killed job leaves them
   * behind. Even on one node its selection test creates FILE.locktest.<rank> there. cohort
   * never uses shared file pointers (HDF5's MPI-IO driver reads and writes at explicit
   * offsets), so those components are left out; "sm" (node-local, in the session directory)
   * stays. A user's own OMPI_MCA_sharedfp (or mpirun --mca sharedfp) wins. */
  if (!inited) setenv("OMPI_MCA_sharedfp", "^lockedfile,individual", 0);
#endif
  /* MULTIPLE for the two threads besides the main one that call MPI: the collective watchdog's
   * (cohort/watchdog.h) and each group's progress thread (src/comm/progress.c). Under FUNNELED
   * the watchdog falls back to local reports and non-blocking collectives to MPI's own. */
  if (!inited && MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &rt->thread_level) != MPI_SUCCESS)
    return CH_FAIL(CH_ERR_MPI, "MPI_Init_thread failed");
  if (inited) MPI_Query_thread(&rt->thread_level);
  if (rt->thread_level < MPI_THREAD_FUNNELED)
    return CH_FAIL(CH_ERR_MPI, "MPI provides thread level %d, cohort needs MPI_THREAD_FUNNELED",
                   rt->thread_level);
  MPI_Comm_dup(MPI_COMM_WORLD, &rt->world);
  /* Collective failures are fatal and reported by cohort, naming the rank. */
  MPI_Comm_set_errhandler(rt->world, MPI_ERRORS_RETURN);
  MPI_Comm_rank(rt->world, &rt->world_rank);
  MPI_Comm_size(rt->world, &rt->world_size);
  ch_log_configure(rt->world_rank, rt->verbose);
  MPI_Comm_split_type(rt->world, MPI_COMM_TYPE_SHARED, rt->world_rank, MPI_INFO_NULL, &rt->local);
  MPI_Comm_rank(rt->local, &rt->local_rank);
  MPI_Comm_size(rt->local, &rt->local_size);
  CH_CHECK(discover_nodes(rt));

  binding b = {0};
  CH_CHECK(binding_apply(rt->local, opts->bind_cores, &b));
  rt->ncores = b.ncores;
  rt->bind_cores = opts->bind_cores;
  snprintf(rt->cpuset, sizeof rt->cpuset, "%s", b.cpuset);
  g_rt_ready = 1;

  int version_len = 0;
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  MPI_Get_library_version(version, &version_len);
  char *nl = strchr(version, '\n');
  if (nl) *nl = '\0';
  CH_DEBUG("MPI: %s; thread level %s", version,
           rt->thread_level >= MPI_THREAD_MULTIPLE ? "MULTIPLE"
           : rt->thread_level == MPI_THREAD_SERIALIZED ? "SERIALIZED (watchdog reports this rank only)"
                                                       : "FUNNELED (watchdog reports this rank only)");
  ch_log_level lvl = rt->verbose ? CH_LOG_INFO : CH_LOG_DEBUG;
  /* The pid: MPICH's launcher names a dead process by pid and host only. */
  /* OS CPU ids, as taskset and /proc/PID/status show them; the inherited set says what the
   * launcher, taskset or cgroup gave (binding never leaves it). */
  ch_log(lvl, "rank %d/%d on %s, pid %d (node %d/%d, local %d/%d, launcher %s): cpus %s "
         "(%d core%s%s) of inherited %s", rt->world_rank, rt->world_size, rt->hostname,
         (int)getpid(), rt->node_id, rt->node_count, rt->local_rank, rt->local_size,
         rt->launcher, rt->cpuset, b.ncores, b.ncores == 1 ? "" : "s",
         b.shared ? ", shared" : "", b.inherited);
  /* Said once per set of ranks that inherited the same CPUs (its lowest local rank). */
  if (b.shared && b.first_peer)
    CH_WARN("%d ranks on %s share cpus %s (%d core%s): ranks share cores", b.peers,
            rt->hostname, b.inherited, b.total_cores, b.total_cores == 1 ? "" : "s");
  *out = rt;
  return CH_OK;
}

ch_runtime *ch_runtime_get(void) { return g_rt_ready ? &g_rt : NULL; }

/* Finalize hooks: how layers above (the collective watchdog) clean up before MPI_Finalize
 * without runtime knowing them. A fixed table: a handful of modules register, once each. */
#define MAX_FINALIZE_HOOKS 16
static struct {
  void (*fn)(void *);
  void *ctx;
} g_hooks[MAX_FINALIZE_HOOKS];
static int g_nhooks;

ch_status ch_runtime_on_finalize(void (*fn)(void *), void *ctx) {
  if (!fn) return CH_FAIL(CH_ERR_INVALID, "null finalize hook");
  if (g_nhooks == MAX_FINALIZE_HOOKS)
    return CH_FAIL(CH_ERR_NOMEM, "more than %d finalize hooks", MAX_FINALIZE_HOOKS);
  g_hooks[g_nhooks].fn = fn;
  g_hooks[g_nhooks].ctx = ctx;
  g_nhooks++;
  return CH_OK;
}

void ch_runtime_finalize(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  if (fin) return;
  /* Last registered runs first: a later module may depend on an earlier one. */
  while (g_nhooks > 0) {
    g_nhooks--;
    g_hooks[g_nhooks].fn(g_hooks[g_nhooks].ctx);
  }
  if (g_rt_ready) {
    MPI_Comm_free(&g_rt.local);
    MPI_Comm_free(&g_rt.world);
    g_rt_ready = 0;
  }
  MPI_Finalize();
}

void ch_runtime_fatal(ch_status s, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int rank = g_rt_ready ? g_rt.world_rank : -1;
  const char *detail = ch_error_message();
  fprintf(stderr, "[cohort r%d] fatal on rank %d (%s): %s: %s%s%s\n", rank, rank,
          g_rt.hostname[0] ? g_rt.hostname : "?", ch_status_str(s), msg, detail[0] ? ": " : "",
          detail);
  fflush(stderr);
  /* The launcher forwards stderr through a pipe and may stop reading it as soon as it sees
   * the abort (MPICH's hydra lost this line under load): give it time to drain the pipe. */
  struct timespec drain = {0, 250 * 1000 * 1000};
  nanosleep(&drain, NULL);
  int inited = 0, fin = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&fin);
  if (inited && !fin) MPI_Abort(MPI_COMM_WORLD, 1);
  _Exit(1);
}
