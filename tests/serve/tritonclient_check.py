"""tritonclient[http] against cohort, unmodified (run by test_serve_tritonclient.sh in a venv):
the sync client (binary and JSON inputs, binary and JSON outputs, all outputs by default, async_infer),
the aio client, get_model_metadata and get_model_config, and errors whose message text reaches
InferenceServerException.

Usage: tritonclient_check.py MLP_URL MLP_MODEL GPT_URL GPT_MODEL API_KEY
(API_KEY "-": the GPT server has none; otherwise every call to it sends the key.)
"""
import asyncio
import sys

import numpy as np
import tritonclient.http as http
import tritonclient.http.aio as aio
from tritonclient.utils import InferenceServerException

mlp_url, mlp, gpt_url, gpt, key = sys.argv[1:6]


def gpt_headers():
    """A fresh dict per call: infer() adds Inference-Header-Content-Length to the dict it is
    given, so one dict shared by a binary and then a JSON request would send a stale length."""
    return None if key == "-" else {"Authorization": f"Bearer {key}"}


def close(a, b):
    """Concurrent requests may share a batch: the GEMM over more rows may round differently."""
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-6)


def mlp_infer(client, x, binary_in, outputs):
    inp = http.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    req = None if outputs is None else [http.InferRequestedOutput(n, binary_data=b) for n, b in outputs]
    return client.infer(mlp, [inp], outputs=req)


def check_mlp():
    c = http.InferenceServerClient(mlp_url)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(mlp)
    meta = c.get_model_metadata(mlp)
    features = meta["inputs"][0]["shape"][1]
    config = c.get_model_config(mlp)
    assert config["max_batch_size"] > 0 and config["input"][0]["dims"] == [features], config
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, features)).astype(np.float32)
    ref = mlp_infer(c, x, False, [("logits", False), ("label", False)])
    ref_logits, ref_label = ref.as_numpy("logits"), ref.as_numpy("label")
    assert ref_logits.shape == (3, 10) and ref_logits.dtype == np.float32, ref_logits.shape
    assert ref_label.shape == (3,) and ref_label.dtype == np.int32, ref_label.shape
    for binary_in in (True, False):
        for outs in ([("logits", True), ("label", True)], [("logits", True), ("label", False)],
                     [("label", True)], None):
            r = mlp_infer(c, x, binary_in, outs)
            names = [n for n, _ in outs] if outs else ["logits", "label"]
            if "logits" in names:
                assert np.array_equal(r.as_numpy("logits"), ref_logits), (binary_in, outs)
            assert np.array_equal(r.as_numpy("label"), ref_label), (binary_in, outs)
    # async_infer: the sync client's thread pool.
    inp = http.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    got = [c.async_infer(mlp, [inp]) for _ in range(4)]
    for g in got:
        assert close(g.get_result().as_numpy("logits"), ref_logits)
    # Errors: the server's message reaches the exception.
    bad = http.InferInput("input", list(x.shape), "FP64")
    bad.set_data_from_numpy(x.astype(np.float64))
    try:
        c.infer(mlp, [bad])
        raise AssertionError("FP64 accepted")
    except InferenceServerException as e:
        assert "datatype FP64 is not accepted" in str(e), str(e)
    bad = http.InferInput("pixels", list(x.shape), "FP32")
    bad.set_data_from_numpy(x)
    try:
        c.infer(mlp, [bad])
        raise AssertionError("unknown input accepted")
    except InferenceServerException as e:
        assert "unknown input 'pixels'" in str(e), str(e)
    c.close()
    return x, ref_logits


def check_gpt():
    c = http.InferenceServerClient(gpt_url)
    assert c.is_model_ready(gpt, headers=gpt_headers())
    config = c.get_model_config(gpt, headers=gpt_headers())
    assert config["max_batch_size"] == 0 and config["input"][0]["dims"] == [-1], config
    ids = np.array([(7 * k + 3) % 256 for k in range(12)])
    results = []
    for dtype, np_type in (("INT32", np.int32), ("INT64", np.int64)):
        for binary in (True, False):
            inp = http.InferInput("input_ids", [len(ids)], dtype)
            inp.set_data_from_numpy(ids.astype(np_type), binary_data=binary)
            outs = [http.InferRequestedOutput("logits", binary_data=binary),
                    http.InferRequestedOutput("next_token", binary_data=True)]
            r = c.infer(gpt, [inp], outputs=outs, headers=gpt_headers())
            results.append((r.as_numpy("logits"), r.as_numpy("next_token")))
    for logits, tok in results[1:]:
        assert np.array_equal(logits, results[0][0]) and np.array_equal(tok, results[0][1])
    logits, tok = results[0]
    assert tok.shape == (1,) and tok[0] == int(np.argmax(logits)), (tok, np.argmax(logits))
    c.close()
    return ids, logits


async def check_aio(x, ref_logits, ids, gpt_logits):
    async with aio.InferenceServerClient(mlp_url) as c:
        assert await c.is_server_ready()
        config = await c.get_model_config(mlp)
        assert config["max_batch_size"] > 0, config
        inp = http.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=True)
        rs = await asyncio.gather(*[c.infer(mlp, [inp]) for _ in range(4)])
        for r in rs:
            assert close(r.as_numpy("logits"), ref_logits)
    async with aio.InferenceServerClient(gpt_url) as c:
        inp = http.InferInput("input_ids", [len(ids)], "INT64")
        inp.set_data_from_numpy(ids.astype(np.int64), binary_data=True)
        r = await c.infer(gpt, [inp], headers=gpt_headers())
        assert np.array_equal(r.as_numpy("logits"), gpt_logits)


x, ref_logits = check_mlp()
ids, gpt_logits = check_gpt()
asyncio.run(check_aio(x, ref_logits, ids, gpt_logits))
print("tritonclient: ok")
