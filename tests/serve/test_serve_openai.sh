#!/usr/bin/env bash
# The OpenAI API through the real `openai` Python client, unmodified (installed from PyPI into a
# venv; skips with 77 when PyPI cannot be reached), against a served GPT with --api-key:
#   - models.list / models.retrieve (and a 404 NotFoundError naming the model);
#   - completions: greedy text; streaming sends one event per token and, with
#     stream_options.include_usage, a last usage chunk; n choices (choice 0 = the n=1 answer with
#     the same seed); prompt lists, token-id prompts and lists of them; echo; logprobs (the
#     greedy token is the most likely, text_offset counts bytes), streamed logprobs;
#   - chat: the answer equals a completion of the documented template with its stop; streamed
#     (role first, then content, then usage); chat logprobs;
#   - errors: the message text reaches the exception (BadRequestError, NotFoundError,
#     AuthenticationError with a wrong key), its type and param/code are the API's.
# Usage: test_serve_openai.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
set -euo pipefail
cohort=$1 src=$2 mpiexec=$3
shift 3
flags=("$@")
. "$(dirname "$0")/lib.sh"
serve_init openai

"$py" -m venv "$work/venv" > /dev/null 2>&1 || { echo "SKIP: python3 -m venv failed"; exit 77; }
timeout 300 "$work/venv/bin/pip" install -q --disable-pip-version-check openai > "$work/pip.log" 2>&1 ||
  { echo "SKIP: pip install openai failed (no PyPI?)"; tail -3 "$work/pip.log"; exit 77; }

"$cohort" data text "$src/examples/shakespeare/input.txt.gz" "$work/text.h5" > /dev/null
"$mpiexec" -n 1 "${flags[@]}" "$cohort" train "$src/configs/gpt-tiny.yaml" \
  data.path="$work/text.h5" run.dir="$work/run" model.n_layer=2 model.n_embd=64 \
  model.context=96 train.steps=200 train.batch_size=16 train.log_every=100 train.eval_every=0 \
  optim.warmup_steps=10 run.checkpoint.every=200 > "$work/train.txt"
start one 1 "$work/run/checkpoints" --model-name tiny --max-batch-size 4 --api-key sekrit

"$work/venv/bin/python" - "http://127.0.0.1:$one_port/v1" <<'PY'
import sys
import openai
from openai import OpenAI

base = sys.argv[1]
c = OpenAI(base_url=base, api_key="sekrit", max_retries=0, timeout=120)
P = "ROMEO:"

# Models.
assert [m.id for m in c.models.list().data] == ["tiny"]
assert c.models.retrieve("tiny").id == "tiny"
try:
    c.models.retrieve("nope")
    raise AssertionError("no 404")
except openai.NotFoundError as e:
    assert "'nope' does not exist" in str(e) and e.code == "model_not_found", e

# Completions: greedy, then streamed (one event per token, then the usage chunk).
r = c.completions.create(model="tiny", prompt=P, max_tokens=12, temperature=0)
greedy = r.choices[0].text
assert r.object == "text_completion" and r.choices[0].finish_reason == "length", r
assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (len(P), 12), r.usage
chunks = list(c.completions.create(model="tiny", prompt=P, max_tokens=12, temperature=0,
                                   stream=True, stream_options={"include_usage": True}))
body = [k for k in chunks if k.choices]
assert len(body) == 12, f"{len(body)} events for 12 tokens"
assert "".join(k.choices[0].text for k in body) == greedy
assert body[-1].choices[0].finish_reason == "length"
assert all(k.usage is None for k in chunks[:-1]) and not chunks[-1].choices
assert chunks[-1].usage.completion_tokens == 12 and chunks[-1].usage.prompt_tokens == len(P)
print(f"completion {greedy!r}; streamed as 12 events + usage")

# n: independent samples; choice 0 is the n=1 answer with the same seed.
r = c.completions.create(model="tiny", prompt=P, max_tokens=16, temperature=1, seed=7, n=3)
one = c.completions.create(model="tiny", prompt=P, max_tokens=16, temperature=1, seed=7)
assert [k.index for k in r.choices] == [0, 1, 2]
assert r.choices[0].text == one.choices[0].text, (r.choices[0].text, one.choices[0].text)
assert len({k.text for k in r.choices}) > 1, [k.text for k in r.choices]
assert r.usage.completion_tokens == 48 and r.usage.prompt_tokens == len(P), r.usage

# Prompt lists and token ids: one choice list per prompt, in order.
r = c.completions.create(model="tiny", prompt=[P, "JULIET:"], max_tokens=8, temperature=0, n=2)
assert len(r.choices) == 4 and r.choices[0].text == r.choices[1].text == greedy[:8], r.choices
assert r.usage.prompt_tokens == len(P) + len("JULIET:"), r.usage
jul = r.choices[2].text
r = c.completions.create(model="tiny", prompt=list(P.encode()), max_tokens=8, temperature=0)
assert r.choices[0].text == greedy[:8], r
r = c.completions.create(model="tiny", prompt=[list(P.encode()), list(b"JULIET:")], max_tokens=8,
                         temperature=0)
assert [k.text for k in r.choices] == [greedy[:8], jul], r.choices

# Echo, logprobs.
r = c.completions.create(model="tiny", prompt=P, max_tokens=8, temperature=0, echo=True)
assert r.choices[0].text == P + greedy[:8], r
r = c.completions.create(model="tiny", prompt=P, max_tokens=6, temperature=0, logprobs=3)
lp = r.choices[0].logprobs
assert "".join(lp.tokens) == greedy[:6] and lp.text_offset == list(range(6)), lp
for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
    assert l <= 0 and len(top) >= 3 and abs(max(top.values()) - l) < 1e-5 and top[tok] == l, (tok, l, top)
events = [k for k in c.completions.create(model="tiny", prompt=P, max_tokens=4, temperature=0,
                                          logprobs=2, stream=True)]
assert [k.choices[0].logprobs.tokens for k in events] == [[ch] for ch in greedy[:4]], events
# Several choices streamed: each choice's events concatenate to its whole answer.
whole = c.completions.create(model="tiny", prompt=P, max_tokens=10, temperature=1, seed=3, n=2)
texts, events = ["", ""], 0
for k in c.completions.create(model="tiny", prompt=P, max_tokens=10, temperature=1, seed=3, n=2,
                              stream=True):
    events += 1
    for ch in k.choices:
        texts[ch.index] += ch.text
assert texts == [k.text for k in whole.choices] and events == 20, (texts, whole.choices, events)
print("n, prompt lists, token ids, echo and logprobs as the client reads them")

# Chat: the documented template for a base model, stop at the user's next turn.
msgs = [{"role": "system", "content": "Plays."}, {"role": "user", "content": P}]
r = c.chat.completions.create(model="tiny", messages=msgs, max_tokens=20, temperature=0)
want = c.completions.create(model="tiny", prompt=f"System: Plays.\nUser: {P}\nAssistant:",
                            max_tokens=20, temperature=0, stop=["\nUser:"]).choices[0]
m = r.choices[0]
assert r.object == "chat.completion" and m.message.role == "assistant", r
assert m.message.content == want.text and m.finish_reason == want.finish_reason, (m, want)
chunks = list(c.chat.completions.create(model="tiny", messages=msgs, max_tokens=20, temperature=0,
                                        stream=True, stream_options={"include_usage": True}))
assert chunks[0].object == "chat.completion.chunk" and chunks[0].choices[0].delta.role == "assistant"
assert "".join(k.choices[0].delta.content or "" for k in chunks if k.choices) == want.text
assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens, (chunks[-1], r.usage)
r = c.chat.completions.create(model="tiny", messages=msgs, max_tokens=5, temperature=0,
                              logprobs=True, top_logprobs=2)
content = r.choices[0].logprobs.content
assert content and all(t.logprob <= 0 and len(t.top_logprobs) == 2 and
                       abs(t.top_logprobs[0].logprob - t.logprob) < 1e-5 for t in content), content
print(f"chat {m.message.content!r}, streamed, with logprobs")

# Errors: the server's message reaches the exception.
def raises(cls, text, **kw):
    try:
        c.completions.create(model="tiny", **kw)
    except cls as e:
        assert text in str(e) and text in e.message, (text, str(e))
        return e
    raise AssertionError(f"no {cls.__name__} for {kw}")

e = raises(openai.BadRequestError, "'max_tokens' must be at least 1", prompt=P, max_tokens=0)
assert e.type == "invalid_request_error" and e.param == "max_tokens", e.body
assert e.body["message"].startswith("'max_tokens'"), e.body
raises(openai.BadRequestError, "outside the vocabulary", prompt=[[100000]], max_tokens=2)
raises(openai.BadRequestError, "'n' must be from 1 to 128", prompt=P, n=500, stream=True)
try:
    c.completions.create(model="other", prompt=P)
    raise AssertionError("no 404")
except openai.NotFoundError as e:
    assert "The model 'other' does not exist" in e.message and e.param == "model", e
try:
    OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
    raise AssertionError("no 401")
except openai.AuthenticationError as e:
    assert "missing or wrong API key" in e.message and e.type == "authentication_error", e
print("errors: messages, types, param and code reach the client")
PY

stop one
# Calls with several choices count once: every accepted call answered in full.
counts=$(sed -n 's/.* \([0-9]*\) request(s) accepted, \([0-9]*\) answered in full.*/\1 \2/p' "$work/one.log")
read -r accepted answered <<< "$counts"
[ -n "$accepted" ] && [ "$accepted" = "$answered" ] ||
  { echo "FAIL: accepted/answered: '$counts'"; exit 1; }
echo PASS
