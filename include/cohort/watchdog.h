/* Collective watchdog: ends the job, naming the culprit, when a collective waits too long.
 *
 * A rank that hangs (an endless loop, a deadlock, SIGSTOP) or dies would otherwise leave every
 * other rank blocked in its next collective forever. The comm layer marks each blocking
 * collective with ch_watchdog_enter/leave; a helper thread wakes a few times a second and, once
 * the main thread has been inside one collective for more than the timeout, runs the stall
 * protocol: it sends a small report {rank, step, collective number, op} to every other rank on
 * the watchdog's own communicator and collects theirs for a grace period of min(timeout, 3 s).
 * Ranks that report are alive (a rank that is not in a collective answers with where it is);
 * ranks that never answer are hung or dead. The lowest stalled rank prints one summary, e.g.
 *
 *   [cohort r0] error: collective watchdog: allreduce (step 12, collective #345) waited 5.0 s
 *   on ranks 0,2; rank 1 did not reach it (hung or dead); aborting the job
 *
 * and reports a desync when ranks wait in different collectives (op or number differ); then
 * the job ends with MPI_Abort(MPI_COMM_WORLD, 3). A stalled rank never aborts before the
 * timeout, and nothing is printed while nothing is stalled. A collective that legitimately
 * takes longer than the timeout ends the job too: choose the timeout above the longest one.
 *
 * Threads: this module is the one exception to "only the main thread calls MPI"
 * (docs/architecture.md): the watchdog thread calls MPI_Isend / MPI_Irecv / MPI_Test / MPI_Abort on its
 * own duplicate communicator, which is legal because ch_runtime_init asks for
 * MPI_THREAD_MULTIPLE. When MPI provides less, the thread sends nothing: a stalled rank prints
 * its own stall ("another rank is hung or dead") and aborts. Everything else here is called
 * by the main thread only.
 *
 * Layer: comm (src/comm/watchdog.c). It is MPI's (a group of the MPI backend); the comm
 * backends mark their blocking waits with enter/leave. */
#pragma once
#include <stdint.h>
#include "cohort/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ch_group;

/* Starts the watchdog thread for group `g` (collective: every rank of g calls it; dups g's
 * communicator for its own messages). timeout_s <= 0 disables it (a no-op; enter/leave stay
 * cheap). The first start registers ch_watchdog_stop as a runtime finalize hook
 * (ch_runtime_on_finalize), so ch_runtime_finalize stops it before MPI_Finalize. Errors:
 * CH_ERR_MPI (communicator), CH_ERR_INVALID (already started, null or non-MPI group),
 * CH_ERR_NOMEM (thread); never CH_ERR_UNSUPPORTED: below MPI_THREAD_MULTIPLE it falls back to
 * reporting this rank's own stall. */
CH_API ch_status ch_watchdog_start(const struct ch_group *g, double timeout_s);
/* Stops and joins the thread, frees its communicator (collective). No-op when not started. */
CH_API void ch_watchdog_stop(void);
/* Context for messages: the training step the main thread is in. */
CH_API void ch_watchdog_set_step(int64_t step);
/* Marks the main thread as waiting in a collective named `op` (a string literal) until the
 * matching leave; nestable (the outermost enter starts the clock and counts one collective).
 * Cheap: a couple of atomic stores (plain moves on x86); nothing at all while it is off. */
CH_API void ch_watchdog_enter(const char *op);
/* Ends the wait begun by the matching ch_watchdog_enter. */
CH_API void ch_watchdog_leave(void);

#ifdef __cplusplus
}
#endif
