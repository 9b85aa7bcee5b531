#!/usr/bin/env bash
# make bench: runs every Go benchmark once (they are scenario-sized, not
# micro-benchmarks) and writes the results to bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results-$stamp.txt
{
  echo "# dpfdoctor benchmarks, $stamp"
  echo "# $(go version), $(nproc) cores, $(grep MemTotal /proc/meminfo | awk '{print int($2/1024/1024)" GiB"}')"
  echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$out"
pkgs=$(grep -rlE '^func Benchmark' --include='*_test.go' internal | xargs -n1 dirname | sort -u | sed 's|^|./|')
for p in $pkgs; do
  echo "bench: $p" >&2
  go test -run '^$' -bench "${BENCH:-.}" -benchmem -benchtime "${BENCHTIME:-1x}" -timeout 60m "$p" | tee -a "$out"
done
cp "$out" bench/latest.txt
echo "bench: results in $out (and bench/latest.txt)" >&2
