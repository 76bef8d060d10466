#!/usr/bin/python3
"""Helpers of cli_data_text.sh: random inputs, a small GPT-2 vocabulary, and an h5py check of
a `cohort data text` output against the inputs and the printed summary.

usage:
  check_text_h5.py gen DIR SEED      writes DIR/a.txt (not ending in a newline), DIR/b.txt.gz,
                                     DIR/c.txt (empty), DIR/encoder.json, DIR/vocab.bpe
  check_text_h5.py check OUT.h5 SUMMARY.txt FRAC byte|gpt2 DIR INPUT...
                                     the tokens are the encoding of the joined inputs (byte
                                     values, or bpe_ref.py's GPT-2 ids with DIR's vocabulary),
                                     split as documented; attributes; the printed statistics
"""
import gzip
import json
import math
import os
import random
import re
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe_ref  # noqa: E402


def fail(msg):
    print('FAIL: ' + msg)
    sys.exit(1)


def random_text(rng, n):
    words = ['the', 'king', "'s", 'queen', "'ll", 'and', '1600', 'caf\u00e9', '\u4e2d\u6587', '\u2019',
             '!', '?', ',', '.', '--', ' ', ' ', ' ', '  ', '\n', '\n\n', '\t', '\u00a0', 'Ж']
    out = ''.join(rng.choice(words) for _ in range(n))
    return out.encode('utf-8') + bytes(rng.randrange(256) for _ in range(rng.randrange(4)))


def gen(d, seed):
    rng = random.Random(seed)
    a = random_text(rng, 3000).rstrip(b'\n') + b'x'
    b = random_text(rng, 2000)
    with open(os.path.join(d, 'a.txt'), 'wb') as f:
        f.write(a)
    with gzip.open(os.path.join(d, 'b.txt.gz'), 'wb') as f:
        f.write(b)
    open(os.path.join(d, 'c.txt'), 'wb').close()
    # A small vocabulary: the byte symbols, then merges learned greedily from the text (the most
    # frequent adjacent pair of symbols within pieces, 40 times).
    sym = bpe_ref.bytes_to_unicode()
    enc = {sym[i]: i for i in range(256)}
    pattern = bpe_ref.gpt2_pattern()
    words = [[sym[c] for c in p.encode('utf-8', 'surrogateescape')]
             for p in pattern.findall((a + b).decode('utf-8', 'surrogateescape'))]
    merges = []
    for _ in range(40):
        counts = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = max(sorted(counts), key=lambda p: counts[p])
        merges.append(best)
        enc.setdefault(best[0] + best[1], len(enc))
        for w in words:
            i = 0
            while i + 1 < len(w):
                if (w[i], w[i + 1]) == best:
                    w[i:i + 2] = [best[0] + best[1]]
                i += 1
    with open(os.path.join(d, 'encoder.json'), 'w', encoding='utf-8') as f:
        json.dump(enc, f)
    with open(os.path.join(d, 'vocab.bpe'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + ''.join(f'{x} {y}\n' for x, y in merges))


def read_input(p):
    with (gzip.open(p, 'rb') if p.endswith('.gz') else open(p, 'rb')) as f:
        return f.read()


def summary_value(text, pattern):
    m = re.search(pattern, text)
    if not m:
        fail(f'summary lacks /{pattern}/:\n{text}')
    return m.groups()


def check(out, summary_path, frac, tokenizer, d, inputs):
    data = [read_input(p) for p in inputs]
    joined = b''
    for i, x in enumerate(data):
        joined += x
        if i + 1 < len(data) and x and not x.endswith(b'\n'):
            joined += b'\n'
    with h5py.File(out, 'r') as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        train, val = f['train/tokens'], f['val/tokens']
        if train.dtype != np.int32 or val.dtype != np.int32 or train.ndim != 1 or val.ndim != 1:
            fail(f'token datasets: {train.dtype} {train.shape}, {val.dtype} {val.shape}')
        train, val = train[:], val[:]
        stored = {k: bytes(f['tokenizer'][k][:]) for k in ('encoder_json', 'bpe_merges')} if 'tokenizer' in f else None
    if tokenizer == 'byte':
        want = np.frombuffer(joined, dtype=np.uint8).astype(np.int32)
        vocab = 256
        if stored is not None:
            fail('byte tokenizer file has a /tokenizer group')
    else:
        enc_text = open(os.path.join(d, 'encoder.json'), 'rb').read()
        merges_text = open(os.path.join(d, 'vocab.bpe'), 'rb').read()
        enc = bpe_ref.Encoder(enc_text.decode('utf-8'), merges_text.decode('utf-8'))
        want = np.array(enc.encode(joined), dtype=np.int32)
        vocab = max(enc.encoder.values()) + 1
        if stored != {'encoder_json': enc_text, 'bpe_merges': merges_text}:
            fail('stored tokenizer texts differ from the files')
    nval = math.floor(frac * len(want) + 0.5)
    if len(val) != nval or len(train) != len(want) - nval:
        fail(f'split {len(train)} + {len(val)}, expected {len(want) - nval} + {nval}')
    if not np.array_equal(np.concatenate([train, val]), want):
        k = int(np.argmax(np.concatenate([train, val]) != want))
        fail(f'tokens differ from the expected encoding at {k}')
    source = ', '.join(os.path.basename(p) for p in inputs)
    counts = np.bincount(train, minlength=vocab)
    p = counts[counts > 0] / len(train)
    bits = float(-(p * np.log2(p)).sum())
    nats = attrs.pop('unigram_entropy', None)
    if attrs != {'vocab_size': vocab, 'tokenizer': tokenizer, 'source': source}:
        fail(f'attributes {attrs}')
    if nats is None or abs(nats - bits * math.log(2)) > 1e-9 * max(1.0, nats):
        fail(f'unigram_entropy attribute {nats}, expected {bits * math.log(2)} nats')
    text = open(summary_path).read()
    got = summary_value(text, r'bytes +(\d+)\n')
    if int(got[0]) != len(joined):
        fail(f'bytes {got[0]}, expected {len(joined)}')
    got = summary_value(text, r'tokens +(\d+) \(train (\d+), val (\d+)\)')
    if tuple(map(int, got)) != (len(want), len(train), len(val)):
        fail(f'token counts {got}')
    got = summary_value(text, r'tokenizer +(\w+), vocab (\d+)')
    if got != (tokenizer, str(vocab)):
        fail(f'tokenizer line {got}')
    got = summary_value(text, r'entropy of train tokens: ([\d.]+) bits/token = ([\d.]+) nats/token')
    if abs(float(got[0]) - bits) > 6e-5 or abs(float(got[1]) - bits * math.log(2)) > 6e-5:
        fail(f'entropy {got}, expected {bits:.5f} bits = {bits * math.log(2):.5f} nats')
    print(f'check_text_h5: {out}: {len(want)} {tokenizer} tokens, entropy {bits:.4f} bits: ok')


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'gen':
        gen(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 8 and sys.argv[1] == 'check':
        check(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
