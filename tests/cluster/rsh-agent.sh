#!/usr/bin/env bash
# Open MPI's remote agent for the namespace cluster (mpirun --mca plm_rsh_agent THIS): called
# as `rsh-agent.sh [options] HOST COMMAND...` like rsh/ssh, it runs COMMAND through sh inside
# HOST's namespaces (cluster.sh exec). COMMAND arrives as words of one shell command line
# (orted with its arguments, sometimes behind environment assignments), as rsh would pass it.
set -euo pipefail
while [[ ${1:-} == -* ]]; do shift; done
h=${1:?usage: rsh-agent.sh HOST COMMAND...}
shift
exec "$(dirname "${BASH_SOURCE[0]}")/cluster.sh" exec "$h" sh -c "$*"
