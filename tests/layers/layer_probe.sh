#!/usr/bin/env bash
# The build's layer rules (cmake/Layers.cmake) hold: a file of src/nn that includes the training
# config or calls the trainer does not build, while the same file using its own layer does.
#   layer_probe.sh CC BUILD_DIR
# Includes: src/nn compiles against BUILD_DIR/layers/nn, which must not hold cohort/train.h.
# Calls: a probe object of nn linked against nn's check library (nn and the layers below it)
# with -Wl,--no-undefined must fail on ch_train_run and succeed on ch_model_create.
set -euo pipefail
cc=$1 build=$2
inc=$build/layers/nn
lib=$build/layers/checks/libcohort_layer_check_nn.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
[ -d "$inc" ] && [ -f "$lib" ] || fail "no layer tree or check library for nn under $build"

echo '#include "cohort/model.h"' > "$tmp/own.c"
"$cc" -fsyntax-only -I "$inc" "$tmp/own.c" || fail "nn cannot include its own header"
echo '#include "cohort/train.h"' > "$tmp/up.c"
if "$cc" -fsyntax-only -I "$inc" "$tmp/up.c" 2> "$tmp/up.err"; then
  fail "src/nn can include cohort/train.h"
fi
grep -q 'cohort/train.h: No such file' "$tmp/up.err" || { cat "$tmp/up.err"; fail "unexpected error"; }
echo "ok: an upward include fails: $(grep -m1 'No such file' "$tmp/up.err")"

probe_link() { # SYMBOL -> 0 when a shared object calling SYMBOL links against nn's check library
  printf 'int %s(void);\nint probe(void) { return %s(); }\n' "$1" "$1" > "$tmp/$1.c"
  "$cc" -fPIC -c "$tmp/$1.c" -o "$tmp/$1.o"
  "$cc" -shared -o "$tmp/$1.so" "$tmp/$1.o" "$lib" -Wl,--no-undefined 2> "$tmp/$1.err"
}
probe_link ch_model_create || { cat "$tmp/ch_model_create.err"; fail "a call inside nn does not link"; }
if probe_link ch_train_run; then fail "a call from nn into train links"; fi
grep -q "undefined reference to .ch_train_run" "$tmp/ch_train_run.err" \
  || { cat "$tmp/ch_train_run.err"; fail "unexpected link error"; }
echo "ok: an upward call fails: $(grep -m1 'undefined reference' "$tmp/ch_train_run.err")"
echo "PASS"
