#!/usr/bin/env bash
# Installs the Debian packages cohort builds, tests and runs with. Idempotent: does nothing
# when everything is present. Needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config make
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev        # MPI + parallel HDF5 (default build)
  mpich libmpich-dev libhdf5-mpich-dev                  # second MPI flavour, tested in CI
  libhwloc-dev hwloc libopenblas-dev libyaml-dev libcjson-dev libmicrohttpd-dev libgnutls28-dev zlib1g-dev libdeflate0
  slurm-wlm slurmctld slurmd slurm-client munge libpmix-dev   # local Slurm for launch tests
  python3-torch python3-h5py python3-numpy python3-sklearn    # reference checks, benchmarks
  python3-prometheus-client                                   # metrics format reference parser
  curl hey openssl                                           # HTTP client, load generator, test certificates (serving tests)
  gnuplot-nox                                                # `cohort plot` (and its test)
  libb64-0d                                                  # perf_analyzer (the client tests)
  iproute2 util-linux                                        # namespace hosts (multinode tests: ip, tc, nsenter, unshare)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
