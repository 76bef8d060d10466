#!/bin/sh
# `cohort data text`: random plain + gzipped inputs with the byte and the GPT-2 tokenizer,
# checked with h5py (tokens, split, attributes, the printed statistics); the Shakespeare
# corpus; exit code 2 for usage errors and 1 for failures, with a message naming the problem;
# nothing left behind by a failed conversion.
# usage: cli_data_text.sh COHORT_BINARY PYTHON CHECK_TEXT_H5_PY SHAKESPEARE_TXT_GZ
set -u
cohort=$1 py=$2 check=$3 shakespeare=$4
dir=$(mktemp -d /tmp/cohort_test_text_XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$(dirname "$0")/lib.sh" # fail, expect

seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
echo "seed $seed"
"$py" "$check" gen "$dir" "$seed" || fail "gen"
a=$dir/a.txt b=$dir/b.txt.gz c=$dir/c.txt

expect 0 'wrote' data text "$a" "$b" "$dir/t.h5" --val-fraction 0.2
"$py" "$check" check "$dir/t.h5" "$dir/out.txt" 0.2 byte "$dir" "$a" "$b" || fail "byte tokens"
# an empty file adds nothing, the default fraction is 0.1
expect 0 'wrote' data text "$c" "$b" "$a" "$dir/t.h5"
"$py" "$check" check "$dir/t.h5" "$dir/out.txt" 0.1 byte "$dir" "$c" "$b" "$a" || fail "byte tokens, 3 inputs"
expect 0 'tokenizer +gpt2' data text "$a" "$b" "$dir/g.h5" --tokenizer gpt2 --vocab "$dir/encoder.json" \
  --merges="$dir/vocab.bpe" --val-fraction=0.3
"$py" "$check" check "$dir/g.h5" "$dir/out.txt" 0.3 gpt2 "$dir" "$a" "$b" || fail "gpt2 tokens"
[ ! -e "$dir/t.h5.partial" ] && [ ! -e "$dir/g.h5.partial" ] || fail "partial file left"

expect 0 'tokens +1115394 \(train 1003855, val 111539\)' data text "$shakespeare" "$dir/s.h5"
"$py" "$check" check "$dir/s.h5" "$dir/out.txt" 0.1 byte "$dir" "$shakespeare" || fail "shakespeare"
expect 0 'usage: cohort data csv' data text --help
expect 0 'cohort data text' data --help

expect 2 'usage' data text "$a"
expect 2 "unknown option '--bogus'" data text "$a" "$dir/x.h5" --bogus 1
expect 2 'needs a value' data text "$a" "$dir/x.h5" --val-fraction
for f in 0 1 1.5 -0.1 abc; do
  expect 2 "'$f' is not a number in \(0, 1\)" data text "$a" "$dir/x.h5" --val-fraction "$f"
done
expect 2 "'bpe' is not byte or gpt2" data text "$a" "$dir/x.h5" --tokenizer bpe
expect 2 'gpt2 needs --vocab' data text "$a" "$dir/x.h5" --tokenizer gpt2 --vocab "$dir/encoder.json"
expect 2 'need --tokenizer gpt2' data text "$a" "$dir/x.h5" --merges "$dir/vocab.bpe"

expect 1 'cannot open .*nope\.txt' data text "$a" "$dir/nope.txt" "$dir/x.h5"
printf 'abc' >"$dir/short.txt"
expect 1 'the text has 3 tokens' data text "$dir/short.txt" "$dir/x.h5"
printf 'abcdefghij' >"$dir/ten.txt"
expect 2 'train 9 and val 1 tokens' data text "$dir/ten.txt" "$dir/x.h5" --val-fraction 0.1
expect 1 'cannot read --vocab .*none\.json' data text "$a" "$dir/x.h5" --tokenizer gpt2 --vocab "$dir/none.json" \
  --merges "$dir/vocab.bpe"
printf '#version: 0.2\nx y z\n' >"$dir/bad.bpe"
expect 1 'vocab\.bpe line 2: expected two tokens' data text "$a" "$dir/x.h5" --tokenizer gpt2 \
  --vocab "$dir/encoder.json" --merges "$dir/bad.bpe"
# A truncated .gz is an error naming the file, never half the text kept (issue 12, item 9).
head -c 200000 "$shakespeare" >"$dir/trunc.txt.gz"
expect 1 'trunc\.txt\.gz: truncated gzip file \(unexpected end of file\)' data text "$a" "$dir/trunc.txt.gz" "$dir/x.h5"
[ ! -e "$dir/x.h5" ] && [ ! -e "$dir/x.h5.partial" ] || fail "failed conversion left a file"
echo "cli_data_text: ok"
