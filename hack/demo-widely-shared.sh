#!/usr/bin/env bash
# Demo segment, called by hack/demo.sh with KUBECONFIG, DPFDOCTOR and KUBECTL
# set: the widely shared fix for v25.4.0 DMS pods (grant `secrets` in the
# operator's ClusterRole, delete the failing pods) tried on a failure the
# real v25.4.0 stack produces. The operator is paused while the patch is in
# place, so what `auth can-i` prints is the patch's effect, not a race with
# the operator's revert.
set -euo pipefail
: "${KUBECONFIG:?KUBECONFIG must point at the cluster}"
KUBECTL=${KUBECTL:-kubectl}
NS=${NS:-dpf-operator-system}
SA=system:serviceaccount:$NS:dpf-provisioning-dms-service-account
ROLE=dpf-provisioning-dms-role
SEL=provisioning.dpu.nvidia.com/component=dms
if ! declare -F section >/dev/null; then
  section() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
  run() { printf '$ %s\n' "$*"; "$@"; }
fi
pods() { "$KUBECTL" get pods -n "$NS" -l "$SEL" --no-headers 2>/dev/null | wc -l; }
failing() { "$KUBECTL" get pods -n "$NS" -l "$SEL" --no-headers 2>/dev/null | grep -vc ' Running ' || true; }
pause() { "$KUBECTL" patch dpfoperatorconfig dpfoperatorconfig -n "$NS" --type=merge -p "{\"spec\":{\"overrides\":{\"paused\":$1}}}" >/dev/null; }

echo "Pause the operator for this segment, so the patch stays while we look at it:"
run "$KUBECTL" patch dpfoperatorconfig dpfoperatorconfig -n "$NS" --type=merge -p '{"spec":{"overrides":{"paused":true}}}'
run "$KUBECTL" patch clusterrole "$ROLE" --type=json \
  -p '[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list"]}}]'
printf '$ %s\n' "$KUBECTL auth can-i list secrets -n $NS --as $SA"
"$KUBECTL" auth can-i list secrets -n "$NS" --as "$SA" || true
echo "The DMS ServiceAccount can now list and read every Secret in $NS. Do the pods recover?"
sleep 5
run "$KUBECTL" get pods -n "$NS" -l "$SEL"
node=$("$KUBECTL" get nodes -l feature.node.kubernetes.io/dpu-enabled -o jsonpath='{.items[0].metadata.name}')
run "$KUBECTL" logs -n "$NS" "$node-dms" -c dms-init --tail 1
echo "No: dms-init never reads a Secret in a pod (the operator passes --external-certificate TODO); it fails on dpudevices/status."

echo
echo "Next step of the widely shared fix: delete every DMS pod that is not Running."
"$KUBECTL" get pods -n "$NS" -l "$SEL" --no-headers | awk '$3 != "Running" { print $1 }' | xargs -r "$KUBECTL" delete pod -n "$NS" --wait=true
printf 'DMS pods right after the delete: %s\n' "$(pods)"
hosts=$("$KUBECTL" get nodes -l feature.node.kubernetes.io/dpu-enabled --no-headers | wc -l)
start=$(date +%s)
for _ in $(seq 1 90); do [ "$(pods)" -ge "$hosts" ] && break; sleep 1; done
echo "$(pods) of $hosts came back within $(( $(date +%s) - start )) s: these nodes have no DPUNode (dms-init failed before creating it), so"
echo "the operator re-creates each pod at its node's next Node event, here the kubelet's status report (every 5 min on a real cluster; 30 s in this sim)."
sleep 3
run "$KUBECTL" get pods -n "$NS" -l "$SEL"
echo "$(failing) of $(pods) DMS pods are still failing, for the same reason. On a node whose DPUNode exists, a deleted pod would not come back at all on v25.4.0."

echo
echo "Unpause the operator: its reconcile re-applies its own ClusterRole."
pause false
for _ in $(seq 1 20); do
  "$KUBECTL" get clusterrole "$ROLE" -o jsonpath='{.rules[*].resources}' | grep -q secrets || break
  sleep 0.5
done
printf '$ %s\n' "$KUBECTL auth can-i list secrets -n $NS --as $SA"
"$KUBECTL" auth can-i list secrets -n "$NS" --as "$SA" || true
echo "The patch is gone: the operator reverted it. The pods never depended on it."
