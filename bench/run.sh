#!/usr/bin/env bash
# The measurements behind bench/RESULTS.md, in one sitting. Takes ~15 min.
#   bench/run.sh [out-dir]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
out=${1:-$(mktemp -d)}
mkdir -p "$out"
go build -o "$out/verifier" .
go build -o "$out/loadgen" ./bench/loadgen
lg="$out/loadgen"
srv="$out/verifier"
{ nproc; free -h; go version; } > "$out/machine.txt"

for people in 500 1000; do
  for i in 1 2 3; do
    "$lg" -null -mode closed -c "$people" -d 10s -json > "$out/closed-null-$people-$i.json"
    "$lg" -spawn "$srv" -mode closed -c "$people" -d 10s -json > "$out/closed-verifier-$people-$i.json"
  done
done

# Open model at half the null server's median closed rate with 500 people.
null_rate=$(python3 -c "import json,statistics,glob; print(statistics.median(json.load(open(f))['flows_per_sec'] for f in glob.glob('$out/closed-null-500-*.json')))")
rate=$(python3 -c "print(round($null_rate/2))")
echo "$rate" > "$out/open-rate.txt"
for i in 1 2 3; do
  "$lg" -spawn "$srv" -mode open -rate "$rate" -d 60s -json > "$out/open-verifier-$i.json"
done

# Idle sockets, and open load at R/4 with and without them.
quarter=$(python3 -c "print(round($rate/4))")
for i in 1 2 3; do
  "$lg" -spawn "$srv" -mode open -rate "$quarter" -d 20s -json > "$out/quarter-plain-$i.json"
  "$lg" -spawn "$srv" -mode open -rate "$quarter" -d 20s -idle 19000 -json > "$out/quarter-idle-$i.json"
done

go test -run '^$' -bench . -benchmem -count 3 ./verify ./db ./server ./hub ./bench > "$out/gobench.txt" 2>&1
echo "results in $out"
