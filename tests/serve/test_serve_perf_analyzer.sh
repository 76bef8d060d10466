#!/usr/bin/env bash
# Triton's perf_analyzer, unmodified (the binary in the tritonclient[http] 2.47.0 wheel from
# PyPI, with nvidia-cuda-runtime-cu12's libcudart and Debian's libb64-0d), against a tiny MLP
# and a tiny GPT, each served without and with --api-key:
#   - it reads the model's metadata and /config, sends binary tensor data (its default; one run
#     sends JSON tensors), sweeps concurrency 1..8 with short windows and finishes (exit 0);
#     every concurrency level of its CSV (-f) has a non-zero throughput;
#   - zero errors: the server's statistics count no failed request and /metrics no infer
#     answer other than 200;
#   - the GPT's input_ids come from a JSON --input-data file (valid token ids of several
#     lengths; perf_analyzer's random INT32 data would not be token ids);
#   - with the key: -H 'Authorization: Bearer KEY' works, and without it perf_analyzer stops
#     with the 401's message;
#   - over HTTPS (--ssl-https-* options) when this cohort has --tls-cert.
# Skips (77) when PyPI cannot be reached or perf_analyzer's libraries cannot be had.
# The venv is kept in $COHORT_VENV_DIR (the build directory's client-venvs under ctest).
# Usage: test_serve_perf_analyzer.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
here=$(dirname "$0")
. "$here/lib.sh"
. "$here/client_venv.sh"
serve_init perf_analyzer

client_venv "${COHORT_VENV_DIR:-$work}" "${perf_analyzer_packages[@]}" ||
  { echo "SKIP: no tritonclient venv"; exit 77; }
perf_analyzer_env || { echo "SKIP: perf_analyzer cannot run here"; exit 77; }

key="pa-key-$RANDOM$RANDOM"
mlp_checkpoint "$work/mlp"
gpt_checkpoint "$work/gpt"
start mlp 1 "$work/mlp/checkpoints"
start mlpk 1 "$work/mlp/checkpoints" --api-key "$key"
start gpt 1 "$work/gpt/checkpoints" --max-batch-size 4
start gptk 1 "$work/gpt/checkpoints" --max-batch-size 4 --api-key "$key"

# Token ids below the vocabulary (256), 4 prompts of 8..20 tokens (the context is 64).
"$py" - "$work/gpt_input.json" <<'PY'
import json, sys
data = [{"input_ids": {"content": [(31 * i + 7 * j) % 256 for j in range(8 + 4 * i)],
                       "shape": [8 + 4 * i]}} for i in range(4)]
json.dump({"data": data}, open(sys.argv[1], "w"))
PY

# pa NAME MODEL PORT CONCURRENCY_RANGE [perf_analyzer options...]: one run, its CSV in
# $work/NAME.csv and its output in $work/NAME.txt, then the checks. Short time windows and a
# loose stability bound: this measures that the sweep completes, not the numbers (a loaded CI
# machine never gives three windows within 10%).
pa() {
  local name=$1 model=$2 port=$3 range=$4 rc=0 url=localhost:$3
  shift 4
  [ "${tls_pa[*]+set}" ] && url=https://localhost:$port
  timeout 120 "$perf_analyzer" -m "$model" -u "$url" -i http --concurrency-range "$range" \
    -p 300 -s 1000 --max-trials 5 -f "$work/$name.csv" ${tls_pa[@]+"${tls_pa[@]}"} "$@" \
    > "$work/$name.txt" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: perf_analyzer $name: exit $rc"; tail -20 "$work/$name.txt"; exit 1
  fi
  if grep -qiE "had error|failed|error:" "$work/$name.txt"; then
    echo "FAIL: perf_analyzer $name reported errors:"
    grep -iE "had error|failed|error:" "$work/$name.txt" | head
    exit 1
  fi
  "$py" - "$work/$name.csv" "$range" "$name" <<'PY'
import csv, sys
path, rng, name = sys.argv[1:4]
lo, hi, step = (int(v) for v in rng.split(":"))
rows = {int(r["Concurrency"]): r for r in csv.DictReader(open(path))}
want = set(range(lo, hi + 1, step))
assert set(rows) == want, f"{name}: concurrency levels {sorted(rows)}, expected {sorted(want)}"
for c, r in sorted(rows.items()):
    tput, p99 = float(r["Inferences/Second"]), float(r["p99 latency"])
    assert tput > 0 and p99 > 0, f"{name}: concurrency {c}: {r}"
print(f"perf_analyzer {name}: " + ", ".join(
    f"c={c} {float(r['Inferences/Second']):.0f}/s p99 {float(r['p99 latency']) / 1e3:.1f} ms"
    for c, r in sorted(rows.items())))
PY
}

# no_errors NAME MODEL [curl options...]: the server's statistics count successes and no
# failure; /metrics no infer answer but 200s.
no_errors() {
  local port_var=${1}_port model=$2
  shift 2
  local base=http://localhost:${!port_var}
  [ "${tls_pa[*]+set}" ] && base=https://localhost:${!port_var}
  curl -sf "$@" "$base/v2/models/$model/stats" > "$work/stats.json"
  curl -sf "$@" "$base/metrics" > "$work/metrics.txt"
  "$py" - "$work/stats.json" "$work/metrics.txt" <<'PY'
import json, re, sys
st = json.load(open(sys.argv[1]))["model_stats"][0]
ok, fail = st["inference_stats"]["success"]["count"], st["inference_stats"]["fail"]["count"]
assert ok > 0 and fail == 0, f"statistics: {ok} successes, {fail} failures"
bad = [l for l in open(sys.argv[2]) if l.startswith("cohort_requests_total{")
       and 'endpoint="infer"' in l and 'code="200"' not in l]
assert not bad, f"non-200 infer answers: {bad}"
PY
}

pa mlp mlp "$mlp_port" 1:8:1
pa gpt gpt "$gpt_port" 1:8:1 --input-data "$work/gpt_input.json"
auth=(-H "Authorization: Bearer $key")
pa mlpk mlp "$mlpk_port" 1:8:7 "${auth[@]}" --input-tensor-format json --output-tensor-format json
pa gptk gpt "$gptk_port" 1:8:7 "${auth[@]}" --input-data "$work/gpt_input.json"
no_errors mlp mlp
no_errors gpt gpt
no_errors mlpk mlp "${auth[@]}"
no_errors gptk gpt "${auth[@]}"

# Without the key: perf_analyzer stops at its first request, with the server's message.
rc=0
timeout 60 "$perf_analyzer" -m mlp -u "localhost:$mlpk_port" -i http --concurrency-range 1 -p 300 \
  > "$work/nokey.txt" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "API key" "$work/nokey.txt" ||
  { echo "FAIL: perf_analyzer without the key: exit $rc"; cat "$work/nokey.txt"; exit 1; }
echo "perf_analyzer without the key: exit $rc, $(grep -m1 "API key" "$work/nokey.txt")"

stop mlp
stop mlpk
stop gpt
stop gptk

# HTTPS, when this cohort serves it (--tls-cert; lib.sh's tls_pair makes the certificate and
# start() waits over HTTPS once tls_curl is set): the keyed MLP and GPT again, perf_analyzer
# verifying the server's certificate against it.
if "$cohort" serve --help 2>&1 | grep -q -- --tls-cert && declare -F tls_pair > /dev/null &&
   tls_pair srv; then
  tls_curl=(--cacert "$work/srv.pem")
  tls=(--tls-cert "$work/srv.pem" --tls-key "$work/srv.key")
  start mlps 1 "$work/mlp/checkpoints" --api-key "$key" "${tls[@]}"
  start gpts 1 "$work/gpt/checkpoints" --max-batch-size 4 --api-key "$key" "${tls[@]}"
  tls_pa=(--ssl-https-ca-certificates-file "$work/srv.pem" --ssl-https-verify-peer 1
          --ssl-https-verify-host 2)
  pa mlps mlp "$mlps_port" 1:8:7 "${auth[@]}"
  pa gpts gpt "$gpts_port" 1:8:7 "${auth[@]}" --input-data "$work/gpt_input.json"
  no_errors mlps mlp "${tls_curl[@]}" "${auth[@]}"
  no_errors gpts gpt "${tls_curl[@]}" "${auth[@]}"
  stop mlps
  stop gpts
else
  echo "(no --tls-cert in this cohort, or no openssl: HTTPS not tested)"
fi
echo "perf_analyzer: ok"
