"""A Hugging Face tokenizer directory for cohort's byte-level GPT (token id = byte value,
vocabulary 256), made locally with the `tokenizers` package: clients that count tokens with a
tokenizer (genai-perf --tokenizer DIR) then count what the server counts, without the hub.

Usage: python byte_tokenizer.py DIR   (writes DIR/tokenizer.json and DIR/tokenizer_config.json)

A BPE model with no merges over GPT-2's byte-level alphabet (each byte has a printable stand-in
character, so the 256 bytes are 256 vocabulary strings) is exactly a byte tokenizer: encoding
gives one id per UTF-8 byte and the ByteLevel decoder maps the ids back to the bytes.
"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers


def byte_alphabet():
    """byte -> its stand-in character: printable Latin-1 bytes stand for themselves, the others
    (controls, space, 0x7f-0xa0, 0xad) take the characters from U+0100 up, in byte order."""
    printable = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, shifted = {}, 0
    for b in range(256):
        if b in printable:
            out[b] = chr(b)
        else:
            out[b] = chr(0x100 + shifted)
            shifted += 1
    return out


def main(directory):
    os.makedirs(directory, exist_ok=True)
    vocab = {ch: b for b, ch in byte_alphabet().items()}  # id = byte value
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 20}, f)
    # The contract: one id per byte, the byte's value, and back.
    text = "ROMEO: h\u00e9llo,\n\tworld"
    ids = tok.encode(text).ids
    assert ids == list(text.encode()), ids
    assert tok.decode(ids) == text, tok.decode(ids)


if __name__ == "__main__":
    main(sys.argv[1])
