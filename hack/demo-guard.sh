#!/usr/bin/env bash
# Demo segment for `dpfdoctor guard`, called by hack/demo.sh with KUBECONFIG
# (a running DPF sim, usually already fixed), DPFDOCTOR (the binary) and
# KUBECTL set. Starts the guard in repair mode, adds a DPU host whose
# dms-init fails like the others, deletes dpfdoctor's RoleBinding, and shows
# both healed from the guard's events and metrics.
set -euo pipefail
: "${KUBECONFIG:?KUBECONFIG must point at the cluster}" "${DPFDOCTOR:?DPFDOCTOR must name the dpfdoctor binary}"
KUBECTL=${KUBECTL:-kubectl}
NS=${NS:-dpf-operator-system}
GRANT=dpfdoctor-dpf-provisioning-dms-service-account
NODE=${NODE:-dpu-worker-joined}
METRICS=127.0.0.1:18080
PROBES=127.0.0.1:18081
work=$(mktemp -d)
guard_pid=

if ! declare -F section >/dev/null; then
  section() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
  run() { printf '$ %s\n' "$*"; "$@"; }
fi
stop_guard() {
  if [ -n "$guard_pid" ] && kill -0 "$guard_pid" 2>/dev/null; then
    kill -TERM "$guard_pid" 2>/dev/null || true
    wait "$guard_pid" 2>/dev/null || true
  fi
  guard_pid=
}
cleanup() { stop_guard; rm -rf "$work"; }
trap cleanup EXIT

# wait_for SECONDS DESCRIPTION COMMAND...: polls until COMMAND succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "timed out after ${secs}s waiting for $what; guard log:" >&2
      tail -n 30 "$work/guard.log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "ok: $what"
}
pod_ready() {
  [ "$("$KUBECTL" get pod -n "$NS" "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

section "guard --mode repair: watch, diagnose, record events, keep the grant in place"
printf '$ %s &\n' "$DPFDOCTOR guard --mode repair --metrics-bind-address $METRICS --metrics-secure=false --health-probe-bind-address $PROBES"
"$DPFDOCTOR" guard --mode repair --metrics-bind-address "$METRICS" --metrics-secure=false --health-probe-bind-address "$PROBES" \
  --backup-dir "$work/backups" >"$work/guard.log" 2>&1 &
guard_pid=$!
wait_for 60 "guard ready (/readyz)" curl -sf "http://$PROBES/readyz"

section "A new DPU host joins; its dms-init fails like the others did"
run "$KUBECTL" create -f - <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE
  labels:
    feature.node.kubernetes.io/dpu-enabled: "true"
    kubernetes.io/hostname: $NODE
    sim.dpfdoctor.dev/scenario: dpudevice-status-forbidden
EOF
wait_for 60 "pod $NODE-dms created" "$KUBECTL" get pod -n "$NS" "$NODE-dms"
wait_for 180 "pod $NODE-dms Ready, with no human action" pod_ready "$NODE-dms"
run "$KUBECTL" get role -n "$NS" "$GRANT" -o jsonpath='{range .rules[*]}{.resources} {.verbs} {.resourceNames}{"\n"}{end}'

section "Someone deletes dpfdoctor's RoleBinding; the guard puts it back"
run "$KUBECTL" delete rolebinding -n "$NS" "$GRANT"
wait_for 60 "RoleBinding $GRANT restored" "$KUBECTL" get rolebinding -n "$NS" "$GRANT"

section "Healed: pods, the guard's events, its metrics"
run "$KUBECTL" get pods -n "$NS" -l provisioning.dpu.nvidia.com/component=dms
run "$KUBECTL" get events -n "$NS" --field-selector reason=DPFDoctorDiagnosed
for reason in DPFDoctorRepaired DPFDoctorRestored DPFDoctorRecovered; do
  run "$KUBECTL" get events -n "$NS" --field-selector reason=$reason -o custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message
done
printf '$ curl -s %s/metrics | grep ^dpfdoctor_\n' "$METRICS"
curl -s "http://$METRICS/metrics" | grep '^dpfdoctor_'

section "Stop the guard"
stop_guard
echo "guard stopped; its log:"
grep -E '"msg"="(diagnosed|repaired|recovered|deleted an altered grant to re-create it)"' "$work/guard.log" | tail -n 20 || true
