package cli

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

func requireAssets(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: export KUBEBUILDER_ASSETS=$(hack/envtest.sh)")
	}
}

// bare is one API server without DPF, shared by the tests that need no DPF
// objects: it starts on first use (never under -short) and stops in TestMain.
var bare struct {
	once sync.Once
	env  envtest.Environment
	cfg  *rest.Config
	err  error
}

// bareCluster returns the bare API server and runs the test in parallel
// with the others from here on.
func bareCluster(t *testing.T) *rest.Config {
	t.Helper()
	requireAssets(t)
	t.Parallel()
	bare.once.Do(func() { bare.cfg, bare.err = bare.env.Start() })
	if bare.err != nil {
		t.Fatal(bare.err)
	}
	return bare.cfg
}

// shared is the API server the package's sims use one after another:
// started on first use, stopped in TestMain. sharedBusy makes its tests
// wait for each other while they run in parallel with the rest.
var (
	shared     sim.SharedControlPlane
	sharedBusy sync.Mutex
)

// sharedControlPlane returns the shared API server once the previous test
// on it has ended (and its sim stopped), and runs the test in parallel with
// those that do not use it.
func sharedControlPlane(t *testing.T) *sim.ControlPlane {
	t.Helper()
	requireAssets(t)
	t.Parallel()
	sharedBusy.Lock()
	t.Cleanup(sharedBusy.Unlock) // after the sim's Stop, registered later
	cp, err := shared.Get()
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime
	flag.Parse()
	if f := flag.Lookup("test.parallel"); f.Value.String() == f.DefValue {
		// The envtest tests mostly wait; those on the shared API server
		// hold a slot while they wait for it. The default -parallel
		// (GOMAXPROCS) would run them two at a time.
		_ = flag.Set("test.parallel", strconv.Itoa(max(runtime.GOMAXPROCS(0), 8)))
	}
	code := m.Run()
	if bare.cfg != nil {
		_ = bare.env.Stop()
	}
	shared.Stop()
	os.Exit(code)
}

// dpfdoctor diagnose against a simulated cluster: exit codes, messages and
// the support bundle.
func TestDiagnoseOnSim(t *testing.T) {
	requireAssets(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := sim.Start(ctx, sim.Options{Nodes: 3, Scenario: "hypothetical-secrets-forbidden=2,healthy=1", TimeScale: 0.05, SecretWaitAttempts: 1, Resync: time.Hour,
		ControlPlane: sharedControlPlane(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	cs := kubernetes.NewForConfigOrDie(c.Config)
	waitSettled(ctx, t, cs, c)
	failing := dpf.PodName(c.Nodes[0])

	t.Run("problems found", func(t *testing.T) {
		code, out, errOut := run(t, "diagnose", "--kubeconfig", c.KubeconfigPath)
		if code != ExitProblems {
			t.Fatalf("exit %d; stderr %s", code, errOut)
		}
		t.Log(strings.SplitN(out, "\n", 3)[1])
		for _, w := range []string{"RBACForbidden", "get secrets " + dpf.SecretName(c.Nodes[0]) + " in dpf-operator-system",
			"get secrets " + dpf.SecretName(c.Nodes[1]) + " in dpf-operator-system", "dpfdoctor fix", "holds for all 2 failing pods"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})

	t.Run("support bundle", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "support.tar.gz")
		code, _, errOut := run(t, "diagnose", "--kubeconfig", c.KubeconfigPath, "--bundle", file)
		if code != ExitProblems || !strings.Contains(errOut, "Support bundle written to "+file) {
			t.Fatalf("exit %d; stderr %s", code, errOut)
		}
		files := readTarGz(t, file)
		for _, name := range []string{"evidence.json", "events.json", "rbac.yaml", "diagnosis.md", "diagnosis.json",
			"logs/" + failing + "/dms-init.current.log"} {
			if _, ok := files[name]; !ok {
				t.Errorf("bundle lacks %s (has %v)", name, keys(files))
			}
		}
		if !strings.Contains(files["logs/"+failing+"/dms-init.current.log"], "is forbidden") {
			t.Errorf("log file: %q", files["logs/"+failing+"/dms-init.current.log"])
		}
		for name, content := range files {
			for _, fp := range c.SecretFingerprints() {
				if strings.Contains(content, fp) {
					t.Fatalf("%s holds Secret data (%q)", name, fp)
				}
			}
		}
		if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("bundle mode: %v %v", st.Mode(), err)
		}
		// The bundle diagnoses offline the same way.
		code, out, errOut := run(t, "diagnose", "--from-bundle", file, "-o", "json")
		if code != ExitProblems || !strings.Contains(out, `"class": "RBACForbidden"`) {
			t.Errorf("offline: exit %d, stderr %s", code, errOut)
		}
	})

	t.Run("healthy node", func(t *testing.T) {
		code, out, errOut := run(t, "diagnose", "--kubeconfig", c.KubeconfigPath, "--node", c.Nodes[2])
		if code != ExitOK || !strings.Contains(out, "Healthy") {
			t.Errorf("exit %d; stderr %s; out %s", code, errOut, out)
		}
	})

	t.Run("unknown node", func(t *testing.T) {
		for _, cmd := range []string{"diagnose", "fix"} {
			code, out, errOut := run(t, cmd, "--kubeconfig", c.KubeconfigPath, "--node", c.Nodes[0], "--node", "no-such-node")
			if code != ExitUsage || out != "" || !strings.Contains(errOut, `--node "no-such-node" names no DPU node`) {
				t.Errorf("%s: exit %d; stdout %q; stderr %s", cmd, code, out, errOut)
			}
		}
	})

	t.Run("no right to list pods", func(t *testing.T) {
		kc := userKubeconfig(t, c, cs, "cli-nopods", []rbacv1.PolicyRule{
			{APIGroups: []string{dpf.GroupOperator}, Resources: []string{"dpfoperatorconfigs"}, Verbs: []string{"list"}}})
		code, _, errOut := run(t, "diagnose", "--kubeconfig", kc)
		if code != ExitNoRights || !strings.Contains(errOut, `"list pods in dpf-operator-system"`) || !strings.Contains(errOut, "docs/rbac/dpfdoctor-readonly.yaml") {
			t.Errorf("exit %d; stderr %s", code, errOut)
		}
	})

	t.Run("no log rights", func(t *testing.T) {
		rules := []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "events", "nodes"}, Verbs: []string{"list"}},
			{APIGroups: []string{dpf.GroupOperator}, Resources: []string{"dpfoperatorconfigs"}, Verbs: []string{"list"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
		}
		kc := userKubeconfig(t, c, cs, "cli-nologs", rules)
		code, out, errOut := run(t, "diagnose", "--kubeconfig", kc)
		if code != ExitProblems {
			t.Fatalf("exit %d; stderr %s", code, errOut)
		}
		for _, w := range []string{"dpfdoctor could not see:", "pods/log: forbidden: get pods/log in dpf-operator-system", "RBACForbidden"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	})
}

// A cluster without DPF exits 5 and says what is missing.
func TestDiagnoseNotInstalled(t *testing.T) {
	cfg := bareCluster(t)
	code, _, errOut := run(t, "diagnose", "--kubeconfig", writeKubeconfig(t, cfg))
	if code != ExitNotInstalled || !strings.Contains(errOut, "no DPFOperatorConfig CRD") || !strings.Contains(errOut, "install the DPF operator") {
		t.Errorf("exit %d; stderr %s", code, errOut)
	}
}

func waitSettled(ctx context.Context, t *testing.T, cs kubernetes.Interface, c *sim.Cluster) {
	t.Helper()
	for {
		pods, err := cs.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: dpf.ComponentLabel})
		if err != nil {
			t.Fatal(err)
		}
		ready, crashing := 0, 0
		for i := range pods.Items {
			p := &pods.Items[i]
			if dpf.PodReady(p) {
				ready++
			}
			for _, s := range p.Status.InitContainerStatuses {
				if s.Name == dpf.ContainerDMSInit && s.RestartCount >= 1 && dpf.PodState(p) == "Init:CrashLoopBackOff" {
					crashing++
				}
			}
		}
		if ready == 1 && crashing == 2 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pods did not settle: %d ready, %d crashing", ready, crashing)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// userKubeconfig writes a kubeconfig for a new user bound to rules.
func userKubeconfig(t *testing.T, c *sim.Cluster, cs kubernetes.Interface, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	ctx := context.Background()
	cfg, err := c.UserConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: name}}}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAllowed(t, cs, name, rules[0])
	return writeKubeconfig(t, cfg)
}

// waitAllowed waits until the RBAC authorizer allows the user the rule's
// first verb and resource (it reads bindings through informers).
func waitAllowed(t *testing.T, cs kubernetes.Interface, user string, rule rbacv1.PolicyRule) {
	t.Helper()
	ra := &authorizationv1.ResourceAttributes{Verb: rule.Verbs[0], Group: rule.APIGroups[0], Resource: rule.Resources[0], Namespace: dpf.DefaultNamespace}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: ra}}, metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("binding for %s not effective", user)
}

func readTarGz(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = string(data)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
