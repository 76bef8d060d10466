"""Request bodies for test_serve_v2bin.sh, built with struct: KServe V2 JSON headers followed by
Triton's binary tensor data (little-endian, row-major). Writes, for each case NAME, into WORK:
NAME.bin (the body), NAME.hlen (the Inference-Header-Content-Length value; absent: no header),
NAME.want (the expected status and a substring of the answer, tab-separated).

Usage: v2bin_bodies.py WORK FAMILY FEATURES_OR_CONTEXT VOCAB
"""
import json
import struct
import sys

work, family, size, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

FMT = {"FP32": "f", "FP64": "d", "INT32": "i", "INT64": "q", "UINT16": "H", "UINT8": "B"}


def tensor(name, dtype, shape, values):
    """A binary input: its JSON object and its bytes."""
    raw = struct.pack("<%d%s" % (len(values), FMT[dtype]), *values)
    return {"name": name, "datatype": dtype, "shape": shape,
            "parameters": {"binary_data_size": len(raw)}}, raw


def case(name, inputs, raws, want, msg="", outputs=None, params=None, header=True, hlen=None,
         cut=0):
    """One body: the JSON header, then the raw parts (less `cut` bytes at the end)."""
    req = {"inputs": inputs}
    if outputs is not None:
        req["outputs"] = outputs
    if params is not None:
        req["parameters"] = params
    head = json.dumps(req).encode()
    body = head + b"".join(raws)
    if cut:
        body = body[:-cut]
    with open(f"{work}/{name}.bin", "wb") as f:
        f.write(body)
    if header:
        with open(f"{work}/{name}.hlen", "w") as f:
            f.write(str(len(head) if hlen is None else hlen))
    with open(f"{work}/{name}.want", "w") as f:
        f.write(f"{want}\t{msg}")


if family == "mlp":
    features = size
    row = [(k % 7) * 0.25 - 0.5 for k in range(features)]
    rows3 = [v * s for s in (1.0, -0.5, 2.0) for v in row]
    t, r = tensor("input", "FP32", [1, features], row)
    # The reference: the same row as JSON.
    case("mlp_json", [{"name": "input", "datatype": "FP32", "shape": [1, features], "data": row}],
         [], 200, header=False)
    case("mlp_bin_all", [t], [r], 200, params={"binary_data_output": True})
    case("mlp_bin_in", [t], [r], 200)
    t3, r3 = tensor("input", "FP32", [3, features], rows3)
    case("mlp_bin_label", [t3], [r3], 200,
         outputs=[{"name": "label", "parameters": {"binary_data": True}}, {"name": "logits"}])
    case("mlp_json3", [{"name": "input", "datatype": "FP32", "shape": [3, features], "data": rows3}],
         [], 200, header=False)
    # Errors: each names what is wrong.
    case("mlp_short", [t], [r], 400, "runs past the end of the body", cut=56)
    bad = dict(t, parameters={"binary_data_size": 4 * features - 4})
    case("mlp_size", [bad], [r[:-4]], 400,
         f"binary_data_size is {4 * features - 4} bytes but {features} elements of FP32 take "
         f"{4 * features}")
    case("mlp_extra", [t], [r, b"\0\0\0\0"], 400, "(4 bytes left over)")
    case("mlp_noheader", [t], [r], 400, "needs the Inference-Header-Content-Length header",
         header=False)
    case("mlp_hlen_big", [t], [r], 400, "is not a byte count within the body's", hlen=10 ** 6)
    case("mlp_hlen_text", [t], [r], 400, "Inference-Header-Content-Length 'x12'", hlen="x12")
    tn, rn = tensor("x", "FP32", [1, features], row)
    case("mlp_name", [tn], [rn], 400, "unknown input 'x' (the model's inputs: 'input')")
    t64, r64 = tensor("input", "FP64", [1, features], row)
    case("mlp_fp64", [t64], [r64], 400, "input 'input': datatype FP64 is not accepted (the model "
         "takes FP32)")
    case("mlp_fp64_json", [{"name": "input", "datatype": "FP64", "shape": [1, features],
                            "data": row}], [], 400, "datatype FP64 is not accepted", header=False)
    case("mlp_nan", [tensor("input", "FP32", [1, features], [float("nan")] + row[1:])[0]],
         [struct.pack("<%df" % features, float("nan"), *row[1:])], 400,
         "NaN/Infinity is not allowed")
else:
    context = size
    ids = [(7 * k + 3) % 256 for k in range(10)]
    case("gpt_json", [{"name": "input_ids", "datatype": "INT32", "shape": [10], "data": ids}], [],
         200, header=False)
    t, r = tensor("input_ids", "INT64", [10], ids)
    case("gpt_bin64", [t], [r], 200, params={"binary_data_output": True})
    t, r = tensor("input_ids", "INT32", [1, 10], ids)
    case("gpt_bin32", [t], [r], 200, outputs=[{"name": "next_token", "parameters":
                                                {"binary_data": True}}])
    t, r = tensor("input_ids", "UINT16", [10], ids)
    case("gpt_bin16", [t], [r], 200, outputs=[{"name": "logits"}])
    full = [(5 * k + 1) % 256 for k in range(context)]
    t, r = tensor("input_ids", "INT32", [context], full)
    case("gpt_context", [t], [r], 200, params={"binary_data_output": True})
    t, r = tensor("input_ids", "INT32", [context + 1], full + [1])
    case("gpt_over", [t], [r], 400, f"{context + 1} tokens; 1 to {context} fit the context")
    t, r = tensor("input_ids", "INT32", [2], [1, vocab])
    case("gpt_vocab", [t], [r], 400, f"outside the vocabulary [0, {vocab})")
    t, r = tensor("input_ids", "FP32", [2], [1, 2])
    case("gpt_fp32", [t], [r], 400, "datatype FP32 is not accepted (the model takes INT32 or "
         "another integer type)")
    t, r = tensor("ids", "INT32", [2], [1, 2])
    case("gpt_name", [t], [r], 400, "unknown input 'ids' (the model's inputs: 'input_ids')")
    t, r = tensor("input_ids", "INT32", [4], [1, 2, 3, 4])
    case("gpt_short", [t], [r], 400, "runs past the end of the body", cut=1)
