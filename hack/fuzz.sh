#!/usr/bin/env bash
# Runs every Fuzz target for a budget each: hack/fuzz.sh 10s
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-10s}
found=0
while IFS= read -r file; do
  pkg=./$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    found=1
    echo "fuzz: $pkg $target ($budget)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "$pkg"
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' internal cmd 2>/dev/null | sort)
[ $found = 1 ] || echo "fuzz: no targets yet"
