#!/usr/bin/env bash
# Build (once) and locate the envtest binaries: kube-apiserver, etcd, kubectl.
#
# They cannot be downloaded here, so they are built from the Go module proxy,
# pinned: kube-apiserver and kubectl from a wrapper module that requires
# k8s.io/kubernetes $K8S with every k8s.io staging module replaced by the
# matching v0.x.y release (the list is read from kubernetes' own go.mod);
# etcd from go.etcd.io/etcd/server/v3 $ETCD, whose module root is etcd's main.
# dpfdoctor's own modules are at the 1.37 set's versions (hack/verify-deps.sh),
# so the tests reuse most of what the kube-apiserver build compiled.
#
# Two pinned sets, the Kubernetes versions dpfdoctor is tested on (README):
#   1.37  kube-apiserver/kubectl v1.37.2, etcd v3.6.16   (the default)
#   1.31  kube-apiserver/kubectl v1.31.4, etcd v3.5.35   (OpenShift 4.18)
#
# usage: hack/envtest.sh [SET] [--check]
#   SET       1.37 or 1.31 (or K8S_SET=...); default 1.37
#   --check   exit 0 if the set's assets are present, build nothing
#   hack/envtest.sh all   build both sets (CI), print both directories
# It builds if needed and prints the set's asset directory (for
# KUBEBUILDER_ASSETS). Progress goes to stderr: set, binary, elapsed seconds.
# A cold build of both sets took 265 s (1.37) + 164 s (1.31) on 2 idle cores
# with an empty build cache (bench/test-time.md).
#
# The cache lives outside the repo, one directory per set:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/dpfdoctor/envtest/<k8s>-<etcd>-<go>
# With no SET given, a KUBEBUILDER_ASSETS that holds the three binaries is
# used as is. K8S and ETCD override the selected set's pins.
set -euo pipefail

SET=${K8S_SET:-} CHECK=
for a in "$@"; do
  case $a in
    --check) CHECK=1 ;;
    all | 1.*) SET=$a ;;
    *) echo "usage: hack/envtest.sh [1.37|1.31|all] [--check]" >&2; exit 2 ;;
  esac
done
if [ "$SET" = all ]; then
  for s in 1.37 1.31; do K8S_SET=$s "$0" ${CHECK:+--check} || exit; done
  exit 0
fi
if [ -z "$SET" ]; then
  SET=1.37
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] &&
    [ -x "$KUBEBUILDER_ASSETS/etcd" ] && [ -x "$KUBEBUILDER_ASSETS/kubectl" ]; then
    echo "$KUBEBUILDER_ASSETS"; exit 0
  fi
fi
case $SET in
  1.37) K8S=${K8S:-v1.37.2} ETCD=${ETCD:-v3.6.16} ;;
  1.31) K8S=${K8S:-v1.31.4} ETCD=${ETCD:-v3.5.35} ;;
  *) echo "envtest: unknown set $SET (want 1.37 or 1.31)" >&2; exit 2 ;;
esac
STAGING=v0.${K8S#v1.}
GOV=$(go env GOVERSION)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dpfdoctor/envtest/${K8S}-${ETCD}-${GOV}

have() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ] && [ -x "$1/kubectl" ]; }
say() { echo "envtest $SET: $*" >&2; }

if have "$CACHE"; then echo "$CACHE"; exit 0; fi
[ -n "$CHECK" ] && exit 1

mkdir -p "$CACHE"
OUT=$(cd "$CACHE" && pwd)
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
W=$(mktemp -d)
start=$(date +%s)
step() { say "[$(($(date +%s) - start))s] $*"; }
beat=
trap '[ -z "$beat" ] || kill "$beat" 2>/dev/null; rm -rf "$W"' EXIT
# run CMD... while printing a heartbeat every 60 s, so a long compile shows life
run() {
  local what=$1; shift
  (while sleep 60; do step "$what: still compiling"; done) & beat=$!
  "$@"
  kill "$beat" 2>/dev/null; wait "$beat" 2>/dev/null || true; beat=
}
V=k8s.io/component-base/version
LDV="-s -w -X $V.gitVersion=$K8S -X $V.gitMajor=1 -X $V.gitMinor=$(echo "$K8S" | cut -d. -f2) -X $V.gitTreeState=clean"

step "building kube-apiserver $K8S, etcd $ETCD and kubectl $K8S into $OUT; cold, that takes about 3 (1.31) to 5 (1.37) minutes on 2 idle cores"
KMOD=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
REPL=$(awk '$2=="=>" && $3 ~ /^\.\/staging/ {print "\t"$1" => "$1" '"$STAGING"'"}' "$KMOD")
[ -n "$REPL" ] || { say "could not read the staging modules from $KMOD"; exit 1; }
# The wrapper declares kubernetes' own go version, so Go stamps the GODEBUG
# defaults that release was written for (go 1.22.0 for 1.31, 1.26.0 for 1.37).
GOLINE=$(awk '$1=="go" {print $2; exit}' "$KMOD")

k8s_bin() { # $1 = cmd name
  mkdir -p "$W/$1" && cd "$W/$1"
  printf 'module %sbuild\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n%s\n)\n' "$1" "$GOLINE" "$K8S" "$REPL" > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$1" > tools.go
  go mod tidy
  run "$1" go build -trimpath -ldflags "$LDV" -o "$OUT/$1.tmp" "k8s.io/kubernetes/cmd/$1"
  mv "$OUT/$1.tmp" "$OUT/$1"
}
step "kube-apiserver $K8S: resolving and compiling"
k8s_bin kube-apiserver
step "etcd $ETCD: resolving and compiling"
mkdir -p "$W/etcd" && cd "$W/etcd"
printf 'module etcdbuild\n\ngo 1.22.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD" > go.mod
printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
go mod tidy
run etcd go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$OUT/etcd.tmp" "$OUT/etcd"
step "kubectl $K8S: compiling"
k8s_bin kubectl
"$OUT/kube-apiserver" --version >&2
step "done"
echo "$OUT"
