/* Preemption signals: SIGTERM (schedulers, `kill`) and SIGUSR1 (Slurm's --signal) ask a job
 * to stop cleanly. The handler only records the signal; the training loop polls it, agrees on
 * it across ranks, checkpoints and exits. A second signal of either kind restores the default
 * action, so an impatient user can still kill the job at once. */
#pragma once
#include "cohort/status.h" /* CH_API */

/* Installs the handlers (idempotent). */
CH_API void ch_signals_install(void);
/* Restores the handlers that were there before ch_signals_install. */
CH_API void ch_signals_restore(void);
/* The first preemption signal received since install (SIGTERM or SIGUSR1), or 0. */
CH_API int ch_signals_pending(void);
/* "SIGTERM", "SIGUSR1" for those two, else "a signal": for messages. */
CH_API const char *ch_signal_name(int sig);
