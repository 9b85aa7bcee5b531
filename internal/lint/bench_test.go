package lint

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// benchScript builds a dmsinit-like script of at least size bytes: the
// flag-parsing loop, then numbered copies of the provisioning functions
// (check, certificate with a secret wait loop, DPUDevice apply and status
// patch, DPUNode apply), all called from main.
func benchScript(size int) []byte {
	var b strings.Builder
	b.WriteString(`#!/bin/bash
set -euo pipefail
namespace="dpf-operator-system"
external_certificate="none"
kube_node_ref=""
kubeconfig=""
kubectl_cmd="kubectl"
log() { echo "[dmsinit] $*"; }
error() { echo "[dmsinit] Error (${FUNCNAME[1]}:${BASH_LINENO[0]}): $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --kubeconfig) kubeconfig="$2"; shift 2 ;;
        --external-certificate) external_certificate="$2"; shift 2 ;;
        --kube-node-ref) kube_node_ref="$2"; shift 2 ;;
        --namespace) namespace="$2"; shift 2 ;;
        *) echo "Unknown option: $1"; exit 1 ;;
    esac
done
if [ -n "$kubeconfig" ]; then
    kubectl_cmd="kubectl --kubeconfig $kubeconfig"
fi
node_name="$kube_node_ref"
`)
	var calls strings.Builder
	for i := 0; b.Len()+calls.Len() < size; i++ {
		fmt.Fprintf(&b, `
check_resource_exists_%[1]d() {
    local resource_type=$1
    local resource_name=$2
    local output
    output=$($kubectl_cmd -n "$namespace" get -o json "$resource_type" "$resource_name" 2>&1)
    if [ $? -eq 0 ]; then
        log "Resource $resource_name of type $resource_type already exists, skipping creation"
        return 0
    fi
    return 1
}

create_certificate_%[1]d() {
    local cert_name="$node_name-%[1]d-dms-server-cert"
    if ! check_resource_exists_%[1]d "Certificate" "$cert_name"; then
        output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: $cert_name
  namespace: $namespace
spec:
  secretName: $node_name-%[1]d-server-secret
  issuerRef:
    name: dpf-provisioning-issuer
    kind: Issuer
EOF
)
        if [ $? -ne 0 ]; then
            error "Failed to create certificate $cert_name: $output"
        fi
    fi
    local secret_name="$node_name-%[1]d-server-secret"
    local ca_crt=""
    for ((attempt = 1; attempt <= 30; attempt++)); do
        ca_crt=$($kubectl_cmd get secret -n "$namespace" "$secret_name" -o jsonpath='{.data.ca\.crt}' 2> /dev/null || true)
        if [ -n "$ca_crt" ]; then
            break
        fi
        log "Waiting for secret $secret_name to be fully populated... (attempt $attempt/30)"
        sleep 2
    done
    if [ -z "$ca_crt" ]; then
        error "Timed out waiting for secret $secret_name"
    fi
}

create_dpu_device_%[1]d() {
    local pci=$1
    local name="${node_name}-${pci//[:.]/-}"
    if ! check_resource_exists_%[1]d "DPUDevice" "$name"; then
        output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUDevice
metadata:
  name: $name
  namespace: $namespace
spec:
  pciAddress: $pci
EOF
)
        [ $? -eq 0 ] || error "Failed to create DPUDevice $name: $output"
    fi
    output=$($kubectl_cmd patch dpudevice "$name" -n "$namespace" --subresource status --type=merge -p "{\"status\":{\"pciAddress\":\"$pci\"}}" 2>&1) || error "Failed to update PCI address: $output"
}

create_dpunode_%[1]d() {
    if check_resource_exists_%[1]d "DPUNode" "$node_name"; then
        return 0
    fi
    local node_uid
    node_uid=$($kubectl_cmd get node "$kube_node_ref" -o jsonpath='{.metadata.uid}')
    output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUNode
metadata:
  name: $node_name
  namespace: $namespace
  ownerReferences:
  - apiVersion: v1
    kind: Node
    name: $kube_node_ref
    uid: $node_uid
EOF
)
    [ $? -eq 0 ] || error "Failed to create DPUNode $node_name: $output"
}
`, i)
		fmt.Fprintf(&calls, `    if [ "$external_certificate" == "none" ]; then
        create_certificate_%[1]d
    fi
    for pci in "${pci_addresses[@]}"; do
        create_dpu_device_%[1]d "$pci"
    done
    create_dpunode_%[1]d
`, i)
	}
	b.WriteString("\nmain() {\n    pci_addresses=(0000:3b:00.0 0000:5e:00.0)\n")
	b.WriteString(calls.String())
	b.WriteString("}\n\nif ! main; then\n    error \"Failed to complete main function\"\nfi\n")
	return []byte(b.String())
}

// benchRBAC is a set of 50 rules: a 40-rule ClusterRole and a 10-rule Role,
// each bound to the DMS ServiceAccount.
func benchRBAC() *rbac.Set {
	groups := []string{"provisioning.dpu.nvidia.com", "cert-manager.io", "", "apps", "operator.dpu.nvidia.com"}
	verbs := [][]string{{"get"}, {"get", "list"}, {"create", "get"}, {"patch"}, {"get", "list", "watch"}}
	rule := func(i int) rbacv1.PolicyRule {
		r := rbacv1.PolicyRule{APIGroups: []string{groups[i%len(groups)]}, Resources: []string{fmt.Sprintf("resource%d", i)}, Verbs: verbs[i%len(verbs)]}
		if i%7 == 0 {
			r.ResourceNames = []string{fmt.Sprintf("name-%d", i)}
		}
		return r
	}
	cr := rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}
	for i := 0; i < 36; i++ {
		cr.Rules = append(cr.Rules, rule(i))
	}
	cr.Rules = append(cr.Rules,
		rbacv1.PolicyRule{APIGroups: []string{"provisioning.dpu.nvidia.com"}, Resources: []string{"dpunodes", "dpudevices"}, Verbs: []string{"create", "get"}},
		rbacv1.PolicyRule{APIGroups: []string{"cert-manager.io"}, Resources: []string{"certificates"}, Verbs: []string{"create", "get"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{"provisioning.dpu.nvidia.com"}, Resources: []string{"dpudevices/status"}, Verbs: []string{"get", "patch", "update"}},
	)
	role := rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: dmsNS}}
	for i := 36; i < 46; i++ {
		role.Rules = append(role.Rules, rule(i))
	}
	sa := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: dmsSA, Namespace: dmsNS}}
	return &rbac.Set{
		ClusterRoles:        []rbacv1.ClusterRole{cr},
		ClusterRoleBindings: []rbacv1.ClusterRoleBinding{{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "bench"}, Subjects: sa}},
		Roles:               []rbacv1.Role{role},
		RoleBindings:        []rbacv1.RoleBinding{{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: dmsNS}, RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "bench"}, Subjects: sa}},
	}
}

func BenchmarkLint25KB(b *testing.B) {
	src := benchScript(25 * 1024)
	set := benchRBAC()
	args := ArgsFromArgv([]string{"--external-certificate", "none", "--kube-node-ref", "worker-1"})
	opts := Options{Args: args, DefaultNamespace: dmsNS, Subject: access.ServiceAccount(dmsNS, dmsSA)}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := ParseScript("bench.sh", src)
		if err != nil {
			b.Fatal(err)
		}
		r := Lint([]*Script{s}, set, opts)
		if len(r.Findings) == 0 {
			b.Fatal("no findings")
		}
	}
}

// TestBenchScript keeps the benchmark input honest: it is ~25 KB, every
// certain call is found, and the 50-rule set allows them.
func TestBenchScript(t *testing.T) {
	src := benchScript(25 * 1024)
	if len(src) < 25*1024 || len(src) > 30*1024 {
		t.Errorf("benchmark script is %d bytes", len(src))
	}
	set := benchRBAC()
	rules := 0
	for _, r := range set.ClusterRoles {
		rules += len(r.Rules)
	}
	for _, r := range set.Roles {
		rules += len(r.Rules)
	}
	if rules != 50 {
		t.Errorf("benchmark RBAC has %d rules, want 50", rules)
	}
	s, err := ParseScript("bench.sh", src)
	if err != nil {
		t.Fatal(err)
	}
	r := Lint([]*Script{s}, set, Options{Args: ArgsFromArgv([]string{"--external-certificate", "none", "--kube-node-ref", "worker-1"}),
		DefaultNamespace: dmsNS, Subject: access.ServiceAccount(dmsNS, dmsSA)})
	for _, f := range r.Findings {
		if f.Certainty == Certain && !f.Decision.Allowed && f.Request.Resource != "secrets" {
			t.Errorf("%s denied; the benchmark RBAC should allow every certain call but the secret reads", f.Needs())
		}
	}
	if r.Allowed == 0 {
		t.Error("nothing allowed")
	}
}
