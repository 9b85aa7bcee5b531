package evidence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// mixedSim is the shared simulated cluster: every scenario, with three
// nodes failing the same way so that the --max-logs group limit shows. It
// has its own API server and starts on first use (startMixed), in the
// background, so tests that need no cluster run without one.
var mixedSim struct {
	once  sync.Once
	ready chan struct{} // closed once c or err is set
	c     *simCluster
	err   error
}

// mixedScenarios assigns dpu-worker-1..10 in this order.
const mixedScenarios = "hypothetical-secrets-forbidden=3,hypothetical-secrets-forbidden-quiet=1,dpudevice-status-forbidden=1,apiserver-unreachable=1," +
	"certificate-not-ready=1,rshim-occupied=1,no-dpu-found=1,healthy=1"

type simCluster struct {
	*sim.Cluster
	kube   kubernetes.Interface
	byNode map[string]sim.Scenario
}

// startMixed starts the shared cluster in the background, once; it skips
// t under -short.
func startMixed(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	mixedSim.once.Do(func() {
		mixedSim.ready = make(chan struct{})
		go func() {
			defer close(mixedSim.ready)
			if sim.Assets() == "" {
				mixedSim.err = fmt.Errorf("envtest binaries not found: export KUBEBUILDER_ASSETS=$(hack/envtest.sh)")
				return
			}
			// Time scale 0.2: its pods restart less often (back-off 2 s
			// doubling to 60 s) while the package's tests run.
			mixedSim.c, mixedSim.err = startSim(sim.Options{Nodes: 10, Scenario: mixedScenarios, TimeScale: 0.2, SecretWaitAttempts: 1, Resync: time.Hour})
		}()
	})
}

// mixed returns the shared cluster, waiting until it has started.
func mixed(t testing.TB) *simCluster {
	t.Helper()
	startMixed(t)
	<-mixedSim.ready
	if mixedSim.err != nil {
		t.Fatal(mixedSim.err)
	}
	return mixedSim.c
}

// mixedParallel returns the shared cluster to a test that only reads it
// or acts as a user of its own: the test runs in parallel with the other
// tests on it, after the package's serial tests, which run on the shared
// API server while the mixed cluster starts.
func mixedParallel(t *testing.T) *simCluster {
	t.Helper()
	startMixed(t)
	t.Parallel()
	return mixed(t)
}

// shared is the API server the other sims of the package use one after
// another (the mixed sim, alive throughout, has its own), started on first
// use and stopped by TestMain.
var shared sim.SharedControlPlane

// onShared returns o on the shared API server.
func onShared(o sim.Options) (sim.Options, error) {
	cp, err := shared.Get()
	o.ControlPlane = cp
	return o, err
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime
	code := m.Run()
	// Both API servers stop side by side.
	var wg sync.WaitGroup
	wg.Go(shared.Stop)
	if mixedSim.ready != nil {
		<-mixedSim.ready
	}
	if mixedSim.c != nil {
		_ = mixedSim.c.Stop()
	}
	wg.Wait()
	os.Exit(code)
}

func startSim(o sim.Options) (*simCluster, error) { return startSimFailed(o, 2) }

// startShared starts a sim on the shared API server, as startSim.
func startShared(o sim.Options) (*simCluster, error) {
	o, err := onShared(o)
	if err != nil {
		return nil, err
	}
	return startSim(o)
}

// startSimFailed starts a sim and waits until each failing pod has failed
// `failures` times.
func startSimFailed(o sim.Options, failures int32) (*simCluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute+time.Duration(o.Nodes)*100*time.Millisecond)
	defer cancel()
	c, err := sim.Start(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("start sim: %w", err)
	}
	sc := &simCluster{Cluster: c, kube: kubernetes.NewForConfigOrDie(kube.Protobuf(c.Config)), byNode: map[string]sim.Scenario{}}
	mix, _ := sim.ParseMix(o.Scenario)
	for i, s := range mix.Assign(len(c.Nodes)) {
		sc.byNode[c.Nodes[i]] = s
	}
	if err := sc.settle(ctx, failures); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return sc, nil
}

// settle waits until every node's pod shows its scenario: Ready when
// healthy, Init:0/N when its Secret is missing, else failed at least
// `failures` times.
func (c *simCluster) settle(ctx context.Context, failures int32) error {
	var last string
	for {
		pods, err := c.kube.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: dpf.ComponentLabel, ResourceVersion: "0"})
		if err != nil {
			return err
		}
		done := len(pods.Items) == len(c.byNode)
		hist := map[string]int{}
		for i := range pods.Items {
			p := &pods.Items[i]
			switch c.byNode[p.Spec.NodeName] {
			case sim.Healthy:
				done = done && dpf.PodReady(p)
			case sim.CertificateNotReady:
				done = done && strings.HasPrefix(dpf.PodState(p), "Init:0/")
			default:
				var n int32
				for _, s := range p.Status.InitContainerStatuses {
					n += s.RestartCount
				}
				done = done && dpf.PodState(p) == "Init:CrashLoopBackOff" && n >= failures
			}
			last = p.Name + "=" + dpf.PodState(p)
			hist[string(c.byNode[p.Spec.NodeName])+"/"+dpf.PodState(p)]++
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pods did not settle (%d nodes, %d pods, e.g. %s %v): %w", len(c.byNode), len(pods.Items), last, hist, ctx.Err())
		case <-time.After(200*time.Millisecond + time.Duration(len(c.byNode))*time.Millisecond):
		}
	}
}

// nodesOf returns the nodes of a scenario, in order.
func (c *simCluster) nodesOf(s sim.Scenario) []string {
	var out []string
	for _, n := range c.Nodes {
		if c.byNode[n] == s {
			out = append(out, n)
		}
	}
	return out
}

// collect runs the collector as cfg's user and returns the bundle and the
// recorded requests.
func collect(t *testing.T, cfg *rest.Config, o evidence.Options) (*evidence.Bundle, *kube.Budget, error) {
	t.Helper()
	return collectAs(cfg, o)
}

// collectAs is collect for any goroutine.
func collectAs(cfg *rest.Config, o evidence.Options) (*evidence.Bundle, *kube.Budget, error) {
	budget := kube.NewBudget(0).Recording()
	cl, err := kube.New(cfg, "", budget)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := (&evidence.Collector{Clients: cl}).Collect(ctx, o)
	return b, budget, err
}

// user returns a client config for a new user bound to the given rules.
func user(t *testing.T, c *simCluster, name string, rules []rbacv1.PolicyRule) *rest.Config {
	t.Helper()
	ctx := context.Background()
	cfg, err := c.UserConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test-" + name}, Rules: rules}
	if _, err := c.kube.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-" + name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: name}}}
	if _, err := c.kube.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.kube.RbacV1().ClusterRoleBindings().Delete(ctx, crb.Name, metav1.DeleteOptions{})
		_ = c.kube.RbacV1().ClusterRoles().Delete(ctx, cr.Name, metav1.DeleteOptions{})
	})
	waitAllowed(t, kubernetes.NewForConfigOrDie(cfg), rules)
	return cfg
}

// waitAllowed waits until a new binding is visible to the authorizer: the
// user may do what the first rule grants (nothing to wait for without one).
func waitAllowed(t *testing.T, cs kubernetes.Interface, rules []rbacv1.PolicyRule) {
	t.Helper()
	if len(rules) == 0 || len(rules[0].APIGroups) == 0 || len(rules[0].Resources) == 0 {
		return
	}
	r := rules[0]
	attrs := &authorizationv1.ResourceAttributes{Namespace: dpf.DefaultNamespace, Verb: r.Verbs[0], Group: r.APIGroups[0], Resource: r.Resources[0]}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(),
			&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs}}, metav1.CreateOptions{})
		if err == nil && res.Status.Allowed {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the authorizer does not see the binding: may not %+v", attrs)
}

// readonlyRules are the rules of the published read-only ClusterRole.
func readonlyRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile("../../docs/rbac/dpfdoctor-readonly.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var cr rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(doc, &cr); err == nil && cr.Kind == "ClusterRole" {
			return cr.Rules
		}
	}
	t.Fatal("no ClusterRole in docs/rbac/dpfdoctor-readonly.yaml")
	return nil
}

// without drops one resource from rules.
func without(rules []rbacv1.PolicyRule, resource string) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, r := range rules {
		r = *r.DeepCopy()
		var keep []string
		for _, res := range r.Resources {
			if res != resource {
				keep = append(keep, res)
			}
		}
		if len(keep) > 0 {
			r.Resources = keep
			out = append(out, r)
		}
	}
	return out
}

func podResult(t *testing.T, d *diagnose.Diagnosis, node string) diagnose.PodResult {
	t.Helper()
	for _, p := range d.Pods {
		if p.Node == node {
			return p
		}
	}
	t.Fatalf("no pod for node %s", node)
	return diagnose.PodResult{}
}

func finding(d *diagnose.Diagnosis, c diagnose.Class, pod string) (diagnose.Finding, bool) {
	for _, f := range d.Findings {
		if f.Class != c {
			continue
		}
		for _, p := range f.Pods {
			if p == pod {
				return f, true
			}
		}
	}
	return diagnose.Finding{}, false
}

func missing(f diagnose.Finding) string {
	var s []string
	for _, r := range f.Missing {
		s = append(s, r.String())
	}
	return strings.Join(s, "\n")
}

func evidenceText(f diagnose.Finding) string {
	var s []string
	for _, e := range f.Evidence {
		s = append(s, e.Source+": "+e.Text)
	}
	return strings.Join(s, "\n")
}

func encode(b *evidence.Bundle) (string, error) {
	var buf bytes.Buffer
	if err := b.WriteArchive(&buf); err != nil {
		return "", err
	}
	data, err := json.Marshal(b)
	return string(data), err
}
