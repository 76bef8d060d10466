#!/usr/bin/env bash
# Stop the private Slurm cluster that launchers/slurm-local-start.sh started: slurmd,
# slurmctld and munged, found by the pid files in the state directory (nothing else is
# touched). Running jobs are killed with the daemons. The state directory stays, so logs can
# be read afterwards; remove it by hand if wanted.
#
# Environment: COHORT_SLURM_DIR  state directory  [/tmp/cohort-slurm]
#              COHORT_SLURM_TIMEOUT  seconds to wait for each daemon to exit  [30]
# Exit status: 0 when none of the daemons is left running.
set -uo pipefail

state=${COHORT_SLURM_DIR:-/tmp/cohort-slurm}
timeout=${COHORT_SLURM_TIMEOUT:-30}
say() { echo "slurm-local-stop: $*" >&2; }

if [[ ! -d $state ]]; then
  say "no state directory $state; nothing to stop"
  exit 0
fi

# running PID NAME: true while PID is a live (not zombie) process whose command is NAME.
running() {
  [[ -r /proc/$1/comm && $(<"/proc/$1/comm") == "$2"* ]] || return 1
  # A zombie has exited already; its parent (here init) reaps it in its own time.
  [[ $(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) != Z ]]
}

# pid_of PIDFILE NAME: the pid in PIDFILE if it is a live process whose command is NAME
# (a stale pid file, or a pid reused by another program, does not count).
pid_of() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && running "$pid" "$2" && echo "$pid"
}

# Steps of this cluster: slurmstepd processes started by our slurmd carry its SLURM_CONF.
our_stepds() {
  local p
  for p in /proc/[0-9]*; do
    running "${p#/proc/}" slurmstepd || continue
    tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "SLURM_CONF=$state/slurm.conf" &&
      echo "${p#/proc/}"
  done
}

# kill_tree PID: SIGKILL PID and every process below it (a step and its ranks).
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do
    kill_tree "$child"
  done
  kill -KILL "$1" 2>/dev/null
}

# Jobs first: slurmd and slurmctld exiting leaves running steps alone (by design, so that a
# daemon restart does not kill jobs), so cancel them and give the steps time to end. Then
# slurmd before slurmctld, and munged last because both use it to authenticate.
if pid_of "$state/slurmctld.pid" slurmctld >/dev/null && [[ -f $state/slurm.conf ]]; then
  SLURM_CONF=$state/slurm.conf scancel --user="$(id -un)" >/dev/null 2>&1 || true
fi
for ((i = 0; i < timeout * 10; i++)); do
  [[ -z $(our_stepds) ]] && break
  sleep 0.1
done

stop() { # stop PIDFILE NAME
  local pid i
  # The daemons delete their own pid file as they shut down: follow the pid, not the file.
  pid=$(pid_of "$1" "$2") || { rm -f "$1"; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < timeout * 10; i++)); do
    running "$pid" "$2" || break
    sleep 0.1
  done
  if running "$pid" "$2"; then
    say "$2 (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    sleep 0.5
  fi
  if running "$pid" "$2"; then
    say "$2 (pid $pid) is still running"
    return 1
  fi
  rm -f "$1"
  say "stopped $2 (pid $pid)"
}

rc=0
stop "$state/slurmd.pid" slurmd || rc=1
for pid in $(our_stepds); do
  say "killing leftover slurmstepd $pid and its processes"
  kill_tree "$pid"
done
stop "$state/slurmctld.pid" slurmctld || rc=1
stop "$state/munge/munged.pid" munged || rc=1
rm -f "$state/munge/munge.socket" "$state/munge/munge.socket.lock"
exit "$rc"
