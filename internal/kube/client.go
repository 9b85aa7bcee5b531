package kube

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Defaults for the client-side rate limiter. client-go's own defaults (5/10)
// apply silently when these are zero, so they are always set explicitly.
const (
	DefaultQPS   = 50
	DefaultBurst = 100
	UserAgent    = "dpfdoctor"
)

// Clients are the clients one command uses, sharing one Budget.
type Clients struct {
	Config    *rest.Config
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Metadata  metadata.Interface
	Namespace string // from -n or the kubeconfig context; "" if neither
	Budget    *Budget
}

// Configure installs QPS/Burst, the user agent and the budget on every
// rest.Config the flags produce.
func Configure(cf *genericclioptions.ConfigFlags, b *Budget) {
	cf.WithWrapConfigFn(func(c *rest.Config) *rest.Config { return Tune(c, b) })
}

// Tune sets QPS/Burst, the user agent and the budget on a copy of c.
func Tune(c *rest.Config, b *Budget) *rest.Config {
	c = rest.CopyConfig(c)
	c.QPS, c.Burst = DefaultQPS, DefaultBurst
	c.UserAgent = UserAgent
	if b != nil {
		c.Wrap(b.Wrap)
	}
	return c
}

// FromFlags builds Clients from kubectl-style flags. A kubeconfig that is
// missing, malformed or names an unknown context yields ErrBadKubeconfig.
func FromFlags(cf *genericclioptions.ConfigFlags, b *Budget) (*Clients, error) {
	if p := deref(cf.KubeConfig); p != "" {
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
	ns, _, err := cf.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		ns = ""
	}
	if deref(cf.Namespace) == "" {
		ns = "" // callers decide their own default when -n is absent
	}
	return New(cfg, ns, b)
}

// New builds Clients from a rest.Config (tests and the sim use this).
func New(cfg *rest.Config, namespace string, b *Budget) (*Clients, error) {
	if b == nil {
		b = NewBudget(0)
	}
	c := Tune(cfg, b)
	kc, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKubeconfig, err)
	}
	dc, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKubeconfig, err)
	}
	mc, err := metadata.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKubeconfig, err)
	}
	return &Clients{Config: c, Kube: kc, Dynamic: dc, Metadata: mc, Namespace: namespace, Budget: b}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// IsBadKubeconfig reports whether err is a kubeconfig problem.
func IsBadKubeconfig(err error) bool { return errors.Is(err, ErrBadKubeconfig) }
