#!/usr/bin/env bash
# `cohort serve` across hosts: a GPT served tensor-parallel by 3 hosts x 1 rank, queried with
# curl from OUTSIDE the namespaces (the root namespace reaches rank 0's host on the bridge):
# a KServe V2 infer (next-token logits) and an OpenAI completion (sampled, seeded) answer as a 3-rank
# server on one host does (logits within 1e-5 relative, the same text); SIGTERM to every rank
# stops the server: the launcher exits 0 and every rank is gone.
# Usage: test_serve.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
cluster_up 3

lmpirun 1 "$cohort" train "$src/configs/gpt-tiny.yaml" data.path="$(text)" run.dir="$work/run" \
  model.n_layer=2 model.n_head=2 model.n_embd=48 model.context=32 train.steps=20 \
  train.batch_size=8 train.eval_every=0 optim.warmup_steps=5 run.checkpoint.every=20 >"$work/train.txt"

# serve_up NAME LAUNCH...: a server logging to $work/NAME.txt; sets NAME_pid and waits (60 s)
# until its port file exists.
serve_up() {
  local n=$1
  shift
  "$@" "$cohort" serve "$work/run/checkpoints" --host 0.0.0.0 --port 0 --port-file "$work/$n.port" \
    --data "$(text)" >"$work/$n.txt" 2>&1 &
  eval "${n}_pid=$!"
  wait_for 60 test -s "$work/$n.port" || { echo "FAIL: server $n did not start"; exit 1; }
}
# query BASE OUT: a V2 infer and an OpenAI completion against BASE, answers in OUT.{v2,oai}
query() {
  curl -sf --max-time 60 -X POST "$1/v2/models/gpt/infer" -o "$2.v2" \
    -d '{"inputs": [{"name": "input_ids", "shape": [6], "datatype": "INT32", "data": [82, 79, 77, 69, 79, 58]}]}' ||
    { echo "FAIL: V2 infer at $1"; exit 1; }
  curl -sf --max-time 60 -X POST "$1/v1/completions" -H 'Content-Type: application/json' -o "$2.oai" \
    -d '{"model": "gpt", "prompt": "ROMEO:", "max_tokens": 16, "temperature": 1.0, "seed": 5}' ||
    { echo "FAIL: completion at $1"; exit 1; }
}
# stop_server NAME: SIGTERM to each rank; the launcher exits 0 within 30 s, no rank is left.
stop_server() {
  local pid_var=${1}_pid rc=0 pids
  pids=$(rank_pids "port-file $work/$1.port" | awk '{print $2}')
  [[ $(echo $pids | wc -w) == "$2" ]] || { echo "FAIL: $1: found ranks '$pids', want $2"; exit 1; }
  kill -TERM $pids
  wait_for 30 sh -c "! kill -0 ${!pid_var} 2>/dev/null" || { echo "FAIL: $1 still runs 30 s after SIGTERM"; exit 1; }
  wait "${!pid_var}" || rc=$?
  ((rc == 0)) || { echo "FAIL: $1 exited $rc"; exit 1; }
  grep -q "server stopped" "$work/$1.txt" || { echo "FAIL: $1: no 'server stopped'"; exit 1; }
  for p in $pids; do ! kill -0 "$p" 2>/dev/null || { echo "FAIL: $1: rank pid $p still runs"; exit 1; }; done
}

serve_up hosts hmpirun 1 3
base="http://$(cl addr h1):$(cat "$work/hosts.port")"
wait_for 60 curl -sf "$base/v2/health/ready" -o /dev/null || { echo "FAIL: $base not ready"; exit 1; }
query "$base" "$work/hosts"
stop_server hosts 3

serve_up one lmpirun 3
query "http://127.0.0.1:$(cat "$work/one.port")" "$work/one"
stop_server one 3

"$py" - "$work" <<'PY'
import json, sys
import numpy as np
w = sys.argv[1]
def v2(p):
    return {t["name"]: np.array(t["data"], dtype=np.float64) for t in json.load(open(p))["outputs"]}
a, b = v2(f"{w}/hosts.v2"), v2(f"{w}/one.v2")
err = float(np.abs(a["logits"] - b["logits"]).max() / np.abs(b["logits"]).max())
assert a["logits"].shape == (256,) and err <= 1e-5, err
assert a["next_token"][0] == b["next_token"][0]
ta = json.load(open(f"{w}/hosts.oai"))["choices"][0]["text"]
tb = json.load(open(f"{w}/one.oai"))["choices"][0]["text"]
assert ta == tb and len(ta) > 0, (ta, tb)
print(f"ok: V2 logits within {err:.2g} of one host's; completion {ta!r} equal")
PY
echo "PASS: a 3-host server answers from outside the namespaces as one host does, and stops on SIGTERM"
