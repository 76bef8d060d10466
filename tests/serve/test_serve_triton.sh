#!/usr/bin/env bash
# Triton's protocol extensions and HTTP details (issue 14), with curl, on an MLP server with an
# API key and a GPT server:
#   - probes without the key: /v2/health/live, /v2/health/ready, the model's ready (also
#     versioned); /metrics open by default, keyed with --metrics-need-key true;
#   - 401 carries WWW-Authenticate: Bearer (error="invalid_token" for a wrong key) and is counted
#     in cohort_requests_total; 405 carries Allow; HEAD answers every GET route without a body;
#   - request bodies with Content-Encoding gzip and deflate (made with python's zlib) give the
#     plain body's answer; br: 415; a zip bomb (64 MiB of zeros): 413; a corrupt stream: 400;
#   - /v2 lists the extensions; statistics (all models, the model, its version) count the
#     requests and executions; 404 for another model or version;
#   - the repository: index (READY), unload (the model not ready, infer 503, index UNAVAILABLE,
#     the server still ready), load (ready and serving again);
#   - /metrics through the metrics tests' strict parser (test_metrics_scrape): every per-model
#     series has a version label; executions, inferences, the pending gauge, 401s; on the GPT,
#     prompt and generated tokens and the inter-token latency histogram.
# Usage: test_serve_triton.sh COHORT SOURCE_DIR MPIEXEC SCRAPE [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3 scrape=$4
shift 4
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init triton
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
key="Authorization: Bearer s3cret"

mlp_checkpoint "$work/run"
ck="$work/run/checkpoints"
mlp_body "$work/body.json" 3
"$py" - "$work" <<'PY'
import gzip, sys, zlib
work = sys.argv[1]
body = open(f"{work}/body.json", "rb").read()
open(f"{work}/body.gz", "wb").write(gzip.compress(body))
open(f"{work}/body.zlib", "wb").write(zlib.compress(body))
raw = zlib.compressobj(6, zlib.DEFLATED, -15)
open(f"{work}/body.raw", "wb").write(raw.compress(body) + raw.flush())
open(f"{work}/bomb.gz", "wb").write(gzip.compress(b"\0" * (64 << 20)))
bad = bytearray(gzip.compress(body))
bad[len(bad) // 2] ^= 0x55
open(f"{work}/bad.gz", "wb").write(bytes(bad))
PY
start srv 1 "$ck" --api-key s3cret
base="http://127.0.0.1:$srv_port"

# status METHOD PATH [curl args...]: the status code; the body in $work/body, headers in $work/hdr.
status() {
  local method=$1 path=$2
  shift 2
  curl -s -o "$work/body" -D "$work/hdr" -w "%{http_code}" -X "$method" "$base$path" "$@"
}
expect() { # expect WANT METHOD PATH [curl args...]
  local want=$1 got
  shift
  got=$(status "$@")
  [ "$got" = "$want" ] || fail "$1 $2 -> $got (expected $want): $(head -c 200 "$work/body")"
}
header() { grep -i "^$1:" "$work/hdr" | tr -d '\r' | cut -d' ' -f2-; }

# --- probes and the key ---
for p in /v2/health/live /v2/health/ready /v2/models/mlp/ready /v2/models/mlp/versions/20/ready /metrics; do
  expect 200 GET "$p"
done
expect 401 GET /v2/models/mlp
case "$(header WWW-Authenticate)" in Bearer*) ;; *) fail "401 without WWW-Authenticate: Bearer" ;; esac
expect 401 GET /v2/models/mlp/stats -H "Authorization: Bearer wrong"
header WWW-Authenticate | grep -q 'invalid_token' || fail "wrong key: $(header WWW-Authenticate)"
expect 401 POST /v2/repository/index
expect 404 GET /v2/models/nope/ready

# --- methods ---
expect 405 GET /v2/models/mlp/infer -H "$key"
[ "$(header Allow)" = "POST" ] || fail "405 on infer: Allow '$(header Allow)'"
expect 405 POST /v2/health/ready
[ "$(header Allow)" = "GET, HEAD" ] || fail "405 on ready: Allow '$(header Allow)'"
expect 405 DELETE /v2/models/mlp -H "$key"
for p in /v2/health/ready /v2/models/mlp /v2 /v2/models/mlp/stats /metrics; do
  got=$(curl -s -I -o /dev/null -w "%{http_code} %{size_download}" -H "$key" "$base$p")
  [ "$got" = "200 0" ] || fail "HEAD $p: $got (expected 200 and no body)"
done

# --- Content-Encoding ---
expect 200 POST /v2/models/mlp/infer -H "$key" --data-binary @"$work/body.json"
cp "$work/body" "$work/plain.out"
for enc in "gzip body.gz" "deflate body.zlib" "deflate body.raw" "GZip body.gz"; do
  set -- $enc
  expect 200 POST /v2/models/mlp/infer -H "$key" -H "Content-Encoding: $1" --data-binary @"$work/$2"
  cmp -s "$work/body" "$work/plain.out" || fail "Content-Encoding $1 ($2): another answer"
done
expect 415 POST /v2/models/mlp/infer -H "$key" -H "Content-Encoding: br" --data-binary @"$work/body.gz"
expect 413 POST /v2/models/mlp/infer -H "$key" -H "Content-Encoding: gzip" --data-binary @"$work/bomb.gz"
expect 400 POST /v2/models/mlp/infer -H "$key" -H "Content-Encoding: gzip" --data-binary @"$work/bad.gz"
expect 200 POST /v2/models/mlp/infer -H "$key" --data-binary @"$work/body.json"

# --- /v2, statistics ---
expect 200 GET /v2 -H "$key"
"$py" -c 'import json,sys; e=json.load(open(sys.argv[1]))["extensions"]; assert {"statistics","model_repository"} <= set(e), e' \
  "$work/body" || fail "/v2 extensions: $(cat "$work/body")"
for p in /v2/models/stats /v2/models/mlp/stats /v2/models/mlp/versions/20/stats; do
  expect 200 GET "$p" -H "$key"
  "$py" - "$work/body" <<'PY' || fail "$p: $(head -c 600 "$work/body")"
import json, sys
s = json.load(open(sys.argv[1]))["model_stats"]
assert len(s) == 1 and s[0]["name"] == "mlp" and s[0]["version"] == "20", s
m = s[0]
i = m["inference_stats"]
assert i["success"]["count"] == 6, i["success"]  # plain x2, gzip x2, zlib, raw
assert i["queue"]["count"] == 6 and i["compute_infer"]["count"] == 6, i
assert i["success"]["ns"] >= i["compute_infer"]["ns"] > 0, i
assert m["inference_count"] == 18 and 1 <= m["execution_count"] <= 6, m  # 3 rows each
assert m["last_inference"] > 1.6e12, m
b = m["batch_stats"]
assert b and sum(e["compute_infer"]["count"] for e in b) == m["execution_count"], b
assert all(e["batch_size"] % 3 == 0 for e in b), b
PY
done
expect 404 GET /v2/models/nope/stats -H "$key"
expect 404 GET /v2/models/mlp/versions/7/stats -H "$key"

# --- repository: index, unload, load ---
index() { # index BODY EXPECTED_PYTHON_LIST
  expect 200 POST /v2/repository/index -H "$key" -d "$1"
  "$py" -c 'import json,sys; got=json.load(open(sys.argv[1])); want=eval(sys.argv[2]); assert got == want, (got, want)' \
    "$work/body" "$2" || fail "index $1: $(cat "$work/body")"
}
ready_entry='[{"name": "mlp", "version": "20", "state": "READY", "reason": ""}]'
index '' "$ready_entry"
index '{"ready": true}' "$ready_entry"
expect 400 POST /v2/repository/index -H "$key" -d '{"ready": "yes"}'
expect 200 POST /v2/repository/models/mlp/unload -H "$key" -d '{"parameters": {"unload_dependents": false}}'
expect 503 GET /v2/models/mlp/ready
expect 200 GET /v2/health/ready
expect 503 POST /v2/models/mlp/infer -H "$key" --data-binary @"$work/body.json"
grep -q "unloaded" "$work/body" || fail "infer while unloaded: $(cat "$work/body")"
index '' '[{"name": "mlp", "version": "20", "state": "UNAVAILABLE", "reason": "unloaded"}]'
index '{"ready": true}' '[]'
expect 404 POST /v2/repository/models/nope/unload -H "$key"
expect 200 POST /v2/repository/models/mlp/load -H "$key" -d '{}'
expect 200 GET /v2/models/mlp/ready
expect 200 POST /v2/models/mlp/infer -H "$key" --data-binary @"$work/body.json"
index '' "$ready_entry"

# --- metrics ---
# value NAME LABELS: a sample's value from the parsed scrape ("" when absent).
value() { awk -v s="$1$2" '$1 == s { print $2 }' "$work/samples"; }
curl -s "$base/metrics" > "$work/metrics"
"$scrape" "$work/metrics" > "$work/samples" || fail "strict parse of /metrics: $(tail -2 "$work/samples")"
l='{model="mlp",version="20"}'
e=$(value cohort_executions_total "$l") i=$(value cohort_inferences_total "$l")
[ -n "$e" ] && [ "$e" -ge 1 ] && [ "$i" = 21 ] || fail "executions '$e', inferences '$i' (expected 21)"
[ "$(value cohort_pending_requests "$l")" = 0 ] || fail "pending: '$(value cohort_pending_requests "$l")'"
u=$(value cohort_requests_total '{model="mlp",version="20",endpoint="metadata",code="401"}')
[ "$u" = 1 ] || fail "401s on metadata: '$u'"
[ "$(value cohort_requests_total '{model="mlp",version="20",endpoint="repository",code="401"}')" = 1 ] ||
  fail "401 on the index not counted"
if "$py" -c "import prometheus_client" 2>/dev/null; then
  "$py" - "$work/metrics" <<'PY' || fail "prometheus_client's parser on /metrics"
import sys
from prometheus_client.parser import text_string_to_metric_families
names = {f.name for f in text_string_to_metric_families(open(sys.argv[1]).read()) if f.samples}
want = {"cohort_inferences", "cohort_executions", "cohort_pending_requests", "cohort_requests"}
assert want <= names, want - names
PY
fi
stop srv

# --- /metrics behind the key ---
start keyed 1 "$ck" --api-key s3cret --metrics-need-key true
base="http://127.0.0.1:$keyed_port"
expect 401 GET /metrics
expect 200 GET /metrics -H "$key"
expect 200 GET /v2/models/mlp/ready
stop keyed

# --- the GPT: token counters and inter-token latency ---
"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/gpt" model.n_layer=1 model.n_embd=64 model.context=48 \
  train.steps=10 train.batch_size=16 train.log_every=10 train.eval_every=0 optim.warmup_steps=2 \
  run.checkpoint.every=10 > "$work/gpt.txt"
start gpt 1 "$work/gpt/checkpoints"
base="http://127.0.0.1:$gpt_port"
for _ in 1 2; do
  expect 200 POST /v1/completions -d '{"model": "gpt", "prompt": "ROMEO:", "max_tokens": 8, "temperature": 0}'
done
curl -s "$base/metrics" > "$work/metrics"
"$scrape" "$work/metrics" > "$work/samples" || fail "strict parse of the GPT's /metrics"
l='{model="gpt",version="10"}'
[ "$(value cohort_prompt_tokens_total "$l")" = 12 ] ||
  fail "prompt tokens: '$(value cohort_prompt_tokens_total "$l")' (expected 2 x 6)"
[ "$(value cohort_generated_tokens_total "$l")" = 16 ] ||
  fail "generated tokens: '$(value cohort_generated_tokens_total "$l")' (expected 16)"
[ "$(value cohort_inter_token_latency_seconds_count "$l")" = 14 ] ||
  fail "inter-token latencies: '$(value cohort_inter_token_latency_seconds_count "$l")' (expected 2 x 7)"
[ "$(value cohort_time_to_first_token_seconds_count "$l")" = 2 ] || fail "time to first token"
expect 200 GET /v2/models/gpt/stats
"$py" -c 'import json,sys; m=json.load(open(sys.argv[1]))["model_stats"][0]; assert m["inference_stats"]["success"]["count"] == 2 and m["execution_count"] == 16, m' \
  "$work/body" || fail "GPT statistics: $(cat "$work/body")"
stop gpt

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "triton extensions: ok"
