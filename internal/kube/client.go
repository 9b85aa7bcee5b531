package kube

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// QPS turns client-go's client-side rate limiter off, as controller-runtime
// does (pkg/client/config GetConfigWithContext): a zero QPS would silently
// mean client-go's 5/10, and any fixed rate throttles a large fix by itself
// (docs/fix.md). Our fan-outs are bounded (fanout.Limit), and the API
// server's Priority and Fairness sheds load with 429 and Retry-After, which
// client-go honours (Budget.Waited reports it).
const (
	QPS       = -1
	UserAgent = "dpfdoctor"
)

// Clients are the clients one command uses, sharing one Budget.
type Clients struct {
	Config    *rest.Config
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Metadata  metadata.Interface
	Namespace string // from -n; "" without it
	Budget    *Budget
}

// Tune turns client-side rate limiting off, sets the user agent and the budget on a copy of c.
func Tune(c *rest.Config, b *Budget) *rest.Config {
	c = rest.CopyConfig(c)
	c.QPS, c.Burst, c.RateLimiter = QPS, 0, nil
	c.UserAgent = UserAgent
	if b != nil {
		c.Wrap(b.Wrap)
	}
	return c
}

// Protobuf returns a copy of c that sends and accepts protobuf, several
// times cheaper than JSON for the API server to encode and for the client
// to decode: for clientsets of the built-in types only (custom resources
// have no protobuf encoding).
func Protobuf(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return c
}

// FromFlags builds Clients from kubectl-style flags. A kubeconfig that is
// missing, malformed or names an unknown context yields ErrBadKubeconfig.
func FromFlags(cf *genericclioptions.ConfigFlags, b *Budget) (*Clients, error) {
	if p := ptr.Deref(cf.KubeConfig, ""); p != "" {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w: %v (pass a readable file to --kubeconfig)", ErrBadKubeconfig, err)
		}
	}
	cfg, err := cf.ToRESTConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, fmt.Errorf("%w: no cluster configured (set --kubeconfig or KUBECONFIG)", ErrBadKubeconfig)
		}
		return nil, fmt.Errorf("%w: %v", ErrBadKubeconfig, err)
	}
	// Only -n counts: callers decide their own default when it is absent.
	return New(cfg, ptr.Deref(cf.Namespace, ""), b)
}

// New builds Clients from a rest.Config (tests and the sim use this).
func New(cfg *rest.Config, namespace string, b *Budget) (*Clients, error) {
	if b == nil {
		b = NewBudget(0)
	}
	return ForConfig(Tune(cfg, b), namespace, b)
}

// ForConfig builds Clients on cfg as it is: its caller has tuned it (Tune)
// with b, or left b out of it. The clientset of the built-in types speaks
// protobuf (thousands of pods decode several times faster).
func ForConfig(cfg *rest.Config, namespace string, b *Budget) (*Clients, error) {
	kc, kerr := kubernetes.NewForConfig(Protobuf(cfg))
	dc, derr := dynamic.NewForConfig(cfg)
	mc, merr := metadata.NewForConfig(cfg)
	if err := errors.Join(kerr, derr, merr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKubeconfig, err)
	}
	return &Clients{Config: cfg, Kube: kc, Dynamic: dc, Metadata: mc, Namespace: namespace, Budget: b}, nil
}

// Resource is the dynamic client for g, in namespace ns unless ns is "".
func Resource(dyn dynamic.Interface, g schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	if ns == "" {
		return dyn.Resource(g)
	}
	return dyn.Resource(g).Namespace(ns)
}
