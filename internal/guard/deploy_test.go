package guard

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// renderDeploy builds a kustomization under deploy/ as `kubectl apply -k`
// does.
func renderDeploy(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(t), "deploy", dir))
	if err != nil {
		t.Fatalf("kustomize deploy/%s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range m.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func findObject(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s in the rendered manifests", kind, name)
	return nil
}

// guardPod is the guard Deployment's pod template, from rendered
// manifests, as a Pod.
func guardPod(t testing.TB, objs []*unstructured.Unstructured) *corev1.Pod {
	t.Helper()
	var d appsv1.Deployment
	fromUnstructured(t, findObject(t, objs, "Deployment", ControllerName), &d)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: ControllerName, Namespace: d.Namespace, Labels: d.Spec.Template.Labels},
		Spec:       d.Spec.Template.Spec,
	}
}

// guardPods are the guard's pods as deploy/ and as the chart installs them
// (chart_test.go's cases), by source.
func guardPods(t testing.TB) map[string]*corev1.Pod {
	t.Helper()
	pods := map[string]*corev1.Pod{"deploy": guardPod(t, renderDeploy(t, "."))}
	for _, tc := range chartCases {
		pods["chart-"+tc.name] = guardPod(t, renderChart(t, tc.namespace, tc.args...))
	}
	return pods
}

// TestDeployRestrictedV2 checks, on deploy/'s pod and the chart's, the
// rules of OpenShift's restricted-v2 SCC that the PodSecurity "restricted"
// level does not: the platform assigns the UID and GID, and the pod uses
// nothing of the host.
func TestDeployRestrictedV2(t *testing.T) {
	t.Run("deploy", func(t *testing.T) { checkRestrictedV2(t, guardPod(t, renderDeploy(t, "."))) })
	for _, tc := range chartCases {
		t.Run("chart-"+tc.name, func(t *testing.T) { checkRestrictedV2(t, guardPod(t, renderChart(t, tc.namespace, tc.args...))) })
	}
}

func checkRestrictedV2(t *testing.T, p *corev1.Pod) {
	t.Helper()
	s := p.Spec
	if sc := s.SecurityContext; sc == nil || sc.RunAsUser != nil || sc.RunAsGroup != nil || sc.FSGroup != nil {
		t.Errorf("pod securityContext fixes a UID or GID: %+v", sc)
	}
	if s.SecurityContext == nil || s.SecurityContext.RunAsNonRoot == nil || !*s.SecurityContext.RunAsNonRoot {
		t.Error("pod securityContext lacks runAsNonRoot: true")
	}
	if s.HostNetwork || s.HostPID || s.HostIPC {
		t.Error("the pod shares a host namespace")
	}
	for _, v := range s.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s is a hostPath", v.Name)
		}
	}
	cs := append(append([]corev1.Container{}, s.InitContainers...), s.Containers...)
	if len(cs) == 0 {
		t.Fatal("no containers")
	}
	for _, c := range cs {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s: no securityContext", c.Name)
			continue
		}
		if sc.RunAsUser != nil || sc.RunAsGroup != nil {
			t.Errorf("container %s fixes a UID or GID", c.Name)
		}
		for _, port := range c.Ports {
			if port.HostPort != 0 {
				t.Errorf("container %s: host port %d", c.Name, port.HostPort)
			}
		}
	}
}

// TestDeployAdmittedRestricted creates the guard's pod, from deploy/ and
// from the chart, in namespaces that enforce the PodSecurity "restricted"
// level: the API server's admission admits each and rejects deploy/'s pod
// made privileged or given a hostPath.
func TestDeployAdmittedRestricted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: run `make test`, or `export KUBEBUILDER_ASSETS=$(hack/envtest.sh)`")
	}
	t.Parallel()
	// envtest disables only the ServiceAccount admission plugin; PodSecurity
	// is on by default. Enable it explicitly all the same.
	env := &envtest.Environment{}
	env.ControlPlane.GetAPIServer().Configure().Set("enable-admission-plugins", "PodSecurity")
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	pods := guardPods(t)
	namespaces := map[string]bool{}
	for _, p := range pods {
		namespaces[p.Namespace] = true
	}
	for name := range namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(name string, change func(*corev1.Pod)) {
		p := pods["deploy"].DeepCopy()
		p.Name = name
		change(p)
		_, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
			t.Errorf("%s: admitted or refused for another reason (%v); want a PodSecurity rejection", name, err)
		}
	}
	refused("privileged", func(p *corev1.Pod) {
		yes := true
		p.Spec.Containers[0].SecurityContext.Privileged = &yes
		p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &yes
	})
	refused("hostpath", func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "host",
			VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run"}}})
	})
	for source, pod := range pods {
		pod.Name = source
		if _, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Errorf("the guard's pod from %s is not admitted under PodSecurity restricted: %v", source, err)
		}
	}
}

// TestPrometheusRule parses deploy/monitoring's alerts with Prometheus's
// own rule parser and checks that they use only the guard's metrics and are
// documented.
func TestPrometheusRule(t *testing.T) {
	objs := append(renderDeploy(t, "."), renderDeploy(t, "monitoring")...)
	spec, err := yaml.Marshal(findObject(t, objs, "PrometheusRule", ControllerName).Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	promql := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, promql)
	for _, err := range errs {
		t.Errorf("prometheusrule.yaml: %v", err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.pods.WithLabelValues("Running")
	m.findings.WithLabelValues("Healthy")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, mf := range mfs {
		known[mf.GetName()] = true
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "guard.md"))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if !strings.Contains(string(doc), r.Alert) {
				t.Errorf("alert %s is not in docs/guard.md", r.Alert)
			}
			expr, err := promql.ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("alert %s: %v", r.Alert, err)
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok && !known[vs.Name] {
					t.Errorf("alert %s uses %s, which the guard does not export", r.Alert, vs.Name)
				}
				return nil
			})
		}
	}
	want := "DPFDoctorDMSPodsFailing DPFDoctorRepairsFailing DPFDoctorGuardDown DPFDoctorGuardNoLeader DPFDoctorGrantDrifting"
	if got := strings.Join(alerts, " "); got != want {
		t.Errorf("alerts %s, want %s", got, want)
	}
	// The ServiceMonitor scrapes the Service's port with the scraper's token.
	sm := findObject(t, objs, "ServiceMonitor", ControllerName)
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	svc := findObject(t, objs, "Service", "dpfdoctor-guard-metrics")
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	if len(eps) != 1 || len(ports) != 1 {
		t.Fatalf("endpoints %v, ports %v", eps, ports)
	}
	ep, port := eps[0].(map[string]any), ports[0].(map[string]any)
	secret, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name")
	if ep["scheme"] != "https" || ep["port"] != port["name"] || secret == "" {
		t.Errorf("ServiceMonitor endpoint %v does not scrape port %v over HTTPS with a token", ep, port)
	}
	findObject(t, objs, "Secret", secret)
}

// deploy/ serves /metrics with the certificate OpenShift's service CA
// issues for the metrics Service, once that Secret exists (mounted
// optional, so elsewhere the guard starts and serves a self-signed one),
// and deploy/openshift/ scrapes it verified: the ServiceMonitor checks the
// Service's DNS name against the injected CA bundle.
func TestDeployOpenShiftVerifiedMetrics(t *testing.T) {
	base := renderDeploy(t, ".")
	svc := findObject(t, base, "Service", "dpfdoctor-guard-metrics")
	secret := svc.GetAnnotations()["service.beta.openshift.io/serving-cert-secret-name"]
	var d appsv1.Deployment
	fromUnstructured(t, findObject(t, base, "Deployment", ControllerName), &d)
	mountPath := ""
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secret && secret != "" && v.Secret.Optional != nil && *v.Secret.Optional {
			for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
				if m.Name == v.Name && m.ReadOnly {
					mountPath = m.MountPath
				}
			}
		}
	}
	if mountPath == "" || !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--metrics-cert-dir="+mountPath) {
		t.Errorf("the guard does not serve the optional service-ca Secret %q: volumes %+v, args %v", secret, d.Spec.Template.Spec.Volumes, d.Spec.Template.Spec.Containers[0].Args)
	}
	objs := renderDeploy(t, "openshift")
	sm := findObject(t, objs, "ServiceMonitor", ControllerName)
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("endpoints: %v", eps)
	}
	tc, _, _ := unstructured.NestedMap(eps[0].(map[string]any), "tlsConfig")
	cm, _, _ := unstructured.NestedString(tc, "ca", "configMap", "name")
	if tc["insecureSkipVerify"] == true || tc["serverName"] != svc.GetName()+"."+svc.GetNamespace()+".svc" || cm == "" {
		t.Errorf("ServiceMonitor tlsConfig: %v", tc)
	}
	if findObject(t, objs, "ConfigMap", cm).GetAnnotations()["service.beta.openshift.io/inject-cabundle"] != "true" {
		t.Errorf("ConfigMap %s gets no service CA bundle", cm)
	}
	tc, _, _ = unstructured.NestedMap(findObject(t, renderDeploy(t, "monitoring"), "ServiceMonitor", ControllerName).Object["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any), "tlsConfig")
	if tc["insecureSkipVerify"] != true {
		t.Errorf("deploy/monitoring/ (any Prometheus Operator) changed: %v", tc)
	}
}
