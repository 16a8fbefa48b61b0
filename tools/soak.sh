#!/usr/bin/env bash
# The flakiness check of docs/testing.md: the whole suite N times in a row (default 10) while K CPU
# hogs run (default 2, `yes > /dev/null`), stopping at the first failing run. It runs CI's command
# (.ci/run) in a clean clone of the current commit (build/soak/tree), as CI does, so the working
# tree can change meanwhile. One line per run goes to stdout and to build/soak/summary.txt; each
# run's full output to build/soak/run-<i>.log.
#   tools/soak.sh [runs] [hogs]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
hogs=${2:-2}
out=$PWD/build/soak
commit=$(git rev-parse HEAD)
mkdir -p "$out"
rm -rf "$out/tree"
git clone -q --no-hardlinks . "$out/tree" && git -C "$out/tree" checkout -q "$commit" || exit 1
pids=()
for _ in $(seq "$hogs"); do yes >/dev/null & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD): $runs runs, $hogs hogs, $(nproc) cores" | tee "$out/summary.txt"
for i in $(seq "$runs"); do
  start=$(date +%s)
  bash "$out/tree/.ci/run" >"$out/run-$i.log" 2>&1  # CI's command: make test, PostgreSQL required where it answers
  rc=$?
  result=$(grep -E "[0-9]+ (passed|failed|error).* in [0-9.]+s" "$out/run-$i.log" | tail -n 1)
  line="run $i: rc $rc, $(( $(date +%s) - start )) s, load $(cut -d' ' -f1-3 /proc/loadavg), ${result:-$(tail -n 1 "$out/run-$i.log")}"
  echo "$line" | tee -a "$out/summary.txt"
  [ "$rc" -eq 0 ] || exit "$rc"
done
