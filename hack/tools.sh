#!/usr/bin/env bash
# Build (once) and locate a pinned developer tool; print the binary's path.
#
# Tools are built from the Go module proxy with `go install`, pinned, into the
# same cache as the envtest binaries (hack/envtest.sh):
#   ${XDG_CACHE_HOME:-$HOME/.cache}/dpfdoctor/tools/<tool>-<version>-<go>/
#
# usage: hack/tools.sh TOOL          build if needed, print the path
#        hack/tools.sh --check TOOL  exit 0 if it is present
# TOOL is golangci-lint or helm.
set -euo pipefail

GOLANGCI_LINT=${GOLANGCI_LINT:-v2.15.0}
HELM=${HELM:-v3.22.0}

check=
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
tool=${1:?usage: hack/tools.sh [--check] TOOL}
# cold: the cold build time on 2 idle cores, measured (bench/test-time.md).
case $tool in
golangci-lint)
  version=$GOLANGCI_LINT cold="about 1 minute"
  pkg=github.com/golangci/golangci-lint/v2/cmd/golangci-lint
  ;;
helm)
  # charts/dpfdoctor-guard: make generate renders deploy/ with it, and the
  # tests lint and render the chart. Estimated from the 162 s of CPU time of
  # a cold build that took 354 s on busy cores (bench/test-time.md).
  version=$HELM cold="about 2 minutes"
  pkg=helm.sh/helm/v3/cmd/helm
  ;;
*)
  echo "tools: unknown tool $tool" >&2
  exit 2
  ;;
esac

GOV=$(GOTOOLCHAIN=local go env GOVERSION)
DIR=${XDG_CACHE_HOME:-$HOME/.cache}/dpfdoctor/tools/${tool}-${version}-${GOV}
if [ -x "$DIR/$tool" ]; then echo "$DIR/$tool"; exit 0; fi
[ -n "$check" ] && exit 1

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
start=$(date +%s)
echo "tools: building $tool $version with $GOV into $DIR; a cold build takes $cold on 2 idle cores (several times that on busy ones)" >&2
# go install writes into GOBIN only when the build succeeded, so an
# interrupted build leaves no half-written binary behind.
GOBIN=$DIR GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0 \
  go install -trimpath "$pkg@$version"
echo "tools: $tool built in $(( $(date +%s) - start ))s" >&2
echo "$DIR/$tool"
