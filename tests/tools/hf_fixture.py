"""Writes a Hugging Face GPT-2 folder (config.json + model.safetensors) by hand, with numpy only
(no torch, no safetensors package): safetensors is an 8-byte little-endian header length, a
JSON header, then the raw tensors. Used by test_hf_import.sh for the import's good and bad cases.

Usage: hf_fixture.py OUT_DIR [options]
  --layers L --heads H --embd C --ctx T --vocab V   the shape (2, 2, 16, 8, 256)
  --dtype F32|F16|BF16      element type of the tensors (F32)
  --prefix                  GPT2LMHeadModel names: transformer.*, plus lm_head.weight (= wte)
  --buffers                 add the old attn.bias / attn.masked_bias buffers of each block
  --untied                  lm_head.weight differs from wte.weight (in one element)
  --drop NAME               leave tensor NAME out
  --shape NAME=a,b          store NAME with another shape
  --set KEY=JSON            config.json's KEY (e.g. activation_function='"relu"')
  --no-config               no config.json
Prints nothing; OUT_DIR/model.safetensors holds the tensors, OUT_DIR/reference.npz their float32
values under the cohort names (what an import must store)."""
import argparse, json, os, struct
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--layers", type=int, default=2)
p.add_argument("--heads", type=int, default=2)
p.add_argument("--embd", type=int, default=16)
p.add_argument("--ctx", type=int, default=8)
p.add_argument("--vocab", type=int, default=256)
p.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
p.add_argument("--prefix", action="store_true")
p.add_argument("--buffers", action="store_true")
p.add_argument("--untied", action="store_true")
p.add_argument("--drop", action="append", default=[])
p.add_argument("--shape", action="append", default=[])
p.add_argument("--set", action="append", default=[])
p.add_argument("--no-config", action="store_true")
a = p.parse_args()
L, H, C, T, V = a.layers, a.heads, a.embd, a.ctx, a.vocab
rng = np.random.default_rng(7)

shapes = {"wte.weight": (V, C), "wpe.weight": (T, C)}
for l in range(L):
    for n, s in [("ln_1.weight", (C,)), ("ln_1.bias", (C,)), ("attn.c_attn.weight", (C, 3 * C)),
                 ("attn.c_attn.bias", (3 * C,)), ("attn.c_proj.weight", (C, C)),
                 ("attn.c_proj.bias", (C,)), ("ln_2.weight", (C,)), ("ln_2.bias", (C,)),
                 ("mlp.c_fc.weight", (C, 4 * C)), ("mlp.c_fc.bias", (4 * C,)),
                 ("mlp.c_proj.weight", (4 * C, C)), ("mlp.c_proj.bias", (C,))]:
        shapes[f"h.{l}.{n}"] = s
shapes["ln_f.weight"] = (C,)
shapes["ln_f.bias"] = (C,)
for spec in a.shape:
    name, dims = spec.split("=")
    shapes[name] = tuple(int(d) for d in dims.split(","))


def encode(x):
    """x (float32) in the file's dtype: (raw bytes, the float32 values an exact reader gets)."""
    if a.dtype == "F32":
        return x.astype("<f4").tobytes(), x
    if a.dtype == "F16":
        h = x.astype("<f2")
        return h.tobytes(), h.astype(np.float32)
    bits = (x.astype("<f4").view("<u4") >> 16).astype("<u2")  # bf16: the top half, truncated
    return bits.tobytes(), (bits.astype("<u4") << 16).view("<f4")


tensors, reference = {}, {}
for name, s in shapes.items():
    x = (rng.standard_normal(s) * 0.5).astype(np.float32)
    if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
        x += 1
    raw, back = encode(x)
    reference[name] = back
    if name not in a.drop:
        tensors[("transformer." if a.prefix else "") + name] = (raw, s)
if a.prefix or a.untied:
    head = reference["wte.weight"].copy()
    if a.untied:
        head[0, 0] += 1
    tensors["lm_head.weight"] = (encode(head)[0], head.shape)
if a.buffers:
    for l in range(L):
        mask = np.tril(np.ones((T, T), np.float32)).reshape(1, 1, T, T)
        tensors[f"{'transformer.' if a.prefix else ''}h.{l}.attn.bias"] = (encode(mask)[0], mask.shape)
        tensors[f"{'transformer.' if a.prefix else ''}h.{l}.attn.masked_bias"] = (
            encode(np.array(-1e4, np.float32))[0], ())

header, at = {"__metadata__": {"format": "pt"}}, 0
for name, (raw, s) in tensors.items():
    header[name] = {"dtype": a.dtype, "shape": list(s), "data_offsets": [at, at + len(raw)]}
    at += len(raw)
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for raw, _ in tensors.values():
        f.write(raw)
np.savez(os.path.join(a.out, "reference.npz"), **reference)
if not a.no_config:
    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": L, "n_head": H,
           "n_embd": C, "n_positions": T, "n_ctx": T, "vocab_size": V,
           "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05, "n_inner": None,
           "tie_word_embeddings": True}
    for kv in a.set:
        k, v = kv.split("=", 1)
        cfg[k] = json.loads(v)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
