#!/usr/bin/env bash
# Build (once) and locate a pinned developer tool; print the binary's path.
#
# Tools are built from the Go module proxy with `go install`, pinned, into the
# same cache as the envtest binaries (hack/envtest.sh):
#   ${XDG_CACHE_HOME:-$HOME/.cache}/dpfdoctor/tools/<tool>-<version>-<go>/
#
# usage: hack/tools.sh TOOL          build if needed, print the path
#        hack/tools.sh --check TOOL  exit 0 if it is present
# TOOL is golangci-lint, helm, goreleaser, cyclonedx-gomod, validate-krew-manifest or krew.
set -euo pipefail

GOLANGCI_LINT=${GOLANGCI_LINT:-v2.15.0}
HELM=${HELM:-v3.22.0}
GORELEASER=${GORELEASER:-v2.15.1}
CYCLONEDX_GOMOD=${CYCLONEDX_GOMOD:-v1.10.0}
KREW=${KREW:-v0.4.3}

check=
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
tool=${1:?usage: hack/tools.sh [--check] TOOL}
# cold: the measured cold build time (bench/test-time.md).
case $tool in
golangci-lint)
  version=$GOLANGCI_LINT cold="about 1 minute on 2 idle cores (7 on busy ones)"
  pkg=github.com/golangci/golangci-lint/v2/cmd/golangci-lint
  ;;
helm)
  # charts/dpfdoctor-guard: make generate renders deploy/ with it, and the
  # tests lint and render the chart. 354 s on busy cores (162 s of CPU).
  version=$HELM cold="64 s on 2 idle cores (354 s on busy ones)"
  pkg=helm.sh/helm/v3/cmd/helm
  ;;
goreleaser)
  version=$GORELEASER cold="137 s on 2 idle cores (9.5 minutes on busy ones)"
  pkg=github.com/goreleaser/goreleaser/v2
  ;;
cyclonedx-gomod)
  version=$CYCLONEDX_GOMOD cold="16 s on 2 idle cores (49 s on busy ones)"
  pkg=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod
  ;;
validate-krew-manifest)
  version=$KREW cold="38 s on 2 busy cores"
  pkg=sigs.k8s.io/krew/cmd/validate-krew-manifest
  ;;
krew)
  version=$KREW cold="17 s on 2 busy cores, after validate-krew-manifest"
  pkg=sigs.k8s.io/krew/cmd/krew
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
echo "tools: building $tool $version with $GOV into $DIR; a cold build took $cold" >&2
# go install writes into GOBIN only when the build succeeded, so an
# interrupted build leaves no half-written binary behind.
GOBIN=$DIR GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0 \
  go install -trimpath "$pkg@$version"
echo "tools: $tool built in $(( $(date +%s) - start ))s" >&2
echo "$DIR/$tool"
