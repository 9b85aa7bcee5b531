#!/usr/bin/env bash
# Fails when `go generate ./...` would change a tracked file (docs/versions.md).
set -euo pipefail
cd "$(dirname "$0")/.."
go generate ./...
if ! git diff --quiet -- docs || [ -n "$(git ls-files --others --exclude-standard docs)" ]; then
  echo "generated files are out of date; run 'make generate' and commit:"
  git status --short -- docs
  exit 1
fi
