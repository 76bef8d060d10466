#!/usr/bin/env bash
# The repository load endpoint confined to the model repository (issue 12, item 11: it used to
# open any path and report its type, "/etc/passwd: file signature not found", with no key).
# An MLP server on 1 rank, its repository the served checkpoint's directory (the default):
#   - /etc/passwd, a missing file outside, '..', a symbolic link out of the repository and a
#     directory outside: 400, one message that says nothing of the file (no "signature");
#   - a checkpoint inside by relative name, by absolute path, and '{}' (latest): 200, the
#     version follows; /v1/models still lists the served name;
#   - --model-repository naming a missing directory: the server does not start (exit != 0);
#   - the server keeps serving after every refusal.
# Usage: test_serve_repo.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init repo
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

mlp_checkpoint "$work/run"
ck="$work/run/checkpoints"
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/digits.h5" run.dir="$work/other" train.steps=10 run.checkpoint.every=10 \
  train.eval_every=0 optim.warmup_steps=5 > /dev/null
ln -s "$work/other/checkpoints/step-00000010.h5" "$ck/escape.h5"
ln -s /etc/passwd "$ck/passwd"
mlp_body "$work/body.json"
start srv 1 "$ck"
base="http://127.0.0.1:$srv_port"

load() { # load EXPECTED_STATUS PATH_JSON: a load request's status
  local code
  code=$(curl -s -o "$work/body" -w "%{http_code}" -X POST "$base/v2/repository/models/mlp/load" -d "$2")
  if [ "$code" != "$1" ]; then fail "load $2 -> $code (expected $1): $(cat "$work/body")"; return; fi
  if grep -qi "signature\|hdf5\|permission\|is a directory" "$work/body"; then
    fail "load $2: the answer describes the file: $(cat "$work/body")"
  fi
}
for p in /etc/passwd /etc/no-such-file "$work/other/checkpoints" "$work/other/checkpoints/step-00000010.h5" \
         ../other/checkpoints/step-00000010.h5 escape.h5 passwd "$ck/../run.txt"; do
  load 400 "{\"parameters\":{\"path\":\"$p\"}}"
  check 200 POST /v2/models/mlp/infer -d @"$work/body.json"
done
load 400 '{"parameters":{"path":"/etc/passwd"}}'
echo "/etc/passwd: $(cat "$work/body")"
load 200 '{"parameters":{"path":"step-00000020.h5"}}'
load 200 "{\"parameters\":{\"path\":\"$ck/step-00000020.h5\"}}"
load 200 '{}'
grep -q '"version": "20"' "$work/body" || fail "latest reload: $(cat "$work/body")"
curl -s "$base/v1/models" | grep -q '"id":"mlp"' || fail "/v1/models: $(curl -s "$base/v1/models")"
stop srv

rc=0
"$mpiexec" -n 1 "${flags[@]}" "$cohort" serve "$ck" --port 0 --model-repository "$work/nowhere" \
  > "$work/bad.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "model-repository" "$work/bad.log" ||
  fail "a missing --model-repository: exit $rc, $(tail -2 "$work/bad.log")"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo PASS
