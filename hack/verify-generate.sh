#!/usr/bin/env bash
# Fails when `go generate ./...` would change a tracked file (docs/versions.md,
# deploy/ rendered from charts/dpfdoctor-guard).
set -euo pipefail
cd "$(dirname "$0")/.."
go generate ./...
if ! git diff --quiet -- docs deploy || [ -n "$(git ls-files --others --exclude-standard docs deploy)" ]; then
  echo "generated files are out of date; run 'make generate' and commit:"
  git status --short -- docs deploy
  exit 1
fi
