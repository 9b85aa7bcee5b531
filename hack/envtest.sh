#!/usr/bin/env bash
# Build (once) and locate the envtest binaries: kube-apiserver, etcd, kubectl.
#
# They cannot be downloaded here, so they are built from the Go module proxy,
# pinned: kube-apiserver and kubectl from a wrapper module that requires
# k8s.io/kubernetes $K8S with every k8s.io staging module replaced by the
# matching v0.x.y release; etcd from go.etcd.io/etcd/server/v3 $ETCD.
#
# usage: hack/envtest.sh          build if needed, print the asset directory
#        hack/envtest.sh --check  exit 0 if the assets are present
#
# The cache lives outside the repo:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/dpfdoctor/envtest/<k8s>-<etcd>-<go>
# If KUBEBUILDER_ASSETS is set and holds the three binaries, it is used as is.
set -euo pipefail

K8S=${K8S:-v1.31.4}
ETCD=${ETCD:-v3.5.35}
STAGING=v0.${K8S#v1.}
GOV=$(go env GOVERSION)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dpfdoctor/envtest/${K8S}-${ETCD}-${GOV}

have() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ] && [ -x "$1/kubectl" ]; }
say() { echo "envtest: $*" >&2; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && have "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if have "$CACHE"; then echo "$CACHE"; exit 0; fi
[ "${1:-}" = "--check" ] && exit 1

mkdir -p "$CACHE"
OUT=$(cd "$CACHE" && pwd)
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
V=k8s.io/component-base/version
LDV="-s -w -X $V.gitVersion=$K8S -X $V.gitMajor=1 -X $V.gitMinor=$(echo "$K8S" | cut -d. -f2) -X $V.gitTreeState=clean"
start=$(date +%s)
step() { say "[$(( $(date +%s) - start ))s] $*"; }

step "building pinned envtest binaries (kube-apiserver $K8S, etcd $ETCD, kubectl $K8S) into $OUT; a cold build takes about 4 minutes on 2 cores"
KMOD=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
REPL=$(awk '$2=="=>" && $3 ~ /^\.\/staging/ {print "\t"$1" => "$1" '"$STAGING"'"}' "$KMOD")
[ -n "$REPL" ] || { say "could not read the staging modules from $KMOD"; exit 1; }

k8s_bin() { # $1 = cmd name
  mkdir -p "$W/$1" && cd "$W/$1"
  printf 'module %sbuild\n\ngo 1.22.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n%s\n)\n' "$1" "$K8S" "$REPL" > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$1" > tools.go
  go mod tidy
  go build -trimpath -ldflags "$LDV" -o "$OUT/$1.tmp" "k8s.io/kubernetes/cmd/$1"
  mv "$OUT/$1.tmp" "$OUT/$1"
}
step "kube-apiserver: resolving and compiling"
k8s_bin kube-apiserver
step "etcd: resolving and compiling"
mkdir -p "$W/etcd" && cd "$W/etcd"
printf 'module etcdbuild\n\ngo 1.22.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD" > go.mod
printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
go mod tidy
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$OUT/etcd.tmp" "$OUT/etcd"
step "kubectl: compiling"
k8s_bin kubectl
"$OUT/kube-apiserver" --version >&2
step "done"
echo "$OUT"
