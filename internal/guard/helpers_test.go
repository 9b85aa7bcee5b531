package guard

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(testLogger("controller-runtime"))
	flag.Parse()
	if !flagSet("test.parallel") {
		// Each envtest test here starts its own API server and then mostly
		// waits (watches, back-offs, the sim's pods), using about a third of
		// two cores; the default -parallel (GOMAXPROCS) would run them two
		// by two. An explicit -parallel still wins.
		_ = flag.Set("test.parallel", strconv.Itoa(max(runtime.GOMAXPROCS(0), envtestParallel)))
	}
	os.Exit(m.Run())
}

// envtestParallel is how many of this package's envtest tests run at once.
const envtestParallel = 8

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// testLogger prints to stderr with -v only.
func testLogger(name string) logr.Logger {
	return funcr.New(func(prefix, args string) {
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, "%s %s %s\n", time.Now().Format("15:04:05.000"), prefix, args)
		}
	}, funcr.Options{Verbosity: 0}).WithName(name)
}

// repoRoot is the module root, for deploy/: go test runs in the package's
// directory (runtime.Caller would give a module path under -trimpath).
func repoRoot(testing.TB) string { return filepath.Join("..", "..") }

// deployObjects reads a multi-document YAML file from deploy/.
func deployObjects(t testing.TB, name string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	return parseObjects(t, "deploy/"+name, data)
}

// parseObjects splits multi-document YAML (a file, or helm's output) into
// objects.
func parseObjects(t testing.TB, source string, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(string(data), "\n---") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
	return out
}

var kindResources = map[string]schema.GroupVersionResource{
	"ServiceAccount":                   {Version: "v1", Resource: "serviceaccounts"},
	"Role":                             rbacv1.SchemeGroupVersion.WithResource("roles"),
	"RoleBinding":                      rbacv1.SchemeGroupVersion.WithResource("rolebindings"),
	"ClusterRole":                      rbacv1.SchemeGroupVersion.WithResource("clusterroles"),
	"ClusterRoleBinding":               rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings"),
	"ValidatingAdmissionPolicy":        admissionv1.SchemeGroupVersion.WithResource("validatingadmissionpolicies"),
	"ValidatingAdmissionPolicyBinding": admissionv1.SchemeGroupVersion.WithResource("validatingadmissionpolicybindings"),
}

// env is one simulated cluster with the guard's ServiceAccount and RBAC
// created from deploy/ exactly as shipped.
type env struct {
	t        testing.TB
	c        *sim.Cluster
	cs       kubernetes.Interface
	dyn      dynamic.Interface
	guardCfg *rest.Config
}

func startEnv(t testing.TB, o sim.Options) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: run `make test`, or `export KUBEBUILDER_ASSETS=$(hack/envtest.sh)`")
	}
	if o.TimeScale == 0 {
		o.TimeScale = 0.05
	}
	o.SecretWaitAttempts, o.KubectlMaxNodes, o.Resync = 1, -1, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := sim.Start(ctx, o)
	if err != nil {
		t.Fatalf("sim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop sim: %v", err)
		}
	})
	e := &env{t: t, c: c, cs: kubernetes.NewForConfigOrDie(c.Config), dyn: dynamic.NewForConfigOrDie(c.Config)}
	e.guardCfg = e.installDeployRBAC()
	return e
}

// installDeployRBAC creates deploy/'s ServiceAccount, RBAC and admission
// policy and returns a client config that authenticates as that ServiceAccount with a token.
func (e *env) installDeployRBAC() *rest.Config {
	e.t.Helper()
	ctx := context.Background()
	var objs []*unstructured.Unstructured
	for _, f := range []string{"serviceaccount.yaml", "rbac.yaml", "admissionpolicy.yaml"} {
		objs = append(objs, deployObjects(e.t, f)...)
	}
	for _, u := range objs {
		gvr, ok := kindResources[u.GetKind()]
		if !ok {
			e.t.Fatalf("unexpected kind %s in deploy/", u.GetKind())
		}
		var err error
		if u.GetNamespace() != "" {
			_, err = e.dyn.Resource(gvr).Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
		} else {
			_, err = e.dyn.Resource(gvr).Create(ctx, u, metav1.CreateOptions{})
		}
		if err != nil {
			e.t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	exp := int64(3600)
	tr, err := e.cs.CoreV1().ServiceAccounts(e.c.Namespace).CreateToken(ctx, "dpfdoctor-guard",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("token for the guard's ServiceAccount: %v", err)
	}
	return &rest.Config{Host: e.c.Config.Host, BearerToken: tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.c.Config.CAData}}
}

// running is a guard started for a test.
type running struct {
	g      *Guard
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startGuard runs a guard as deploy/'s ServiceAccount until stopped (or
// the test ends).
func (e *env) startGuard(o Options) *running {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	o.Registry = reg
	o.MetricsAddr, o.ProbeAddr, o.InsecureMetrics = "127.0.0.1:0", "0", true
	o.BackupDir = e.t.TempDir()
	o.StartupGrace = 3 * time.Second
	if o.Logger.GetSink() == nil {
		o.Logger = testLogger("guard")
	}
	g, err := New(e.guardCfg, o)
	if err != nil {
		e.t.Fatalf("guard.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{g: g, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- g.Start(ctx) }()
	e.t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			_ = err // shutting down: the guard's own error is not this cleanup's to judge
		case <-time.After(30 * time.Second):
		}
	})
}

// scrape reads the guard's /metrics over HTTP.
func (e *env) scrape(r *running) metricValues {
	e.t.Helper()
	var addr string
	e.eventually(30*time.Second, "metrics endpoint listening", func() bool { addr = r.g.MetricsAddr(); return addr != "" })
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		e.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("scrape: %s", resp.Status)
	}
	return parseMetrics(e.t, resp.Body)
}

// metricValues maps `name{label="value",...}` (as exposed) to the value.
type metricValues map[string]float64

func parseMetrics(t testing.TB, r io.Reader) metricValues {
	t.Helper()
	out := metricValues{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// with returns the series of one metric: label set → value.
func (m metricValues) with(name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if k == name {
			out[""] = v
		} else if strings.HasPrefix(k, name+"{") {
			out[k[len(name):]] = v
		}
	}
	return out
}

func (e *env) eventually(timeout time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s; pods: %s", timeout, what, e.podStates())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *env) pods() []corev1.Pod {
	e.t.Helper()
	l, err := e.cs.CoreV1().Pods(e.c.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: dpf.ComponentLabel})
	if err != nil {
		e.t.Fatal(err)
	}
	return l.Items
}

func (e *env) podStates() string {
	var s []string
	for _, p := range e.pods() {
		s = append(s, p.Name+"="+dpf.PodState(&p))
	}
	return strings.Join(s, " ")
}

// allReady reports whether n DMS pods exist and all are Ready.
func (e *env) allReady(n int) bool {
	ps := e.pods()
	if len(ps) != n {
		return false
	}
	for i := range ps {
		if !dpf.PodReady(&ps[i]) {
			return false
		}
	}
	return true
}

// failingCount counts DMS pods whose dms-init has failed at least once
// and that are not Ready.
func (e *env) failingCount() int {
	n := 0
	for _, p := range e.pods() {
		if !dpf.PodReady(&p) && crashed(&p) {
			n++
		}
	}
	return n
}

// grantName is the Role and RoleBinding dpfdoctor writes for the DMS
// ServiceAccount.
func (e *env) grantName() string {
	return plan.NamePrefix + e.c.Release.ServiceAccount
}

// grantedSecrets are the Secret names the grant Role allows; nil when the
// Role does not exist.
func (e *env) grantedSecrets() map[string]bool {
	e.t.Helper()
	role, err := e.cs.RbacV1().Roles(e.c.Namespace).Get(context.Background(), e.grantName(), metav1.GetOptions{})
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			if res == "secrets" {
				for _, n := range r.ResourceNames {
					out[n] = true
				}
			}
		}
	}
	return out
}

// guardEvents lists the events the guard recorded with a reason.
func (e *env) guardEvents(reason string) []corev1.Event {
	e.t.Helper()
	l, err := e.cs.CoreV1().Events(e.c.Namespace).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=" + reason})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []corev1.Event
	for _, ev := range l.Items {
		if ev.ReportingController == ControllerName {
			out = append(out, ev)
		}
	}
	return out
}

// eventedPods are the pods with a guard event of reason.
func (e *env) eventedPods(reason string) map[string]corev1.Event {
	out := map[string]corev1.Event{}
	for _, ev := range e.guardEvents(reason) {
		if ev.InvolvedObject.Kind == "Pod" {
			out[ev.InvolvedObject.Name] = ev
		}
	}
	return out
}

func (e *env) managedCount() int {
	e.t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: plan.ManagedByLabel + "=" + plan.ManagedByValue}
	roles, err := e.cs.RbacV1().Roles(e.c.Namespace).List(ctx, sel)
	if err != nil {
		e.t.Fatal(err)
	}
	rbs, err := e.cs.RbacV1().RoleBindings(e.c.Namespace).List(ctx, sel)
	if err != nil {
		e.t.Fatal(err)
	}
	crs, err := e.cs.RbacV1().ClusterRoles().List(ctx, sel)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(roles.Items) + len(rbs.Items) + len(crs.Items)
}

func fromUnstructured(t testing.TB, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}
