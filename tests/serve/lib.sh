# Shared setup of the server-level tests (sourced by test_serve_*.sh, never run): the work
# directory and its cleanup, starting a server and waiting for its port, the pids of its ranks,
# an HTTP status check, and a clean stop.
# The sourcing script sets cohort, mpiexec and flags (its arguments), then calls serve_init.

# serve_init TAG: a fresh $work directory; at exit every started launcher is killed and $work
# removed. Skips (exit 77) without curl.
serve_init() {
  command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
  py=/usr/bin/python3
  work=$(mktemp -d "/tmp/cohort-serve-$1-XXXXXX")
  pids=()
  trap serve_cleanup EXIT
}
serve_cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }

# start NAME RANKS CHECKPOINT [serve options...]: a server on a free port, logging to
# $work/NAME.log; sets NAME_pid (its launcher) and NAME_port once it answers /v2/health/ready
# (over HTTPS when the caller set tls_curl=(--cacert CERT), for a server with --tls-cert).
start() {
  local name=$1 n=$2 ckpt=$3
  shift 3
  "$mpiexec" -n "$n" "${flags[@]}" "$cohort" serve "$ckpt" --port 0 --port-file "$work/$name.port" \
    "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 1 200); do
    [ -s "$work/$name.port" ] && curl -sf ${tls_curl[@]+"${tls_curl[@]}"} \
      "${tls_curl[@]+https://}localhost:$(cat "$work/$name.port")/v2/health/ready" >/dev/null && break
    sleep 0.1
  done
  [ -s "$work/$name.port" ] || { echo "FAIL: server $name did not start"; cat "$work/$name.log"; exit 1; }
  eval "${name}_port=$(cat "$work/$name.port")"
}

# ranks_of NAME: pids of the cohort processes of a server (its ranks, not its launcher).
ranks_of() {
  local exe p
  exe=$(readlink -f "$cohort")
  for p in $(pgrep -f -- "--port-file $work/$1.port"); do
    [ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$exe" ] && echo "$p"
  done
  return 0
}

# check EXPECTED_STATUS METHOD PATH [curl args...]: the status of $base$PATH, and a JSON body
# (kept in $work/body).
check() {
  local want=$1 method=$2 path=$3
  shift 3
  local got
  got=$(curl -s -o "$work/body" -w "%{http_code}" -X "$method" "$base$path" "$@")
  if [ "$got" != "$want" ]; then
    echo "FAIL: $method $path -> $got (expected $want): $(head -c 300 "$work/body")"; exit 1
  fi
  "$py" -c "import json,sys; json.load(open(sys.argv[1]))" "$work/body" ||
    { echo "FAIL: $method $path: body is not JSON"; exit 1; }
}

# stop NAME: SIGTERM to every rank (as srun and Slurm's preemption deliver it; Open MPI's
# mpirun, sent a SIGTERM itself, kills the job and exits 1 whatever the ranks do); the
# launcher must exit 0 and the log say "server stopped".
stop() {
  local pid_var=${1}_pid rc=0
  kill -TERM $(ranks_of "$1")
  wait "${!pid_var}" || rc=$?
  grep -q "server stopped" "$work/$1.log" && [ "$rc" -eq 0 ] ||
    { echo "FAIL: $1: exit $rc"; cat "$work/$1.log"; exit 1; }
}

# tls_pair NAME [CN]: a self-signed certificate for localhost and 127.0.0.1 in $work/NAME.pem and
# its key in $work/NAME.key (openssl CLI, EC P-256, 2 days). Returns 1 without openssl.
tls_pair() {
  command -v openssl >/dev/null || return 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=${2:-localhost}" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/$1.key" -out "$work/$1.pem" 2>/dev/null
}

# rank_pid NAME R: the pid of rank R of a server (from the launcher's environment variables:
# Open MPI's OMPI_COMM_WORLD_RANK or MPICH's PMI_RANK); empty when not found.
rank_pid() {
  local p r
  for p in $(ranks_of "$1"); do
    r=$(tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null |
        sed -n 's/^\(OMPI_COMM_WORLD_RANK\|PMI_RANK\)=//p' | head -1)
    [ "$r" = "$2" ] && { echo "$p"; return 0; }
  done
  return 0
}

# mlp_checkpoint DIR: trains the digits MLP briefly (1 rank) into DIR/checkpoints.
mlp_checkpoint() {
  [ -s "$work/digits.h5" ] ||
    "$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --val-fraction 0.2 > /dev/null
  "$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
    data.path="$work/digits.h5" run.dir="$1" train.steps=20 run.checkpoint.every=20 \
    train.eval_every=0 optim.warmup_steps=5 > "$1.txt"
}

# gpt_checkpoint DIR [STEPS]: a tiny GPT (2 layers, 64 wide, context 64, byte tokens) trained
# STEPS (20) steps on Shakespeare (1 rank) into DIR/checkpoints.
gpt_checkpoint() {
  [ -s "$work/text.h5" ] ||
    "$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
  "$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
    data.path="$work/text.h5" run.dir="$1" model.n_layer=2 model.n_embd=64 model.context=64 \
    train.steps="${2:-20}" train.batch_size=8 train.eval_every=0 optim.warmup_steps=5 \
    run.checkpoint.every="${2:-20}" > "$1.txt"
}

# mlp_body FILE [ROWS]: a V2 infer body of ROWS (1) validation rows of the digits data.
mlp_body() {
  "$py" - "$work/digits.h5" "${2:-1}" > "$1" <<'PY'
import json, sys
import h5py
x = h5py.File(sys.argv[1], "r")["val/x"][:int(sys.argv[2])]
print(json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                              "data": x.flatten().tolist()}]}))
PY
}
