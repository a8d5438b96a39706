#!/usr/bin/env bash
# Runs the Go benchmarks on two commits and compares them with benchstat.
#   bench/compare.sh [OLD [NEW]]   OLD defaults to HEAD~1, NEW to the work tree
# COUNT (default 6) runs each benchmark that often; BENCH (default .) picks them.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
old=${1:-HEAD~1}
new=${2:-}
count=${COUNT:-6}
pattern=${BENCH:-.}
pkgs=(./verify ./db ./server ./hub ./bench)
tmp=$(mktemp -d)
cleanup() {
  git worktree remove --force "$tmp/old" 2>/dev/null || true
  [ -z "$new" ] || git worktree remove --force "$tmp/new" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

run() { # dir label
  echo "benchmarks at $2 ..." >&2
  (cd "$1" && go test -run '^$' -bench "$pattern" -benchmem -count "$count" "${pkgs[@]}" 2>/dev/null | grep -E '^(Benchmark|goos|goarch|pkg|cpu)') > "$tmp/$2.txt" || true
}

git worktree add -q --detach "$tmp/old" "$old"
run "$tmp/old" old
if [ -n "$new" ]; then
  git worktree add -q --detach "$tmp/new" "$new"
  run "$tmp/new" new
else
  run . new
fi
go run golang.org/x/perf/cmd/benchstat@latest "$tmp/old.txt" "$tmp/new.txt"
