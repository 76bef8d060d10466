#!/usr/bin/python3
"""PyTorch peer of `cohort generate`: greedy decoding with a KV cache on the weights of a cohort
GPT checkpoint, one thread.

  OPENBLAS_CORETYPE=X /usr/bin/python3 bench/torch_generate.py CKPT --prompt TEXT \\
      [--max-tokens 200] [--threads 1] [--compare COHORT_STDOUT] [--reps 1]

CKPT: a checkpoint file or a checkpoint directory (its `latest`), as for cohort. The weights are
the /model/<name> datasets (Hugging Face GPT-2 names and layouts: Conv1D weights [in, out], y = x W
+ b; fused c_attn [C, 3C] = q | k | v, head h at columns h*HS; tied head); n_head and context come
from the config stored in the checkpoint's `config` attribute. Byte tokenizer only (token = byte),
checked against the training data's `tokenizer` attribute when that file is readable.

What it does per call, like src/nn/gpt_decode.c (cohort_peer.gpt_forward with a KV cache):
x = wte[tok] + wpe[pos]; per block ln_1, c_attn, the new keys/values appended to the layer's
cache, the new queries attending every cached position up to their own (causal mask within the
prompt), c_proj, residual, ln_2, c_fc, GELU (tanh), c_proj, residual; then ln_f and the tied
head on the last row only; argmax (the first maximum, as ch_sample_token). The prompt is one call (prefill), then one call per new token.
Timing as cohort's: prefill = the first call and its argmax; tokens/s = (new tokens - 1) / the
time of the rest. Stops at the model's context, as cohort does.

--compare FILE: cohort's stdout (the prompt and the generated text, then a newline); reports how
many generated tokens agree with torch's before the first difference.
Last line: "summary: key=value ..." (machine-readable)."""
import argparse
import os
import sys
import time

from cohort_peer import gpt_forward, gpt_layers, gpt_view, load_checkpoint


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1, help="generations (the median is reported)")
    ap.add_argument("--compare", help="cohort generate's stdout for the same prompt")
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)

    import h5py
    import torch

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    path, cfg, w, _ = load_checkpoint(a.ckpt)
    if cfg.get("model.type") != "gpt":
        sys.exit(f"torch_generate.py: {path} does not hold a GPT")
    data = cfg.get("data.path", "")
    if data and os.path.exists(data):
        with h5py.File(data, "r") as f:
            tok = f.attrs.get("tokenizer", b"byte")
            tok = tok.decode() if isinstance(tok, bytes) else tok
        if tok != "byte":
            sys.exit(f"torch_generate.py: only the byte tokenizer is supported ({data}: {tok})")
    V, C = w["wte.weight"].shape
    T = w["wpe.weight"].shape[0]
    L = gpt_layers(w)
    NH = int(cfg["model.n_head"])
    model = gpt_view(w, NH)
    cache = (torch.zeros(L, 1, NH, T, C // NH), torch.zeros(L, 1, NH, T, C // NH))

    def decode(tokens, past):
        """Appends tokens (list) at positions past..; returns the last row's logits [V]."""
        return gpt_forward(model, torch.tensor([tokens]), past, cache, last_only=True)[0]

    prompt = list(a.prompt.encode("utf-8"))
    if not 1 <= len(prompt) < T:
        sys.exit(f"torch_generate.py: the prompt is {len(prompt)} tokens; the context is {T}")
    runs = []
    with torch.inference_mode():
        for _ in range(a.reps):
            seq, n_new = list(prompt), 0
            t0 = time.perf_counter()
            prefill = 0.0
            fed = 0
            while n_new < a.max_tokens and len(seq) < T:
                logits = decode(seq[fed:], fed)
                fed = len(seq)
                seq.append(int(torch.argmax(logits)))
                n_new += 1
                if n_new == 1:
                    prefill = time.perf_counter() - t0
            decode_s = time.perf_counter() - t0 - prefill
            runs.append((prefill, decode_s, n_new, seq))
    runs.sort(key=lambda r: r[1])
    prefill, decode_s, n_new, seq = runs[len(runs) // 2]
    tps = (n_new - 1) / decode_s if n_new > 1 else 0.0
    sys.stdout.buffer.write(bytes(seq) + b"\n")
    sys.stdout.flush()
    print(f"torch_generate: {len(prompt)} prompt tokens in {prefill:.3f} s, {n_new} new tokens in "
          f"{decode_s:.3f} s ({tps:.1f} tokens/s, KV cache; median of {a.reps}), "
          f"torch {torch.__version__}, {a.threads} thread(s), GPT L={L} NH={NH} C={C} T={T} V={V}",
          file=sys.stderr)
    agree = ""
    if a.compare:
        with open(a.compare, "rb") as f:
            text = f.read()
        if text.endswith(b"\n"):
            text = text[:-1]
        theirs = list(text)
        if theirs[:len(prompt)] != prompt:
            agree = " agree=prompt_mismatch"
        else:
            mine, other = seq[len(prompt):], theirs[len(prompt):]
            k = 0
            while k < min(len(mine), len(other)) and mine[k] == other[k]:
                k += 1
            agree = f" agree={k} cohort_new={len(other)} torch_new={len(mine)}"
            print(f"torch_generate: greedy tokens agree with cohort's for {k} of "
                  f"{len(mine)} new tokens" + ("" if k == len(mine) == len(other) else
                                                f" (first difference at new token {k})"),
                  file=sys.stderr)
    print(f"summary: prompt={len(prompt)} new={n_new} prefill_s={prefill:.6f} decode_s={decode_s:.6f} "
          f"tok_s={tps:.1f}{agree}", file=sys.stderr)


if __name__ == "__main__":
    main()
