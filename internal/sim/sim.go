// Package sim runs a simulated DPF cluster on a real kube-apiserver and etcd
// (controller-runtime envtest) with RBAC enforced: the DPF CRDs, the
// operator's inventory and reconcile loop, DMS pods, and a kubelet that runs
// each pod's dms-init as its ServiceAccount, with real Forbidden answers,
// CrashLoopBackOff back-off, events and logs served through pods/log.
package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ScenarioLabel on a Node selects its scenario; nodes without it get the
// first scenario of the mix.
const ScenarioLabel = "sim.dpfdoctor.dev/scenario"

// Options configure a simulated cluster.
type Options struct {
	// Version of DPF to simulate (default v25.4.0).
	Version string
	// Nodes is the number of DPU hosts (default 8).
	Nodes int
	// Scenario is a mix such as "dpudevice-status-forbidden" or
	// "dpudevice-status-forbidden=6,healthy=2" (default healthy).
	Scenario string
	// TimeScale multiplies every simulated delay: the operator resync
	// (10 s), kubelet back-off (10 s doubling to 5 min) and dmsinit's 2 s
	// sleeps. Default 1.
	TimeScale float64
	// Resync is the operator's resync period before scaling (default 10 s;
	// real DPF uses 10 min).
	Resync time.Duration
	// NodeStatusReport is the kubelet's Node status report period before
	// scaling (default 5 min, as nodeStatusReportFrequency; negative: no
	// reports, so a deleted v25.4.0 pod stays gone).
	NodeStatusReport time.Duration
	// NodePrefix names nodes <prefix>1, <prefix>2, … (default "dpu-worker-").
	NodePrefix string
	// Kubectl is the kubectl binary dms-init runs; default $KUBECTL, then
	// $KUBEBUILDER_ASSETS/kubectl, then kubectl on PATH.
	Kubectl string
	// KubectlMaxNodes: with at most this many nodes dms-init runs the real
	// kubectl; above it, client-go with the same token (default 32; -1 =
	// never use kubectl).
	KubectlMaxNodes int
	// SecretWaitAttempts is how often dms-init polls the Secret (the
	// script uses 30 × 2 s; default 5).
	SecretWaitAttempts int
	// Workers run pods' containers in parallel (default 4 with kubectl,
	// 16 with client-go).
	Workers int
	// OperatorWorkers is how many Nodes the NodeReconciler reconciles at
	// once. The default, 1, is DPF's: the provisioning manager's
	// --concurrency, which it passes to controller-runtime as
	// MaxConcurrentReconciles, defaults to 1 (cmd/provisioning/main.go in
	// NVIDIA/doca-platform at v25.4.0, 785d519), and neither the manager's
	// Deployment (config/provisioning/manager) nor the operator's edits to
	// it (internal/operator/inventory) set it. A test that adds hundreds
	// of nodes at once, and whose outcome does not depend on the order of
	// re-creation, may raise it.
	OperatorWorkers int
	// MaxAddresses caps the distinct loopback node addresses (default 250).
	MaxAddresses int
	// Log receives one line per notable event; nil discards.
	Log io.Writer
	// Script, when set, runs a real dmsinit.sh as dms-init and
	// rshim-preflight (internal/sandbox) on sims of up to KubectlMaxNodes
	// nodes, instead of the replay.
	Script ScriptRunner
	// HostDPUs are the PCI device IDs of every host's BlueField devices
	// in the Script's fake host, in PCI order (default one BlueField-3);
	// the replay and the operator's objects know the first only.
	HostDPUs []string
	// RBAC, when set, replaces the release's ClusterRole and
	// ClusterRoleBinding in the operator's inventory (`sim up --rbac`).
	RBAC *rbac.Set
	// Audit makes the API server write every ServiceAccount's requests,
	// with the authorizer's decisions, to Cluster.AuditLog.
	Audit bool
	// KubeconfigOut is where the admin kubeconfig is written (default a
	// file in the sim's temporary directory).
	KubeconfigOut string
	// ControlPlane, when set, is a started API server this sim uses
	// instead of its own; Stop then resets it for the next sim.
	ControlPlane *ControlPlane
}

func (o *Options) defaults() error {
	o.Version = cmp.Or(o.Version, "v25.4.0")
	o.Nodes = cmp.Or(o.Nodes, 8)
	o.Scenario = cmp.Or(o.Scenario, string(Healthy))
	o.TimeScale = cmp.Or(o.TimeScale, 1)
	o.Resync = cmp.Or(o.Resync, 10*time.Second)
	o.NodeStatusReport = cmp.Or(o.NodeStatusReport, nodeStatusReport)
	o.NodePrefix = cmp.Or(o.NodePrefix, "dpu-worker-")
	o.KubectlMaxNodes = cmp.Or(o.KubectlMaxNodes, 32)
	o.SecretWaitAttempts = cmp.Or(o.SecretWaitAttempts, 5)
	o.OperatorWorkers = cmp.Or(o.OperatorWorkers, 1)
	if o.Nodes < 0 {
		return fmt.Errorf("--nodes must be positive")
	}
	if o.TimeScale < 0 {
		return fmt.Errorf("--time-scale must be positive")
	}
	if o.MaxAddresses <= 0 {
		o.MaxAddresses = 250
	}
	o.Log = cmp.Or[io.Writer](o.Log, io.Discard)
	return nil
}

// Cluster is a running simulated DPF cluster.
type Cluster struct {
	// Config is an admin (system:masters) client config.
	Config *rest.Config
	// KubeconfigPath holds the admin kubeconfig.
	KubeconfigPath string
	// Namespace is the DPF namespace (dpf-operator-system).
	Namespace string
	// Release is the simulated DPF release.
	Release dpf.Release
	// Nodes are the initial node names, in order.
	Nodes []string
	// AuditLog is the API server's audit log with Options.Audit (see
	// ReadAudit), this sim's requests from offset AuditStart on.
	AuditLog   string
	AuditStart int64

	opts       Options
	mix        Mix
	env        *envtest.Environment
	dir        string
	kube       kubernetes.Interface
	dyn        dynamic.Interface
	kubelet    *kubeletServer
	closedAddr string // a loopback host:port nothing listens on: the wrong VIP
	apiHost    string
	apiPort    int
	useKubectl bool

	shared *ControlPlane

	op     *operator
	kl     *kubelet
	cancel context.CancelFunc
	wg     sync.WaitGroup

	secrets secretMaterial
	dpuUIDs sync.Map // DPU name → UID (v25.1)

	nodeCount atomic.Int64
	stopOnce  sync.Once
	stopErr   error
}

// ErrAssets is returned when the envtest binaries are missing.
var ErrAssets = errors.New("envtest binaries not found (run `make envtest` or set KUBEBUILDER_ASSETS)")

// Start boots envtest, installs DPF and starts the operator and kubelet
// loops. Stop the cluster with Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	release, err := dpf.Lookup(opts.Version)
	if err != nil {
		return nil, err
	}
	mix, err := ParseMix(opts.Scenario)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(CheckApplies(mix, release), mix.Fits(opts.Nodes)); err != nil {
		return nil, err
	}
	if Assets() == "" {
		return nil, ErrAssets
	}
	dir, err := os.MkdirTemp("", "dpfdoctor-sim-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, mix: mix, Release: release, Namespace: dpf.DefaultNamespace, dir: dir}
	c.useKubectl = opts.KubectlMaxNodes > 0 && opts.Nodes <= opts.KubectlMaxNodes
	c.opts.Workers = cmp.Or(c.opts.Workers, map[bool]int{true: 4, false: 16}[c.useKubectl])
	if err := c.start(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) logf(format string, a ...any) {
	fmt.Fprintf(c.opts.Log, "sim: "+format+"\n", a...)
}

func (c *Cluster) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.opts.TimeScale)
}

func (c *Cluster) start(ctx context.Context) error {
	n := c.opts.Nodes
	addrs := make([]string, min(n, c.opts.MaxAddresses))
	for i := range addrs {
		addrs[i] = nodeAddress(i, c.opts.MaxAddresses)
	}
	c.kl = newKubelet(c)
	var err error
	if c.kubelet, err = newKubeletServer(addrs, c.kl); err != nil {
		return err
	}
	caFile := filepath.Join(c.dir, "kubelet-ca.crt")
	if err := os.WriteFile(caFile, c.kubelet.caPEM, 0o600); err != nil {
		return err
	}

	// A loopback port nothing listens on: where a wrong API VIP points.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.closedAddr = l.Addr().String()
	_ = l.Close()

	cfg, err := c.startAPIServer(caFile)
	if err != nil {
		return err
	}
	c.Config = cfg
	u := c.env.ControlPlane.APIServer.ListenAddr
	c.apiHost = u.Address
	c.apiPort, _ = strconv.Atoi(u.Port)
	// The kubelets and the operator speak protobuf for the built-in types,
	// as a kubelet (--kube-api-content-type) and controller-runtime's
	// client do; custom resources have only JSON.
	if c.kube, err = kubernetes.NewForConfig(kube.Protobuf(cfg)); err != nil {
		return err
	}
	if c.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	if err := c.writeKubeconfig(); err != nil {
		return err
	}
	if err := c.install(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.op = newOperator(c)
	if err := c.op.start(runCtx, &c.wg); err != nil {
		return err
	}
	if err := c.kl.start(runCtx, &c.wg); err != nil {
		return err
	}
	c.logf("DPF %s with %d nodes (%s) at %s", c.Release.Version, n, c.mix, cfg.Host)
	return nil
}

// startAPIServer starts the sim's own API server, or installs the CRDs on
// the shared one.
func (c *Cluster) startAPIServer(kubeletCA string) (*rest.Config, error) {
	crdOpts := envtest.CRDInstallOptions{CRDs: crds(c.needsStatusSubresource())}
	if p := c.opts.ControlPlane; p != nil {
		if err := p.acquire(c); err != nil {
			return nil, err
		}
		c.shared, c.env = p, p.env
		if _, err := envtest.InstallCRDs(p.cfg, crdOpts); err != nil {
			return nil, fmt.Errorf("install CRDs: %w", err)
		}
		return rest.CopyConfig(p.cfg), nil
	}
	c.env = &envtest.Environment{CRDInstallOptions: crdOpts}
	cfg, log, err := startEnv(c.env, c.dir, c.opts.Audit, map[string]string{
		"kubelet-certificate-authority": kubeletCA,
		// Close open watches on SIGTERM after 1 s instead of waiting for
		// them: otherwise any informer keeps kube-apiserver running until
		// envtest's 20 s stop timeout kills it (RestartAPIServer, Stop).
		"shutdown-watch-termination-grace-period": "1s",
	})
	c.AuditLog = log
	return cfg, err
}

// needsStatusSubresource: v25.7 CRDs, or v25.4.0 with a newer hostdriver
// whose dms-init patches dpudevices/status (CRDs upgraded ahead of the
// operator's role).
func (c *Cluster) needsStatusSubresource() bool {
	if c.Release.DPUDeviceStatusSubresource {
		return true
	}
	return slices.ContainsFunc(c.mix, func(e MixEntry) bool {
		return e.Scenario == DPUDeviceStatusForbidden || e.Scenario == HypotheticalSecretsForbiddenQuiet
	})
}

// install creates the namespace, the DPFOperatorConfig, the nodes, and runs
// the operator's first inventory apply.
func (c *Cluster) install(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.Namespace}}
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace: %w", err)
	}
	// v25.1 pods run as the default ServiceAccount; the ServiceAccount
	// admission plugin is off in envtest, so create it.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: c.Namespace}}
	if _, err := c.kube.CoreV1().ServiceAccounts(c.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create default ServiceAccount: %w", err)
	}
	vip, port := c.apiHost, int64(c.apiPort)
	if !slices.ContainsFunc(c.mix, func(e MixEntry) bool { return e.Scenario != APIServerUnreachable }) {
		// The whole cluster's DPFOperatorConfig names a VIP nothing serves.
		var p string
		vip, p, _ = net.SplitHostPort(c.closedAddr)
		port, _ = strconv.ParseInt(p, 10, 64)
	}
	cfg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operator.dpu.nvidia.com/v1alpha1", "kind": "DPFOperatorConfig",
		"metadata": map[string]any{"name": dpf.OperatorConfigName, "namespace": c.Namespace},
		"spec": map[string]any{
			"overrides":              map[string]any{"paused": false, "kubernetesAPIServerVIP": vip, "kubernetesAPIServerPort": port},
			"provisioningController": map[string]any{"bfbPVCName": "bfb-pvc", "dmsTimeout": int64(900)},
		},
	}}
	if _, err := c.dyn.Resource(gvrOperatorCfg).Namespace(c.Namespace).Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create DPFOperatorConfig: %w", err)
	}
	if err := c.applyInventory(ctx); err != nil {
		return err
	}
	scen := c.mix.Assign(c.opts.Nodes)
	c.Nodes = make([]string, c.opts.Nodes)
	for i := range c.Nodes {
		c.Nodes[i] = c.opts.NodePrefix + strconv.Itoa(i+1)
	}
	c.nodeCount.Store(int64(c.opts.Nodes))
	return fanout.Each(len(c.Nodes), 2*fanout.Limit, func(i int) error { return c.createNode(ctx, c.Nodes[i], scen[i], i) })
}

// createNode creates a DPU Node with a loopback InternalIP and the kubelet
// endpoint, as a kubelet registering itself would.
func (c *Cluster) createNode(ctx context.Context, name string, s Scenario, i int) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		dpf.DPUNodeLabel: "true", ScenarioLabel: string(s), corev1.LabelHostname: name,
	}, Annotations: map[string]string{indexAnnotation: strconv.Itoa(i)}}}
	created, err := c.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	return c.setNodeStatus(ctx, created, i)
}

func (c *Cluster) setNodeStatus(ctx context.Context, node *corev1.Node, i int) error {
	node = node.DeepCopy()
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeAddress(i, c.opts.MaxAddresses)}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(c.kubelet.port)
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "kubelet is posting ready status", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	node.Status.NodeInfo.KubeletVersion = "v1.31.4"
	if _, err := c.kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("set status of node %s: %w", node.Name, err)
	}
	return nil
}

// indexAnnotation marks nodes the sim registers itself.
const indexAnnotation = "sim.dpfdoctor.dev/index"

// register gives a Node someone else created (kubectl create node) an
// address and the kubelet endpoint, as its kubelet would on joining.
func (c *Cluster) register(ctx context.Context, node *corev1.Node) error {
	if _, ok := node.Annotations[indexAnnotation]; ok || nodeIP(node) != "" {
		return nil
	}
	i := int(c.nodeCount.Add(1)) - 1
	c.logf("registering node %s as %s", node.Name, nodeAddress(i, c.opts.MaxAddresses))
	return c.setNodeStatus(ctx, node, i)
}

// AddNode adds a DPU host with the given scenario (like a new server joining)
// and returns its name.
func (c *Cluster) AddNode(ctx context.Context, s Scenario) (string, error) {
	if !s.valid() {
		return "", fmt.Errorf("unknown scenario %q", s)
	}
	i := int(c.nodeCount.Add(1)) - 1
	name := c.opts.NodePrefix + strconv.Itoa(i+1)
	return name, c.createNode(ctx, name, s, i)
}

// Reconciles is how many inventory reconciles the operator has run.
func (c *Cluster) Reconciles() int64 { return c.op.reconciles.Load() }

// Reconcile runs one operator inventory reconcile now (as a resync would).
func (c *Cluster) Reconcile(ctx context.Context) error { return c.op.reconcileInventory(ctx) }

// Stop stops the loops, the kubelet endpoint and envtest, and removes the
// temporary directory (not KubeconfigOut). It is safe to call twice.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
		if c.kubelet != nil {
			_ = c.kubelet.srv.Close()
			c.kubelet.wg.Wait()
		}
		switch {
		case c.shared != nil:
			c.stopErr = c.shared.release()
		case c.env != nil:
			c.stopErr = c.env.Stop()
		}
		_ = os.RemoveAll(c.dir)
	})
	return c.stopErr
}

func (c *Cluster) writeKubeconfig() error {
	path := cmp.Or(c.opts.KubeconfigOut, filepath.Join(c.dir, "kubeconfig"))
	kc := clientcmdapi.NewConfig()
	kc.Clusters["dpf-sim"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData}
	kc.AuthInfos["dpf-sim-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.Config.CertData, ClientKeyData: c.Config.KeyData}
	kc.Contexts["dpf-sim"] = &clientcmdapi.Context{Cluster: "dpf-sim", AuthInfo: "dpf-sim-admin", Namespace: c.Namespace}
	kc.CurrentContext = "dpf-sim"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	c.KubeconfigPath = path
	return nil
}

// UserConfig returns a client config for a user authenticated by a client
// certificate (name and groups), with no rights until something binds some.
func (c *Cluster) UserConfig(name string, groups ...string) (*rest.Config, error) {
	u, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return u.Config(), nil
}

// APIServerURL is the apiserver's URL.
func (c *Cluster) APIServerURL() string { return c.Config.Host }

// ClosedURL is a loopback URL where nothing listens (the "wrong VIP").
func (c *Cluster) ClosedURL() string { return "https://" + c.closedAddr }

// Pinned envtest versions; keep in step with hack/envtest.sh.
const (
	envtestK8s  = "v1.31.4"
	envtestEtcd = "v3.5.35"
)

// Assets returns the envtest binary directory: $KUBEBUILDER_ASSETS, else the
// cache hack/envtest.sh builds into. It sets KUBEBUILDER_ASSETS when it
// finds the cache, so envtest uses it. "" means not found.
func Assets() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".cache")
	}
	d := filepath.Join(base, "dpfdoctor", "envtest", envtestK8s+"-"+envtestEtcd+"-"+runtime.Version())
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if !fileExists(filepath.Join(d, b)) {
			return ""
		}
	}
	_ = os.Setenv("KUBEBUILDER_ASSETS", d)
	return d
}

// Summary counts the DMS pods by the state kubectl shows.
type Summary struct {
	Total  int            `json:"total"`
	Ready  int            `json:"ready"`
	States map[string]int `json:"states"`
}

// Summary lists the DMS pods once and counts their states.
func (c *Cluster) Summary(ctx context.Context) (Summary, error) {
	opts := metav1.ListOptions{LabelSelector: dpf.ComponentLabel}
	if c.Release.PodPerDPU {
		opts = metav1.ListOptions{} // v25.1 pods are unlabelled
	}
	list, err := c.kube.CoreV1().Pods(c.Namespace).List(ctx, opts)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{States: map[string]int{}}
	for i := range list.Items {
		p := &list.Items[i]
		if _, ok := dpf.NodeFromPodName(p.Name); !ok {
			continue
		}
		s.Total++
		if dpf.PodReady(p) {
			s.Ready++
		}
		s.States[dpf.PodState(p)]++
	}
	return s, nil
}

func (s Summary) String() string {
	var parts []string
	for st, n := range s.States {
		parts = append(parts, fmt.Sprintf("%d %s", n, st))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d/%d DMS pods ready (%s)", s.Ready, s.Total, strings.Join(parts, ", "))
}

// RestartAPIServer stops the kube-apiserver (killed when it has not shut
// down gracefully within 2 s, as a crash would), calls during while it is
// down, and starts it again on the same etcd data, address, certificates
// and ServiceAccount signing keys, so that existing clients and tokens
// reconnect. envtest would otherwise remove its certificate directory on
// stop and start with fresh ones.
func (c *Cluster) RestartAPIServer(ctx context.Context, during func()) error {
	api := c.env.ControlPlane.APIServer
	keep, err := os.MkdirTemp(c.dir, "apiserver-")
	if err != nil {
		return err
	}
	if err := os.CopyFS(keep, os.DirFS(api.CertDir)); err != nil {
		return fmt.Errorf("keep the API server's certificates: %w", err)
	}
	api.StopTimeout = 2 * time.Second
	stopErr := api.Stop() // a timeout after which it was killed is fine: the port tells
	addr := net.JoinHostPort(c.apiHost, fmt.Sprint(c.apiPort))
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err != nil, nil
	}); err != nil {
		return fmt.Errorf("the API server still listens on %s: %w", addr, errors.Join(err, stopErr))
	}
	api.CertDir = keep
	if during != nil {
		during()
	}
	if err := api.Start(); err != nil {
		return fmt.Errorf("start the API server again: %w", err)
	}
	return nil
}
