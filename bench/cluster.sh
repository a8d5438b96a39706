#!/usr/bin/env bash
# Issue 14's rows of bench/RESULTS.md: flowload's clients spread over 1, 2
# and 3 servers on one Redis (appendfsync always, as durable as the bbolt
# file), a flowload per server, each with its own fake Twilio; three runs of
# each, summed over the servers, with Redis's own CPU per flow.
#   bench/cluster.sh [out-dir]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
out=${1:-$(mktemp -d)}
mkdir -p "$out"
(cd "${FLOWLOAD:-../shared/tools/flowload}" && go build -o "$out/flowload" .)
go build -o "$out/verifier" .
fl="$out/flowload"
port=${REDIS_PORT:-6497}
redis-server --port "$port" --bind 127.0.0.1 --dir "$out" --appendonly yes --appendfsync always --save '' \
  --daemonize yes --pidfile "$out/redis.pid" --logfile "$out/redis.log"
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; kill $(cat "$out"/server-*.pid 2>/dev/null) 2>/dev/null || true' EXIT
sleep 0.5
redis_pid=$(cat "$out/redis.pid")
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, in ticks
hz=$(getconf CLK_TCK)

for n in 1 2 3; do
  for run in 1 2 3; do
    redis-cli -p "$port" flushall >/dev/null
    pids=()
    for i in $(seq "$n"); do
      fake="127.0.0.1:$((4100 + i))"
      env $("$fl" -fake-addr "$fake" -print-env | sed 's/^export //') \
        "$out/verifier" -addr "127.0.0.2:$((3100 + i))" -db "$out/unused-$i.db" \
        -store "redis://127.0.0.1:$port/0" > "$out/server-$n-$run-$i.log" 2>&1 &
      echo $! > "$out/server-$i.pid"
      pids+=($!)
    done
    sleep 1.5
    r0=$(cpu "$redis_pid")
    loads=()
    for i in $(seq "$n"); do
      "$fl" -url "ws://127.0.0.2:$((3100 + i))/ws" -fake-addr "127.0.0.1:$((4100 + i))" -pid "${pids[$((i - 1))]}" \
        -c $((1000 / n)) -d 8s -warmup 2s -json "$out/n$n-run$run-s$i.json" > "$out/n$n-run$run-s$i.txt" 2>&1 &
      loads+=($!)
    done
    wait "${loads[@]}"
    r1=$(cpu "$redis_pid")
    echo "$(( (r1 - r0) ))" > "$out/n$n-run$run-redis-ticks.txt"
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  done
done

python3 - "$out" "$hz" <<'PY'
import json, glob, statistics as st, sys
d, hz = sys.argv[1], int(sys.argv[2])
for n in (1, 2, 3):
    rows = []
    for run in (1, 2, 3):
        parts = [json.load(open(f)) for f in sorted(glob.glob(f"{d}/n{n}-run{run}-s*.json"))]
        flows = sum(p["flows"]["flows_per_s"] for p in parts)
        done = sum(p["flows"]["completed"] for p in parts)
        done_all = sum(p["flows"]["completed_all_phases"] for p in parts)
        cpu = sum(p["flows"]["server"]["cpu_s"] for p in parts)
        errors = sum(p["flows"]["errors_total"] for p in parts)
        redis_s = int(open(f"{d}/n{n}-run{run}-redis-ticks.txt").read()) / hz
        rows.append((flows, 1000 * cpu / max(done, 1), 1000 * redis_s / max(done_all, 1), errors,
                     max(p["flows"]["latency_ms"]["register"]["p99"] for p in parts)))
    med = lambda i: st.median(r[i] for r in rows)
    print(f"{n} server(s): {med(0):.0f} flows/s, server CPU {med(1):.3f} ms/flow, Redis CPU {med(2):.3f} ms/flow, register p99 {med(4):.0f} ms, errors {[r[3] for r in rows]}; per run flows/s {[round(r[0]) for r in rows]}")
PY
echo "results in $out"
