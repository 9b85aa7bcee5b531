#!/usr/bin/env bash
# Every kubectl pattern `dpfdoctor lint` must follow, one section each. The
# expected findings are in patterns.*.golden (go test -update rewrites them).
set -euo pipefail

NS="${NAMESPACE:-dpf-operator-system}"
mode="register"
node=""
wait_for_secret="true"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --mode) mode="$2"; shift 2 ;;
        --node) node="$2"; shift 2 ;;
        --no-wait) wait_for_secret="false"; shift ;;
        *) echo "Unknown option: $1" >&2; exit 1 ;;
    esac
done
[ -n "$node" ] || { echo "--node is required" >&2; exit 1; }

# 1. kubectl held in a variable, with a prefix of global flags.
KUBECTL="kubectl --request-timeout=10s"
$KUBECTL version >/dev/null

# 2. A wrapper function that passes its arguments on.
k() {
    $KUBECTL -n "$NS" "$@"
}
k get dpunode "$node" -o name

# 3. apply -f - fed by a here-document, inside a command substitution.
apply_device() {
    local serial=$1
    local out
    if ! out=$(cat <<EOF | $KUBECTL apply -f - 2>&1
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUDevice
metadata:
  name: ${serial,,}
  namespace: $NS
spec:
  serialNumber: $serial
EOF
    ); then
        echo "apply failed: $out" >&2
        exit 1
    fi
}
apply_device "MT2306XZ00AB"

# 4. A retry loop reading a Secret with stderr discarded and failures ignored.
if [ "$wait_for_secret" == "true" ]; then
    secret="$node-server-secret"
    for attempt in $(seq 1 10); do
        ca=$(k get secret "$secret" -o jsonpath='{.data.ca\.crt}' 2>/dev/null || true)
        [ -n "$ca" ] && break
        sleep 2
    done
fi

# 5. Conditionals on flags: only --mode cleanup deletes.
if [ "$mode" == "cleanup" ]; then
    kubectl delete dpunode "$node" -n "$NS"
fi

# 6. A status-subresource patch.
kubectl patch dpudevice "mt2306xz00ab" -n "$NS" --subresource status --type=merge -p '{"status":{"pciAddress":"0000:3b:00.0"}}'

# 7. Objects held in a variable, piped by echo; a short name and kind/name.
manifest="apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: $node-dms-server-cert
  namespace: $NS"
echo "$manifest" | kubectl create -f -
kubectl get cert "$node-dms-server-cert" -n "$NS"
kubectl get node/"$node" -o jsonpath='{.metadata.uid}'

# 8. A function no path calls: its calls are possible.
debug_dump() {
    kubectl get secrets -n "$NS" -o yaml
}
