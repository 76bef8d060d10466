#!/usr/bin/env bash
# The server end to end with a GPT: train a small one on 2 ranks, serve it on 1 rank and on 2
# ranks (heads split), and check
#   - /v1/models; a greedy completion equals `cohort generate --temperature 0` (same weights,
#     same tokens), on both servers; a seeded sampled one equals `cohort generate --seed`;
#   - streaming: the SSE chunks concatenate to the non-streamed text, end with [DONE];
#   - 8 concurrent requests (continuous batching over 4 KV slots) each get exactly the text they
#     get alone;
#   - stop strings end the text before the stop (finish_reason "stop"); max_tokens ends it with
#     "length"; bad requests get 400/404 and the server keeps serving;
#   - /metrics counts generated tokens and time to first token; SIGTERM: every rank exits 0.
# Usage: test_serve_gpt.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init gpt

"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
"$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/run" model.n_layer=2 model.n_embd=64 \
  model.context=64 train.steps=150 train.batch_size=16 train.log_every=50 train.eval_every=0 \
  optim.warmup_steps=10 run.checkpoint.every=150 > "$work/train.txt"
ck="$work/run/checkpoints"

start one 1 "$ck" --model-name tiny --max-batch-size 4
start two 2 "$ck" --model-name tiny --max-batch-size 4
prompt="ROMEO:"
"$cohort" generate "$ck" --prompt "$prompt" --max-tokens 40 --temperature 0 > "$work/greedy.txt" 2>/dev/null
"$cohort" generate "$ck" --prompt "$prompt" --max-tokens 40 --temperature 0.9 --top-k 20 --seed 5 \
  > "$work/sampled.txt" 2>/dev/null

"$py" - "$work" "$(cat "$work/one.port")" "$(cat "$work/two.port")" "$prompt" <<'PY'
import json, sys, threading, urllib.error, urllib.request
work, p1, p2, prompt = sys.argv[1:5]

def post(port, body, stream=False):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
                                 data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req) as r:
        raw = r.read().decode()
    if not stream:
        return json.loads(raw)
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), raw[:200]
    assert events[-1] == "data: [DONE]", events[-3:]
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length"), chunks[-1]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    return "".join(c["choices"][0]["text"] for c in chunks), chunks[-1]["choices"][0]["finish_reason"]

def status(port, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=None if body is None else body.encode(),
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())

greedy = open(f"{work}/greedy.txt").read()[len(prompt):-1]   # generate prints prompt + text + \n
sampled = open(f"{work}/sampled.txt").read()[len(prompt):-1]
models = json.load(urllib.request.urlopen(f"http://127.0.0.1:{p1}/v1/models"))
assert [m["id"] for m in models["data"]] == ["tiny"], models
for port in (p1, p2):
    r = post(port, {"model": "tiny", "prompt": prompt, "max_tokens": 40, "temperature": 0})
    c = r["choices"][0]
    assert c["text"] == greedy and c["finish_reason"] == "length", (port, c, greedy)
    assert r["usage"] == {"prompt_tokens": len(prompt.encode()), "completion_tokens": 40,
                          "total_tokens": len(prompt.encode()) + 40}, r["usage"]
    r = post(port, {"model": "tiny", "prompt": prompt, "max_tokens": 40, "temperature": 0.9,
                    "top_k": 20, "seed": 5})
    assert r["choices"][0]["text"] == sampled, (port, r, sampled)
    text, finish = post(port, {"model": "tiny", "prompt": prompt, "max_tokens": 40,
                               "temperature": 0, "stream": True}, stream=True)
    assert text == greedy and finish == "length", (text, greedy)
print("greedy, seeded and streamed completions equal `cohort generate` on 1 and 2 ranks")

# KServe V2 on the GPT: the next token's logits for input_ids; 2 ranks = 1 rank within 1e-5,
# next_token = their argmax = the first greedy token.
import numpy as np
ids = list(prompt.encode())
body = json.dumps({"inputs": [{"name": "input_ids", "shape": [len(ids)], "datatype": "INT32",
                               "data": ids}]})
outs = []
for port in (p1, p2):
    code, r = status(port, "/v2/models/tiny/infer", body)
    assert code == 200, r
    o = {t["name"]: np.array(t["data"]) for t in r["outputs"]}
    assert o["logits"].shape == (256,) and o["next_token"][0] == o["logits"].argmax(), r
    outs.append(o)
err = np.abs(outs[0]["logits"] - outs[1]["logits"]).max() / np.abs(outs[0]["logits"]).max()
assert err <= 1e-5 and outs[0]["next_token"][0] == greedy.encode()[0], (err, outs[0]["next_token"])
print(f"V2 infer on the GPT: next-token logits, 2 ranks vs 1 rank {err:.3g}")

# Concurrency: 8 requests at once over 4 slots; each as when alone.
prompts = [f"{w}:" for w in ("KING", "QUEEN", "First Citizen", "MENENIUS", "All", "JULIET",
                             "Second Servant", "O")]
alone = {p: post(p2, {"model": "tiny", "prompt": p, "max_tokens": 24, "temperature": 0})["choices"][0]["text"]
         for p in prompts}
together, errors = {}, []
def run(p):
    try:
        together[p] = post(p2, {"model": "tiny", "prompt": p, "max_tokens": 24, "temperature": 0})["choices"][0]["text"]
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))
threads = [threading.Thread(target=run, args=(p,)) for p in prompts]
[t.start() for t in threads]
[t.join() for t in threads]
assert not errors and together == alone, (errors, together, alone)
print("8 concurrent completions equal their solo runs")

# Stop strings: the text ends before the first stop string, finish_reason "stop".
stop = greedy[5:7] if len(greedy) >= 7 else greedy[:1]
r = post(p2, {"model": "tiny", "prompt": prompt, "max_tokens": 40, "temperature": 0, "stop": [stop]})
want = greedy[:greedy.find(stop)]
assert r["choices"][0]["text"] == want and r["choices"][0]["finish_reason"] == "stop", (r, stop)
text, finish = post(p2, {"model": "tiny", "prompt": prompt, "max_tokens": 40, "temperature": 0, "stop": stop,
                         "stream": True}, stream=True)
assert text == want and finish == "stop", (text, want)
print(f"stop string {stop!r}: text cut at {len(want)} bytes, streamed too")

for body, code in (('{"model": "tiny", "prompt": "x", "max_tokens": 0}', 400),
                   ('{"model": "tiny", "prompt": 7}', 400), ('{"prompt": "x"}', 400),
                   ('{"model": "tiny", "prompt": "x", "temperature": 5}', 400),
                   ('{"model": "other", "prompt": "x"}', 404),
                   ('{"model": "tiny", "prompt": "x", "n": 0}', 400), ('nope', 400),
                   ('{"model": "tiny", "prompt": ""}', 400)):
    got, err = status(p2, "/v1/completions", body)
    assert got == code and err["error"]["message"] and err["error"]["type"], (body, got, err)
got, err = status(p2, "/v2/models/tiny/infer", '{"inputs": []}')
assert got == 400, (got, err)
r = post(p2, {"model": "tiny", "prompt": prompt, "max_tokens": 3, "temperature": 0})
assert r["choices"][0]["text"] == greedy[:3] or len(r["choices"][0]["text"]) <= 3, r
print("bad requests answered, server still serving")
PY

curl -s "localhost:$(cat "$work/two.port")/metrics" > "$work/metrics"
grep -Eq '^cohort_generated_tokens_total\{model="tiny",version="[0-9]+"\} [1-9]' "$work/metrics"
grep -Eq 'cohort_time_to_first_token_seconds_count\{model="tiny",version="[0-9]+"\}' "$work/metrics"
grep -Eq 'cohort_compute_duration_seconds_count\{model="tiny",version="[0-9]+",stage="decode"\}' "$work/metrics"
grep -Eq 'cohort_requests_total\{model="tiny",version="[0-9]+",endpoint="completions",code="200"\}' "$work/metrics"

for name in one two; do stop "$name"; done
echo PASS
