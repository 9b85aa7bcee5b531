#!/usr/bin/env bash
# make demo: the whole dpfdoctor story against a simulated DPF v25.4.0
# cluster, non-interactive. Needs bin/dpfdoctor (make build) and the envtest
# binaries (make envtest); the Makefile provides both.
set -euo pipefail
cd "$(dirname "$0")/.."
export DPFDOCTOR=${DPFDOCTOR:-$PWD/bin/dpfdoctor}
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$(hack/envtest.sh)}
KUBECTL=${KUBECTL:-$KUBEBUILDER_ASSETS/kubectl}
export KUBECTL
work=$(mktemp -d)
export KUBECONFIG=$work/kubeconfig
pid=$work/sim.pid
NODES=${NODES:-8}
cleanup() { "$DPFDOCTOR" sim down --pid-file "$pid" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
section() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
run() { printf '$ %s\n' "$*"; "$@"; }
export -f section run

section "1. DPF v25.4.0 with a newer hostdriver image: $NODES DPU hosts, dms-init failing"
echo "The hostdriver image's dmsinit.sh (v25.7 era) patches dpudevices/status; the v25.4.0 role does not grant it."
run "$DPFDOCTOR" sim up --detach --pid-file "$pid" --kubeconfig-out "$KUBECONFIG" \
  --dpf-version v25.4.0 --nodes "$NODES" --scenario dpudevice-status-forbidden --time-scale 0.1
printf 'waiting until every DMS pod has failed at least once'
for _ in $(seq 1 120); do
  n=$("$KUBECTL" get pods -n dpf-operator-system -l provisioning.dpu.nvidia.com/component=dms --no-headers 2>/dev/null | grep -c 'Init:CrashLoopBackOff' || true)
  [ "$n" -ge "$NODES" ] && break
  printf '.'; sleep 1
done
echo
run "$KUBECTL" get pods -n dpf-operator-system -l provisioning.dpu.nvidia.com/component=dms
run "$KUBECTL" logs -n dpf-operator-system dpu-worker-1-dms -c dms-init --tail 3

if [ -x hack/demo-widely-shared.sh ]; then
  section "2. the widely shared fix: grant secrets in the operator's ClusterRole, delete the failing pods"
  hack/demo-widely-shared.sh
fi
if "$DPFDOCTOR" diagnose --help >/dev/null 2>&1; then
  section "3. dpfdoctor diagnose: the root cause, from evidence"
  run "$DPFDOCTOR" diagnose || true
fi
if [ -x hack/demo-fix.sh ] && "$DPFDOCTOR" fix --help >/dev/null 2>&1; then
  section "4. dpfdoctor fix: least privilege, verified, surviving the operator"
  hack/demo-fix.sh
fi
if [ -x hack/demo-guard.sh ] && "$DPFDOCTOR" guard --help >/dev/null 2>&1; then
  section "5. dpfdoctor guard: keep it fixed"
  hack/demo-guard.sh
fi
section "done"
run "$KUBECTL" get pods -n dpf-operator-system -l provisioning.dpu.nvidia.com/component=dms
