#!/usr/bin/env bash
# The server end to end with the digits MLP: train on 2 ranks, serve the checkpoint on 1 and on
# 2 ranks, and check
#   - V2 predictions (logits, labels) on 2 ranks = 1 rank within 1e-5 and = a PyTorch MLP that
#     loads the same checkpoint (tests/python/cohort_mlp.py), for every validation row;
#   - every endpoint and status: /v2, health, 401 (API key), 503 (queue full), 504 (timeout), model metadata (versioned too), infer with an id and
#     requested outputs, /metrics (histograms), reload to the same and to another checkpoint;
#   - a table of bad requests: each gets its 4xx JSON error and the server keeps serving;
#   - `cohort infer` (3 ranks, parallel HDF5 output) gives the same predictions;
#   - `cohort train ... serve.after=true` serves the trained weights from the same processes;
#   - idle ranks (leader and follower) use under 5% of a core each;
#   - SIGTERM: every rank exits 0.
# Usage: test_serve_mlp.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init mlp

"$cohort" data csv "$src/examples/digits/digits.csv.gz" "$work/digits.h5" --val-fraction 0.2 --seed 0
"$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/run" train.steps=120 run.checkpoint.every=60 \
  train.eval_every=0 optim.warmup_steps=10 > "$work/train.txt"
ck="$work/run/checkpoints"

start one 1 "$ck"
start two 2 "$ck" --max-batch-size 16 --max-queue-delay-us 500
echo "serving on ports $one_port (1 rank) and $two_port (2 ranks)"

# Offline predictions of the validation split on 3 ranks (cohort infer, parallel HDF5).
"$mpiexec" -n 3 "${flags[@]}" "$cohort" infer "$ck" "$work/digits.h5" "$work/pred.h5"
# Predictions of every validation row: 2 ranks vs 1 rank vs PyTorch on the checkpoint's weights,
# and vs cohort infer.
"$py" - "$work" "$one_port" "$two_port" "$src/tests/python" <<'PY'
import json, sys, urllib.request
import h5py, numpy as np
work, p1, p2, pydir = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
sys.path.insert(0, pydir)
x = h5py.File(f"{work}/digits.h5", "r")["val/x"][...]
def infer(port, rows):
    body = {"id": "batch", "inputs": [{"name": "input", "shape": list(rows.shape),
                                        "datatype": "FP32", "data": rows.flatten().tolist()}]}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/mlp/infer",
                                 data=json.dumps(body).encode(), method="POST")
    out = json.load(urllib.request.urlopen(req))
    assert out["id"] == "batch" and out["model_name"] == "mlp", out
    o = {t["name"]: np.array(t["data"]).reshape(t["shape"]) for t in out["outputs"]}
    return o["logits"], o["label"]
l1, y1 = infer(p1, x)
l2, y2 = infer(p2, x)
# torch reference on the checkpoint's weights
import torch, glob
from cohort_mlp import MLP
ckpt = sorted(glob.glob(f"{work}/run/checkpoints/step-*.h5"))[-1]
with h5py.File(ckpt, "r") as f:
    sd = {k: torch.from_numpy(f["model"][k][...]) for k in f["model"]}
depth = len([k for k in sd if k.endswith(".weight")]) - 1
m = MLP(x.shape[1], sd["layers.0.weight"].shape[0], depth, sd[f"layers.{depth}.weight"].shape[0], "relu")
m.load_state_dict(sd)
m = m.double()
lt = m(torch.from_numpy(x).double()).detach().numpy()
scale = np.abs(lt).max()
e21, e1t = np.abs(l2 - l1).max() / scale, np.abs(l1 - lt).max() / scale
print(f"{len(x)} rows: 2 ranks vs 1 rank {e21:.3g}, 1 rank vs torch {e1t:.3g} (of max |logit|)")
assert e21 <= 1e-5 and e1t <= 1e-5, (e21, e1t)
assert (y1 == y2).all() and (y1 == lt.argmax(1)).all(), "labels differ"
with h5py.File(f"{work}/pred.h5", "r") as f:
    li, yi = f["logits"][...], f["label"][...]
ei = np.abs(li - lt).max() / scale
print(f"cohort infer (3 ranks) vs torch {ei:.3g}")
assert ei <= 1e-5 and (yi == y1).all(), ei
PY

base="http://127.0.0.1:$two_port"
check 200 GET /v2
check 200 GET /v2/health/live
check 200 GET /v2/health/ready
check 200 GET /v2/models/mlp
grep -q '"versions":\["120"\]' "$work/body"
check 200 GET /v2/models/mlp/versions/120
check 200 GET /v2/models/mlp/ready
check 200 GET /v2/models/mlp/versions/120/ready
row=$("$py" -c "print(','.join(['0.5']*64))")
good="{\"id\":\"x7\",\"inputs\":[{\"name\":\"input\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":[$row]}],\"outputs\":[{\"name\":\"label\"}]}"
all="{\"inputs\":[{\"name\":\"input\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":[$row]}]}"
check 200 POST /v2/models/mlp/infer -d "$good"
"$py" -c "
import json,sys; d=json.load(open(sys.argv[1]))
assert d['id']=='x7' and [o['name'] for o in d['outputs']]==['label'], d" "$work/body"
check 200 POST /v2/models/mlp/versions/120/infer -d "$good"

# Bad requests: each its status, the server unharmed.
head -c 20000000 /dev/zero | tr '\0' '1' > "$work/big.json"
check 404 GET /v2/models/nope
check 404 GET /v2/models/mlp/versions/7
check 404 POST /v2/models/nope/infer -d "$good"
check 404 GET /nowhere
check 405 GET /v2/models/mlp/infer
check 400 POST /v2/models/mlp/infer -d '{"inputs": [{"name": "input",'
check 400 POST /v2/models/mlp/infer -d 'not json'
check 400 POST /v2/models/mlp/infer -d '{"id": "no inputs"}'
check 400 POST /v2/models/mlp/infer -d '{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}'
check 400 POST /v2/models/mlp/infer -d '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[1,2]}]}'
check 400 POST /v2/models/mlp/infer -d '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP99","data":[1]}]}'
check 400 POST /v2/models/mlp/infer -d '{"inputs":[{"name":"input","shape":[1,64],"datatype":"BYTES","data":["a"]}]}'
check 400 POST /v2/models/mlp/infer -d "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":[\"NaN\",$row]}]}"
check 400 POST /v2/models/mlp/infer -d '{"inputs":[{"name":"input","shape":[1000000000000,64],"datatype":"FP32","data":[1]}]}'
check 400 POST /v2/models/mlp/infer -d '{"inputs":[{"name":"input","shape":[-1,64],"datatype":"FP32","data":[1]}]}'
check 400 POST /v2/models/mlp/infer -d "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":[$row]}],\"outputs\":[{\"name\":\"nope\"}]}"
check 413 POST /v2/models/mlp/infer --data-binary @"$work/big.json"
check 400 POST /v1/completions -d '{"prompt": "hi"}'
# A slow client: headers, then nothing; the server must go on answering others meanwhile.
( exec 3<>/dev/tcp/127.0.0.1/"$two_port"; printf 'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"in' >&3; sleep 5 ) &
slow=$!
sleep 0.5
check 200 POST /v2/models/mlp/infer -d "$good"
kill "$slow" 2>/dev/null || true

# 401 (API key), 503 (queue full), 504 (timed out): servers made to show them.
start strict 1 "$ck" --api-key s3cret --max-queue-size 1
start slow 1 "$ck" --timeout 0.000001 --max-batch-size 1
base="http://127.0.0.1:$strict_port"
check 401 GET /v2/models/mlp
check 401 POST /v2/models/mlp/infer -d "$good" -H "Authorization: Bearer wrong"
check 200 GET /v2/health/ready # probes need no key
check 200 POST /v2/models/mlp/infer -d "$good" -H "Authorization: Bearer s3cret"
# A queue of one under a burst of 64 concurrent clients: requests that find it occupied get 503,
# the others 200, and nothing else happens.
command -v hey >/dev/null || { echo "SKIP: hey is not installed"; exit 77; }
printf '%s' "$good" > "$work/good.json"
hey -n 640 -c 64 -m POST -T application/json -H "Authorization: Bearer s3cret" \
  -D "$work/good.json" "$base/v2/models/mlp/infer" > "$work/burst.txt"
sed -n '/Status code distribution/,/^$/p' "$work/burst.txt"
codes=$(sed -n '/Status code distribution/,/^$/p' "$work/burst.txt" | grep -o '\[[0-9]*\]' | tr -d '[]' | sort -u | tr '\n' ' ')
[ "$codes" = "200 503 " ] || { echo "FAIL: burst on a queue of 1 gave codes '$codes'"; exit 1; }
check 200 GET /v2/models/mlp -H "Authorization: Bearer s3cret"
# A 1 us budget (less than any round trip through the executor), 64 clients: 504s only. At most
# 64 requests are live at once, under the default queue of 256; a request that timed out leaves
# the queue at once, so expired ones never pile up in it (a 503 "overloaded" here would mean they
# still count, which a slow executor, e.g. under ASan, used to show).
base="http://127.0.0.1:$slow_port"
hey -n 640 -c 64 -m POST -T application/json -D "$work/good.json" "$base/v2/models/mlp/infer" \
  > "$work/slow.txt"
sed -n '/Status code distribution/,/^$/p' "$work/slow.txt"
codes=$(sed -n '/Status code distribution/,/^$/p' "$work/slow.txt" | grep -o '\[[0-9]*\]' | tr -d '[]' | sort -u | tr '\n' ' ')
case "$codes" in *504*) ;; *) echo "FAIL: no 504 under a 1 us budget: '$codes'"; exit 1 ;; esac
[ -z "$(echo "$codes" | tr ' ' '\n' | grep -vE '^(200|504|)$')" ] || { echo "FAIL: codes '$codes'"; exit 1; }
check 200 GET /v2/models/mlp
base="http://127.0.0.1:$two_port"

# Metrics: counts by status and real histograms.
curl -s "$base/metrics" > "$work/metrics"
grep -q 'cohort_requests_total{model="mlp",version="120",endpoint="infer",code="200"}' "$work/metrics"
grep -q 'cohort_requests_total{model="mlp",version="120",endpoint="infer",code="400"}' "$work/metrics"
grep -q 'cohort_request_duration_seconds_bucket{model="mlp",version="120",endpoint="infer",le="+Inf"}' "$work/metrics"
grep -q '^# TYPE cohort_batch_size histogram' "$work/metrics"
grep -q 'cohort_compute_duration_seconds_count{model="mlp",version="120",stage="infer"}' "$work/metrics"

# Reload: the step-60 checkpoint, then back to latest (120); the version follows.
check 200 POST /v2/repository/models/mlp/load -d "{\"parameters\":{\"path\":\"$ck/step-00000060.h5\"}}"
check 200 GET /v2/models/mlp/versions/60
check 200 POST /v2/models/mlp/infer -d "$good"
check 400 POST /v2/repository/models/mlp/load -d "{\"parameters\":{\"path\":\"$work/missing.h5\"}}"
check 200 POST /v2/models/mlp/infer -d "$good"
check 200 POST /v2/repository/models/mlp/load -d '{}'
check 200 GET /v2/models/mlp/versions/120

# serve.after: the same training run, served by the training processes from memory, answers as
# the checkpoint of the first run does (same seed and ranks: the same weights).
"$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/run2" train.steps=120 run.checkpoint.every=60 \
  train.eval_every=0 optim.warmup_steps=10 serve.after=true serve.port=0 > "$work/after.log" 2>&1 &
after_pid=$!
pids+=($after_pid)
for _ in $(seq 1 300); do grep -q "serving mlp" "$work/after.log" && break; sleep 0.1; done
after_port=$(sed -n 's/.*on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$work/after.log")
[ -n "$after_port" ] || { echo "FAIL: serve.after did not start"; cat "$work/after.log"; exit 1; }
curl -s -X POST "localhost:$after_port/v2/models/mlp/infer" -d "$all" > "$work/after.json"
curl -s -X POST "localhost:$two_port/v2/models/mlp/infer" -d "$all" > "$work/ckpt.json" # 2 ranks too
"$py" - "$work/after.json" "$work/ckpt.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["model_version"] == "120" and a["outputs"] == b["outputs"], (a, b)
assert [o["name"] for o in a["outputs"]] == ["logits", "label"], a
print("serve.after answers as the checkpoint server: logits", a["outputs"][0]["data"][:3], "...")
PY
kill -TERM $(pgrep -f -- "run.dir=$work/run2" | while read -r p; do
  [ "$(readlink -f /proc/$p/exe)" = "$(readlink -f "$cohort")" ] && echo "$p"; done)
wait "$after_pid" || { echo "FAIL: serve.after run exited $?"; cat "$work/after.log"; exit 1; }

# Idle ranks (the follower, and the leader waiting for requests): under 5% of a core over 3 s.
hz=$(getconf CLK_TCK)
for p in $(ranks_of two); do
  t0=$(awk '{print $14 + $15}' "/proc/$p/stat")
  sleep 3
  t1=$(awk '{print $14 + $15}' "/proc/$p/stat")
  "$py" -c "
import sys; used=($t1-$t0)/$hz/3*100; print(f'idle rank (pid $p): {used:.1f}% of a core')
sys.exit(0 if used < 5 else 1)"
done

# SIGTERM to every rank (as srun and Slurm's preemption deliver it; Open MPI's mpirun, sent a
# SIGTERM itself, kills the job and exits 1 whatever the ranks do): all ranks finish, exit 0.
for name in one two strict slow; do stop "$name"; done
echo PASS
