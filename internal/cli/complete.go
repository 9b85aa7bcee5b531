package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// Flag values complete in bash, zsh and fish through cobra's `completion`
// command; kubectl's pkg/cmd/util/completion.go is the model: contexts from
// the kubeconfig, namespaces and nodes from the cluster, asked with a short
// timeout so that a slow cluster never hangs the shell.

// completionTimeout bounds each completion's cluster request.
const completionTimeout = 3 * time.Second

// oneOf completes a flag with fixed values.
func oneOf(values ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
}

// registerGlobalCompletions completes --context from the kubeconfig and
// -n from the cluster.
func registerGlobalCompletions(root *cobra.Command, kf *genericclioptions.ConfigFlags) {
	_ = root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		cfg, err := kf.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for n := range cfg.Contexts {
			names = append(names, n)
		}
		slices.Sort(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	_ = root.RegisterFlagCompletionFunc("namespace", fromCluster(kf, func(ctx context.Context, c *kube.Clients) ([]string, error) {
		l, err := c.Metadata.Resource(dpf.MustGVR("", "Namespace")).List(ctx, metav1.ListOptions{})
		return names(l, err)
	}))
}

// completeNodes completes --node with the Nodes that carry a DPU.
func completeNodes(kf *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return fromCluster(kf, func(ctx context.Context, c *kube.Clients) ([]string, error) {
		l, err := c.Metadata.Resource(dpf.MustGVR("", "Node")).List(ctx, metav1.ListOptions{LabelSelector: dpf.DPUNodeLabel})
		return names(l, err)
	})
}

// fromCluster completes with what list returns, from the cluster of the
// kubeconfig flags already typed; nothing when it does not answer in time.
func fromCluster(kf *genericclioptions.ConfigFlags, list func(context.Context, *kube.Clients) ([]string, error)) cobra.CompletionFunc {
	return func(c *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		clients, err := kube.FromFlags(kf, nil)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(c.Context(), completionTimeout) // cobra sets the context of __complete
		defer cancel()
		all, err := list(ctx, clients)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return slices.DeleteFunc(all, func(n string) bool { return !strings.HasPrefix(n, toComplete) }), cobra.ShellCompDirectiveNoFileComp
	}
}

func names(l *metav1.PartialObjectMetadataList, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(l.Items))
	for _, i := range l.Items {
		out = append(out, i.Name)
	}
	return out, nil
}
