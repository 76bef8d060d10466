#!/usr/bin/env bash
# Class names end to end: a CSV with string labels (and a header) -> `cohort data csv` ->
# `cohort train` (2 ranks, a few steps) -> the checkpoint's data_class_names -> `cohort infer`
# (/label_name, /class_names) and `cohort serve` (V2 metadata lists class_name BYTES; infer
# returns each row's class name next to its label id, in JSON and in Triton's binary form;
# tritonclient reads them when PyPI is reachable).
# Usage: test_serve_names.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init names
"$py" -c "import h5py, numpy" 2>/dev/null || { echo "SKIP: no h5py"; exit 77; }

# Three separated clusters named like iris's species, in file order virginica, setosa, ...
"$py" - "$work/iris.csv" <<'PY'
import random, sys
random.seed(3)
names = ["virginica", "setosa", "versicolor"]
with open(sys.argv[1], "w") as f:
    f.write("sepal_length,sepal_width,petal_length,species\n")
    for i in range(150):
        c = i % 3
        f.write(",".join(f"{4 * c + random.gauss(0, 0.3):.3f}" for _ in range(3)) + f',"{names[c]}"\n')
PY
"$cohort" data csv "$work/iris.csv" "$work/iris.h5" --label-column species > "$work/data.txt"
grep -q "header: yes (auto" "$work/data.txt" && grep -q "classes   3 (string labels" "$work/data.txt" ||
  { cat "$work/data.txt"; echo "FAIL: data csv"; exit 1; }
"$mpiexec" -n 2 "${flags[@]}" "$cohort" train "$src/configs/mlp-digits.yaml" \
  data.path="$work/iris.h5" run.dir="$work/run" train.steps=60 run.checkpoint.every=60 \
  train.eval_every=0 optim.warmup_steps=5 train.log_every=20 > "$work/train.txt"
ck="$work/run/checkpoints"
"$mpiexec" -n 2 "${flags[@]}" "$cohort" infer "$ck" "$work/iris.h5" "$work/pred.h5"

"$cohort" ckpt inspect "$ck" > "$work/inspect.txt"
grep -q "class names     0=setosa 1=versicolor 2=virginica" "$work/inspect.txt" ||
  { cat "$work/inspect.txt"; echo "FAIL: ckpt inspect class names"; exit 1; }

start one 1 "$ck"
"$py" - "$work" "$one_port" <<'PY'
import glob, json, struct, sys, urllib.request
import h5py, numpy as np
work, port = sys.argv[1], sys.argv[2]
names = ["setosa", "versicolor", "virginica"]  # sorted: the ids
with h5py.File(f"{work}/iris.h5", "r") as f:
    assert [n.decode() for n in f["class_names"][...]] == names
    x, y = f["val/x"][...], f["val/y"][...]
ckpt = sorted(glob.glob(f"{work}/run/checkpoints/step-*.h5"))[-1]
import struct, zlib
def attrs_crc32(f):  # docs/checkpoint-format.md: the names are covered like any string attribute
    out = b""
    for name in sorted((n for n in f.attrs if n != "attrs_crc32"), key=lambda n: n.encode()):
        v = f.attrs[name]
        out += name.encode() + b"\0"
        if isinstance(v, (str, bytes)):
            b = v.encode() if isinstance(v, str) else v
            out += b"s" + struct.pack("<QQ", 1, len(b)) + b
        else:
            a = np.atleast_1d(v)
            kind = "i" if a.dtype.kind in "iu" else "f"
            a = a.astype("<i8" if kind == "i" else "<f8")
            out += kind.encode() + struct.pack("<Q", a.size) + a.tobytes()
    return zlib.crc32(out)
with h5py.File(ckpt, "r") as f:
    stored = f.attrs["data_class_names"]
    assert json.loads(stored) == names, stored
    assert attrs_crc32(f) == f.attrs["attrs_crc32"], "attrs_crc32"
with h5py.File(f"{work}/pred.h5", "r") as f:
    label, lname = f["label"][...], [n.decode() for n in f["label_name"][...]]
    assert [n.decode() for n in f["class_names"][...]] == names
    assert lname == [names[i] for i in label], (lname[:5], label[:5])
    print(f"cohort infer: {len(label)} rows, accuracy {(label == y).mean():.3f}")
    assert (label == y).mean() > 0.9

base = f"http://127.0.0.1:{port}/v2/models/mlp"
meta = json.load(urllib.request.urlopen(base))
outs = {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]}
assert outs["class_name"] == ("BYTES", [-1]) and outs["label"] == ("INT32", [-1]), meta
config = json.load(urllib.request.urlopen(base + "/config"))
assert any(o["name"] == "class_name" and o["data_type"] == "TYPE_STRING" for o in config["output"]), config

def infer(body, headers={}):
    req = urllib.request.Request(base + "/infer", data=body, method="POST", headers=headers)
    r = urllib.request.urlopen(req)
    return r.read(), r.headers
rows = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                    "data": x.flatten().tolist()}]}
out = json.loads(infer(json.dumps(rows).encode())[0])
o = {t["name"]: t for t in out["outputs"]}
assert o["class_name"]["datatype"] == "BYTES" and o["class_name"]["shape"] == [len(x)], o["class_name"]
assert o["class_name"]["data"] == [names[i] for i in o["label"]["data"]]
assert (np.array(o["label"]["data"]) == label).all(), "serve and cohort infer disagree"
# Binary output of the names alone: each element a 4-byte little-endian length and its bytes.
rows["outputs"] = [{"name": "class_name", "parameters": {"binary_data": True}}]
body, headers = infer(json.dumps(rows).encode())
n = int(headers["Inference-Header-Content-Length"])
head, data = json.loads(body[:n]), body[n:]
assert head["outputs"][0]["parameters"]["binary_data_size"] == len(data), head
got, at = [], 0
while at < len(data):
    (k,) = struct.unpack_from("<I", data, at)
    got.append(data[at + 4:at + 4 + k].decode())
    at += 4 + k
assert got == [names[i] for i in label], got[:5]
print(f"serve: class_name for {len(got)} rows (JSON and binary)")
PY
# tritonclient[http] from PyPI, unmodified, when PyPI is reachable (else this part is left out):
# as_numpy("class_name") gives the names in binary and in JSON.
if "$py" -m venv "$work/venv" > "$work/venv.log" 2>&1 &&
   timeout 300 "$work/venv/bin/pip" install -q --disable-pip-version-check --timeout 30 \
     "tritonclient[http]" numpy > "$work/pip.log" 2>&1; then
  "$work/venv/bin/python" - "$one_port" <<'PY'
import sys
import numpy as np
import tritonclient.http as th
c = th.InferenceServerClient(f"127.0.0.1:{sys.argv[1]}")
names = ["setosa", "versicolor", "virginica"]
x = np.array([[0, 0, 0], [4, 4, 4], [8, 8, 8]], dtype=np.float32)
for binary in (True, False):
    i = th.InferInput("input", list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=binary)
    r = c.infer("mlp", [i], outputs=[th.InferRequestedOutput(n, binary_data=binary)
                                     for n in ("label", "class_name")])
    got = [n.decode() if isinstance(n, bytes) else n for n in r.as_numpy("class_name")]
    assert got == [names[k] for k in r.as_numpy("label")], (binary, got)
print(f"tritonclient: class_name {got}")
PY
else
  echo "tritonclient part left out (no venv or PyPI): $(tail -1 "$work/pip.log" 2>/dev/null)"
fi
stop one
echo "serve_names: ok"
