#!/usr/bin/env bash
# Triton's own Python client, unmodified (tritonclient[http] from PyPI in a venv), against an
# MLP server without and with --api-key:
#   - is_server_live / is_server_ready / is_model_ready without the key (probes);
#   - get_server_metadata lists "statistics" and "model_repository"; without the key: the
#     401's message reaches the exception;
#   - infer (JSON tensors) plain and with request_compression_algorithm gzip and deflate: the
#     same logits;
#   - get_inference_statistics (every model, the model, its version): the requests and rows;
#   - get_model_repository_index, unload_model (not ready, infer refused with "unloaded",
#     index UNAVAILABLE), load_model (ready and serving again).
# Skips (77) when the venv cannot be made or PyPI cannot be reached.
# Usage: test_serve_tritonclient.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init tritonclient

"$py" -m venv "$work/venv" > "$work/venv.log" 2>&1 || { echo "SKIP: python3 -m venv failed"; exit 77; }
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "tritonclient[http]" numpy \
  > "$work/pip.log" 2>&1 || { echo "SKIP: cannot install tritonclient[http] from PyPI"; tail -3 "$work/pip.log"; exit 77; }
"$work/venv/bin/pip" list 2>/dev/null | grep -i "^tritonclient "

mlp_checkpoint "$work/run"
ck="$work/run/checkpoints"
start open 1 "$ck"
start keyed 1 "$ck" --api-key s3cret

check_client() { # check_client PORT KEY
  "$work/venv/bin/python" - "$1" "$2" <<'PY'
import sys
import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

port, key = sys.argv[1], sys.argv[2]
h = {"Authorization": f"Bearer {key}"} if key else None
c = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("mlp"), "probes"
assert c.is_model_ready("mlp", "20"), "versioned probe"
md = c.get_server_metadata(headers=h)
assert {"statistics", "model_repository"} <= set(md["extensions"]), md
if key:
    try:
        c.get_server_metadata()
        raise AssertionError("no 401 without the key")
    except InferenceServerException as e:
        assert "API key" in str(e), str(e)

x = np.random.default_rng(0).random((2, 64), dtype=np.float32)
inp = httpclient.InferInput("input", [2, 64], "FP32")
inp.set_data_from_numpy(x, binary_data=False)
outs = [httpclient.InferRequestedOutput("logits", binary_data=False),
        httpclient.InferRequestedOutput("label", binary_data=False)]
want = c.infer("mlp", [inp], outputs=outs, headers=h).as_numpy("logits")
assert want.shape == (2, 10), want.shape
for alg in ("gzip", "deflate"):
    # A copy: infer() adds Content-Encoding to the headers dict it is given, and later calls
    # with that dict would declare their plain bodies compressed.
    got = c.infer("mlp", [inp], outputs=outs, headers=dict(h) if h else None,
                  request_compression_algorithm=alg)
    assert np.array_equal(got.as_numpy("logits"), want), alg

for args in ({}, {"model_name": "mlp"}, {"model_name": "mlp", "model_version": "20"}):
    st = c.get_inference_statistics(headers=h, **args)["model_stats"]
    assert len(st) == 1 and st[0]["name"] == "mlp" and st[0]["version"] == "20", st
    i = st[0]["inference_stats"]
    assert i["success"]["count"] == 3 and st[0]["inference_count"] == 6, st
    assert 1 <= st[0]["execution_count"] <= 3 and st[0]["batch_stats"], st

idx = c.get_model_repository_index(headers=h)
assert [(m["name"], m["state"]) for m in idx] == [("mlp", "READY")], idx
c.unload_model("mlp", headers=h)
assert not c.is_model_ready("mlp"), "ready after unload"
assert c.is_server_ready(), "the server stays ready"
try:
    c.infer("mlp", [inp], outputs=outs, headers=h)
    raise AssertionError("infer served while unloaded")
except InferenceServerException as e:
    assert "unloaded" in str(e), str(e)
idx = c.get_model_repository_index(headers=h)
assert [(m["name"], m["state"]) for m in idx] == [("mlp", "UNAVAILABLE")], idx
c.load_model("mlp", headers=h)
assert c.is_model_ready("mlp"), "not ready after load"
got = c.infer("mlp", [inp], outputs=outs, headers=h).as_numpy("logits")
assert np.array_equal(got, want), "after load"
st = c.get_inference_statistics(model_name="mlp", headers=h)["model_stats"][0]
assert st["inference_stats"]["success"]["count"] == 4 and st["inference_stats"]["fail"]["count"] == 1, st
print(f"tritonclient {'with' if key else 'without'} a key: ok")
PY
}
fails=0
check_client "$open_port" "" || fails=$((fails + 1))
check_client "$keyed_port" s3cret || fails=$((fails + 1))
stop open
stop keyed
[ "$fails" -eq 0 ] || { echo "FAIL: $fails client run(s) failed"; exit 1; }
