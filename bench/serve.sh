#!/usr/bin/env bash
# Serving: `cohort serve` against PyTorch on the same weights behind TorchServe 0.12
# (bench/torchserve_handler.py), measured in the same invocation with the same client.
#
#   bench/serve.sh BUILD_DIR [--duration S] [--concurrency "1 4 16 64"] [--gen-concurrency "1 8 32"]
#                  [--only "mlp gpt overhead gen pa"] [--no-tp] [--no-peer] [--gen-batch N]
#
# Data and checkpoints are made once into BUILD_DIR/benchdata (reused later): the digits MLP
# (configs/mlp-digits.yaml, 300 steps), a one-layer MLP (model.depth=0, 10 steps: the
# per-request overhead), gpt-tiny (configs/gpt-tiny.yaml, 100 steps, model.context=128 so that
# 64 new tokens fit after a prompt), all trained with `mpirun -n 2 cohort train`.
# Workloads (KServe V2 infer, hey -z S -c C -m POST -T application/json -D body.json URL):
#   mlp       1 row of 64 digits features -> 10 logits + label
#   gpt       16 input_ids -> next-token logits [256] + next_token (one prefill pass)
#   overhead  the one-layer MLP at concurrency 1, batching off: mean latency
#   gen       /v1/completions, prompt "ROMEO:", max_tokens 64, temperature 0, at concurrency
#             --gen-concurrency (a threaded http.client client): tokens/s (completion_tokens
#             summed / wall time, non-streaming) and time to first token ("stream": true, time
#             to the first SSE data event), servers --max-batch-size --gen-batch (32)
#   pa        Triton's perf_analyzer (tritonclient[http] 2.47.0 from PyPI in a venv, kept in
#             BUILD_DIR/client-venvs like the client tests'; needs Debian's libb64-0d) against
#             cohort-b (below) with the MLP and the GPT (16 input_ids), binary tensor data,
#             --concurrency-range 1:8: throughput and p50/p99 of its CSV; 3 windows of
#             DURATION/3 s per concurrency, no stability gate (-s 1000: a shared machine)
# Servers, started once per workload and measured interleaved (for each concurrency, each
# server in turn, so that a busy spell of the shared machine hits them alike):
#   cohort-b    1 rank, --max-batch-size 32 --max-queue-delay-us 500 (dynamic batching on)
#   cohort-nob  1 rank, --max-batch-size 1 --max-queue-delay-us 0    (off)
#   peer-b      TorchServe, batch_size 32, max_batch_delay 1 ms (its unit is ms), 1 worker
#   peer-nob    TorchServe, batch_size 1, 1 worker
#   cohort2-b   2 ranks (tensor parallel), batching on (an extra row; not in the ratios)
# and for gen: cohort-gen (1 rank, --max-batch-size 32: continuous batching), cohort2-gen (2
# ranks), peer-gen (TorchServe batch_size 32, max_batch_delay 5 ms: static batching, the
# requests of a batch decode in lockstep with a KV cache; streaming by intermediate responses).
# The peer: one TorchServe (Java frontend) with one Python worker per model, each worker
# torch.set_num_threads(1), OMP_WAIT_POLICY=PASSIVE, OPENBLAS_CORETYPE = the kernels cohort
# reports; logging at WARN and metrics in memory (its defaults log ~20 lines per request).
# cohort: as users run it (binds its rank to the cores, BLAS threads = its cores). Before every measurement the script waits until no other benchmark runs (pgrep for
# gpt_ddp.sh, gpt_generate.sh, mlp_ddp.sh, ckpt.sh) and records the load average.
# Output: Markdown tables; raw hey output and logs in BUILD_DIR/benchruns-serve/.
set -euo pipefail

USAGE_LINES=2,6
. "$(dirname "$0")/common/bench.sh"
DURATION=10
CONCURRENCY="1 4 16 64"
GEN_CONCURRENCY="1 8 32"
GEN_BATCH=32
ONLY="mlp gpt overhead gen pa"
NO_TP=0
NO_PEER=0 # --no-peer: cohort only (no TorchServe venv; the ratio columns stay empty)
bench_args "duration concurrency gen-concurrency gen-batch only no-tp! no-peer!" "$@"
CONC=$CONCURRENCY GEN_CONC=$GEN_CONCURRENCY TP=$((1 - NO_TP))

bench_setup serve.sh benchruns-serve
command -v hey > /dev/null || { echo "serve.sh: hey is not installed (apt-get install hey)" >&2; exit 1; }
VENV=$BUILD/benchvenv
RESULTS=$RUNS/results.tsv
: > "$RESULTS"
OTHERS='gpt_ddp.sh|gpt_generate.sh|mlp_ddp.sh|ckpt.sh'

# Waits until no other benchmark runs (another engineer's, on this shared machine).
wait_idle() {
  local said=0
  while pgrep -f "$OTHERS" > /dev/null; do
    if [ $said -eq 0 ]; then
      echo "   (waiting for another benchmark to finish: $(pgrep -af "$OTHERS" | head -1 | cut -c1-80))"
      said=1
    fi
    sleep 5
  done
}

pids=()
TS_STARTED=0
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
  [ $TS_STARTED -eq 1 ] && (cd "$RUNS" && "$VENV/bin/torchserve" --stop > /dev/null 2>&1) || true
  for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null || true; done
}
trap cleanup EXIT

echo "# serve.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(bench_machine)"
echo "# build $BUILD ($(bench_build_type)), cohort binary of $(date -u -r "$COHORT" +%Y-%m-%dT%H:%M:%SZ) (source HEAD now $(cd "$SRC" && git rev-parse --short HEAD 2>/dev/null)); hey $(dpkg-query -W -f '${Version}' hey 2>/dev/null)"
echo "# duration ${DURATION} s per point; concurrency $CONC; generation concurrency $GEN_CONC (--max-batch-size $GEN_BATCH)"
echo "# load average at start: $(bench_load)"

# --- data and checkpoints (once) ---------------------------------------------------------------
wait_idle
DIGITS=$DATA/digits.h5
[ -f "$DIGITS" ] || "$COHORT" data csv "$SRC/examples/digits/digits.csv.gz" "$DIGITS" --val-fraction 0.2 > /dev/null
bench_tokens > /dev/null
train() { # name config overrides...
  local name=$1 cfg=$2
  shift 2
  local dir=$DATA/serve-$name
  if [ ! -f "$dir/checkpoints/latest" ]; then
    echo "## training $name (load $(bench_load))"
    rm -rf "$dir"
    echo "+ mpirun -n 2 cohort train $cfg $* run.dir=$dir" > "$DATA/serve-$name-train.log"
    "${MPIRUN[@]}" -n 2 "$COHORT" train "$cfg" "$@" "run.dir=$dir" --verbose >> "$DATA/serve-$name-train.log" 2>&1 \
      || { tail -20 "$DATA/serve-$name-train.log"; echo "serve.sh: training $name failed" >&2; exit 1; }
  fi
}
train mlp "$SRC/configs/mlp-digits.yaml" "data.path=$DIGITS" train.steps=300 run.checkpoint.every=300
train lin "$SRC/configs/mlp-digits.yaml" "data.path=$DIGITS" model.depth=0 train.steps=10 \
  run.checkpoint.every=10 optim.warmup_steps=0 train.eval_every=0
train gpt "$SRC/configs/gpt-tiny.yaml" "data.path=$TOKENS" train.steps=100 run.checkpoint.every=100 \
  train.eval_every=1000 model.context=128
declare -A CK=([mlp]=$DATA/serve-mlp/checkpoints [lin]=$DATA/serve-lin/checkpoints [gpt]=$DATA/serve-gpt/checkpoints)

CORETYPE=${OPENBLAS_CORETYPE:-$(sed -n 's/.*OpenBLAS kernels \([A-Za-z0-9_]*\).*/\1/p' "$DATA/serve-mlp-train.log" | head -1)}
echo "# OpenBLAS kernels: ${CORETYPE:-unknown} (cohort's choice; given to torch as OPENBLAS_CORETYPE)"
echo "# $("$PY" -c 'import torch; print("torch", torch.__version__)'), $(java -version 2>&1 | head -1)"

# Request bodies: a validation row of the digits; 16 validation tokens of Shakespeare.
"$PY" - "$DIGITS" "$TOKENS" "$RUNS" <<'EOF'
import json, sys, h5py
digits, tokens, runs = sys.argv[1:4]
x = h5py.File(digits, "r")["val/x"][:1]
json.dump({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                       "data": [float(v) for v in x.flatten()]}]}, open(f"{runs}/body-mlp.json", "w"))
json.dump({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                       "data": [float(v) for v in x.flatten()]}]}, open(f"{runs}/body-lin.json", "w"))
t = h5py.File(tokens, "r")["val/tokens"][1000:1016]
json.dump({"inputs": [{"name": "input_ids", "shape": [16], "datatype": "INT32",
                       "data": [int(v) for v in t]}]}, open(f"{runs}/body-gpt.json", "w"))
EOF

# --- servers -----------------------------------------------------------------------------------
declare -A URL PID PORTFILE
# start_cohort LABEL MODEL RANKS MAX_BATCH DELAY_US: a `cohort serve` in the background.
start_cohort() {
  local label=$1 model=$2 ranks=$3 mb=$4 us=$5
  local pf=$RUNS/$label.port
  rm -f "$pf"
  echo "+ mpirun -n $ranks cohort serve ${CK[$model]} --port 0 --port-file $pf --max-batch-size $mb --max-queue-delay-us $us --max-queue-size 1024" > "$RUNS/$label.log"
  "${MPIRUN[@]}" -n "$ranks" "$COHORT" serve "${CK[$model]}" --port 0 --port-file "$pf" \
    --max-batch-size "$mb" --max-queue-delay-us "$us" --max-queue-size 1024 >> "$RUNS/$label.log" 2>&1 &
  PID[$label]=$!
  pids+=($!)
  PORTFILE[$label]=$pf
  for _ in $(seq 1 300); do
    [ -s "$pf" ] && curl -sf "localhost:$(cat "$pf")/v2/health/ready" > /dev/null && break
    kill -0 "${PID[$label]}" 2> /dev/null || { cat "$RUNS/$label.log"; echo "serve.sh: $label died" >&2; exit 1; }
    sleep 0.1
  done
  local name=$model
  [ "$model" = lin ] && name=mlp
  URL[$label]="http://127.0.0.1:$(cat "$pf")/v2/models/$name/infer"
  [ "$model" = gpt ] && URL[$label-gen]="http://127.0.0.1:$(cat "$pf")/v1/completions"
  return 0
}
# The rank processes of a server (pattern of tests/serve/test_serve_load.sh), SIGTERM to them.
stop_cohort() {
  local label=$1 exe p rk=()
  exe=$(readlink -f "$COHORT")
  for p in $(pgrep -f -- "--port-file ${PORTFILE[$label]}"); do
    [ "$(readlink -f "/proc/$p/exe" 2> /dev/null)" = "$exe" ] && rk+=("$p")
  done
  [ ${#rk[@]} -gt 0 ] && kill -TERM "${rk[@]}"
  local rc=0
  wait "${PID[$label]}" || rc=$?
  grep -q "server stopped" "$RUNS/$label.log" && [ $rc -eq 0 ] \
    || echo "   WARNING: $label: exit $rc; $(tail -2 "$RUNS/$label.log" | tr '\n' ' ')"
}


TS_PORT=""
TS_MPORT=""
# TorchServe: one frontend; each registered model (LABEL) gets one Python worker.
start_torchserve() {
  [ $TS_STARTED -eq 1 ] && return 0
  if [ ! -x "$VENV/bin/torchserve" ]; then
    echo "## making the TorchServe venv $VENV"
    "$PY" -m venv --system-site-packages "$VENV"
    "$VENV/bin/pip" install -q torchserve torch-model-archiver > "$RUNS/pip.log" 2>&1 \
      || { cat "$RUNS/pip.log"; echo "serve.sh: pip install torchserve failed" >&2; exit 1; }
  fi
  local store=$RUNS/model-store
  rm -rf "$store"
  mkdir -p "$store"
  local m
  for m in "${!CK[@]}"; do
    echo "{\"ckpt\": \"${CK[$m]}\"}" > "$RUNS/peer-$m.json"
    ( cd "$RUNS" && cp "peer-$m.json" peer.json && "$VENV/bin/torch-model-archiver" --model-name "$m" \
        --version 1.0 --handler "$SRC/bench/torchserve_handler.py" --extra-files "peer.json,$SRC/bench/cohort_peer.py" \
        --export-path "$store" --force )
  done
  # Quiet TorchServe: by default it writes ~20 log lines per request (access log, metrics in
  # "log" mode, the worker's "Backend received inference", DEBUG lines of the frontend), which
  # cost it a good part of its throughput here. Tuned: WARN and above only, metrics kept in
  # memory (Prometheus mode, like cohort's /metrics); the handler lowers the worker's logging.
  cat > "$RUNS/ts-log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
  <Appenders>
    <File name="ts_log" fileName="$RUNS/logs/ts_log.log" append="true">
      <PatternLayout pattern="%d{ISO8601} [%-5p] %t %c - %m%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="warn"><AppenderRef ref="ts_log"/></Root>
  </Loggers>
</Configuration>
EOF
  TS_PORT=$(free_port)
  TS_MPORT=$(free_port)
  cat > "$RUNS/ts.properties" <<EOF
inference_address=http://127.0.0.1:$TS_PORT
management_address=http://127.0.0.1:$TS_MPORT
metrics_address=http://127.0.0.1:$(free_port)
disable_system_metrics=true
metrics_mode=prometheus
default_workers_per_model=1
job_queue_size=1024
default_response_timeout=120
install_py_dep_per_model=false
EOF
  echo "+ torchserve --start --ncs --disable-token-auth --enable-model-api --model-store $store --ts-config $RUNS/ts.properties --log-config $RUNS/ts-log4j2.xml" > "$RUNS/torchserve.log"
  ( cd "$RUNS" && OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE OPENBLAS_CORETYPE=$CORETYPE \
      PATH="$VENV/bin:$PATH" "$VENV/bin/torchserve" --start --ncs --disable-token-auth --enable-model-api \
      --model-store "$store" --ts-config "$RUNS/ts.properties" --log-config "$RUNS/ts-log4j2.xml" >> "$RUNS/torchserve.log" 2>&1 )
  for _ in $(seq 1 300); do
    curl -sf "localhost:$TS_PORT/ping" > /dev/null && break
    sleep 0.2
  done
  curl -sf "localhost:$TS_PORT/ping" > /dev/null || { cat "$RUNS/torchserve.log"; echo "serve.sh: TorchServe did not start" >&2; exit 1; }
  TS_STARTED=1
}
# start_peer LABEL MODEL MAX_BATCH DELAY_MS
start_peer() {
  local label=$1 model=$2 mb=$3 ms=$4
  start_torchserve
  curl -sf -X POST "localhost:$TS_MPORT/models?url=$model.mar&model_name=$label&batch_size=$mb&max_batch_delay=$ms&initial_workers=1&synchronous=true" \
    >> "$RUNS/torchserve.log" || { tail -30 "$RUNS/torchserve.log"; echo "serve.sh: registering $label failed" >&2; exit 1; }
  URL[$label]="http://127.0.0.1:$TS_PORT/predictions/$label"
  URL[$label-gen]="http://127.0.0.1:$TS_PORT/predictions/$label"
}
stop_peer() {
  curl -sf -X DELETE "localhost:$TS_MPORT/models/$1" >> "$RUNS/torchserve.log" || true
}

# --- measurements ------------------------------------------------------------------------------
# check LABEL BODY: one request must answer 200 with the expected outputs.
check() {
  local out
  out=$(curl -s -w ' HTTP%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary "@$2" "${URL[$1]}")
  case "$out" in
    *'"outputs"'*HTTP200) ;;
    *) echo "serve.sh: $1 (${URL[$1]}) answered: $(echo "$out" | cut -c1-300)" >&2; exit 1 ;;
  esac
}
# agree A B BODY: the same request to two servers: max |logits difference| and the same label.
agree() {
  "$PY" - "${URL[$1]}" "${URL[$2]}" "$3" "$1" "$2" <<'EOF'
import json, sys, urllib.request
a, b, body, la, lb = sys.argv[1:6]
def ask(url):
    req = urllib.request.Request(url, open(body, "rb").read(), {"Content-Type": "application/json"})
    return {o["name"]: o["data"] for o in json.load(urllib.request.urlopen(req))["outputs"]}
x, y = ask(a), ask(b)
d = max(abs(u - v) for u, v in zip(x["logits"], y["logits"]))
lab = "label" if "label" in x else "next_token"
print(f"   same weights: {la} vs {lb}: max |logit difference| {d:.2e} over {len(x['logits'])} logits, "
      f"{lab} {x[lab]} vs {y[lab]}")
if d > 1e-3 or x[lab] != y[lab]:
    sys.exit(f"serve.sh: {la} and {lb} disagree")
EOF
}
# agree_gen A B: greedy completions of both servers, compared.
agree_gen() {
  "$PY" - "${URL[$1-gen]}" "${URL[$2-gen]}" "$1" "$2" <<'EOF'
import json, sys, urllib.request
a, b, la, lb = sys.argv[1:5]
body = json.dumps({"model": "gpt", "prompt": "ROMEO:", "max_tokens": 64, "temperature": 0}).encode()
def ask(url):
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["choices"][0]["text"]
x, y = ask(a), ask(b)
k = 0
while k < min(len(x), len(y)) and x[k] == y[k]:
    k += 1
print(f"   greedy text: {la} and {lb} agree on {k} of {len(x)} / {len(y)} characters: {x[:40]!r}")
EOF
}
# measure WORKLOAD LABEL C BODY: hey for DURATION seconds; a line in results.tsv.
measure() {
  local wl=$1 label=$2 c=$3 body=$4
  local out=$RUNS/hey-$wl-$label-c$c.txt
  wait_idle
  local l0 l1
  l0=$(bench_load)
  echo "+ hey -z ${DURATION}s -c $c -m POST -T application/json -D $body ${URL[$label]}" > "$out"
  hey -z "${DURATION}s" -c "$c" -m POST -T application/json -D "$body" "${URL[$label]}" >> "$out" 2>&1 || true
  l1=$(bench_load)
  "$PY" - "$out" "$wl" "$label" "$c" "${l0%% *}" "${l1%% *}" >> "$RESULTS" <<'EOF'
import re, sys
path, wl, label, c, l0, l1 = sys.argv[1:7]
t = open(path).read()
def num(pat, scale=1.0):
    m = re.search(pat, t)
    return float(m.group(1)) * scale if m else float("nan")
rps = num(r"Requests/sec:\s+([\d.]+)")
mean = num(r"Average:\s+([\d.]+) secs", 1e3)
p50 = num(r"50% in ([\d.]+) secs", 1e3)
p99 = num(r"99% in ([\d.]+) secs", 1e3)
codes = dict((int(k), int(v)) for k, v in re.findall(r"\[(\d+)\]\s+(\d+) responses", t))
ok = codes.get(200, 0)
errs = sum(v for k, v in codes.items() if k != 200)
if "Error distribution" in t:
    errs += sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s", t.split("Error distribution")[1], re.M))
print(f"{wl}\t{label}\t{c}\t{rps:.1f}\t{p50:.3f}\t{p99:.3f}\t{mean:.3f}\t{ok}\t{errs}\t{l0}\t{l1}\t{1e3 * int(c) / rps:.4f}")
EOF
  echo "   $(tail -1 "$RESULTS" | awk -F'\t' '{printf "%-8s %-10s c=%-3s %9s req/s  p50 %8s ms  p99 %8s ms  mean %8s ms  ok %s  errors %s  load %s->%s", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11}')"
}

# The generation client: threads in a closed loop for S seconds (http.client, one connection per
# request). plain: tokens/s = completion_tokens summed / wall time (start to the last answer).
# stream: time to the first SSE data event of each request.
GENCLIENT=$RUNS/gen_client.py
cat > "$GENCLIENT" <<'EOF'
import http.client, json, sys, threading, time, urllib.parse
url, conc, dur, mode, max_tokens = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
u = urllib.parse.urlsplit(url)
body = json.dumps({"model": sys.argv[6], "prompt": "ROMEO:", "max_tokens": max_tokens,
                   "temperature": 0, "stream": mode == "stream"})
lock = threading.Lock()
res = {"tokens": 0, "requests": 0, "errors": 0, "ttft": [], "lat": [], "errmsg": ""}
t_start = time.perf_counter()
stop = t_start + dur
def one():
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    t0 = time.perf_counter()
    c.request("POST", u.path, body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    if mode == "plain":
        j = json.loads(r.read())
        return j["usage"]["completion_tokens"], None, time.perf_counter() - t0
    ttft, ntext, done = None, 0, False
    while True:
        line = r.readline()
        if not line:
            break
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        j = json.loads(data)
        txt = j["choices"][0]["text"]
        if ttft is None and txt:
            ttft = time.perf_counter() - t0
        ntext += len(txt.encode("latin-1", errors="replace"))
    if not done:
        raise RuntimeError("stream ended without [DONE]")
    return ntext, ttft, time.perf_counter() - t0
def worker():
    while time.perf_counter() < stop:
        try:
            n, ttft, lat = one()
            with lock:
                res["tokens"] += n
                res["requests"] += 1
                res["lat"].append(lat)
                if ttft is not None:
                    res["ttft"].append(ttft)
        except Exception as e:  # noqa: BLE001
            with lock:
                res["errors"] += 1
                res["errmsg"] = str(e)[:200]
            time.sleep(0.05)
ts = [threading.Thread(target=worker) for _ in range(conc)]
[t.start() for t in ts]
[t.join() for t in ts]
wall = time.perf_counter() - t_start
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] * 1e3 if v else float("nan")
print(json.dumps({"tokens": res["tokens"], "requests": res["requests"], "errors": res["errors"],
                  "wall": wall, "tok_s": res["tokens"] / wall, "ttft_p50_ms": pct(res["ttft"], 0.5),
                  "ttft_p99_ms": pct(res["ttft"], 0.99), "lat_p50_ms": pct(res["lat"], 0.5),
                  "errmsg": res["errmsg"]}))
EOF
# measure_gen LABEL C: plain for DURATION s, stream for DURATION/2 s; a line in results.tsv.
measure_gen() {
  local label=$1 c=$2 model=gpt
  local out=$RUNS/gen-$label-c$c.txt
  wait_idle
  local l0
  l0=$(bench_load)
  echo "+ $PY gen_client.py ${URL[$label-gen]} $c $DURATION plain 64" > "$out"
  "$PY" "$GENCLIENT" "${URL[$label-gen]}" "$c" "$DURATION" plain 64 "$model" >> "$out"
  echo "+ $PY gen_client.py ${URL[$label-gen]} $c $((DURATION / 2)) stream 64" >> "$out"
  "$PY" "$GENCLIENT" "${URL[$label-gen]}" "$c" "$((DURATION / 2))" stream 64 "$model" >> "$out"
  "$PY" - "$out" "$label" "$c" "${l0%% *}" "$(bench_load | cut -d' ' -f1)" >> "$RESULTS" <<'EOF'
import json, sys
path, label, c, l0, l1 = sys.argv[1:6]
p, s = [json.loads(l) for l in open(path) if l.startswith("{")]
print(f"gen\t{label}\t{c}\t{p['tok_s']:.1f}\t{s['ttft_p50_ms']:.3f}\t{s['ttft_p99_ms']:.3f}\t{p['lat_p50_ms']:.3f}"
      f"\t{p['requests']}+{s['requests']}\t{p['errors'] + s['errors']}\t{l0}\t{l1}\t{s['tok_s']:.1f}\t{p['errmsg'] or s['errmsg']}")
EOF
  echo "   $(tail -1 "$RESULTS" | awk -F'\t' '{printf "gen      %-10s c=%-3s %8s tok/s  TTFT p50 %8s ms  p99 %8s ms  request p50 %8s ms  requests %s  errors %s  load %s->%s %s", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13}')"
}

# run_v2 WORKLOAD MODEL: the five servers, every concurrency, interleaved.
run_v2() {
  local wl=$1 model=$2 labels=(cohort-b cohort-nob peer-b peer-nob)
  echo "## $wl: starting servers (load $(bench_load))"
  start_cohort cohort-b "$model" 1 32 500
  start_cohort cohort-nob "$model" 1 1 0
  start_peer peer-b "$model" 32 1
  start_peer peer-nob "$model" 1 0
  if [ $TP -eq 1 ]; then
    start_cohort cohort2-b "$model" 2 32 500
    labels+=(cohort2-b)
  fi
  for l in "${labels[@]}"; do
    check "$l" "$RUNS/body-$wl.json"
    hey -z 2s -c 4 -m POST -T application/json -D "$RUNS/body-$wl.json" "${URL[$l]}" > /dev/null # warm-up
  done
  agree cohort-b peer-b "$RUNS/body-$wl.json"
  [ $TP -eq 0 ] || agree cohort-b cohort2-b "$RUNS/body-$wl.json"
  local i=0
  for c in $CONC; do
    # alternate the order from one concurrency to the next
    local order=("${labels[@]}")
    [ $((i % 2)) -eq 1 ] && mapfile -t order < <(printf '%s\n' "${labels[@]}" | tac)
    for l in "${order[@]}"; do measure "$wl" "$l" "$c" "$RUNS/body-$wl.json"; done
    i=$((i + 1))
  done
  for l in cohort-b cohort-nob cohort2-b; do [ -n "${PID[$l]:-}" ] && stop_cohort "$l" && unset "PID[$l]"; done
  stop_peer peer-b
  stop_peer peer-nob
}

# run_pa: Triton's perf_analyzer against cohort-b with the MLP and the GPT, concurrency 1..8,
# binary tensor data (its default); a line in results.tsv per model and concurrency, with the
# server's failed-request count (Triton's statistics) and average batch size over the sweep.
run_pa() {
  . "$SRC/tests/serve/client_venv.sh"
  client_venv "$BUILD/client-venvs" "${perf_analyzer_packages[@]}" &&
    perf_analyzer_env || { echo "serve.sh: perf_analyzer is not available" >&2; exit 1; }
  # The GPT's 16 input_ids (body-gpt.json) as perf_analyzer's input data.
  "$PY" - "$RUNS/body-gpt.json" "$RUNS/pa-gpt.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["inputs"][0]["data"]
json.dump({"data": [{"input_ids": {"content": t, "shape": [len(t)]}}]}, open(sys.argv[2], "w"))
EOF
  local model port out l0 win=$((DURATION * 1000 / 3)) data
  for model in mlp gpt; do
    echo "## pa: perf_analyzer, $model, cohort-b (load $(bench_load))"
    start_cohort cohort-b "$model" 1 32 500
    port=$(cat "${PORTFILE[cohort-b]}")
    out=$RUNS/pa-$model.txt
    data=()
    [ "$model" = gpt ] && data=(--input-data "$RUNS/pa-gpt.json")
    check cohort-b "$RUNS/body-$model.json"
    wait_idle
    l0=$(bench_load)
    echo "+ perf_analyzer -m $model -u localhost:$port -i http --concurrency-range 1:8:1 -p $win -s 1000 -f $RUNS/pa-$model.csv ${data[*]}" > "$out"
    "$perf_analyzer" -m "$model" -u "localhost:$port" -i http --concurrency-range 1:8:1 -p "$win" \
      -s 1000 -f "$RUNS/pa-$model.csv" "${data[@]}" >> "$out" 2>&1 ||
      { tail -20 "$out"; echo "serve.sh: perf_analyzer failed ($model)" >&2; exit 1; }
    curl -sf "localhost:$port/v2/models/$model/stats" > "$RUNS/pa-$model-stats.json"
    "$PY" - "$RUNS/pa-$model.csv" "$RUNS/pa-$model-stats.json" "$model" "${l0%% *}" \
      "$(bench_load | cut -d' ' -f1)" >> "$RESULTS" <<'EOF'
import csv, json, sys
path, stats, model, l0, l1 = sys.argv[1:6]
st = json.load(open(stats))["model_stats"][0]
fail = st["inference_stats"]["fail"]["count"]
avg_batch = st["inference_count"] / max(1, st["execution_count"])
for r in sorted(csv.DictReader(open(path)), key=lambda r: int(r["Concurrency"])):
    ms = lambda k: float(r[k]) / 1e3
    print(f"pa\t{model}\t{r['Concurrency']}\t{float(r['Inferences/Second']):.1f}\t{ms('p50 latency'):.3f}"
          f"\t{ms('p99 latency'):.3f}\t{ms('p90 latency'):.3f}\t{avg_batch:.2f}\t{fail}\t{l0}\t{l1}")
EOF
    grep "^pa	$model	" "$RESULTS" | awk -F'\t' '{printf "   pa       %-4s c=%-2s %9s infer/s  p50 %7s ms  p99 %7s ms  failed %s\n", $2, $3, $4, $5, $6, $9}'
    stop_cohort cohort-b
    unset "PID[cohort-b]"
  done
}

for wl in $ONLY; do
  case "$wl" in
    mlp|gpt) run_v2 "$wl" "$wl" ;;
    overhead)
      echo "## overhead: one linear layer (64 -> 10), batching off, concurrency 1 (load $(bench_load))"
      start_cohort cohort-nob lin 1 1 0
      start_peer peer-nob lin 1 0
      for l in cohort-nob peer-nob; do
        check "$l" "$RUNS/body-lin.json"
        hey -z 2s -c 1 -m POST -T application/json -D "$RUNS/body-lin.json" "${URL[$l]}" > /dev/null
      done
      agree cohort-nob peer-nob "$RUNS/body-lin.json"
      for r in 1 2; do
        if [ $r -eq 1 ]; then order=(cohort-nob peer-nob); else order=(peer-nob cohort-nob); fi
        for l in "${order[@]}"; do measure overhead "$l" 1 "$RUNS/body-lin.json"; done
      done
      stop_cohort cohort-nob
      unset "PID[cohort-nob]"
      stop_peer peer-nob
      ;;
    gen)
      echo "## gen: /v1/completions, prompt \"ROMEO:\", max_tokens 64, temperature 0, --max-batch-size $GEN_BATCH (load $(bench_load))"
      labels=(cohort-gen)
      start_cohort cohort-gen gpt 1 "$GEN_BATCH" 0
      if [ $NO_PEER -eq 0 ]; then
        start_peer peer-gen gpt "$GEN_BATCH" 5
        labels+=(peer-gen)
      fi
      if [ $TP -eq 1 ]; then
        start_cohort cohort2-gen gpt 2 "$GEN_BATCH" 0
        labels+=(cohort2-gen)
      fi
      for l in "${labels[@]}"; do "$PY" "$GENCLIENT" "${URL[$l-gen]}" 2 2 plain 64 gpt > /dev/null; done # warm-up
      [ $NO_PEER -eq 1 ] || agree_gen cohort-gen peer-gen
      [ $TP -eq 0 ] || agree_gen cohort-gen cohort2-gen
      i=0
      for c in $GEN_CONC; do
        order=("${labels[@]}")
        [ $((i % 2)) -eq 1 ] && mapfile -t order < <(printf '%s\n' "${labels[@]}" | tac)
        for l in "${order[@]}"; do measure_gen "$l" "$c"; done
        i=$((i + 1))
      done
      for l in cohort-gen cohort2-gen; do [ -n "${PID[$l]:-}" ] && stop_cohort "$l" && unset "PID[$l]"; done
      [ $NO_PEER -eq 1 ] || stop_peer peer-gen
      ;;
    pa) run_pa ;;
    *) echo "serve.sh: unknown workload $wl" >&2; exit 2 ;;
  esac
done

# --- tables ------------------------------------------------------------------------------------
"$PY" - "$RESULTS" "$GEN_BATCH" <<'EOF'
import sys
from collections import defaultdict
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
peer = "TorchServe"
by = defaultdict(list)
for r in rows:
    by[(r[0], r[1], r[2])].append(r)
def f(v, d=1):
    return f"{float(v):.{d}f}"
for wl in ("mlp", "gpt"):
    if not any(r[0] == wl for r in rows):
        continue
    what = {"mlp": "digits MLP (64-128-128-10), 1 row per request",
            "gpt": "gpt-tiny, 16 input_ids -> next-token logits"}[wl]
    print(f"\n### V2 infer: {what}\n")
    print(f"req/s and latency (ms) from hey; ratio = cohort / peer ({peer}) at the same batching "
          "setting: req/s ratio above 1 and latency ratio below 1 favour cohort.\n")
    print("| c | server | req/s | p50 ms | p99 ms | errors | load (1 min) | req/s ratio | p50 ratio | p99 ratio |")
    print("|---:|---|---:|---:|---:|---:|---|---:|---:|---:|")
    concs = sorted({int(r[2]) for r in rows if r[0] == wl})
    for c in concs:
        for lab, name, ref in (("cohort-b", "cohort, batching on", "peer-b"),
                               ("peer-b", "peer, batching on", None),
                               ("cohort-nob", "cohort, batching off", "peer-nob"),
                               ("peer-nob", "peer, batching off", None),
                               ("cohort2-b", "cohort 2 ranks (TP), batching on", None)):
            rs = by.get((wl, lab, str(c)))
            if not rs:
                continue
            r = rs[0]
            rat = ["", "", ""]
            if ref and by.get((wl, ref, str(c))):
                p = by[(wl, ref, str(c))][0]
                rat = [f(float(r[3]) / float(p[3]), 2), f(float(r[4]) / float(p[4]), 2),
                       f(float(r[5]) / float(p[5]), 2)]
            print(f"| {c} | {name} | {f(r[3])} | {f(r[4], 2)} | {f(r[5], 2)} | {r[8]} | {r[9]}->{r[10]} | "
                  + " | ".join(rat) + " |")
ov = [r for r in rows if r[0] == "overhead"]
if ov:
    print(f"\n### Per-request overhead: one linear layer (64 -> 10), batching off, concurrency 1\n")
    print("hey prints latencies in whole 0.1 ms; mean = concurrency / (req/s) (Little's law: the")
    print("whole round trip, client included) is the finer number.\n")
    print("| round | server | mean ms (c / req/s) | hey mean ms | p50 ms | p99 ms | req/s | errors | load |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    k = defaultdict(int)
    means = defaultdict(list)
    for r in ov:
        k[r[1]] += 1
        means[r[1]].append(float(r[11]))
        print(f"| {k[r[1]]} | {r[1]} | {f(r[11], 3)} | {f(r[6], 1)} | {f(r[4], 1)} | {f(r[5], 1)} | {f(r[3])} | {r[8]} | {r[9]}->{r[10]} |")
    if means.get("cohort-nob") and means.get("peer-nob"):
        c, p = min(means["cohort-nob"]), min(means["peer-nob"])
        print(f"\nmean latency, best round: cohort {c:.3f} ms, peer {p:.3f} ms, cohort/peer {c / p:.2f}")
pa = [r for r in rows if r[0] == "pa"]
if pa:
    print("\n### perf_analyzer (Triton's client, tritonclient 2.47.0): cohort, 1 rank, "
          "--max-batch-size 32 --max-queue-delay-us 500\n")
    print("Binary tensor data, synchronous requests, concurrency 1..8; infer/s and latency "
          "percentiles from perf_analyzer's CSV; failed = the server's failed requests (Triton's "
          "statistics); batch = the server's average batch size over the whole sweep.\n")
    print("| model | c | infer/s | p50 ms | p90 ms | p99 ms | batch | failed | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in pa:
        print(f"| {r[1]} | {r[2]} | {f(r[3])} | {f(r[4], 2)} | {f(r[6], 2)} | {f(r[5], 2)} | "
              f"{r[7]} | {r[8]} | {r[9]}->{r[10]} |")
gen = [r for r in rows if r[0] == "gen"]
if gen:
    print(f"\n### Generation: /v1/completions, max_tokens 64, temperature 0, --max-batch-size {sys.argv[2]}\n")
    print("tokens/s = completion_tokens summed / wall time (non-streaming run); TTFT = time to the first "
          "SSE data event (streaming run, half as long); ratio = cohort / peer; vs c=1 = tokens/s over "
          "the same server's at concurrency 1 (what batched decoding buys).\n")
    print("| c | server | tokens/s | vs c=1 | TTFT p50 ms | TTFT p99 ms | request p50 ms | requests | errors | load | tok/s ratio | TTFT p50 ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for c in sorted({int(r[2]) for r in gen}):
        for lab, name in (("cohort-gen", "cohort"), ("peer-gen", "peer"), ("cohort2-gen", "cohort 2 ranks (TP)")):
            rs = by.get(("gen", lab, str(c)))
            if not rs:
                continue
            r = rs[0]
            rat = ["", ""]
            if lab == "cohort-gen" and by.get(("gen", "peer-gen", str(c))):
                p = by[("gen", "peer-gen", str(c))][0]
                rat = [f(float(r[3]) / float(p[3]), 2), f(float(r[4]) / float(p[4]), 2)]
            one = by.get(("gen", lab, "1"))
            vs1 = f(float(r[3]) / float(one[0][3]), 2) if one and float(one[0][3]) > 0 else ""
            print(f"| {c} | {name} | {f(r[3])} | {vs1} | {f(r[4], 1)} | {f(r[5], 1)} | {f(r[6], 1)} | {r[7]} | {r[8]} | {r[9]}->{r[10]} | "
                  + " | ".join(rat) + " |")
EOF
echo
echo "# load average at end: $(bench_load)"
