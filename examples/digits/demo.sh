#!/usr/bin/env bash
# The README's main command (`make demo`): one job trains the digits MLP on NP ranks, then the
# same processes serve it (serve.after=true), and this script queries it like a client would:
# a few validation rows through KServe V2, the predictions next to the true labels, then the
# metrics; SIGTERM ends the job cleanly.
#   examples/digits/demo.sh BUILD_DIR [NP]
set -euo pipefail
build=${1:-build}
np=${2:-2}
here=$(cd "$(dirname "$0")/../.." && pwd)
cohort="$build/cohort"
data="$here/examples/digits/digits.h5"
log=$(mktemp /tmp/cohort-demo-XXXXXX.log)
trap 'rm -f "$log"' EXIT

"$here/launchers/mpirun.sh" "$np" "$cohort" train "$here/configs/mlp-digits.yaml" \
  serve.after=true serve.port=0 run.resume=never 2>&1 | tee "$log" &
job=$!
for _ in $(seq 1 600); do
  grep -q "serving mlp" "$log" && break
  kill -0 "$job" 2>/dev/null || { echo "demo: the job ended before serving"; exit 1; }
  sleep 0.2
done
port=$(sed -n 's/.*on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$log" | head -1)
url="http://127.0.0.1:$port"
echo
echo "== querying $url (KServe V2) with 8 validation rows"
/usr/bin/python3 - "$data" "$url" <<'PY'
import json, sys, urllib.request
import h5py
f = h5py.File(sys.argv[1], "r")
x, y = f["val/x"][:8], f["val/y"][:8]
body = {"id": "demo", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                  "data": x.flatten().tolist()}], "outputs": [{"name": "label"}]}
req = urllib.request.Request(f"{sys.argv[2]}/v2/models/mlp/infer", json.dumps(body).encode())
out = json.load(urllib.request.urlopen(req))
pred = out["outputs"][0]["data"]
print(f"model {out['model_name']} version {out['model_version']}")
print("predicted:", pred)
print("true:     ", [int(v) for v in y])
PY
echo
echo "== $url/metrics (excerpt)"
curl -s "$url/metrics" | grep -E '^cohort_(requests_total|batch_size_count)' || true
echo
echo "== stopping: SIGTERM to every rank"
exe=$(readlink -f "$cohort")
for p in $(pgrep -f "configs/mlp-digits.yaml serve.after=true"); do
  [ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$exe" ] && kill -TERM "$p"
done
wait "$job"
