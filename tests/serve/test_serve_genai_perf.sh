#!/usr/bin/env bash
# NVIDIA's genai-perf, unmodified (from PyPI, driving the perf_analyzer binary of the
# tritonclient[http] 2.47.0 wheel), against a tiny GPT, and the server's /metrics read by
# prometheus_client (from PyPI):
#   - a byte-level Hugging Face tokenizer made here (byte_tokenizer.py; no hub access), so that
#     genai-perf counts tokens as the server does;
#   - `genai-perf profile --endpoint-type completions --streaming` on a server without a key,
#     `--endpoint-type chat --streaming` with --header 'Authorization: Bearer KEY' on a keyed
#     one, concurrency 2, N requests of 16 synthetic input tokens and 8 output tokens: it
#     completes, and its export JSON has every request, a non-zero request throughput,
#     time to first token and inter-token latency, 16 input tokens a request;
#   - /metrics of both servers through prometheus_client (prom_check.py): every family parses,
#     the operator's series exist (inference and execution counts, pending gauge, version
#     label, prompt and generated token counters, inter-token latency histogram), the token
#     counts are genai-perf's exactly (N x 16 prompt tokens, N x 8 generated, N x 7 inter-token
#     latencies for the completions), and the keyed server counted the 401 it gave.
# Skips (77) when PyPI cannot be reached or perf_analyzer's libraries cannot be had.
# The venv (about 1 GB: genai-perf pulls transformers, pandas, pyarrow, scipy; no torch) is kept
# in $COHORT_VENV_DIR (the build directory's client-venvs under ctest): pip runs once.
# Usage: test_serve_genai_perf.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/client_venv.sh"
serve_init genai_perf

client_venv "${COHORT_VENV_DIR:-$work}" "genai-perf==0.0.16" "prometheus_client==0.26.0" \
  "${perf_analyzer_packages[@]}" ||
  { echo "SKIP: no genai-perf venv"; exit 77; }
perf_analyzer_env || { echo "SKIP: perf_analyzer cannot run here"; exit 77; }
export PATH=$venv/bin:$PATH HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
vpy=$venv/bin/python
"$vpy" "$here/byte_tokenizer.py" "$work/tokenizer"

key="gp-key-$RANDOM$RANDOM"
n=16 # requests per run
gpt_checkpoint "$work/gpt"
start open 1 "$work/gpt/checkpoints" --model-name tiny --max-batch-size 4
start keyed 1 "$work/gpt/checkpoints" --model-name tiny --max-batch-size 4 --api-key "$key"

# profile NAME PORT ENDPOINT_TYPE [genai-perf options...]: one streamed run, artifacts in
# $work/NAME, then the checks of its export JSON.
profile() {
  local name=$1 port=$2 type=$3 rc=0
  shift 3
  timeout 240 genai-perf profile -m tiny --endpoint-type "$type" --streaming -u "localhost:$port" \
    --concurrency 2 --num-dataset-entries 8 --request-count "$n" --warmup-request-count 0 \
    --synthetic-input-tokens-mean 16 --synthetic-input-tokens-stddev 0 \
    --output-tokens-mean 8 --output-tokens-stddev 0 --random-seed 1 \
    --tokenizer "$work/tokenizer" --artifact-dir "$work/$name" "$@" \
    > "$work/$name.txt" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: genai-perf $name: exit $rc"; tail -30 "$work/$name.txt"; exit 1
  fi
  "$vpy" - "$work/$name" "$name" "$n" <<'PY'
import glob, json, sys
art, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
found = glob.glob(f"{art}/**/profile_export_genai_perf.json", recursive=True)
assert len(found) == 1, f"{name}: export JSON files {found}"
d = json.load(open(found[0]))
avg = lambda k: d[k]["avg"]
assert avg("request_count") == n, f"{name}: {avg('request_count')} requests, expected {n}"
for k in ("request_throughput", "time_to_first_token", "inter_token_latency",
          "output_token_throughput", "request_latency"):
    assert avg(k) > 0, f"{name}: {k} {d[k]}"
assert d["input_sequence_length"]["avg"] == 16, d["input_sequence_length"]
assert d["output_sequence_length"]["avg"] >= 8, d["output_sequence_length"]
assert d["time_to_first_token"]["max"] <= d["request_latency"]["max"], d
print(f"genai-perf {name}: {avg('request_throughput'):.1f} requests/s, time to first token "
      f"{avg('time_to_first_token'):.2f} ms (p99 {d['time_to_first_token']['p99']:.2f}), "
      f"inter-token {avg('inter_token_latency'):.3f} ms, "
      f"{avg('output_token_throughput'):.0f} output tokens/s")
PY
}

profile completions "$open_port" completions
profile chat "$keyed_port" chat --header "Authorization:Bearer $key"

# A refused request for the 401 counter, then both servers' /metrics.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' \
  "localhost:$keyed_port/v1/completions")
[ "$code" = 401 ] || { echo "FAIL: no key -> $code, expected 401"; exit 1; }
curl -sf "localhost:$open_port/metrics" > "$work/open.prom"
curl -sf "localhost:$keyed_port/metrics" > "$work/keyed.prom"
"$vpy" "$here/prom_check.py" "$work/open.prom" tiny --requests "completions=$n" \
  --prompt $((n * 16)) --generated $((n * 8)) --itl $((n * 7))
"$vpy" "$here/prom_check.py" "$work/keyed.prom" tiny --generated $((n * 8)) --itl $((n * 7)) \
  --min-401 1
stop open
stop keyed
echo "genai-perf and prometheus_client: ok"
