"""TorchServe handler for bench/serve.sh: the weights of a cohort checkpoint, served by PyTorch
inside TorchServe, answering the same KServe V2 infer JSON as `cohort serve`.

Packed by bench/serve.sh with torch-model-archiver, with an extra file `peer.json`:
{"ckpt": PATH} (a checkpoint file or directory; its `latest`). The weights are the
/model/<name> datasets of the checkpoint HDF5, read with h5py:
  MLP  layers.{i}.weight [out, in] / layers.{i}.bias: torch nn.Linear, relu between them
       (gelu when the stored config says model.activation: gelu); logits and argmax label.
  GPT  Hugging Face GPT-2 names (docs/gpt.md): Conv1D layouts [in, out], fused c_attn, tied
       head; n_head from the stored config; the forward is cohort_peer.gpt_forward. V2 infer:
       input_ids [n] -> the last position's logits [vocab] and next_token = argmax (one
       prefill pass, as cohort's V2 GPT infer).
TorchServe batches requests itself (batch_size / max_batch_delay at registration): `handle`
gets a list of requests. MLP rows of the batch are stacked into one matmul; GPT requests of
the same length are stacked into one [B, n] forward.
One torch thread (torch.set_num_threads(1)); OMP_WAIT_POLICY=PASSIVE comes from the script."""
import json
import logging
import os

import torch
import torch.nn.functional as F

from cohort_peer import gpt_forward, gpt_layers, gpt_view, load_checkpoint  # --extra-files


class CohortWeights:
    """Loads a cohort checkpoint and runs its forward pass (inference mode, fp32)."""

    def __init__(self, ckpt):
        self.path, self.cfg, self.w, self.step = load_checkpoint(ckpt)
        self.version = str(self.step)
        self.is_gpt = self.cfg.get("model.type") == "gpt"
        if self.is_gpt:
            w = self.w
            self.V, self.C = w["wte.weight"].shape
            self.T = w["wpe.weight"].shape[0]
            self.L = gpt_layers(w)
            self.NH = int(self.cfg["model.n_head"])
            self.gpt = gpt_view(w, self.NH)
        else:
            n = sum(1 for k in self.w if k.endswith(".weight"))
            self.layers = []
            for i in range(n):
                W, b = self.w[f"layers.{i}.weight"], self.w[f"layers.{i}.bias"]
                lin = torch.nn.Linear(W.shape[1], W.shape[0])
                with torch.no_grad():
                    lin.weight.copy_(W)
                    lin.bias.copy_(b)
                self.layers.append(lin.eval())
            self.features = self.layers[0].in_features
            self.classes = self.layers[-1].out_features
            self.act = F.gelu if self.cfg.get("model.activation") == "gelu" else F.relu

    def mlp(self, x):
        for i, lin in enumerate(self.layers):
            x = lin(x)
            if i + 1 < len(self.layers):
                x = self.act(x)
        return x

    def gpt_last_logits(self, tokens):
        """tokens [B, n] int64 -> logits of the last position [B, V] (a full causal pass)."""
        return gpt_forward(self.gpt, tokens, last_only=True)

    def gpt_decode(self, tokens, past, kc, vc):
        """KV-cache step: tokens [B, n] at positions past..past+n-1, keys/values appended to
        kc, vc [L, B, NH, T, HS]; returns the last position's logits [B, V]."""
        return gpt_forward(self.gpt, tokens, past, (kc, vc), last_only=True)


def _v2_input(body):
    if isinstance(body, (bytes, bytearray)):
        body = json.loads(body.decode())
    ins = body.get("inputs") or []
    if len(ins) != 1:
        raise ValueError(f"expected exactly one input, got {len(ins)}")
    return ins[0]


def _out(name, shape, dtype, data):
    return {"name": name, "shape": list(shape), "datatype": dtype, "data": data}


class CohortHandler:
    def __init__(self):
        self.m = None
        self.name = "model"

    def initialize(self, context):
        # TorchServe's worker logs a line per request at INFO ("Backend received inference");
        # the frontend reads the worker's stdout and logs it again: keep warnings only.
        logging.getLogger().setLevel(logging.WARNING)
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        d = context.system_properties.get("model_dir")
        with open(os.path.join(d, "peer.json")) as f:
            conf = json.load(f)
        self.m = CohortWeights(conf["ckpt"])
        self.name = context.manifest["model"]["modelName"]

    def handle(self, data, context):
        m = self.m
        outs = [None] * len(data)
        infer, gen = [], []
        for i, req in enumerate(data):
            body = req.get("body") if req.get("body") is not None else req.get("data")
            try:
                if isinstance(body, (bytes, bytearray)):
                    body = json.loads(body.decode())
                if m.is_gpt and "prompt" in body:
                    gen.append((i, body))
                else:
                    infer.append((i, _v2_input(body)))
            except Exception as e:  # noqa: BLE001 - a bad request answers an error, not a crash
                outs[i] = {"error": str(e)}
        with torch.inference_mode():
            if infer and not m.is_gpt:
                xs = [torch.tensor(inp["data"], dtype=torch.float32).view(-1, m.features) for _, inp in infer]
                logits = m.mlp(torch.cat(xs))
                labels = logits.argmax(dim=1)
                at = 0
                for (i, _), x in zip(infer, xs):
                    r = x.shape[0]
                    outs[i] = {"model_name": self.name, "model_version": m.version, "outputs": [
                        _out("logits", [r, m.classes], "FP32", logits[at:at + r].flatten().tolist()),
                        _out("label", [r], "INT32", labels[at:at + r].tolist())]}
                    at += r
            elif infer:
                groups = {}
                for i, inp in infer:
                    ids = torch.tensor(inp["data"], dtype=torch.int64).flatten()
                    groups.setdefault(ids.numel(), []).append((i, ids))
                for n, items in groups.items():
                    logits = m.gpt_last_logits(torch.stack([ids for _, ids in items]))
                    nxt = logits.argmax(dim=1)
                    for k, (i, _) in enumerate(items):
                        outs[i] = {"model_name": self.name, "model_version": m.version, "outputs": [
                            _out("logits", [m.V], "FP32", logits[k].tolist()),
                            _out("next_token", [1], "INT32", [int(nxt[k])])]}
            if gen:
                groups = {}
                for i, body in gen:
                    toks = list(str(body["prompt"]).encode("utf-8"))
                    groups.setdefault(len(toks), []).append((i, body, toks))
                for n, items in groups.items():
                    self._generate(items, n, outs, context)
        return outs

    def _generate(self, items, n, outs, context):
        """Static batching: the requests of one TorchServe batch whose prompts have the same
        length decode in lockstep with a KV cache until each has its max_tokens (byte tokenizer,
        greedy at temperature 0, else sampling at the temperature). Streaming requests get one
        "data: {json}" event per token through TorchServe's intermediate responses."""
        m = self.m
        B = len(items)
        maxt = [max(0, min(int(b.get("max_tokens", 16)), m.T - n)) for _, b, _ in items]
        temp = [float(b.get("temperature", 1.0)) for _, b, _ in items]
        stream = [bool(b.get("stream", False)) for _, b, _ in items]
        HS = m.C // m.NH
        kc = torch.zeros(m.L, B, m.NH, m.T, HS)
        vc = torch.zeros(m.L, B, m.NH, m.T, HS)
        toks = torch.tensor([t for _, _, t in items], dtype=torch.int64)
        gen = [[] for _ in range(B)]
        past, steps = 0, max(maxt) if maxt else 0
        rid = context.request_ids
        for step in range(steps):
            logits = m.gpt_decode(toks, past, kc, vc)
            past += toks.shape[1]
            nxt = []
            for k in range(B):
                if temp[k] <= 0:
                    nxt.append(int(torch.argmax(logits[k])))
                else:
                    nxt.append(int(torch.multinomial(F.softmax(logits[k] / temp[k], dim=-1), 1)))
            toks = torch.tensor(nxt, dtype=torch.int64).view(B, 1)
            ev = {}
            for k, (i, _, _) in enumerate(items):
                if step < maxt[k]:
                    gen[k].append(nxt[k])
                    if stream[k] and step + 1 < maxt[k]:
                        ev[i] = _chunk(self.name, bytes([nxt[k]]).decode("latin-1"), None)
            if ev:
                from ts.handler_utils.utils import send_intermediate_predict_response
                send_intermediate_predict_response(ev, {i: rid[i] for i in ev}, "Intermediate", 200, context)
        for k, (i, _, prompt) in enumerate(items):
            text = bytes(gen[k]).decode("utf-8", errors="replace")
            if stream[k]:
                last = bytes(gen[k][-1:]).decode("latin-1")
                outs[i] = _chunk(self.name, last, "length") + "data: [DONE]\n\n"
            else:
                outs[i] = {"id": "cmpl-torchserve", "object": "text_completion", "model": self.name,
                           "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
                           "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(gen[k]),
                                     "total_tokens": len(prompt) + len(gen[k])}}


def _chunk(model, text, finish):
    return "data: " + json.dumps({"object": "text_completion", "model": model, "choices": [
        {"index": 0, "text": text, "finish_reason": finish}]}) + "\n\n"


_service = CohortHandler()


def handle(data, context):
    if _service.m is None:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
