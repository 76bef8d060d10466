#!/usr/bin/python3
"""Reference GPT-2 byte-pair encoder in plain Python, to check src/data/bpe.c.

It follows OpenAI's GPT-2 encoder: bytes -> printable code points (bytes_to_unicode), the
pre-tokenisation regex
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
(here run by Python's `re` with the classes spelled out as explicit code point sets taken
from unicodedata), then per piece the greedy lowest-rank merge loop over string symbols.
Text is decoded as UTF-8 with surrogateescape, so an invalid byte becomes one escape code
point, which falls in none of \\s, \\p{L}, \\p{N} (as in the C code).

usage:
  bpe_ref.py check DIR    DIR holds encoder.json, vocab.bpe, text_*.bin with the C ids in
                          ids_*.txt, and classes.bin (the C class of every code point);
                          compares all of them with this reference (exit 1 on a mismatch)
  bpe_ref.py table        prints src/data/unicode_classes.inc (the C class table)
"""
import json
import os
import re
import sys
import unicodedata

# Unicode White_Space (what \s means in the `regex` module GPT-2 used). Python's `re` \s would
# also match U+001C..U+001F, so the set is explicit.
WHITE_SPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
               0x2028, 0x2029, 0x202F, 0x205F, 0x3000]


def char_class(cp):
    """'S', 'L', 'N' or 'O' for a code point (surrogates and unassigned are 'O')."""
    if cp in WS_SET:
        return 'S'
    if 0xD800 <= cp <= 0xDFFF:
        return 'O'
    cat = unicodedata.category(chr(cp))
    return {'L': 'L', 'N': 'N'}.get(cat[0], 'O')


WS_SET = frozenset(WHITE_SPACE)


def class_runs():
    """[(first code point, class)] for maximal runs of one class over 0..0x10FFFF."""
    runs, prev = [], None
    for cp in range(0x110000):
        c = char_class(cp)
        if c != prev:
            runs.append((cp, c))
            prev = c
    return runs


def char_set(cls, runs):
    """A regex character set body (no brackets) for one class, from the runs."""
    parts = []
    for i, (first, c) in enumerate(runs):
        if c != cls:
            continue
        last = (runs[i + 1][0] if i + 1 < len(runs) else 0x110000) - 1
        parts.append('\\U%08x' % first if first == last else '\\U%08x-\\U%08x' % (first, last))
    return ''.join(parts)


def gpt2_pattern():
    runs = class_runs()
    s, l, n = char_set('S', runs), char_set('L', runs), char_set('N', runs)
    return re.compile(
        "'s|'t|'re|'ve|'m|'ll|'d"
        f"| ?[{l}]+| ?[{n}]+| ?[^{s}{l}{n}]+"
        f"|[{s}]+(?![^{s}])|[{s}]+")


def bytes_to_unicode():
    """Byte -> code point: printable Latin-1 bytes keep their value, the rest get 256, 257, ..."""
    keep = list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Encoder:
    def __init__(self, encoder_json, merges_text):
        self.encoder = json.loads(encoder_json)
        self.byte_sym = bytes_to_unicode()
        lines = merges_text.split('\n')
        if lines and lines[0].startswith('#version'):
            lines = lines[1:]
        self.ranks = {}
        rank = 0
        for line in lines:
            line = line.rstrip('\r')
            if not line:
                continue
            a, b = line.split(' ')
            self.ranks[(a, b)] = rank  # a repeated pair keeps its last rank, like dict(zip(...))
            rank += 1
        self.pattern = gpt2_pattern()

    def merge(self, piece):
        """The merge loop on one piece (a str of byte symbols): returns the list of symbols."""
        word = list(piece)
        while len(word) > 1:
            best, best_rank = None, None
            for pair in zip(word, word[1:]):
                r = self.ranks.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            out, i = [], 0
            while i < len(word):  # every occurrence, left to right, without overlap
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def encode(self, data):
        text = data.decode('utf-8', errors='surrogateescape')
        ids = []
        for piece in self.pattern.findall(text):
            raw = piece.encode('utf-8', errors='surrogateescape')
            symbols = ''.join(self.byte_sym[b] for b in raw)
            ids.extend(self.encoder[s] for s in self.merge(symbols))
        return ids


def check(d):
    failures = 0
    with open(os.path.join(d, 'classes.bin'), 'rb') as f:
        c_classes = f.read()
    if len(c_classes) != 0x110000:
        print(f'classes.bin has {len(c_classes)} bytes, expected {0x110000}')
        failures += 1
    else:
        bad = [cp for cp in range(0x110000) if chr(c_classes[cp]) != char_class(cp)]
        if bad:
            print(f'{len(bad)} code points classified differently, e.g. ' +
                  ', '.join(f'U+{cp:04X} C={chr(c_classes[cp])} ref={char_class(cp)}' for cp in bad[:8]))
            failures += 1
    with open(os.path.join(d, 'encoder.json'), encoding='utf-8') as f:
        enc_text = f.read()
    with open(os.path.join(d, 'vocab.bpe'), encoding='utf-8') as f:
        merges_text = f.read()
    enc = Encoder(enc_text, merges_text)
    ntexts = ntokens = 0
    for name in sorted(os.listdir(d)):
        if not (name.startswith('text_') and name.endswith('.bin')):
            continue
        with open(os.path.join(d, name), 'rb') as f:
            data = f.read()
        with open(os.path.join(d, 'ids_' + name[5:-4] + '.txt')) as f:
            c_ids = [int(x) for x in f.read().split()]
        ref = enc.encode(data)
        ntexts += 1
        ntokens += len(ref)
        if ref != c_ids:
            k = next((i for i, (a, b) in enumerate(zip(ref, c_ids)) if a != b), min(len(ref), len(c_ids)))
            print(f'{name}: {len(data)} bytes: C gives {len(c_ids)} ids, reference {len(ref)}; first '
                  f'difference at {k}: C {c_ids[k:k + 6]} ref {ref[k:k + 6]}')
            failures += 1
    if ntexts == 0:
        print('no texts found')
        failures += 1
    print(f'bpe_ref: {ntexts} texts, {ntokens} tokens, {len(enc.ranks)} merges, '
          f'unicode {unicodedata.unidata_version}: {"ok" if not failures else "FAILED"}')
    return 1 if failures else 0


def table():
    runs = [(cp, c) for cp, c in class_runs()]
    print('/* Generated by tests/data/bpe_ref.py table from Python\'s unicodedata '
          f'(Unicode {unicodedata.unidata_version}); do not edit.')
    print(' * Character classes of the GPT-2 pre-tokeniser as runs: entry = first code point << 2 |')
    print(' * class (0 other, 1 letter \\p{L}, 2 number \\p{N}, 3 White_Space); a run lasts until the')
    print(' * next entry. Surrogates and unassigned code points are "other". */')
    code = {'O': 0, 'L': 1, 'N': 2, 'S': 3}
    print(f'#define CH_UNICODE_VERSION "{unicodedata.unidata_version}"')
    print(f'#define CH_UNICODE_RUNS {len(runs)}')
    print('static const uint32_t unicode_runs[CH_UNICODE_RUNS] = {')
    items = [f'0x{(cp << 2) | code[c]:07x}' for cp, c in runs]
    for i in range(0, len(items), 8):
        print('    ' + ', '.join(items[i:i + 8]) + ',')
    print('};')


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == 'check':
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) == 2 and sys.argv[1] == 'table':
        table()
        sys.exit(0)
    print(__doc__, file=sys.stderr)
    sys.exit(2)
