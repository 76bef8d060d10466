#!/bin/sh
# GPT-2 BPE against the pure-Python reference: test_tokenizer --dump writes its vocabulary,
# random texts with the C token ids and the C class of every code point; bpe_ref.py encodes
# the texts itself and compares everything.
# usage: bpe_ref.sh TEST_TOKENIZER PYTHON BPE_REF_PY
set -u
dir=$(mktemp -d /tmp/cohort_test_bpe_XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
"$1" --dump "$dir" || { echo "FAIL: $1 --dump" >&2; exit 1; }
"$2" "$3" check "$dir"
