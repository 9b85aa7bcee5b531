package apply_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/plan"
	"github.com/dpfdoctor/dpfdoctor/internal/policy"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// fixture is a sim with failing pods and a plan for them.
type fixture struct {
	c    *sim.Cluster
	cs   kubernetes.Interface
	plan *plan.Plan
}

// shared is the API server each test's sim uses in turn: started on first
// use (never under -short), stopped by TestMain. sharedBusy makes its
// tests wait for each other while they run in parallel with the fault
// tests.
var (
	shared     sim.SharedControlPlane
	sharedBusy sync.Mutex
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime
	flag.Parse()
	if f := flag.Lookup("test.parallel"); f.Value.String() == f.DefValue {
		// The fault tests run on API servers of their own, alongside the
		// shared one's tests, and mostly wait (client-go's 1 s retry after
		// a broken read); the default -parallel (GOMAXPROCS) would run
		// two at a time.
		_ = flag.Set("test.parallel", strconv.Itoa(max(runtime.GOMAXPROCS(0), 4)))
	}
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

// setup starts a sim on the shared API server once the previous test on
// it has ended, and runs the test in parallel with the fault tests.
func setup(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	t.Parallel()
	sharedBusy.Lock()
	t.Cleanup(sharedBusy.Unlock) // after the sim's Stop, registered later
	cp, err := shared.Get()
	if err != nil {
		t.Fatal(err)
	}
	return start(t, cp)
}

// setupAlone starts a sim with an API server of its own and runs the test
// in parallel with the others.
func setupAlone(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	t.Parallel()
	return start(t, nil)
}

func start(t *testing.T, cp *sim.ControlPlane) *fixture {
	t.Helper()
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: run `make test`, or `export KUBEBUILDER_ASSETS=$(hack/envtest.sh)`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The operator resyncs rarely here: these tests are about the API.
	c, err := sim.Start(ctx, sim.Options{Nodes: 3, Scenario: "hypothetical-secrets-forbidden", TimeScale: 0.05, SecretWaitAttempts: 2, KubectlMaxNodes: -1, Resync: time.Hour,
		ControlPlane: cp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	cl := admin(t, c)
	var p *plan.Plan
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(300 * time.Millisecond) {
		b, err := (&evidence.Collector{Clients: cl}).Collect(ctx, evidence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p, err = plan.Build(plan.Input{Diagnosis: diagnose.Diagnose(b), Bundle: b})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Changes) == 2 && len(p.Expect) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no plan with 2 changes: %+v", p)
		}
	}
	return &fixture{c: c, cs: kubernetes.NewForConfigOrDie(c.Config), plan: p}
}

func admin(t *testing.T, c *sim.Cluster) *kube.Clients {
	t.Helper()
	cl, err := kube.New(c.Config, c.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// grant reports how many of the plan's Expect requests are allowed and how
// many dpfdoctor objects exist. The RBAC authorizer follows a watch cache,
// so when the objects are all there (or all gone) the reviews are asked
// again for a few seconds until they agree; a grant that never follows its
// objects still shows.
func (f *fixture) grant(t *testing.T) (allowed, objects int) {
	t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: plan.ManagedByLabel + "=" + plan.ManagedByValue}
	roles, err := f.cs.RbacV1().Roles(f.c.Namespace).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	bindings, err := f.cs.RbacV1().RoleBindings(f.c.Namespace).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	objects = len(roles.Items) + len(bindings.Items)
	want := map[int]int{0: 0, 2: len(f.plan.Expect)}
	s := f.plan.Subject()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		allowed = 0
		for _, r := range f.plan.Expect {
			res, err := f.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: s.User, Groups: s.Groups, ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: r.Namespace, Verb: r.Verb, Resource: r.Resource, Name: r.Name}}},
				metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status.Allowed {
				allowed++
			}
		}
		if w, ok := want[objects]; !ok || w == allowed || time.Now().After(deadline) {
			return allowed, objects
		}
	}
}

func TestApplyIdempotentAndRollback(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	a := &apply.Applier{Clients: admin(t, f.c)}
	root := t.TempDir()
	var first *apply.Backup
	for i := 0; i < 3; i++ {
		b := apply.NewBackup(root, f.plan, f.c.Config.Host, nil)
		res, err := a.Apply(ctx, b)
		if err != nil {
			t.Fatalf("apply #%d: %v", i+1, err)
		}
		if (i == 0) == res.NoOp || (i == 0) != (res.Count() == 2) || (i == 0) != b.Created() {
			t.Fatalf("apply #%d: noOp %t, %d written, backup %t", i+1, res.NoOp, res.Count(), b.Created())
		}
		if i == 0 {
			first = b
		}
	}
	if allowed, objects := f.grant(t); allowed != len(f.plan.Expect) || objects != 2 {
		t.Fatalf("after apply: %d/%d allowed, %d objects", allowed, len(f.plan.Expect), objects)
	}
	entries, _ := os.ReadDir(first.Dir)
	for _, e := range entries {
		info, _ := e.Info()
		if !e.IsDir() && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", e.Name(), info.Mode().Perm())
		}
	}
	if r := first.Receipt(); r.Status != apply.StatusApplied || len(r.Applied) != 2 {
		t.Fatalf("receipt: %+v", r)
	}
	for i, wantAlready := range []bool{false, true} {
		res, err := a.Rollback(ctx, first.Dir)
		if err != nil || res.Already != wantAlready {
			t.Fatalf("rollback #%d: %+v %v", i+1, res, err)
		}
	}
	if allowed, objects := f.grant(t); allowed != 0 || objects != 0 {
		t.Fatalf("after rollback: %d allowed, %d objects", allowed, objects)
	}
}

// An existing object of the same name that dpfdoctor does not manage, or a
// name from the operator's inventory, is refused before any change.
func TestApplyRefusesForeignObjects(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ref := f.plan.Changes[0].Ref()
	foreign := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: ref.Namespace},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}}
	if _, err := f.cs.RbacV1().Roles(ref.Namespace).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	_, err := (&apply.Applier{Clients: admin(t, f.c)}).Apply(ctx, apply.NewBackup(root, f.plan, "", nil))
	if !errors.Is(err, policy.ErrRefused) {
		t.Fatalf("apply over a foreign Role: %v", err)
	}
	got, _ := f.cs.RbacV1().Roles(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if len(got.Rules) != 1 || got.Rules[0].Resources[0] != "configmaps" {
		t.Fatalf("the foreign Role was changed: %+v", got.Rules)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatal("a refused apply left a backup")
	}
}

// A user without rights is told what is missing and nothing changes.
func TestCheckRightsNamesMissing(t *testing.T) {
	f := setup(t)
	cfg, err := f.c.UserConfig("alice", "devs")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kube.New(cfg, f.c.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = apply.CheckRights(context.Background(), cl.Kube, f.plan, apply.Needs(f.plan))
	var re *apply.RightsError
	if !errors.Is(err, kube.ErrInsufficientRights) || !errors.As(err, &re) {
		t.Fatalf("CheckRights: %v", err)
	}
	want := access.Request{Verb: "create", Group: rbacv1.GroupName, Resource: "roles", Namespace: f.c.Namespace}
	found := false
	for _, m := range re.Missing {
		found = found || m == want
	}
	if !found {
		t.Fatalf("missing %v does not name %s", re.Missing, want)
	}
	if err := apply.CheckRights(context.Background(), admin(t, f.c).Kube, f.plan, apply.Needs(f.plan)); err != nil {
		t.Fatalf("admin: %v", err)
	}
}

// Breaking the connection at every point of the apply leaves the full
// grant or none: never part of it, never a stray object.
//
// Both halves (request lost, response lost) run at once, each on a sim of
// its own: most of the time goes to client-go's 1 s wait before it retries
// a broken read.
func TestApplyFaultInjection(t *testing.T) {
	t.Parallel()
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("response-lost=%t", after), func(t *testing.T) { faultInjection(t, after) })
	}
}

func faultInjection(t *testing.T, after bool) {
	f := setupAlone(t)
	ctx := context.Background()
	proxy := startFaultProxy(t, f.c.Config)
	cl, err := kube.New(proxy.config(), f.c.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	clean := &apply.Applier{Clients: admin(t, f.c)}
	var failed, succeeded, broken int64
	for _, width := range []int64{1, 3} {
		for k := int64(0); k <= 8; k++ {
			name := fmt.Sprintf("k=%d width=%d", k, width)
			root := t.TempDir()
			proxy.arm(k, width, after)
			b := apply.NewBackup(root, f.plan, "", nil)
			_, err := (&apply.Applier{Clients: cl, Backoff: 20 * time.Millisecond}).Apply(ctx, b)
			broken += proxy.broken.Load()
			proxy.arm(-1, 0, false)
			if err != nil {
				failed++
			} else {
				succeeded++
			}
			allowed, objects := f.grant(t)
			full := allowed == len(f.plan.Expect) && objects == 2
			none := allowed == 0 && objects == 0
			switch {
			case err == nil && !full:
				t.Errorf("%s: apply succeeded but the grant is partial (%d allowed, %d objects)", name, allowed, objects)
			case err != nil && !none:
				t.Errorf("%s: apply failed (%v) and left %d allowed, %d objects", name, err, allowed, objects)
			case err != nil && !errors.Is(err, apply.ErrApplyFailed) && !errors.Is(err, kube.ErrUnreachable):
				t.Errorf("%s: error %v is neither an apply failure nor unreachable", name, err)
			}
			if b.Created() {
				if _, err := clean.Rollback(ctx, b.Dir); err != nil {
					t.Fatalf("%s: clean-up rollback: %v", name, err)
				}
			}
			if allowed, objects := f.grant(t); allowed != 0 || objects != 0 {
				t.Fatalf("%s: clean-up left %d allowed, %d objects", name, allowed, objects)
			}
		}
	}
	t.Logf("%d applies failed (rolled back), %d succeeded, %d requests broken, %d through the proxy", failed, succeeded, broken, proxy.total.Load())
	if failed == 0 || succeeded == 0 || broken == 0 {
		t.Fatal("the faults did not exercise both outcomes")
	}
}

// Rollback undoes one fix only where the objects are still as it left
// them, for a writer whose RBAC names its objects as the guard's does: a
// fix rolled back out of order leaves what a later fix wrote or relies on,
// and names that fix; an object edited by hand since is left alone; once
// the later fix is rolled back and the edit undone, each rollback restores
// (an update, authorized by name) or deletes exactly.
func TestRollbackLeavesLaterChanges(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.c.Namespace
	var names []string
	for _, c := range f.plan.Changes {
		names = append(names, c.Ref().Name)
	}
	writer := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "named-writer", Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles", "rolebindings"}, ResourceNames: names, Verbs: []string{"get", "create", "patch", "update", "delete"}},
		{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles"}, ResourceNames: names, Verbs: []string{"escalate", "bind"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "named-writer", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: writer.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "named-writer"}}}
	if _, err := f.cs.RbacV1().Roles(ns).Create(ctx, writer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.c.UserConfig("named-writer")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kube.New(cfg, ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &apply.Applier{Clients: cl, Backoff: 20 * time.Millisecond}
	root := t.TempDir()
	first := apply.NewBackup(root, f.plan, f.c.Config.Host, nil)
	if _, err := a.Apply(ctx, first); err != nil {
		t.Fatalf("apply with named rights: %v", err)
	}
	// A second fix adds a rule to the Role; its binding is unchanged.
	changed := *f.plan
	changed.Changes = slices.Clone(f.plan.Changes)
	role := changed.Changes[0].Object.DeepCopy()
	if role.GetKind() != "Role" {
		t.Fatalf("the plan's first change is a %s", role.GetKind())
	}
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	rules = append(rules, map[string]any{"apiGroups": []any{"provisioning.dpu.nvidia.com"}, "resources": []any{"dpunodes"}, "verbs": []any{"get"}})
	if err := unstructured.SetNestedSlice(role.Object, rules, "rules"); err != nil {
		t.Fatal(err)
	}
	changed.Changes[0].Object = role
	second := apply.NewBackup(root, &changed, f.c.Config.Host, nil)
	if _, err := a.Apply(ctx, second); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	liveRules := func() []rbacv1.PolicyRule {
		t.Helper()
		r, err := f.cs.RbacV1().Roles(ns).Get(ctx, role.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the grant Role: %v", err)
		}
		return r.Rules
	}
	secondRules := liveRules()

	res, err := a.Rollback(ctx, first.Dir)
	if err != nil || len(res.Deleted)+len(res.Restored) != 0 || len(res.Left) != 2 || !strings.Contains(res.Left[0], second.Dir) {
		t.Fatalf("rollback of the first fix before the second: %+v %v", res, err)
	}
	if !plan.SameRules(liveRules(), secondRules) {
		t.Fatal("rolling back the first fix changed the second fix's Role")
	}

	// A hand edit: the second fix's rollback leaves the Role alone.
	edited, _ := f.cs.RbacV1().Roles(ns).Get(ctx, role.GetName(), metav1.GetOptions{})
	edited.Rules = append(edited.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}})
	if _, err := f.cs.RbacV1().Roles(ns).Update(ctx, edited, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	res, err = a.Rollback(ctx, second.Dir)
	if err != nil || len(res.Restored) != 0 || len(res.Left) != 1 || !strings.Contains(res.Left[0], "changed since this fix") {
		t.Fatalf("rollback over a hand edit: %+v %v", res, err)
	}
	if got := liveRules(); len(got) != len(secondRules)+1 {
		t.Fatalf("the hand-edited Role was changed: %+v", got)
	}

	// The edit undone: the second fix rolls back to the first's Role, then
	// the first fix removes the grant.
	edited, _ = f.cs.RbacV1().Roles(ns).Get(ctx, role.GetName(), metav1.GetOptions{})
	edited.Rules = secondRules
	if _, err := f.cs.RbacV1().Roles(ns).Update(ctx, edited, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Rollback(ctx, second.Dir); err != nil || len(res.Restored) != 1 || len(res.Left) != 0 {
		t.Fatalf("rollback of the second fix: %+v %v", res, err)
	}
	if got := liveRules(); !plan.SameRules(got, rulesOf(t, f.plan.Changes[0].Object)) {
		t.Fatalf("restored rules %+v, want the first fix's", got)
	}
	if res, err := a.Rollback(ctx, first.Dir); err != nil || len(res.Deleted) != 2 || len(res.Left) != 0 {
		t.Fatalf("rollback of the first fix: %+v %v", res, err)
	}
	if allowed, objects := f.grant(t); allowed != 0 || objects != 0 {
		t.Fatalf("after both rollbacks: %d allowed, %d objects", allowed, objects)
	}
}

func rulesOf(t *testing.T, u *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	var r rbacv1.Role
	if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
		t.Fatal(err)
	}
	return r.Rules
}

// failRoundTripper answers 500 to the requests fail matches.
type failRoundTripper struct {
	next http.RoundTripper
	fail func(*http.Request) bool
}

func (f failRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.fail(r) {
		return &http.Response{StatusCode: http.StatusInternalServerError, Header: http.Header{"Content-Type": {"application/json"}},
			Body:    io.NopCloser(strings.NewReader(`{"kind":"Status","apiVersion":"v1","status":"Failure","code":500,"reason":"InternalError","message":"injected"}`)),
			Request: r}, nil
	}
	return f.next.RoundTrip(r)
}

// The Role write conflicts with dpfdoctor's other writer (the guard) and is
// merged; then the binding's write fails. The automatic rollback puts the
// Role back as the guard had it, although what the apply wrote is the
// merged Role and not the planned one, and leaves no binding.
func TestRollbackAfterMergedWrite(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	admin := admin(t, f.c)
	role := f.plan.Changes[0].Object.DeepCopy()
	if role.GetKind() != "Role" || f.plan.Changes[1].Object.GetKind() != "RoleBinding" {
		t.Fatalf("plan changes: %s, %s", role.GetKind(), f.plan.Changes[1].Object.GetKind())
	}
	guardRule := map[string]any{"apiGroups": []any{"provisioning.dpu.nvidia.com"}, "resources": []any{"dpunodes"}, "verbs": []any{"get"}}
	if err := unstructured.SetNestedSlice(role.Object, []any{guardRule}, "rules"); err != nil {
		t.Fatal(err)
	}
	ri := admin.Dynamic.Resource(rbacv1.SchemeGroupVersion.WithResource("roles")).Namespace(role.GetNamespace())
	if _, err := ri.Apply(ctx, role.GetName(), role, metav1.ApplyOptions{FieldManager: apply.GuardFieldManager}); err != nil {
		t.Fatal(err)
	}
	before, _ := f.cs.RbacV1().Roles(role.GetNamespace()).Get(ctx, role.GetName(), metav1.GetOptions{})

	cfg := rest.CopyConfig(f.c.Config)
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return failRoundTripper{next: next, fail: func(r *http.Request) bool {
			return r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/rolebindings/") && !strings.Contains(r.URL.RawQuery, "dryRun")
		}}
	})
	cl, err := kube.New(cfg, f.c.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := apply.NewBackup(t.TempDir(), f.plan, "", nil)
	_, err = (&apply.Applier{Clients: cl, Backoff: 20 * time.Millisecond}).Apply(ctx, b)
	if !errors.Is(err, apply.ErrApplyFailed) || !strings.Contains(err.Error(), "everything written was rolled back") {
		t.Fatalf("apply: %v", err)
	}
	after, err := f.cs.RbacV1().Roles(role.GetNamespace()).Get(ctx, role.GetName(), metav1.GetOptions{})
	if err != nil || !plan.SameRules(after.Rules, before.Rules) {
		t.Fatalf("the Role after the rollback: %+v (%v), want the guard's %+v", after.Rules, err, before.Rules)
	}
	if _, err := f.cs.RbacV1().RoleBindings(role.GetNamespace()).Get(ctx, role.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the binding after the rollback: %v", err)
	}
	if st := b.Receipt().Status; st != apply.StatusFailedRolledBack {
		t.Errorf("backup status %s", st)
	}
}
