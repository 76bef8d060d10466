# Triton's extensions through tritonclient[http] against an MLP server named "mlp" (version 20):
# probes without the key, /v2 extensions, the 401 message, request compression, statistics,
# repository index / unload / load. Usage: tritonclient_ext.py PORT KEY ("" for none)
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
