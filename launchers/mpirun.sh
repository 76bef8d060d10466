#!/usr/bin/env bash
# Run N ranks of a program with the local MPI launcher, papering over what differs:
#
#   launchers/mpirun.sh 4 cohort train configs/mlp-digits.yaml train.steps=100
#
# - Open MPI's mpirun refuses to run as root without --allow-run-as-root, and more ranks
#   than cores without --oversubscribe: both are added when they are needed (as root, both).
# - MPICH's mpiexec (Hydra) runs as root and oversubscribes as it is, and rejects those flags.
# - With Open MPI and MPICH side by side (as on Debian), the launcher must match the MPI the
#   program was linked with, or every rank starts as a singleton of size 1. Unless MPIEXEC is
#   set, the launcher is chosen from the program's libraries (ldd).
#
# Environment:
#   MPIEXEC                the launcher to use                [matches the program, else mpiexec]
#   COHORT_MPIEXEC_FLAGS   extra launcher flags, split at spaces (e.g. "--bind-to none")
# Under Slurm, prefer `srun --mpi=pmix` (Open MPI) or launchers/train.sbatch.
set -euo pipefail

usage() {
  echo "usage: $0 NRANKS PROGRAM [ARGS...]" >&2
  exit 2
}
(($# >= 2)) || usage
n=$1
shift
[[ $n =~ ^[1-9][0-9]*$ ]] || usage

# mpi_of FILE: openmpi or mpich, from the MPI library a dynamic executable loads.
mpi_of() {
  local libs
  libs=$(ldd "$1" 2>/dev/null) || return 1
  case $libs in
  *libmpi.so.4*) echo openmpi ;;
  *libmpich*) echo mpich ;;
  *) return 1 ;;
  esac
}

launcher=${MPIEXEC:-}
if [[ -z $launcher ]]; then
  launcher=mpiexec
  prog=$(command -v "$1" || true)
  if [[ -n $prog ]] && flavor=$(mpi_of "$prog") && command -v "mpiexec.$flavor" >/dev/null; then
    launcher=mpiexec.$flavor
  fi
fi
command -v "$launcher" >/dev/null || { echo "$0: MPI launcher '$launcher' not found" >&2; exit 127; }

flags=()
version=$("$launcher" --version 2>&1 || true)
case $version in
*"Open MPI"* | *OpenRTE*)
  if [[ $(id -u) == 0 ]]; then
    flags+=(--allow-run-as-root --oversubscribe)
  elif ((n > $(nproc))); then
    flags+=(--oversubscribe)
  fi
  ;;
*HYDRA* | *MPICH*) ;; # nothing to add; Hydra rejects both flags above
*) echo "$0: unknown MPI launcher '$launcher'; passing no extra flags" >&2 ;;
esac
if [[ -n ${COHORT_MPIEXEC_FLAGS:-} ]]; then
  read -r -a extra <<<"$COHORT_MPIEXEC_FLAGS"
  flags+=("${extra[@]}")
fi

exec "$launcher" -n "$n" "${flags[@]}" "$@"
