#!/usr/bin/env bash
# Fails when a module that dpfdoctor builds (tests included) is not at the
# version Kubernetes pins for the same module.
#
# Why: hack/envtest.sh compiles kube-apiserver and kubectl from the
# Kubernetes release that matches our k8s.io libraries (k8s.io/api v0.X.Y is
# Kubernetes v1.X.Y). When every module both builds share is at the same
# version, Go's build cache compiles each shared package once, and the
# tests, `go vet` and golangci-lint reuse the nine hundred-odd packages the
# API server build compiled (bench/test-time.md). One newer x/sys or x/net
# changes the compiled form of everything above it, and a cold `make test`
# compiles them all twice.
#
# To move to a newer Kubernetes: bump k8s.io/* and the envtest pin together,
# then `go get` each module this script names at the version it names.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # join and sort must agree on the order
api=$(go list -m -f '{{.Version}}' k8s.io/api)
k8s=v1.${api#v0.}
grep -q "K8S=\${K8S:-$k8s}" hack/envtest.sh || {
  echo "verify-deps: k8s.io/api is $api, but hack/envtest.sh's default set does not build Kubernetes $k8s" >&2
  exit 1
}
kmod=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -n "$kmod" ] || { echo "verify-deps: could not download k8s.io/kubernetes@$k8s's go.mod" >&2; exit 1; }
# Kubernetes' requirements (its staging modules are v0.0.0, replaced by
# ./staging; their released version is $api).
pins=$(awk '/^require|^\t[a-z]/ && $0 !~ /=>/ {sub(/^require /, ""); sub(/^\t/, ""); if ($2 ~ /^v/) print $1, ($2 == "v0.0.0" ? "'"$api"'" : $2)}' "$kmod" | sort -u)
ours=$(go list -deps -test -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}' ./... | sort -u)
bad=$(join <(echo "$pins") <(echo "$ours") | awk '$2 != $3 {printf "  %s: ours %s, Kubernetes %s pins %s\n", $1, $3, "'"$k8s"'", $2}')
if [ -n "$bad" ]; then
  echo "verify-deps: modules not at Kubernetes $k8s's versions (go get MODULE@VERSION for each):" >&2
  echo "$bad" >&2
  exit 1
fi
