/* Preemption signals: SIGTERM (schedulers, `kill`) and SIGUSR1 (Slurm's --signal) ask a job
 * to stop cleanly. The handler only records the signal; the training loop polls it, agrees on
 * it across ranks, checkpoints and exits. A second signal of either kind restores the default
 * action, so an impatient user can still kill the job at once. */
#pragma once

/* Installs the handlers (idempotent). */
void ch_signals_install(void);
/* Restores the handlers that were there before ch_signals_install. */
void ch_signals_restore(void);
/* The first preemption signal received since install (SIGTERM or SIGUSR1), or 0. */
int ch_signals_pending(void);
