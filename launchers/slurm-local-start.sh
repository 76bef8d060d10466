#!/usr/bin/env bash
# Start a private single-node Slurm cluster on this machine, for tests and demos.
#
#   launchers/slurm-local-start.sh          # start (or report that it is running)
#   eval "$(launchers/slurm-local-start.sh | grep '^export')"
#   srun --mpi=pmix -n 2 cohort train configs/mlp-digits.yaml
#   launchers/slurm-local-stop.sh
#
# Runs as root. Everything lives in one state directory, so the cluster touches nothing in
# /etc, /run or /var and cannot collide with a system Slurm or munge:
#   munged    own key, socket, pid, log and seed files       <state>/munge/
#   slurmctld own slurm.conf, ports, state save dir and log    <state>/
#   slurmd    own spool dir and log                            <state>/
# Client commands (srun, sbatch, sinfo...) find the cluster through SLURM_CONF, which this
# script prints as an `export` line and also writes to <state>/env.sh.
#
# Environment:
#   COHORT_SLURM_DIR      state directory                       [/tmp/cohort-slurm]
#   COHORT_SLURM_PORT     slurmctld port; slurmd uses port+1    [16817]
#   COHORT_SLURM_CPUS     CPUs the node declares (at least real) [4]
#   COHORT_SLURM_TIMEOUT  seconds to wait for the node to be idle [30]
#   COHORT_SLURM_FIRST_JOB_ID  first job id; clusters side by side should differ, because
#                         Slurm's pmix plugin names files after it (/tmp/spmix_appdir_UID_JOB.STEP)  [1]
#
# Exit status: 0 running and idle, 77 Slurm or munge is not installed, 1 anything else.
set -euo pipefail

state=${COHORT_SLURM_DIR:-/tmp/cohort-slurm}
port=${COHORT_SLURM_PORT:-16817}
want_cpus=${COHORT_SLURM_CPUS:-4}
timeout=${COHORT_SLURM_TIMEOUT:-30}
first_job=${COHORT_SLURM_FIRST_JOB_ID:-1}

die() { echo "slurm-local-start: $*" >&2; exit 1; }
say() { echo "slurm-local-start: $*" >&2; }

# Daemons live in /usr/sbin, which is not on every user's PATH.
PATH=$PATH:/usr/sbin:/sbin
missing=()
for tool in munged mungekey munge unmunge slurmctld slurmd sinfo scontrol srun sbatch; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "slurm-local-start: not installed: ${missing[*]} (apt-get install slurm-wlm munge libpmix-dev)" >&2
  exit 77
fi
[[ $(id -u) == 0 ]] || die "must run as root (munged, slurmctld and slurmd run as root here)"
[[ $port =~ ^[0-9]+$ ]] || die "COHORT_SLURM_PORT must be a number, got '$port'"
[[ $first_job =~ ^[1-9][0-9]*$ ]] || die "COHORT_SLURM_FIRST_JOB_ID must be a number, got '$first_job'"

mkdir -p "$state"
chmod 0755 "$state"
state=$(cd "$state" && pwd -P) # absolute: it goes into slurm.conf
conf=$state/slurm.conf
msock=$state/munge/munge.socket
host=$(hostname -s)
export SLURM_CONF=$conf
((${#msock} < 100)) || die "state dir path too long for a unix socket: $msock"

# One start at a time per state dir: a second caller waits and then just reports. The
# daemons are started with fd 9 closed, or they would hold the lock for their lifetime.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$state/start.lock"
  flock -w "$timeout" 9 || die "another start holds $state/start.lock"
fi

# alive PIDFILE NAME: true when the pid file names a live process whose command is NAME
# (a stale pid file, a zombie, or a pid reused by another program does not count).
alive() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm && $(<"/proc/$pid/comm") == "$2"* ]] || return 1
  [[ $(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) != Z ]]
}

write_conf() {
  # Real memory from slurmd -C; CPUs may be declared higher than the cores present
  # (SlurmdParameters=config_overrides) so that tests can place 4 ranks on a 2-core VM.
  local real_cpus mem cpus
  real_cpus=$(slurmd -C 2>/dev/null | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -n1)
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
  cpus=$want_cpus
  if [[ -n $real_cpus ]] && ((real_cpus > cpus)); then cpus=$real_cpus; fi
  cat >"$conf.tmp" <<EOF
# Private single-node cluster written by launchers/slurm-local-start.sh; regenerated on start.
ClusterName=cohortlocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$msock
CredType=cred/munge
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
FirstJobId=$first_job
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Give a rank that is still flushing files time to finish before it is killed.
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus${mem:+ RealMemory=$mem} State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$conf.tmp" "$conf"
}

start_munge() {
  mkdir -p "$state/munge"
  # munged refuses a socket directory that others can write to; 0755 is what it wants.
  chmod 0755 "$state/munge"
  if [[ ! -s $state/munge/munge.key ]]; then
    mungekey --create --keyfile="$state/munge/munge.key" --force >/dev/null
  fi
  chmod 0600 "$state/munge/munge.key"
  rm -f "$msock" "$msock.lock"
  munged --socket="$msock" --key-file="$state/munge/munge.key" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" \
    --seed-file="$state/munge/munged.seed" --force 9>&- ||
    die "munged did not start; see $state/munge/munged.log"
}

wait_for() { # wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s; false on timeout
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

munge_ok() { munge --socket="$msock" -n </dev/null | unmunge --socket="$msock" >/dev/null 2>&1; }
ctld_ok() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_state() { sinfo -h -N -n "$host" -o %T 2>/dev/null | head -n1; }
slurmd_gone() { ! alive "$state/slurmd.pid" slurmd; }

started=()
if alive "$state/munge/munged.pid" munged && munge_ok; then
  :
else
  start_munge
  started+=(munged)
fi
wait_for "$timeout" munge_ok ||
  die "munged does not answer on $msock after ${timeout}s; see $state/munge/munged.log"

if alive "$state/slurmctld.pid" slurmctld; then
  [[ -f $conf ]] || die "slurmctld runs but $conf is gone; run launchers/slurm-local-stop.sh"
else
  # A running slurmd must not see its config change under it; restart it with the new file.
  if alive "$state/slurmd.pid" slurmd; then
    kill "$(<"$state/slurmd.pid")" 2>/dev/null || true
    wait_for "$timeout" slurmd_gone || die "old slurmd (pid file $state/slurmd.pid) does not exit"
  fi
  for p in "$port" "$((port + 1))"; do
    if command -v ss >/dev/null && ss -Htln "( sport = :$p )" | grep -q .; then
      die "port $p is in use by another program; choose other ports with COHORT_SLURM_PORT"
    fi
  done
  write_conf
  mkdir -p "$state/ctld" "$state/spool"
  # -c: start clean (no jobs or DOWN/DRAIN node states from an earlier life of the cluster).
  slurmctld -c -f "$conf" 9>&- || die "slurmctld did not start; see $state/slurmctld.log"
  started+=(slurmctld)
fi
wait_for "$timeout" ctld_ok ||
  die "slurmctld does not answer on port $port after ${timeout}s; see $state/slurmctld.log"

if ! alive "$state/slurmd.pid" slurmd; then
  mkdir -p "$state/spool"
  slurmd -f "$conf" -N "$host" 9>&- || die "slurmd did not start; see $state/slurmd.log"
  started+=(slurmd)
fi

# ReturnToService=2 brings a DOWN node back as soon as slurmd registers; a node left
# DRAINED by an earlier slurmctld is resumed explicitly.
resumed=0
node_ready() {
  local s
  s=$(node_state)
  if [[ $s == *drain* && $resumed == 0 ]]; then
    scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
    resumed=1
  fi
  [[ $s == idle || $s == mixed || $s == allocated ]]
}
wait_for "$timeout" node_ready ||
  die "node $host is '$(node_state)', not idle, after ${timeout}s; see $state/slurmd.log"

printf 'export SLURM_CONF=%q\n' "$conf" >"$state/env.sh.tmp"
mv "$state/env.sh.tmp" "$state/env.sh"
if ((${#started[@]})); then
  say "started ${started[*]}; node $host is $(node_state) in partition debug"
else
  say "already running; node $host is $(node_state) in partition debug"
fi
cat "$state/env.sh"
