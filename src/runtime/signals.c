/* Preemption signal handlers (see cohort/signals.h). */
#include "cohort/signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t g_pending;
static int g_installed;
static struct sigaction g_old_term, g_old_usr1;

static void on_signal(int sig) {
  if (g_pending) { /* second request: stop being graceful */
    signal(SIGTERM, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    raise(sig);
    return;
  }
  g_pending = sig;
}

void ch_signals_install(void) {
  if (g_installed) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, &g_old_term);
  sigaction(SIGUSR1, &sa, &g_old_usr1);
  g_pending = 0;
  g_installed = 1;
}

void ch_signals_restore(void) {
  if (!g_installed) return;
  sigaction(SIGTERM, &g_old_term, NULL);
  sigaction(SIGUSR1, &g_old_usr1, NULL);
  g_installed = 0;
}

int ch_signals_pending(void) { return g_pending; }

const char *ch_signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a signal";
}
