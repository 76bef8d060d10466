#!/usr/bin/env bash
# A test cluster of N "hosts" on one machine: each host is a network namespace (own interface,
# address and loopback), a UTS namespace (own hostname) and a cgroup-v1 cpuset (own CPU list),
# joined by a bridge in the root namespace. Open MPI reaches the hosts through an rsh agent
# (rsh-agent.sh) instead of ssh; Slurm runs one slurmd per host (slurm.sh). Hosts share the
# root filesystem, as nodes of an NFS cluster share their home directories.
#
#   cluster.sh up N [CORES_PER_HOST]   create hosts h1..hN (a second `up` rebuilds cleanly)
#   cluster.sh down                    remove everything up created (idempotent)
#   cluster.sh exec HOST CMD...        run CMD inside HOST (h1 or <name>-h1)
#   cluster.sh mpirun ARGS...          Open MPI's mpirun over the hosts (pass --host yourself)
#   cluster.sh hosts [RANKS_PER_HOST] [N]  prints "<name>-h1:R,<name>-h2:R,..." for --host
#   cluster.sh addr HOST               the host's address (reachable from the root namespace)
#   cluster.sh shape RATE | off        tbf rate limit on every host link, both directions
#   cluster.sh slurm-up | slurm-down   a Slurm cluster with one slurmd per host (slurm.sh)
#   cluster.sh status                  hosts, addresses, cpus; exit 1 when the cluster is not up
#
# Environment:
#   COHORT_CLUSTER_NAME  prefix of every name (namespaces, links, cgroups)  [cohort]
#   COHORT_CLUSTER_DIR   state directory (it holds each slurmd's spool and TmpFS)
#                        [/var/tmp/<name>-cluster]
#   COHORT_CLUSTER_NET   first three octets of the /24 subnet  [10.231.0]
#   COHORT_CLUSTER_PRIVATE_DIR  (mpirun, exec) a path every host sees as its own empty tmpfs:
#                        the job's processes run in a private mount namespace per host
# CPUs: host i gets CORES_PER_HOST cpus starting at (i-1)*CORES_PER_HOST, wrapping around the
# machine's cpus; on a 2-core machine 3 hosts share cores (they are still separate cpusets).
# Without a writable cgroup-v1 cpuset (cgroup v2 machines) hosts share all cpus (a note says so).
# Exit status: 0 ok, 77 namespaces cannot be made here (not root, no ip netns/nsenter/unshare/tc),
# 1 anything else.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=${COHORT_CLUSTER_NAME:-cohort}
state=${COHORT_CLUSTER_DIR:-/var/tmp/$name-cluster}
net=${COHORT_CLUSTER_NET:-10.231.0}
cpuset_root=/sys/fs/cgroup/cpuset
bridge=${name}br
[[ $name =~ ^[a-z][a-z0-9]{0,7}$ ]] || { echo "cluster: COHORT_CLUSTER_NAME must be 1-8 of [a-z0-9]" >&2; exit 1; }

die() { echo "cluster: $*" >&2; exit 1; }
skip() { echo "cluster: cannot make hosts here: $*" >&2; exit 77; }

# can_make: exit 77 (with the reason) when this machine cannot make namespace hosts.
can_make() {
  [[ $(id -u) == 0 ]] || skip "not root"
  local t
  for t in ip nsenter unshare tc; do command -v "$t" >/dev/null || skip "$t is not installed"; done
  ip netns add "${name}-probe" 2>/dev/null || skip "ip netns add fails"
  ip netns del "${name}-probe"
}

# host NAME: the full host name for h1 or <name>-h1; dies on anything else.
host() {
  case $1 in
    "$name"-h[0-9]*) echo "$1" ;;
    h[0-9]*) echo "$name-$1" ;;
    *) die "unknown host '$1' (want h1.. or $name-h1..)" ;;
  esac
}
idx() { local h; h=$(host "$1"); echo "${h##*-h}"; }
nhosts() { [[ -s $state/hosts.n ]] && cat "$state/hosts.n" || echo 0; }
holder() { cat "$state/$1/holder.pid" 2>/dev/null; }

# exec_in HOST CMD...: join HOST's cpuset, then its UTS and network namespaces, and exec CMD.
exec_in() {
  local h pid
  h=$(host "$1")
  shift
  pid=$(holder "$h")
  [[ -n $pid && -d /proc/$pid ]] || die "host $h is not up (cluster.sh up N)"
  [[ ! -d $cpuset_root/$h ]] || echo $$ >"$cpuset_root/$h/cgroup.procs"
  if [[ -n ${COHORT_CLUSTER_PRIVATE_DIR:-} ]]; then
    # A private mount namespace with an empty tmpfs over the path: this host's own copy.
    exec nsenter -t "$pid" --uts --net="/run/netns/$h" -- unshare -m --propagation private \
      sh -c 'mkdir -p "$0" && mount -t tmpfs cohort-private "$0" && exec "$@"' \
      "$COHORT_CLUSTER_PRIVATE_DIR" "$@"
  fi
  exec nsenter -t "$pid" --uts --net="/run/netns/$h" -- "$@"
}

# kill_procs_of HOST: TERM, then KILL, every process that runs in the host's cpuset or netns.
kill_procs_of() {
  local h=$1 pids i
  for i in 1 2 3 4 5 6 7 8 9 10 11; do
    pids=$( { cat "$cpuset_root/$h/cgroup.procs" 2>/dev/null; ip netns pids "$h" 2>/dev/null; } |
      sort -u | grep -vx "$$" || true)
    [[ -z $pids ]] && return 0
    if ((i == 1)); then kill -TERM $pids 2>/dev/null || true
    elif ((i >= 6)); then kill -KILL $pids 2>/dev/null || true; fi
    sleep 0.2
  done
}

down() {
  [[ -d $state ]] && "$here/slurm.sh" down >/dev/null 2>&1 || true
  local h pid
  # Hosts named in the state dir and any left by an earlier state dir of the same name.
  for h in $( { ls "$state" 2>/dev/null; ip netns list 2>/dev/null | awk '{print $1}';
                ls "$cpuset_root" 2>/dev/null; } | grep -E "^$name-h[0-9]+$" | sort -u); do
    kill_procs_of "$h"
    pid=$(holder "$h")
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
    ip netns del "$h" 2>/dev/null || true
    ip link del "${name}v${h##*-h}" 2>/dev/null || true
    [[ -d $cpuset_root/$h ]] && rmdir "$cpuset_root/$h" 2>/dev/null || true
    [[ -d $cpuset_root/$h ]] && die "cannot remove cgroup $cpuset_root/$h (processes left?)"
  done
  ip link del "$bridge" 2>/dev/null || true
  rm -rf "$state"
}

up() {
  local n=${1:?usage: cluster.sh up N [CORES_PER_HOST]} per=${2:-1} ncpu cpus mems i j h c
  [[ $n =~ ^[1-9][0-9]?$ && $n -le 50 ]] || die "N must be 1..50"
  [[ $per =~ ^[1-9][0-9]*$ ]] || die "CORES_PER_HOST must be a positive number"
  can_make
  down
  mkdir -p "$state"
  # The cpus this cpuset hierarchy may hand out (a container may own fewer than the machine).
  local all=() r
  if [[ -w $cpuset_root/cgroup.procs ]]; then
    mems=$(cat "$cpuset_root/cpuset.mems")
    for r in $(tr ',' ' ' <"$cpuset_root/cpuset.effective_cpus"); do
      mapfile -t -O "${#all[@]}" all < <(seq "${r%-*}" "${r#*-}")
    done
  else
    echo "cluster: no writable cgroup-v1 cpuset at $cpuset_root: hosts share all cpus" >&2
  fi
  ncpu=${#all[@]}
  ip link add "$bridge" type bridge
  ip addr add "$net.254/24" dev "$bridge"
  ip link set "$bridge" up
  for ((i = 1; i <= n; i++)); do
    h=$name-h$i
    mkdir -p "$state/$h/tmp"
    cpus=()
    for ((j = 0; j < per && j < ncpu; j++)); do cpus+=("${all[((i - 1) * per + j) % ncpu]}"); done
    c=$(IFS=,; echo "${cpus[*]}")
    if ((ncpu)); then
      mkdir "$cpuset_root/$h"
      echo "$c" >"$cpuset_root/$h/cpuset.cpus"
      echo "$mems" >"$cpuset_root/$h/cpuset.mems"
    fi
    echo "${c:-all}" >"$state/$h/cpus"
    ip netns add "$h"
    ip link add "${name}v$i" type veth peer name eth0 netns "$h"
    ip link set "${name}v$i" master "$bridge" up
    ip -n "$h" addr add "$net.$i/24" dev eth0
    ip -n "$h" link set lo up
    ip -n "$h" link set eth0 up
    # The UTS namespace lives as long as this holder; exec enters it through the holder's pid.
    # setsid + closed fds: the holder must not keep a caller's pipe (or ctest) waiting.
    setsid unshare --uts sh -c "hostname $h; exec sleep infinity" </dev/null >/dev/null 2>&1 &
    echo $! >"$state/$h/holder.pid"
    echo "$net.$i $h" >>"$state/hosts.txt"
  done
  echo "$n" >"$state/hosts.n"
  for ((i = 1; i <= n; i++)); do # the holders set their hostnames asynchronously
    h=$name-h$i
    for j in $(seq 50); do [[ $(exec_host_name "$h") == "$h" ]] && break; sleep 0.1; done
    [[ $(exec_host_name "$h") == "$h" ]] || die "host $h did not get its hostname"
  done
  status
}
exec_host_name() { (exec_in "$1" hostname) 2>/dev/null || true; }

status() {
  local n i h
  n=$(nhosts)
  ((n > 0)) || { echo "cluster $name: not up"; return 1; }
  for ((i = 1; i <= n; i++)); do
    h=$name-h$i
    echo "$h $net.$i cpus $(cat "$state/$h/cpus")"
  done
}

# hosts [R] [N]: Open MPI --host list with R slots on each of the first N hosts.
hosts() {
  local r=${1:-1} n=${2:-$(nhosts)} i out=()
  for ((i = 1; i <= n; i++)); do out+=("$name-h$i:$r"); done
  (IFS=,; echo "${out[*]}")
}

# mpirun ARGS...: the options every multi-host Open MPI run here needs: TCP between hosts on the
# cluster's subnet only (the bridge in the root namespace, eth0 in the hosts), shared memory
# (vader) between ranks of one host, as on a real node; mpirun itself runs in the root
# namespace (a login node) and starts one orted per host through rsh-agent.sh.
mpirun_() {
  ((${#name} > 0 && $(nhosts) > 0)) || die "the cluster is not up"
  COHORT_CLUSTER_NAME=$name COHORT_CLUSTER_DIR=$state COHORT_CLUSTER_NET=$net \
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    exec mpirun --allow-run-as-root \
    --mca plm_rsh_agent "$here/rsh-agent.sh" --mca plm_rsh_no_tree_spawn 1 \
    --mca btl vader,tcp,self --mca btl_tcp_if_include "$net.0/24" \
    --mca oob_tcp_if_include "$net.0/24" --mca pml ob1 "$@"
}

# shape RATE|off: tbf on both ends of every host link (egress of the bridge port = traffic into
# the host; egress of the host's eth0 = traffic out of it). Burst: 5 ms at RATE, >= 64 KiB (one
# GSO segment), so that a token bucket never stalls a whole segment.
shape() {
  local rate=${1:?usage: cluster.sh shape RATE|off} n i h bits burst
  n=$(nhosts)
  ((n > 0)) || die "the cluster is not up"
  for ((i = 1; i <= n; i++)); do
    h=$name-h$i
    if [[ $rate == off ]]; then
      tc qdisc del dev "${name}v$i" root 2>/dev/null || true
      ip netns exec "$h" tc qdisc del dev eth0 root 2>/dev/null || true
      continue
    fi
    bits=$(rate_bits "$rate")
    burst=$((bits / 8 / 200))
    ((burst >= 65536)) || burst=65536
    tc qdisc replace dev "${name}v$i" root tbf rate "$rate" burst "$burst" latency 100ms
    ip netns exec "$h" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 100ms
  done
  [[ $rate == off ]] && echo "cluster $name: links unshaped" || echo "cluster $name: links shaped to $rate"
}
rate_bits() { # 1gbit, 100mbit, 500kbit, 10000000 -> bits per second
  local v=${1,,}
  case $v in
    *gbit) echo $(( ${v%gbit} * 1000000000 )) ;;
    *mbit) echo $(( ${v%mbit} * 1000000 )) ;;
    *kbit) echo $(( ${v%kbit} * 1000 )) ;;
    *bit) echo "${v%bit}" ;;
    [0-9]*) echo "$v" ;;
    *) die "rate '$1': use NNgbit, NNmbit, NNkbit or NNbit" ;;
  esac
}

cmd=${1:-}
shift || true
case $cmd in
  up) up "$@" ;;
  down) [[ $(id -u) == 0 ]] || skip "not root"; down ;;
  exec) (($# >= 2)) || die "usage: cluster.sh exec HOST CMD..."; exec_in "$@" ;;
  mpirun) mpirun_ "$@" ;;
  hosts) hosts "$@" ;;
  addr) echo "$net.$(idx "${1:?usage: cluster.sh addr HOST}")" ;;
  shape) shape "$@" ;;
  slurm-up) exec "$here/slurm.sh" up ;;
  slurm-down) exec "$here/slurm.sh" down ;;
  status) status ;;
  can-make) can_make ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 1 ;;
esac
