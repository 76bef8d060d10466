#!/usr/bin/env bash
# A Slurm cluster over the namespace hosts of cluster.sh (called as `cluster.sh slurm-up` and
# `cluster.sh slurm-down`): munged and slurmctld in the root namespace (the login node; the
# controller listens on the bridge address), one slurmd per host, started inside the host with
# `slurmd -N <host>`. Each node has its own TmpFS (`TmpFS=<state>/slurm/tmpfs-%n`): Slurm's
# pmix plugin creates <TmpFS>/spmix_appdir_<uid>_<job>.<step> on every node of a step, and hosts
# sharing one /tmp would collide (the plugin expands %n per node). Client commands find the
# cluster through SLURM_CONF, which `up` prints as an export line (also in <state>/slurm/env.sh).
#
#   slurm.sh up     start (restarts a cluster already running on this state dir)
#   slurm.sh down   stop every daemon it started (idempotent)
#
# Environment: as cluster.sh, plus COHORT_CLUSTER_SLURM_PORT  slurmctld port; slurmd listens on
# port+1 inside each host  [16917]. Exit status: 0 ok, 77 Slurm or munge missing, 1 otherwise.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=${COHORT_CLUSTER_NAME:-cohort}
state=${COHORT_CLUSTER_DIR:-/var/tmp/$name-cluster}
net=${COHORT_CLUSTER_NET:-10.231.0}
port=${COHORT_CLUSTER_SLURM_PORT:-16917}
sd=$state/slurm
conf=$sd/slurm.conf
msock=$sd/munge.socket
die() { echo "slurm.sh: $*" >&2; exit 1; }

# running PID NAME: PID is a live process (not a zombie) whose command is NAME.
running() {
  [[ -r /proc/$1/comm && $(<"/proc/$1/comm") == "$2"* ]] &&
    [[ $(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) != Z ]]
}
stop() { # stop PIDFILE NAME: TERM the process the pid file names, wait up to 10 s, then KILL
  local pid i
  [[ -s $1 ]] && pid=$(<"$1") && [[ $pid =~ ^[0-9]+$ ]] && running "$pid" "$2" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do running "$pid" "$2" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
wait_for() { local i; for ((i = 0; i < $1 * 10; i++)); do "${@:2}" && return 0; sleep 0.1; done; return 1; }

down() {
  [[ -d $sd ]] || return 0
  local n i
  n=$(cat "$state/hosts.n" 2>/dev/null || echo 0)
  for ((i = 1; i <= n; i++)); do stop "$sd/slurmd-$name-h$i.pid" slurmd; done
  stop "$sd/slurmctld.pid" slurmctld
  stop "$sd/munged.pid" munged
}

up() {
  local t n i h nodes=() ctl mem
  for t in munged mungekey slurmctld slurmd srun scontrol sinfo; do
    command -v "$t" >/dev/null || { echo "slurm.sh: $t is not installed" >&2; exit 77; }
  done
  n=$(cat "$state/hosts.n" 2>/dev/null || echo 0)
  ((n > 0)) || die "the namespace cluster is not up (cluster.sh up N)"
  down
  mkdir -p "$sd/ctld"
  chmod 0755 "$sd"
  ((${#msock} < 100)) || die "state dir path too long for a unix socket: $msock"
  [[ -s $sd/munge.key ]] || mungekey --create --keyfile="$sd/munge.key" --force >/dev/null
  chmod 0600 "$sd/munge.key"
  rm -f "$msock" "$msock.lock"
  munged --socket="$msock" --key-file="$sd/munge.key" --pid-file="$sd/munged.pid" \
    --log-file="$sd/munged.log" --seed-file="$sd/munged.seed" --force
  ctl=$(hostname -s)
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
  for ((i = 1; i <= n; i++)); do nodes+=("NodeName=$name-h$i NodeAddr=$net.$i CPUs=2${mem:+ RealMemory=$((mem / n))} State=UNKNOWN"); done
  cat >"$conf" <<EOF
# Written by tests/cluster/slurm.sh: $n namespace hosts, controller on the bridge.
ClusterName=${name}ns
SlurmctldHost=$ctl($net.254)
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
FirstJobId=1000
StateSaveLocation=$sd/ctld
SlurmdSpoolDir=$sd/spool-%n
TmpFS=$sd/tmpfs-%n
SlurmctldPidFile=$sd/slurmctld.pid
SlurmdPidFile=$sd/slurmd-%n.pid
SlurmctldLogFile=$sd/slurmctld.log
SlurmdLogFile=$sd/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
KillWait=10
$(printf '%s\n' "${nodes[@]}")
PartitionName=debug Nodes=$name-h[1-$n] Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$conf
  slurmctld -c -f "$conf" || die "slurmctld did not start; see $sd/slurmctld.log"
  wait_for 30 sh -c 'scontrol ping 2>/dev/null | grep -q "is UP"' || die "slurmctld does not answer; see $sd/slurmctld.log"
  for ((i = 1; i <= n; i++)); do
    h=$name-h$i
    mkdir -p "$sd/spool-$h" "$sd/tmpfs-$h"
    "$here/cluster.sh" exec "$h" slurmd -f "$conf" -N "$h" </dev/null \
      || die "slurmd on $h did not start; see $sd/slurmd-$h.log"
  done
  idle() { [[ $(sinfo -h -o '%T %D' -t idle 2>/dev/null | awk '{s+=$2} END {print s+0}') == "$n" ]]; }
  wait_for 60 idle || die "not all $n nodes idle: $(sinfo -h -N -o '%N %T' | tr '\n' ' ')"
  printf 'export SLURM_CONF=%q\n' "$conf" | tee "$sd/env.sh"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 1 ;;
esac
