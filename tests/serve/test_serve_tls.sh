#!/usr/bin/env bash
# HTTPS and the access log (docs/serving.md, "TLS and access log"), with a self-signed
# certificate made here by the openssl CLI (skips, 77, without it):
#   - startup errors, each naming the file and exiting non-zero before listening: a missing key
#     file, a certificate without a key, a key that is not the certificate's, a file that is not
#     PEM, an encrypted key, an access log that cannot be opened; the serve.tls_* keys of
#     serve.after the same way;
#   - the MLP over HTTPS with --api-key: curl --cacert to health and a V2 infer (its logits equal
#     the plain-HTTP server's), 401 without the key; plain HTTP to the TLS port gets no answer,
#     and a client that does not trust the certificate refuses it;
#   - a tiny GPT over HTTPS (2 ranks): /v1/completions whole and streamed;
#   - the access logs (a file for the MLP, stderr for the GPT): every line is JSON with the
#     fields, times in RFC 3339 UTC with milliseconds, bytes = what the client received, the key
#     id = the SHA-256 prefix of the key sent (null with none), and the key never appears; a
#     client that leaves mid-body gets status null, completed false.
# Usage: test_serve_tls.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init tls
tls_pair cert || { echo "SKIP: no openssl CLI to make a test certificate"; exit 77; }
tls_pair other other
openssl pkey -in "$work/cert.key" -aes256 -passout pass:pw -out "$work/enc.key" 2>/dev/null
key="tls-test-key-$RANDOM$RANDOM"
tls=(--tls-cert "$work/cert.pem" --tls-key "$work/cert.key")

mlp_checkpoint "$work/mlp"
ck="$work/mlp/checkpoints"

# fails MESSAGE [serve options...]: the server must exit non-zero, saying MESSAGE, before it
# listens.
fails() {
  local want=$1 rc=0
  shift
  "$mpiexec" -n 1 "${flags[@]}" "$cohort" serve "$ck" --port 0 --port-file "$work/bad.port" "$@" \
    > "$work/bad.log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ] || ! grep -qF -- "$want" "$work/bad.log" || [ -s "$work/bad.port" ]; then
    echo "FAIL: serve $* -> exit $rc, expected an error saying: $want"; cat "$work/bad.log"; exit 1
  fi
}
fails "TLS key (--tls-key) $work/missing.key: No such file or directory" \
  --tls-cert "$work/cert.pem" --tls-key "$work/missing.key"
fails "--tls-cert (serve.tls_cert) given without --tls-key" --tls-cert "$work/cert.pem"
fails "--tls-key (serve.tls_key) given without --tls-cert" --tls-key "$work/cert.key"
fails "TLS key (--tls-key) $work/other.key is not the key of the certificate (--tls-cert) $work/cert.pem" \
  --tls-cert "$work/cert.pem" --tls-key "$work/other.key"
fails "TLS certificate (--tls-cert) $work/cert.key: not a PEM certificate" \
  --tls-cert "$work/cert.key" --tls-key "$work/cert.key"
fails "TLS key (--tls-key) $work/enc.key is encrypted" --tls-cert "$work/cert.pem" --tls-key "$work/enc.key"
fails "access log (--access-log) $work/no/such/dir.log" --access-log "$work/no/such/dir.log"
# The serve.tls_* keys reach the server of serve.after the same way.
rc=0
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/after" train.steps=2 train.eval_every=0 \
  optim.warmup_steps=1 serve.after=true serve.port=0 serve.tls_cert="$work/cert.pem" \
  serve.tls_key="$work/other.key" > "$work/after.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -qF "$work/other.key is not the key of the certificate" "$work/after.log" ||
  { echo "FAIL: serve.after with a mismatched serve.tls_key: exit $rc"; cat "$work/after.log"; exit 1; }
echo "startup errors: missing, lone, mismatched, non-PEM, encrypted files; an unopenable log"

start plain 1 "$ck"
tls_curl=(--cacert "$work/cert.pem")
start mlp 1 "$ck" "${tls[@]}" --api-key "$key" --access-log "$work/access.log"
grep -q "on https://127.0.0.1:$mlp_port" "$work/mlp.log" ||
  { echo "FAIL: the start line does not say https"; cat "$work/mlp.log"; exit 1; }
base="https://localhost:$mlp_port"
check 200 GET /v2/health/ready --cacert "$work/cert.pem"
check 401 GET /v2/models/mlp --cacert "$work/cert.pem"
check 401 GET /v2/models/mlp --cacert "$work/cert.pem" -H "Authorization: Bearer wrong-$key"
mlp_body "$work/infer.json" 3
curl -sf --cacert "$work/cert.pem" -H "Authorization: Bearer $key" -d @"$work/infer.json" \
  -w "%{size_download}\n" -o "$work/tls_infer.json" "$base/v2/models/mlp/infer" > "$work/infer_bytes"
curl -sf -d @"$work/infer.json" -o "$work/plain_infer.json" "http://127.0.0.1:$plain_port/v2/models/mlp/infer"
rc=0
curl -s -o /dev/null "http://127.0.0.1:$mlp_port/v2/health/ready" || rc=$?
[ "$rc" -ne 0 ] || { echo "FAIL: plain HTTP to the TLS port was answered"; exit 1; }
rc=0
curl -s -o /dev/null "https://localhost:$mlp_port/v2/health/ready" || rc=$?
[ "$rc" -eq 60 ] || { echo "FAIL: an untrusted certificate: curl exit $rc, expected 60"; exit 1; }
# A client that leaves in the middle of its body, on a kept-alive connection after a 200: its
# line says no status and not completed (not the previous request's 200).
"$py" - "$mlp_port" "$work/cert.pem" <<'PY'
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                    server_hostname="localhost")
s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: localhost\r\n\r\n")
assert s.recv(4096).startswith(b"HTTP/1.1 200"), "no 200"
s.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n"
          b"\r\n{\"inputs\"")
time.sleep(0.3)
s.close()
PY
echo "MLP over HTTPS: health, 401 without the key, infer; plain HTTP and an untrusting client refused"

# A tiny GPT (a few steps: the text is not checked, only the transport), 2 ranks, access log on
# stderr.
"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/gpt" model.n_layer=1 model.n_embd=32 \
  model.context=32 train.steps=4 train.batch_size=8 train.eval_every=0 optim.warmup_steps=1 \
  run.checkpoint.every=4 > "$work/gpt_train.txt"
start gpt 2 "$work/gpt/checkpoints" "${tls[@]}" --model-name tiny --access-log -
gbase="https://localhost:$gpt_port"
curl -sf --cacert "$work/cert.pem" -d '{"model": "tiny", "prompt": "ROMEO:", "max_tokens": 8, "temperature": 0}' \
  -w "%{size_download}\n" -o "$work/completion.json" "$gbase/v1/completions" > "$work/completion_bytes"
curl -sfN --cacert "$work/cert.pem" -d '{"model": "tiny", "prompt": "ROMEO:", "max_tokens": 8, "stream": true}' \
  -w "%{size_download}\n" -o "$work/stream.txt" "$gbase/v1/completions" > "$work/stream_bytes"

stop mlp
stop gpt
stop plain

"$py" - "$work" "$key" <<'PY'
import hashlib, json, re, sys
work, key = sys.argv[1:3]
tls, plain = (json.load(open(f"{work}/{n}_infer.json")) for n in ("tls", "plain"))
assert tls["outputs"] == plain["outputs"], "infer over HTTPS differs from plain HTTP"
c = json.load(open(f"{work}/completion.json"))
assert c["usage"]["completion_tokens"] == 8, c
events = [e for e in open(f"{work}/stream.txt").read().split("\n\n") if e]
assert events[-1] == "data: [DONE]" and len(events) >= 2, events[-3:]

fields = ["time", "peer", "method", "path", "status", "bytes", "duration_ms", "key_id", "completed"]
def lines(text):
    out = []
    for ln in text.splitlines():
        r = json.loads(ln)
        assert list(r) == fields, r
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]), r
        assert r["peer"] == "127.0.0.1" and r["method"] in ("GET", "POST"), r
        assert isinstance(r["status"], (int, type(None))) and isinstance(r["bytes"], int), r
        assert isinstance(r["duration_ms"], float) and r["duration_ms"] >= 0, r
        assert r["key_id"] is None or re.fullmatch(r"[0-9a-f]{8}", r["key_id"]), r
        assert r["completed"] is (r["status"] is not None), r
        out.append(r)
    return out

raw = open(f"{work}/access.log").read()
assert key not in raw, "the API key is in the access log"
log = lines(raw)
kid = lambda k: hashlib.sha256(k.encode()).hexdigest()[:8]
def find(**want):
    got = [r for r in log if all(r[k] == v for k, v in want.items())]
    assert got, (want, log)
    return got
find(path="/v2/health/ready", status=200, key_id=None)
find(path="/v2/models/mlp", status=401, key_id=None)
find(path="/v2/models/mlp", status=401, key_id=kid("wrong-" + key))
r = find(path="/v2/models/mlp/infer", status=200, key_id=kid(key))
assert r[0]["bytes"] == int(open(f"{work}/infer_bytes").read()), (r, "bytes != what curl got")
left = find(path="/v2/models/mlp/infer", status=None, completed=False)
assert len(left) == 1 and left[0]["bytes"] == 0, left

# The GPT's log went to stderr, between its other lines.
glog = lines("\n".join(l for l in open(f"{work}/gpt.log").read().splitlines()
                       if l.startswith('{"time"')))
whole, stream = [r for r in glog if r["path"] == "/v1/completions"]
assert whole["bytes"] == int(open(f"{work}/completion_bytes").read()), whole
assert stream["bytes"] == int(open(f"{work}/stream_bytes").read()) > 0, stream
print(f"access logs: {len(log)} + {len(glog)} lines, fields checked, bytes = what the client "
      "received, key ids, no key")
PY
echo "PASS"
