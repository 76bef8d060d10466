#!/usr/bin/env bash
# Batched decoding in the server (one forward per continuous-batching step over every running
# sequence, prompts prefilled in chunks beside the running decodes). A small GPT served by
#   one: 1 rank, 8 slots, prompts whole (the default chunk of 256 > the context)
#   two: 2 ranks (heads split), 4 slots, prompts in chunks of 5 tokens (the test hook
#        COHORT_TEST_PREFILL_CHUNK), so a 40-byte prompt takes 8 steps
# checks
#   - a long prompt alone: greedy text equals `cohort generate --temperature 0` on both;
#   - 12 requests at once, prompts of 1 to 44 bytes, to each server (more requests than slots:
#     sequences join while others decode and prefill): each text equals its solo run on `one`;
#   - V2 infer of a 45-token input (9 chunks on `two`): the logits equal `one`'s within 1e-5
#     and next_token is their argmax;
#   - the prefill stage ran in more steps than requests on `two` (prompts were chunked), and
#     batches held several sequences (cohort_batch_size's sum exceeds its count).
# Usage: test_serve_batchdec.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init batchdec

"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/run" model.n_layer=2 model.n_head=4 model.n_embd=64 \
  model.context=64 train.steps=80 train.batch_size=16 train.log_every=40 train.eval_every=0 \
  optim.warmup_steps=10 run.checkpoint.every=80 > "$work/train.txt"
ck="$work/run/checkpoints"

start one 1 "$ck" --model-name tiny --max-batch-size 8
export COHORT_TEST_PREFILL_CHUNK=5
start two 2 "$ck" --model-name tiny --max-batch-size 4
unset COHORT_TEST_PREFILL_CHUNK
long="ROMEO: What say you, my lord, of this fair"
"$cohort" generate "$ck" --prompt "$long" --max-tokens 16 --temperature 0 > "$work/greedy.txt" 2>/dev/null

"$py" - "$work" "$one_port" "$two_port" "$long" <<'PY'
import json, sys, threading, urllib.request
import numpy as np
work, p1, p2, long = sys.argv[1:5]

def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())

def complete(port, prompt, n=16):
    r = post(port, "/v1/completions", {"model": "tiny", "prompt": prompt, "max_tokens": n,
                                      "temperature": 0})
    return r["choices"][0]["text"]

greedy = open(f"{work}/greedy.txt").read()[len(long):-1]  # generate prints prompt + text + \n
for port in (p1, p2):
    got = complete(port, long)
    assert got == greedy, (port, got, greedy)
print(f"a {len(long)}-byte prompt alone (chunks of 5 on two): greedy text equals cohort generate")

words = ["KING", "QUEEN:", "First Citizen: Before we proceed any further", "O", "All:",
         "JULIET: O Romeo, Romeo, wherefore art thou", "MENENIUS: Why, masters,", "Second Servant:",
         "BRUTUS: You speak", "HAMLET: To be, or not to be, that is the", "A", "LEAR:"]
assert max(len(w) for w in words) <= 48
alone = {w: complete(p1, w) for w in words}
for port, name in ((p1, "one"), (p2, "two")):
    together, errors = {}, []
    def run(w):
        try:
            together[w] = complete(port, w)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=run, args=(w,)) for w in words]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    diff = {w: (together[w], alone[w]) for w in words if together[w] != alone[w]}
    assert not diff, (name, diff)
    print(f"{len(words)} concurrent completions on {name} equal their solo runs")

ids = list((long + " and fai").encode())[:45]
outs = []
for port in (p1, p2):
    r = post(port, "/v2/models/tiny/infer", {"inputs": [{"name": "input_ids", "shape": [len(ids)],
                                                          "datatype": "INT32", "data": ids}]})
    o = {t["name"]: np.array(t["data"]) for t in r["outputs"]}
    assert o["next_token"][0] == o["logits"].argmax(), o["next_token"]
    outs.append(o["logits"])
err = np.abs(outs[0] - outs[1]).max() / np.abs(outs[0]).max()
assert err <= 1e-5, err
print(f"V2 infer of {len(ids)} tokens, chunked on two: logits vs one {err:.3g}")
PY

# On `two` every prompt of more than 5 tokens took several prefill steps, and steps held
# several sequences.
curl -s "localhost:$two_port/metrics" > "$work/metrics"
"$py" - "$work/metrics" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def val(pat):
    m = re.search(pat, t, re.M)
    assert m, pat
    return float(m.group(1))
prefill = val(r'^cohort_compute_duration_seconds_count\{model="tiny",version="\d+",stage="prefill"\} (\S+)')
reqs = val(r'^cohort_requests_total\{model="tiny",version="\d+",endpoint="completions",code="200"\} (\S+)')
bsum = val(r'^cohort_batch_size_sum\{model="tiny",version="\d+"\} (\S+)')
bcount = val(r'^cohort_batch_size_count\{model="tiny",version="\d+"\} (\S+)')
print(f"two: {prefill:.0f} prefill steps for {reqs:.0f} completions; mean batch {bsum / bcount:.2f}")
assert prefill > reqs + 5, (prefill, reqs)
assert bsum > 1.5 * bcount, (bsum, bcount)
PY

for name in one two; do stop "$name"; done
echo PASS
