#!/usr/bin/env bash
# Demo segment for `dpfdoctor fix`, called by hack/demo.sh with KUBECONFIG
# (a DPF sim with failing DMS pods), DPFDOCTOR (the binary) and KUBECTL set.
# Non-interactive: plan → YAML for GitOps → apply (rights, backup, apply,
# verify, survive a reconcile, pods Ready) → report → idempotence → why a
# patch to the operator's ClusterRole does not last (operator paused while
# the patch is shown, so the window is the real one).
set -euo pipefail
: "${KUBECONFIG:?KUBECONFIG must point at the cluster}" "${DPFDOCTOR:?DPFDOCTOR must name the dpfdoctor binary}"
KUBECTL=${KUBECTL:-kubectl}
NS=${NS:-dpf-operator-system}
SA=system:serviceaccount:$NS:dpf-provisioning-dms-service-account
ROLE=dpf-provisioning-dms-role
backups=$(mktemp -d)/dpfdoctor-backups
trap 'rm -rf "$(dirname "$backups")"' EXIT

if ! declare -F section >/dev/null; then
  section() { if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
  run() { printf '$ %s\n' "$*"; "$@"; }
fi
# runs a command whose non-zero exit is part of the story, and shows it.
try() { printf '$ %s\n' "$*"; local rc=0; "$@" || rc=$?; [ "$rc" = 0 ] || printf '(exit code %s)\n' "$rc"; }
secret_rules() { "$KUBECTL" get clusterrole "$ROLE" -o jsonpath='{range .rules[*]}{.resources}{" "}{.verbs}{"\n"}{end}'; }

section "fix (plan only): what would change, and what would not"
try "$DPFDOCTOR" fix

section "fix -o yaml: the same RBAC objects, for a GitOps repository"
try "$DPFDOCTOR" fix -o yaml

section "fix --apply: rights check, backup, server-side apply, verify, operator reconcile, pods back"
try "$DPFDOCTOR" fix --apply --yes --reconcile-wait 3s --backup-dir "$backups"

section "report.md (measured facts only; report.json sits next to it)"
report=$(ls -d "$backups"/*/ | tail -n 1)report.md
awk '/^```yaml/ { print; print "# … the objects shown by fix -o yaml above"; skip = 1; next }
     skip && /^```/ { skip = 0 }
     !skip' "$report"

section "the DMS ServiceAccount now: DPUDevice status in its namespace (names are serial numbers), still no Secrets"
dev=$("$KUBECTL" get dpudevices.provisioning.dpu.nvidia.com -n "$NS" -o jsonpath='{.items[0].metadata.name}')
try "$KUBECTL" auth can-i patch "dpudevices.provisioning.dpu.nvidia.com/$dev" --subresource=status -n "$NS" --as "$SA"
try "$KUBECTL" auth can-i list secrets -n "$NS" --as "$SA"
try "$KUBECTL" auth can-i get secret/dpf-provisioning-ca-secret -n "$NS" --as "$SA"

section "a second apply has nothing new to do"
try "$DPFDOCTOR" fix --apply --yes --reconcile-wait 1s --backup-dir "$backups"

section "why not patch the operator's ClusterRole? (operator paused while we look)"
run "$KUBECTL" patch dpfoperatorconfig dpfoperatorconfig -n "$NS" --type=merge -p '{"spec":{"overrides":{"paused":true}}}'
run "$KUBECTL" patch clusterrole "$ROLE" --type=json \
  -p '[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list"]}}]'
secret_rules
try "$KUBECTL" auth can-i list secrets -n "$NS" --as "$SA"
echo "… while it lasts, the DMS ServiceAccount can list and read every Secret in the namespace."

section "… and the operator's next reconcile reverts it (unpausing triggers one now instead of in up to 10 minutes)"
run "$KUBECTL" patch dpfoperatorconfig dpfoperatorconfig -n "$NS" --type=merge -p '{"spec":{"overrides":{"paused":false}}}'
for _ in $(seq 1 20); do secret_rules | grep -q secrets || break; sleep 0.5; done
secret_rules
if secret_rules | grep -q secrets; then echo "(the patch is still there: is the operator paused?)"; else echo "the secrets rule is gone: the operator re-applied its own rules."; fi
try "$KUBECTL" auth can-i list secrets -n "$NS" --as "$SA"
try "$KUBECTL" auth can-i patch "dpudevices.provisioning.dpu.nvidia.com/$dev" --subresource=status -n "$NS" --as "$SA"
echo "dpfdoctor's separate Role is not part of the operator's inventory, so it stayed."
echo
echo "To undo the fix exactly: $DPFDOCTOR rollback --latest --backup-dir $backups"
