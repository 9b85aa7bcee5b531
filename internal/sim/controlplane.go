package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
)

// ControlPlane is one API server (envtest) that sims started one after
// another share, as the tests of one package do (Options.ControlPlane):
// starting an API server costs more than most tests. Stopping such a sim
// deletes what it and its test created instead of stopping the API server.
// The shared API server does not verify the sim kubelets' serving
// certificates (no --kubelet-certificate-authority), and a sim on it
// cannot restart it.
type ControlPlane struct {
	env      *envtest.Environment
	cfg      *rest.Config
	dir      string
	auditLog string
	busy     sync.Mutex
}

// StartControlPlane starts a shared API server, with an audit log of every
// ServiceAccount's requests when audit is set (sims with Options.Audit need
// one); stop it with Stop.
func StartControlPlane(audit bool) (*ControlPlane, error) {
	if Assets() == "" {
		return nil, ErrAssets
	}
	dir, err := os.MkdirTemp("", "dpfdoctor-controlplane-")
	if err != nil {
		return nil, err
	}
	p := &ControlPlane{env: &envtest.Environment{}, dir: dir}
	// reset deletes thousands of objects after a large sim.
	if p.cfg, p.auditLog, err = startEnv(p.env, dir, audit, map[string]string{"delete-collection-workers": "8"}); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

// startEnv starts env's API server with RBAC, nodes reached at their
// InternalIP, the given flags and, with audit, an audit log of every
// ServiceAccount's requests (level Metadata, with the authorizer's
// decision) at <dir>/audit.log, whose path it returns.
func startEnv(env *envtest.Environment, dir string, audit bool, flags map[string]string) (*rest.Config, string, error) {
	api := env.ControlPlane.GetAPIServer().Configure()
	api.Set("authorization-mode", "RBAC")
	api.Set("kubelet-preferred-address-types", "InternalIP")
	for k, v := range flags {
		api.Set(k, v)
	}
	var log string
	if audit {
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"+
			"rules:\n- level: Metadata\n  userGroups: [\"system:serviceaccounts\"]\n- level: None\n"), 0o600); err != nil {
			return nil, "", err
		}
		log = filepath.Join(dir, "audit.log")
		api.Set("audit-policy-file", policy)
		api.Set("audit-log-path", log)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, log, fmt.Errorf("start envtest: %w", err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	return cfg, log, nil
}

// Stop stops the API server.
func (p *ControlPlane) Stop() error {
	defer func() { _ = os.RemoveAll(p.dir) }()
	return p.env.Stop()
}

// systemNamespaces keep their contents across sims.
var systemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// reset deletes every object a sim or a test may have created: the
// contents of every namespace but the system ones (namespaces stay: envtest
// runs no namespace controller to finalize them), Nodes, and ClusterRoles
// and ClusterRoleBindings other than the API server's own. CRDs stay; the
// next sim updates them.
func (p *ControlPlane) reset(ctx context.Context) error {
	cfg := rest.CopyConfig(p.cfg)
	cfg.WarningHandler = rest.NoWarnings{}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	lists, err := discovery.NewDiscoveryClient(kube.Discovery().RESTClient()).ServerPreferredNamespacedResources()
	if err != nil {
		return fmt.Errorf("discover resources: %w", err)
	}
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	now := metav1.DeleteOptions{GracePeriodSeconds: new(int64)}
	type job struct {
		ns  string
		gvr schema.GroupVersionResource
	}
	var jobs []job
	for _, ns := range nss.Items {
		if slices.Contains(systemNamespaces, ns.Name) {
			continue
		}
		for _, l := range lists {
			gv, _ := schema.ParseGroupVersion(l.GroupVersion)
			for _, r := range l.APIResources {
				// The default namespace's kubernetes Service and its
				// endpoints belong to the API server.
				if !slices.Contains(r.Verbs, "deletecollection") || (ns.Name == "default" && slices.Contains([]string{"services", "endpoints", "endpointslices"}, r.Name)) {
					continue
				}
				jobs = append(jobs, job{ns.Name, gv.WithResource(r.Name)})
			}
		}
	}
	// One collection at a time left the API server mostly idle after a
	// large sim; the collections are independent.
	err = fanout.Each(len(jobs), fanout.Limit, func(i int) error {
		j := jobs[i]
		if err := dyn.Resource(j.gvr).Namespace(j.ns).DeleteCollection(ctx, now, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("delete %s in %s: %w", j.gvr.Resource, j.ns, err)
		}
		return nil
	})
	own := metav1.ListOptions{LabelSelector: "!kubernetes.io/bootstrapping"}
	return errors.Join(err, kube.CoreV1().Nodes().DeleteCollection(ctx, now, metav1.ListOptions{}),
		kube.RbacV1().ClusterRoleBindings().DeleteCollection(ctx, now, own),
		kube.RbacV1().ClusterRoles().DeleteCollection(ctx, now, own))
}

// acquire takes the control plane for one sim: its audit log, if any,
// from the current end on.
func (p *ControlPlane) acquire(c *Cluster) error {
	if c.opts.Audit && p.auditLog == "" {
		return errors.New("a sim with an audit log needs a control plane started with one")
	}
	if !p.busy.TryLock() {
		return errors.New("the shared control plane runs another sim")
	}
	if c.opts.Audit {
		c.AuditLog = p.auditLog
		if fi, err := os.Stat(p.auditLog); err == nil {
			c.AuditStart = fi.Size()
		}
	}
	return nil
}

// release resets the control plane after a sim and frees it.
func (p *ControlPlane) release() error {
	defer p.busy.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.reset(ctx)
}

// SharedControlPlane starts one ControlPlane on first use, so that a test
// package's sims share it one after another and -short starts none. The
// package's TestMain calls Stop.
type SharedControlPlane struct {
	Audit bool // start it with an audit log (StartControlPlane)
	once  sync.Once
	cp    *ControlPlane
	err   error
}

// Get starts the control plane on the first call and returns it.
func (s *SharedControlPlane) Get() (*ControlPlane, error) {
	s.once.Do(func() { s.cp, s.err = StartControlPlane(s.Audit) })
	return s.cp, s.err
}

// Stop stops the control plane if it was started.
func (s *SharedControlPlane) Stop() {
	if s.cp != nil {
		_ = s.cp.Stop()
	}
}
