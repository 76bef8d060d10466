#!/usr/bin/env bash
# Run a training launch command, and relaunch it to resume from its last checkpoint when it
# fails.
#
#   launchers/restart.sh -- launchers/mpirun.sh 2 build/cohort train configs/mlp-digits.yaml
#   launchers/restart.sh --max-restarts 5 --delay 30 -- srun --mpi=pmix cohort train cfg.yaml
#   COHORT_MAX_RESTARTS=10 launchers/restart.sh -- launchers/mpirun.sh 4 cohort train cfg.yaml \
#       train.steps=2000
#
# The override run.resume=auto is appended to the command on every attempt, the first one
# included: with no checkpoint in the run directory the run starts fresh, otherwise it resumes
# from the latest valid checkpoint. So the command must end with `cohort train CONFIG [key=value
# ...]`; overrides apply in order, so this one wins over a run.resume given earlier.
#
# Exit status of an attempt, and what follows:
#   0        finished: exit 0.
#   2        configuration or usage error (a relaunch would fail the same way): exit 2 at once.
#   other    a crash, a dead or hung rank (the collective watchdog aborts with 3), a lost node:
#            log it, wait DELAY seconds, relaunch. After N restarts, exit with the last status.
#
# SIGTERM, SIGINT (Ctrl-C) and SIGUSR1 (Slurm's warning before a time limit or preemption) ask
# the ranks to stop: cohort finishes the step, checkpoints and exits 0 on SIGTERM or SIGUSR1 alike.
# They are forwarded so that they reach the ranks, as Slurm delivers them:
#   - to an MPI launcher (mpirun, mpiexec, launchers/mpirun.sh) as SIGUSR1, which Open MPI and
#     MPICH forward to every rank; on SIGTERM or SIGINT the launcher would kill the job itself,
#     losing the steps since the last checkpoint;
#   - to any other command (srun, which forwards signals to its tasks) SIGINT as SIGTERM.
# The command runs in its own process group, so that Ctrl-C in a terminal reaches this script
# only, not the launcher and the ranks directly. After a forwarded signal nothing is relaunched:
# the script exits with the command's status. A signal during the pause between attempts ends
# the script with the last status.
#
# Options:
#   --max-restarts N   relaunches after the first attempt   [COHORT_MAX_RESTARTS, else 3]
#   --delay S          seconds between attempts (fractions allowed)   [2]
set -u

usage() {
  echo "usage: $0 [--max-restarts N] [--delay S] -- LAUNCH COMMAND..." >&2
  exit 2
}

max=${COHORT_MAX_RESTARTS:-3}
delay=2
while (($# > 0)); do
  case $1 in
  --max-restarts) (($# >= 2)) || usage; max=$2; shift 2 ;;
  --max-restarts=*) max=${1#*=}; shift ;;
  --delay) (($# >= 2)) || usage; delay=$2; shift 2 ;;
  --delay=*) delay=${1#*=}; shift ;;
  --) shift; break ;;
  -h | --help) usage ;;
  -*) echo "$0: unknown option '$1'" >&2; usage ;;
  *) break ;;
  esac
done
(($# > 0)) || usage
[[ $max =~ ^[0-9]+$ ]] || { echo "$0: --max-restarts must be a whole number, not '$max'" >&2; exit 2; }
[[ $delay =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "$0: --delay must be seconds, not '$delay'" >&2; exit 2; }

# The signal that asks the command's ranks to stop (see the header).
stop_signal=TERM
case ${1##*/} in
mpirun | mpirun.* | mpiexec | mpiexec.* | orterun | prterun) stop_signal=USR1 ;;
esac

child=0     # pid of the running attempt, 0 between attempts
stopping='' # the signal received (TERM or USR1), if any: relaunch no more
forwarded=0 # a signal was forwarded since the last wait
on_signal() { # on_signal TERM|USR1 [SIGNAL-RECEIVED]: SIGINT is handled as TERM
  stopping=$1
  if ((child)); then
    local sig=$1
    [[ $sig == TERM ]] && sig=$stop_signal
    echo "restart.sh: forwarding SIG${2:-$1} to the running command as SIG$sig; no restart after it" >&2
    kill -"$sig" "$child" 2>/dev/null
    forwarded=1
  fi
}
trap 'on_signal TERM' TERM
trap 'on_signal TERM INT' INT
trap 'on_signal USR1' USR1

attempt=0
status=0
while :; do
  attempt=$((attempt + 1))
  set -m # job control: the command gets a process group of its own (see the header)
  "$@" run.resume=auto &
  child=$!
  set +m
  [[ -n $stopping ]] && on_signal "$stopping" # arrived while the command was being started
  # `wait` returns early (status > 128) when a trapped signal arrives: wait again until the
  # command itself has exited. A second wait on a command already waited for answers 127; the
  # status from the first one stands then.
  wait "$child"
  status=$?
  while ((forwarded)); do
    forwarded=0
    wait "$child"
    st=$?
    ((st == 127)) || status=$st
  done
  child=0
  if ((status == 0)); then exit 0; fi
  if ((status == 2)); then
    echo "restart.sh: attempt $attempt exited with status 2 (configuration or usage error); not restarting" >&2
    exit 2
  fi
  if [[ -n $stopping ]]; then
    echo "restart.sh: attempt $attempt exited with status $status after a forwarded signal; not restarting" >&2
    exit "$status"
  fi
  restarts=$((attempt - 1))
  if ((restarts >= max)); then
    plural=s
    ((restarts == 1)) && plural=''
    echo "restart.sh: attempt $attempt exited with status $status; giving up after" \
      "$restarts restart$plural" >&2
    exit "$status"
  fi
  echo "restart.sh: attempt $attempt exited with status $status; restarting ($attempt/$max) with run.resume=auto" >&2
  sleep "$delay" &
  wait $! 2>/dev/null || kill $! 2>/dev/null # a signal ends the pause early
  if [[ -n $stopping ]]; then
    echo "restart.sh: stopped by a signal before attempt $((attempt + 1)); exiting with status $status" >&2
    exit "$status"
  fi
done
