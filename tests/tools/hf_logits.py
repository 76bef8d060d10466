"""Hugging Face's side of test_hf_transformers.sh, run with transformers 4.46.3 (a venv over
Debian's torch 1.13):

  hf_logits.py load DIR                    GPT2LMHeadModel.from_pretrained(DIR) reports no missing,
                                           unexpected or mismatched keys and ties lm_head to wte
  hf_logits.py make DIR [--fp16]           a random GPT2LMHeadModel (vocab 256, context 32), every
                                           parameter N(0, 0.2^2) so that logits are O(1), saved
                                           with save_pretrained(safe_serialization=True)
  hf_logits.py compare DIR PORT [--fp16]   the next-token logits of cohort's server (KServe V2,
                                           model "tiny") for prompts of 1 to 32 tokens against
                                           the model's in DIR (fp16: its float32 widening); prints
                                           the largest differences and asserts them (below)

Tolerance: both sides compute in float32 from the same float32 weights; they differ only in
summation order (GEMM blocking, LayerNorm and softmax reductions) and in exp/tanh
implementations (cohort's GELU uses its own exp in sigmoid form), i.e. a few ulp per operation
through 2 blocks, about 1e-7 relative to logits of magnitude 1-10: max |cohort - HF| <= 1e-5
(measured: about 1e-6 for the trained model, 4e-7 for the random ones)."""
import json, sys, urllib.request
import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel


def load(d):
    m, info = GPT2LMHeadModel.from_pretrained(d, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    assert not bad, bad
    assert m.lm_head.weight.data_ptr() == m.transformer.wte.weight.data_ptr(), "lm_head not tied"
    return m.float().eval()


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    fp16 = "--fp16" in sys.argv
    if cmd == "load":
        m = load(d)
        print(f"ok: from_pretrained({d}): no missing or unexpected keys; {m.config.n_layer} layers, "
              f"{m.config.activation_function}, eps {m.config.layer_norm_epsilon}")
    elif cmd == "make":
        torch.manual_seed(3)
        cfg = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=32, vocab_size=256,
                         resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, bos_token_id=None,
                         eos_token_id=None)
        m = GPT2LMHeadModel(cfg)
        with torch.no_grad():
            for p in m.parameters():
                p.normal_(0, 0.2)
        (m.half() if fp16 else m).save_pretrained(d, safe_serialization=True)
        print(f"ok: saved a random GPT-2 ({'fp16' if fp16 else 'fp32'}) in {d}")
    elif cmd == "compare":
        port = sys.argv[3]
        m = load(d)
        rng = np.random.default_rng(5)
        worst_abs, worst_rel = 0.0, 0.0
        for n in (1, 2, 7, 16, 31, 32):
            ids = rng.integers(0, 256, n).tolist()
            body = json.dumps({"inputs": [{"name": "input_ids", "shape": [n], "datatype": "INT32",
                                           "data": ids}]}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/tiny/infer", data=body,
                                         method="POST")
            with urllib.request.urlopen(req) as r:
                out = {t["name"]: np.array(t["data"]) for t in json.load(r)["outputs"]}
            got = out["logits"].astype(np.float64)
            with torch.no_grad():
                want = m(torch.tensor([ids])).logits[0, -1].double().numpy()
            diff = np.abs(got - want).max()
            scale = max(1.0, np.abs(want).max())
            worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, diff / scale)
            assert diff <= 1e-5, (n, diff, scale)
            assert out["next_token"][0] == int(want.argmax()), (n, out["next_token"], want.argmax())
        print(f"ok: cohort's logits = HF's for prompts of 1..32 tokens: max |diff| {worst_abs:.3g}, "
              f"max |diff| / max(1, max |logit|) {worst_rel:.3g} (tolerance 1e-5 absolute)")
    else:
        sys.exit(f"unknown command {cmd}")


main()
