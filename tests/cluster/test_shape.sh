#!/usr/bin/env bash
# Link shaping (cluster.sh shape): at 100mbit a TCP stream between two hosts carries 70-101
# Mbit/s of payload (tbf counts headers too: ~95 expected), in both directions; `shape off`
# removes the limit (the same stream then runs well above 100 Mbit/s).
# Usage: test_shape.sh COHORT SOURCE_DIR MPIEXEC [MPIEXEC_FLAGS...]
source "$(dirname "$0")/lib.sh"
cluster_up 2
# rate FROM TO MIB: payload Mbit/s of MIB MiB sent from host FROM to host TO
rate() {
  cl exec "$2" "$py" "$here/throughput.py" recv "$(cl addr "$2")" 5999 &
  local recv=$! r
  sleep 0.5
  r=$(cl exec "$1" "$py" "$here/throughput.py" send "$(cl addr "$2")" 5999 "$3")
  wait "$recv"
  echo "$r"
}
cl shape 100mbit
up=$(rate h1 h2 12) down=$(rate h2 h1 12)
echo "shaped 100mbit: h1->h2 $up Mbit/s, h2->h1 $down Mbit/s"
for r in "$up" "$down"; do
  awk -v r="$r" 'BEGIN {exit !(r >= 70 && r <= 101)}' || { echo "FAIL: $r Mbit/s at 100mbit"; exit 1; }
done
cl shape off
off=$(rate h1 h2 100)
echo "unshaped: h1->h2 $off Mbit/s"
awk -v r="$off" 'BEGIN {exit !(r > 150)}' || { echo "FAIL: $off Mbit/s after shape off"; exit 1; }
echo "PASS: tbf shaping holds 100mbit both ways and comes off"
