#!/usr/bin/env bash
# Fails when `go generate ./...` would change a tracked file (docs/versions.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! grep -rq --include='*.go' '^//go:generate' internal cmd 2>/dev/null; then exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
git ls-files -z docs | xargs -0 -I{} sh -c 'mkdir -p "$0/$(dirname "{}")" && cp "{}" "$0/{}"' "$tmp" 2>/dev/null || true
go generate ./...
if ! git diff --quiet -- docs; then
  echo "generated files are out of date; run 'make generate' and commit:"; git diff --stat -- docs; exit 1
fi
