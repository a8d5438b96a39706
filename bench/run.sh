#!/usr/bin/env bash
# The measurements behind bench/RESULTS.md, in one sitting, with the load
# generator our figures come from (../shared/tools/flowload) and its null
# server. Three runs of each (the open model too runs the null beside the
# product: its latencies say what this machine and load generator allow);
# prints the medians. Takes about 7 minutes.
#   bench/run.sh [out-dir]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
out=${1:-$(mktemp -d)}
mkdir -p "$out"
flowload_src=${FLOWLOAD:-../shared/tools/flowload}
(cd "$flowload_src" && go build -o "$out/flowload" .)
go build -o "$out/verifier" .
fl="$out/flowload"
srv="$out/verifier"
{ date -u; nproc; free -h; go version; } > "$out/machine.txt"

for i in 1 2 3; do # closed model, 1,000 people, product beside the null server
  "$fl" -bin "$srv" -mode null,flows -c 1000 -d 8s -warmup 2s -kill -json "$out/closed-$i.json" > "$out/closed-$i.txt" 2>&1
done
rate=$(python3 - "$out" <<'PY'
import json, statistics, sys, glob
runs = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/closed-*.json"))]
print(round(statistics.median(r["null"]["flows_per_s"] for r in runs) / 2))
PY
)
echo "$rate" > "$out/open-rate.txt"
for i in 1 2 3; do # open model at half the null's closed rate, the null beside it
  "$fl" -bin "$srv" -mode null,flows -rate "$rate" -d 15s -warmup 2s -kill -json "$out/open-$i.json" > "$out/open-$i.txt" 2>&1
done
for i in 1 2 3; do # idle sockets: as many as the open-files limit allows
  "$fl" -bin "$srv" -mode idle -n 19000 -kill -json "$out/idle-$i.json" > "$out/idle-$i.txt" 2>&1
done
go run ./bench/startup -db "$out/1m.db" -fill 1000000 -binary "$srv" -runs 5 > "$out/startup.txt" 2>&1
rm -f "$out/1m.db"

python3 - "$out" <<'PY'
import json, statistics as st, sys, glob
d = sys.argv[1]
load = lambda pat: [json.load(open(f)) for f in sorted(glob.glob(f"{d}/{pat}"))]
med = lambda xs: st.median(xs)
closed, opened, idle = load("closed-*.json"), load("open-*.json"), load("idle-*.json")
nf = [r["null"]["flows_per_s"] for r in closed]; pf = [r["flows"]["flows_per_s"] for r in closed]
nc = [r["null"]["server"]["cpu_ms_per_flow"] for r in closed]; pc = [r["flows"]["server"]["cpu_ms_per_flow"] for r in closed]
print(f"closed, 1,000 people: null {med(nf):.0f} flows/s, product {med(pf):.0f}; ratio per run {[round(p/n, 2) for p, n in zip(pf, nf)]}, median {med([p/n for p, n in zip(pf, nf)]):.2f}")
print(f"CPU per flow: null {med(nc):.3f} ms, product {med(pc):.3f} ms; per run {[round(p/n, 2) for p, n in zip(pc, nc)]}, median {med([p/n for p, n in zip(pc, nc)]):.2f}x")
print(f"closed errors: {[r['flows']['errors_total'] for r in closed]}")
o, on = [r["flows"] for r in opened], [r["null"] for r in opened]
for step in ("register", "verify"):
    for q in ("p99", "max"):
        xs, ns = [x["latency_ms"][step][q] for x in o], [x["latency_ms"][step][q] for x in on]
        print(f"open {step} {q} ms: per run {[round(x, 1) for x in xs]}, median {med(xs):.1f} (null beside it: {[round(x, 1) for x in ns]}, median {med(ns):.1f})")
print(f"open late starts (>100 ms): {[x['late_starts_100ms'] for x in o]}, not started {[x['not_started'] for x in o]}, errors {[x['errors_total'] for x in o]}")
busy = lambda runs, m: [round(r[m]["other_cpu_cores"], 2) for r in runs]
print(f"cores busy with neither process (other tenants): closed {busy(closed, 'flows')}, open {busy(opened, 'flows')}, open null {busy(opened, 'null')}")
print(f"idle: opened {[r['idle']['opened'] for r in idle]} of {[r['idle']['target'] for r in idle]}, KB per socket {[round(r['idle']['kb_per_conn'], 2) for r in idle]}")
print(open(f"{d}/startup.txt").read().strip().splitlines()[-1])
PY
echo "results in $out"
