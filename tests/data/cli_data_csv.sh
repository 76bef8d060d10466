#!/bin/sh
# `cohort data csv`: the summary for the digits example, exit code 2 for usage errors and invalid
# input, 1 for failures (I/O), with a message naming the problem.
# usage: cli_data_csv.sh COHORT_BINARY DIGITS_CSV_GZ
set -u
cohort=$1
digits=$2
dir=$(mktemp -d /tmp/cohort_test_cli_XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$(dirname "$0")/lib.sh" # fail, expect

expect 0 'rows +1797 read, 1797 written \(train 1438, val 359\)' data csv "$digits" "$dir/digits.h5"
grep -Eq 'features +64' "$dir/out.txt" || fail "features line"
grep -Eq 'classes +10' "$dir/out.txt" || fail "classes line"
[ -f "$dir/digits.h5" ] && [ ! -e "$dir/digits.h5.partial" ] || fail "output file"
expect 0 'val 0\)' data csv "$digits" "$dir/d0.h5" --val-fraction=0 --seed 3
expect 0 'usage: cohort data csv' data csv --help

expect 2 'usage' data
expect 2 'unknown subcommand' data json a b
expect 0 'usage: cohort data csv' data jsonl --help
expect 2 'usage' data csv "$digits"
expect 2 "unknown option '--bogus'" data csv "$digits" "$dir/x.h5" --bogus 1
expect 2 'needs a value' data csv "$digits" "$dir/x.h5" --seed
expect 2 'not a number in \[0, 1\)' data csv "$digits" "$dir/x.h5" --val-fraction 1.5
expect 2 'not a non-negative integer' data csv "$digits" "$dir/x.h5" --seed -4
expect 2 'unexpected argument' data csv "$digits" "$dir/x.h5" extra
expect 2 'label column 70 is out of range' data csv "$digits" "$dir/x.h5" --label-column 70

expect 1 'cannot open .*nope\.csv' data csv "$dir/nope.csv" "$dir/x.h5"
printf '1,2,0\n3,x,1\n' >"$dir/bad.csv"
expect 2 'bad\.csv:2: column 2' data csv "$dir/bad.csv" "$dir/x.h5"
# A truncated .gz: the same check and message as `data text` (one reader, src/data/gzin.c).
head -c 4000 "$digits" >"$dir/trunc.csv.gz"
expect 1 'trunc\.csv\.gz: truncated gzip file \(unexpected end of file\)' data csv "$dir/trunc.csv.gz" "$dir/x.h5"
[ ! -e "$dir/x.h5" ] && [ ! -e "$dir/x.h5.partial" ] || fail "failed conversion left a file"
echo "cli_data_csv: ok"
