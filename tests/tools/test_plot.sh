#!/usr/bin/env bash
# `cohort plot` (src/cli/plot.c, plot_data.c) on metrics.jsonl files written here in the
# trainer's format (null values, a skipped-steps field, val_* on some lines): one run with the
# default output (RUN_DIR/loss.png, 900 x 300 per panel), two runs with -o, --metric and
# --size, two runs with the default ./loss.png, a run whose last line is being written; each a
# PNG (signature, IHDR width and height as asked, a plausible size). Errors: no RUN_DIR, a
# missing run directory, an empty file, a malformed line (path:line), an unknown metric, a bad
# --size, an unwritable output (exit 2), gnuplot not in PATH (exit 1, naming gnuplot-nox).
# Skips (77) without gnuplot.
# Usage: test_plot.sh COHORT SOURCE_DIR
set -uo pipefail
cohort=$1 src=$2
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot is not installed (gnuplot-nox)"; exit 77; }
dir=$(mktemp -d /tmp/cohort-plot-test-XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
. "$src/tests/data/lib.sh" # fail, expect

# metrics RUN_DIR SCALE: 40 steps logged every 5, val every 10, one skipped step's null loss.
metrics() {
  mkdir -p "$1"
  awk -v s="$2" 'BEGIN {
    for (step = 5; step <= 40; step += 5) {
      loss = (step == 15) ? "null" : sprintf("%.9g", s * 2.3 * exp(-step / 12.0));
      line = sprintf("{\"step\": %d, \"epoch\": 0, \"epoch_float\": %.6f, \"loss\": %s, \"lr\": %.9g, \"grad_norm\": %.9g, \"samples_per_s\": %.1f", step, step / 80.0, loss, 1e-3 * step / 40, 1.5, 12345.6)
      if (step == 15) line = line ", \"skipped_steps\": 1"
      if (step % 10 == 0) line = line sprintf(", \"val_loss\": %.9g, \"val_acc\": %.9g", s * 2.0 * exp(-step / 15.0), 0.5 + step / 100.0)
      print line "}"
    }
  }' > "$1/metrics.jsonl"
}

# png FILE WIDTH HEIGHT: the PNG signature, IHDR's width and height, 2 KiB .. 4 MiB.
png() {
  [ -f "$1" ] || fail "$1 was not written"
  [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$1: not a PNG"
  [ "$(od -An -c -j12 -N4 "$1" | tr -d ' \n')" = IHDR ] || fail "$1: no IHDR first"
  read -r w1 w2 w3 w4 h1 h2 h3 h4 < <(od -An -tu1 -j16 -N8 "$1")
  local w=$(( (w1 << 24) | (w2 << 16) | (w3 << 8) | w4 )) h=$(( (h1 << 24) | (h2 << 16) | (h3 << 8) | h4 ))
  [ "$w" -eq "$2" ] && [ "$h" -eq "$3" ] || fail "$1: ${w}x$h, expected $2x$3"
  local size
  size=$(stat -c %s "$1")
  [ "$size" -ge 2048 ] && [ "$size" -le 4194304 ] || fail "$1: $size bytes"
  echo "ok: $1 ${w}x$h, $size bytes"
}

metrics "$dir/runs/base" 1.0
metrics "$dir/runs/wide" 0.7
expect 0 "cohort plot: wrote $dir/runs/base/loss.png \(loss, val_loss of 1 run\)" plot "$dir/runs/base"
png "$dir/runs/base/loss.png" 900 600
expect 0 "wrote $dir/both.png \(loss, val_loss, lr of 2 runs\)" \
  plot "$dir/runs/base" "$dir/runs/wide/" -o "$dir/both.png" --metric loss,val_loss,lr --size 1200x800
png "$dir/both.png" 1200 800
(cd "$dir" && "$cohort" plot runs/base runs/wide >"$dir/out.txt" 2>&1) || { cat "$dir/out.txt"; fail "two runs, default output"; }
grep -q "wrote loss.png" "$dir/out.txt" || { cat "$dir/out.txt"; fail "default output of two runs"; }
png "$dir/loss.png" 900 600
# A run being written: its last line is cut short (no newline yet) and skipped.
metrics "$dir/runs/live" 1.0
printf '{"step": 45, "epoch": 0, "epoch_float": 0.5625, "lo' >>"$dir/runs/live/metrics.jsonl"
expect 0 "wrote $dir/live.png" plot "$dir/runs/live" -o "$dir/live.png"
png "$dir/live.png" 900 600
expect 0 "wrote $dir/acc.png \(val_acc of 1 run\)" plot "$dir/runs/base" --metric val_acc -o "$dir/acc.png"
png "$dir/acc.png" 900 300

expect 2 "no RUN_DIR given" plot
expect 2 "$dir/runs/none/metrics.jsonl: No such file or directory" plot "$dir/runs/base" "$dir/runs/none"
mkdir -p "$dir/runs/empty" && : >"$dir/runs/empty/metrics.jsonl"
expect 2 "$dir/runs/empty/metrics.jsonl: no records" plot "$dir/runs/empty"
metrics "$dir/runs/bad" 1.0
sed -i '3s/.*/{"step": 15, "loss": 1./' "$dir/runs/bad/metrics.jsonl"
expect 2 "$dir/runs/bad/metrics.jsonl:3: not a metrics record" plot "$dir/runs/bad"
sed -i '3s/.*/{"loss": 1.0}/' "$dir/runs/bad/metrics.jsonl"
expect 2 "$dir/runs/bad/metrics.jsonl:3: not a metrics record" plot "$dir/runs/bad"
expect 2 "no run has a value of 'perplexity'" plot "$dir/runs/base" --metric loss,perplexity
expect 2 "\-\-size 10x: expected WxH" plot "$dir/runs/base" --size 10x
expect 2 "cannot write $dir/no/such/x.png" plot "$dir/runs/base" -o "$dir/no/such/x.png"
expect 2 "unknown option '--bogus'" plot "$dir/runs/base" --bogus
env PATH=/nonexistent-path "$cohort" plot "$dir/runs/base" -o "$dir/never.png" >"$dir/out.txt" 2>&1
code=$?
[ "$code" -eq 1 ] && grep -q "gnuplot is not installed.*gnuplot-nox" "$dir/out.txt" ||
  { cat "$dir/out.txt"; fail "gnuplot not in PATH: exit $code"; }
[ ! -e "$dir/never.png" ] || fail "an image without gnuplot"
echo "test_plot: ok"
