#!/usr/bin/env bash
# Root attributes are covered by a checksum (attrs_crc32, format version 3): one changed byte of
# an attribute (`step`, a character of `config`) makes `cohort ckpt inspect` and a resume from
# that file fail, naming the attribute checksum; before, inspect said "all checksums ok" and a
# resume silently skipped steps. A version-2 file (no attrs_crc32) still resumes, with a warning.
source "$(dirname "$0")/lib.sh"
train 2 "$work/run" train.steps=20 >/dev/null
good=$(ckpt "$work/run" 20)
"$cohort" ckpt inspect "$good" >"$work/good.inspect"
grep -q "attributes      checksum ok" "$work/good.inspect"

# edit FILE PYTHON: runs PYTHON with `f` the file opened read-write by h5py.
edit() { "$py" -c "import h5py, numpy as np; f = h5py.File('$1', 'r+'); $2; f.close()"; }
# must_fail NAME: inspect and a resume of $work/NAME.h5 fail, naming the attribute checksum.
must_fail() {
  local bad=$work/$1.h5 rc=0
  "$cohort" ckpt inspect "$bad" >"$work/$1.inspect" 2>&1 || rc=$?
  cat "$work/$1.inspect"
  ((rc == 1)) || { echo "$1: inspect exited $rc" >&2; exit 1; }
  grep -q "root attribute checksum mismatch" "$work/$1.inspect"
  rc=0
  train 2 "$work/res-$1" train.steps=40 run.resume="$bad" >"$work/$1.resume" 2>&1 || rc=$?
  cat "$work/$1.resume"
  ((rc != 0)) || { echo "$1: resumed from a corrupt file" >&2; exit 1; }
  grep -q "$bad: root attribute checksum mismatch" "$work/$1.resume"
  ! grep -q "resumed from" "$work/$1.resume"
}
# `step` 20 -> 52: one flipped bit
cp "$good" "$work/step.h5"
edit "$work/step.h5" "f.attrs.modify('step', np.int64(int(f.attrs['step']) ^ 32))"
must_fail step
# one character of the stored config
cp "$good" "$work/config.h5"
edit "$work/config.h5" "c = f.attrs['config']; i = c.index('steps: 20'); f.attrs['config'] = c[:i] + 'steps: 21' + c[i + 9:]"
must_fail config

# A version-2 file, as the previous cohort wrote it: resumes, warning that nothing covers its
# attributes.
cp "$good" "$work/v2.h5"
edit "$work/v2.h5" "del f.attrs['attrs_crc32']; f.attrs.modify('format_version', np.int64(2))"
"$cohort" ckpt inspect "$work/v2.h5" >"$work/v2.inspect"
grep -q "not covered by a checksum" "$work/v2.inspect"
train 2 "$work/res-v2" train.steps=40 run.resume="$work/v2.h5" >"$work/v2.resume" 2>&1
grep -q "format version < 3: its root attributes .* are not covered by a checksum" "$work/v2.resume"
grep -q "resumed from $work/v2.h5: step 20," "$work/v2.resume"
echo "ok: a changed root attribute fails inspect and resume; a version-2 file resumes with a warning"
