package evidence_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
	rbacv1 "k8s.io/api/rbac/v1"
)

// Every scenario of the sim is classified right, with the right pods and
// evidence, in one mixed cluster.
func TestScenariosClassified(t *testing.T) {
	m := mixedParallel(t)
	b, _, err := collect(t, m.Config, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Install.Version != "v25.4.0" || b.Install.VersionSource != evidence.VersionFromOperatorImage || !b.Install.DPUDeviceStatusSubresource {
		t.Errorf("install: %+v", b.Install)
	}
	if len(b.Gaps) != 0 {
		t.Errorf("admin sees everything, got gaps %+v", b.Gaps)
	}
	d := diagnose.Diagnose(b)
	want := map[sim.Scenario]diagnose.Class{
		sim.HypotheticalSecretsForbidden:      diagnose.ClassRBACForbidden,
		sim.HypotheticalSecretsForbiddenQuiet: diagnose.ClassRBACForbidden,
		sim.DPUDeviceStatusForbidden:          diagnose.ClassStatusSubresourceSkew,
		sim.APIServerUnreachable:              diagnose.ClassAPIServerUnreachable,
		sim.CertificateNotReady:               diagnose.ClassCertificateNotReady,
		sim.RshimOccupied:                     diagnose.ClassRshimOccupied,
		sim.NoDPUFound:                        diagnose.ClassNoDPUFound,
		sim.Healthy:                           diagnose.ClassHealthy,
	}
	for _, node := range m.Nodes {
		s := m.byNode[node]
		if got := podResult(t, d, node); got.Class != want[s] {
			t.Errorf("%s (%s): %s, want %s: %s", node, s, got.Class, want[s], got.Detail)
		}
	}
	ns := " in " + dpf.DefaultNamespace

	// hypothetical-secrets-forbidden: each pod pinned to its own Secret, from kubectl's
	// Forbidden text.
	sf := m.nodesOf(sim.HypotheticalSecretsForbidden)
	f, ok := finding(d, diagnose.ClassRBACForbidden, dpf.PodName(sf[0]))
	if !ok {
		t.Fatal("no RBACForbidden finding for hypothetical-secrets-forbidden")
	}
	for _, n := range sf {
		if !strings.Contains(missing(f), "get secrets "+dpf.SecretName(n)+ns) {
			t.Errorf("hypothetical-secrets-forbidden: missing lacks %s:\n%s", n, missing(f))
		}
	}
	if !strings.Contains(evidenceText(f), `is forbidden: User "system:serviceaccount:dpf-operator-system:dpf-provisioning-dms-service-account" cannot get resource "secrets"`) {
		t.Errorf("hypothetical-secrets-forbidden: no Forbidden quote:\n%s", evidenceText(f))
	}
	// Fewer failing pods than the log budget: every pod's own log is read.
	g, _ := b.Group(dpf.PodName(sf[0]))
	if len(g.Pods) != 3 || len(g.Fetched) != 3 || g.Unread != "" {
		t.Errorf("hypothetical-secrets-forbidden group: %+v (want 3 pods, 3 fetched)", g)
	}
	for _, p := range d.Pods {
		if p.LogsFrom != "" || p.LogNotRead != "" {
			t.Errorf("%s: log not read below the budget: %s", p.Name, p.LogNotRead)
		}
	}

	// hypothetical-secrets-forbidden-quiet: no Forbidden in the log, still pinned to
	// get secrets <node>-server-secret by SubjectAccessReview, plus the
	// status patch the v25.7 dmsinit makes later.
	q := m.nodesOf(sim.HypotheticalSecretsForbiddenQuiet)[0]
	f, _ = finding(d, diagnose.ClassRBACForbidden, dpf.PodName(q))
	for _, w := range []string{"get secrets " + dpf.SecretName(q) + ns, "patch dpudevices.provisioning.dpu.nvidia.com/status" + ns} {
		if !strings.Contains(missing(f), w) {
			t.Errorf("quiet: missing lacks %q:\n%s", w, missing(f))
		}
	}
	if !strings.Contains(evidenceText(f), "Waiting for secret "+dpf.SecretName(q)) || !strings.Contains(evidenceText(f), "SubjectAccessReview") {
		t.Errorf("quiet: evidence:\n%s", evidenceText(f))
	}

	// dpudevice-status-forbidden: fixable skew (the sim's CRD has status).
	sk := m.nodesOf(sim.DPUDeviceStatusForbidden)[0]
	f, _ = finding(d, diagnose.ClassStatusSubresourceSkew, dpf.PodName(sk))
	if !f.Fixable || f.Code != diagnose.CodeStatusSkewFixable || !strings.Contains(missing(f), "patch dpudevices.provisioning.dpu.nvidia.com/status"+ns) ||
		!strings.Contains(evidenceText(f), "Failed to update PCI address for DPUDevice") || !strings.Contains(evidenceText(f), "hostdriver v25.7.0") {
		t.Errorf("skew: %+v", f)
	}

	// apiserver-unreachable: the config and the pod's env are shown.
	un := m.nodesOf(sim.APIServerUnreachable)[0]
	f, _ = finding(d, diagnose.ClassAPIServerUnreachable, dpf.PodName(un))
	if !strings.Contains(evidenceText(f), "kubernetesAPIServerVIP: ") || !strings.Contains(evidenceText(f), "KUBERNETES_SERVICE_HOST=") ||
		!strings.Contains(evidenceText(f), "Failed to check kubectl version") {
		t.Errorf("unreachable: evidence:\n%s", evidenceText(f))
	}

	// certificate-not-ready: FailedMount, the absent Secret, the Certificate.
	cn := m.nodesOf(sim.CertificateNotReady)[0]
	f, _ = finding(d, diagnose.ClassCertificateNotReady, dpf.PodName(cn))
	for _, w := range []string{"FailedMount", fmt.Sprintf("secret %q not found", dpf.SecretName(cn)), "Certificate " + dpf.DefaultNamespace + "/" + dpf.CertificateName(cn)} {
		if !strings.Contains(evidenceText(f), w) {
			t.Errorf("certificate: evidence lacks %q:\n%s", w, evidenceText(f))
		}
	}
	// rshim-occupied and no-dpu-found quote their evidence.
	f, _ = finding(d, diagnose.ClassRshimOccupied, dpf.PodName(m.nodesOf(sim.RshimOccupied)[0]))
	if !strings.Contains(evidenceText(f), sim.PCIAddress) {
		t.Errorf("rshim: evidence:\n%s", evidenceText(f))
	}
	f, _ = finding(d, diagnose.ClassNoDPUFound, dpf.PodName(m.nodesOf(sim.NoDPUFound)[0]))
	if !strings.Contains(evidenceText(f), dpf.MsgNoDPUs) {
		t.Errorf("no DPU: evidence:\n%s", evidenceText(f))
	}
	if !strings.Contains(d.WidelySharedDiagnosis, "holds for 4 of 9 failing pods") {
		t.Errorf("widely shared: %s", d.WidelySharedDiagnosis)
	}
}

// --node keeps only those nodes' pods; the classification does not change.
func TestNodeFilter(t *testing.T) {
	m := mixedParallel(t)
	un := m.nodesOf(sim.APIServerUnreachable)[0]
	hl := m.nodesOf(sim.Healthy)[0]
	b, _, err := collect(t, m.Config, evidence.Options{Nodes: []string{un, hl}})
	if err != nil {
		t.Fatal(err)
	}
	d := diagnose.Diagnose(b)
	if len(d.Pods) != 2 || podResult(t, d, un).Class != diagnose.ClassAPIServerUnreachable || podResult(t, d, hl).Class != diagnose.ClassHealthy {
		t.Errorf("filtered: %+v", d.Pods)
	}
	if len(b.Nodes) != 2 {
		t.Errorf("nodes %+v", b.Nodes)
	}
}

// No request reads Secret data: the only Secret request is a metadata LIST.
func TestNoSecretReads(t *testing.T) {
	m := mixedParallel(t)
	b, budget, err := collect(t, m.Config, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	secretReqs := 0
	for _, r := range budget.Records() {
		if !strings.Contains(r.Path, "/secrets") {
			continue
		}
		secretReqs++
		if r.Method != "GET" || !strings.HasSuffix(r.Path, "/secrets") || !strings.Contains(r.Accept, "as=PartialObjectMetadataList") {
			t.Errorf("request may read Secret data: %+v", r)
		}
	}
	if secretReqs != 1 || !b.SecretsListed || len(b.Secrets) == 0 {
		t.Errorf("%d Secret requests, listed %t, %d names", secretReqs, b.SecretsListed, len(b.Secrets))
	}
	data, err := encode(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, fp := range m.SecretFingerprints() {
		if strings.Contains(data, fp) {
			t.Fatalf("the bundle holds Secret data (%q)", fp)
		}
	}
	if strings.Contains(data, "managedFields") {
		t.Error("the bundle holds managedFields")
	}
}

// With just the published read-only ClusterRole, diagnose sees everything.
func TestReadOnlyClusterRole(t *testing.T) {
	m := mixedParallel(t)
	cfg := user(t, m, "reader", readonlyRules(t))
	b, _, err := collect(t, cfg, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Gaps) != 0 {
		t.Errorf("gaps with the read-only ClusterRole: %+v", b.Gaps)
	}
	d := diagnose.Diagnose(b)
	if d.Summary.ByClass[diagnose.ClassUnknown] != 0 || d.Summary.Healthy != 1 {
		t.Errorf("summary %+v", d.Summary)
	}
}

// Without pods/log, diagnose still classifies what SubjectAccessReviews,
// states and events show, and lists the gap.
func TestWithoutLogRights(t *testing.T) {
	m := mixedParallel(t)
	cfg := user(t, m, "nologs", without(readonlyRules(t), "pods/log"))
	b, _, err := collect(t, cfg, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !b.HasGap("pods/log") || len(b.Logs) != 0 {
		t.Fatalf("gaps %+v, %d logs", b.Gaps, len(b.Logs))
	}
	d := diagnose.Diagnose(b)
	for s, c := range map[sim.Scenario]diagnose.Class{
		sim.HypotheticalSecretsForbidden:      diagnose.ClassRBACForbidden, // from the SAR
		sim.HypotheticalSecretsForbiddenQuiet: diagnose.ClassRBACForbidden,
		sim.DPUDeviceStatusForbidden:          diagnose.ClassStatusSubresourceSkew,
		sim.CertificateNotReady:               diagnose.ClassCertificateNotReady,
		sim.RshimOccupied:                     diagnose.ClassRshimOccupied,
		sim.Healthy:                           diagnose.ClassHealthy,
		sim.NoDPUFound:                        diagnose.ClassUnknown, // only the log tells
	} {
		for _, n := range m.nodesOf(s) {
			if got := podResult(t, d, n).Class; got != c {
				t.Errorf("%s (%s): %s, want %s", n, s, got, c)
			}
		}
	}
	found := false
	for _, g := range d.Gaps {
		found = found || (g.What == "pods/log" && g.Request != nil && g.Request.String() == "get pods/log in dpf-operator-system")
	}
	if !found {
		t.Errorf("gap does not name the permission: %+v", d.Gaps)
	}
}

// Without Secret list rights the Secret's absence comes from FailedMount.
func TestWithoutSecretList(t *testing.T) {
	m := mixedParallel(t)
	cfg := user(t, m, "nosecrets", without(readonlyRules(t), "secrets"))
	b, budget, err := collect(t, cfg, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !b.HasGap("secrets") || b.SecretsListed {
		t.Fatalf("gaps %+v", b.Gaps)
	}
	for _, r := range budget.Records() {
		if strings.Contains(r.Path, "/secrets") && r.Status != 403 {
			t.Errorf("unexpected Secret request %+v", r)
		}
	}
	d := diagnose.Diagnose(b)
	if c := podResult(t, d, m.nodesOf(sim.CertificateNotReady)[0]).Class; c != diagnose.ClassCertificateNotReady {
		t.Errorf("certificate-not-ready without Secret list: %s", c)
	}
}

// Without the right to list pods there is nothing to diagnose: the error
// names the permission.
func TestWithoutPodList(t *testing.T) {
	m := mixedParallel(t)
	cfg := user(t, m, "nopods", []rbacv1.PolicyRule{
		{APIGroups: []string{dpf.GroupOperator}, Resources: []string{"dpfoperatorconfigs"}, Verbs: []string{"list"}},
	})
	_, _, err := collect(t, cfg, evidence.Options{})
	if !errors.Is(err, kube.ErrInsufficientRights) || !strings.Contains(err.Error(), `"list pods in dpf-operator-system"`) {
		t.Fatalf("err = %v", err)
	}
	cfg = user(t, m, "nothing", nil)
	_, _, err = collect(t, cfg, evidence.Options{})
	if !errors.Is(err, kube.ErrInsufficientRights) || !strings.Contains(err.Error(), "list dpfoperatorconfigs.operator.dpu.nvidia.com") {
		t.Fatalf("err = %v", err)
	}
}

// A namespace without a DPFOperatorConfig is "not installed", and the error
// says where one is.
func TestWrongNamespace(t *testing.T) {
	m := mixedParallel(t)
	_, _, err := collect(t, m.Config, evidence.Options{Namespace: "default"})
	if !errors.Is(err, outcome.ErrNotInstalled) || !strings.Contains(err.Error(), "pass -n dpf-operator-system") {
		t.Fatalf("err = %v", err)
	}
}

// Without the right to list Certificates the collection goes on: the gap
// names the permission, and the Secret list and FailedMount events still
// show the certificate problem.
func TestWithoutCertificateList(t *testing.T) {
	m := mixedParallel(t)
	cfg := user(t, m, "nocerts", without(readonlyRules(t), "certificates"))
	b, _, err := collect(t, cfg, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var gap *evidence.Gap
	for i := range b.Gaps {
		if b.Gaps[i].What == "certificates" {
			gap = &b.Gaps[i]
		}
	}
	if gap == nil || gap.Request == nil || gap.Request.String() != "list certificates.cert-manager.io in dpf-operator-system" {
		t.Fatalf("gaps %+v", b.Gaps)
	}
	if len(b.Certificates) != 0 || len(b.DPUNodes) == 0 {
		t.Errorf("%d Certificates, %d DPUNodes", len(b.Certificates), len(b.DPUNodes))
	}
	d := diagnose.Diagnose(b)
	if c := podResult(t, d, m.nodesOf(sim.CertificateNotReady)[0]).Class; c != diagnose.ClassCertificateNotReady {
		t.Errorf("certificate-not-ready without Certificate list: %s", c)
	}
}
