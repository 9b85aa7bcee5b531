package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// kubectlCaller runs the real kubectl binary as the ServiceAccount: the
// Forbidden and connection messages are kubectl's own.
type kubectlCaller struct {
	path       string
	server     string // https://host:port, from the pod's KUBERNETES_SERVICE_* env
	token      string
	caFile     string
	kubeconfig string // an empty file, so no stray ~/.kube/config mixes in
	cacheDir   string
}

func (k *kubectlCaller) run(ctx context.Context, stdin string, args ...string) (stdout, stderr string, ok bool) {
	base := []string{"--server", k.server, "--token", k.token, "--certificate-authority", k.caFile, "--cache-dir", k.cacheDir, "--request-timeout", "10s"}
	cmd := exec.CommandContext(ctx, k.path, append(base, args...)...)
	cmd.Env = []string{"KUBECONFIG=" + k.kubeconfig, "HOME=" + k.cacheDir, "PATH=/usr/bin:/bin"}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	return o.String(), e.String(), err == nil
}

// combined is kubectl's stdout and stderr together.
func combined(stdout, stderr string, ok bool) (string, bool) { return stdout + stderr, ok }

func (k *kubectlCaller) version(ctx context.Context) (string, bool) {
	return combined(k.run(ctx, "", "version"))
}

func (k *kubectlCaller) get(ctx context.Context, resource, ns, name, jp string) (string, string, bool) {
	args := []string{"get", resource, name, "-o", "jsonpath=" + jp}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return k.run(ctx, "", args...)
}

func (k *kubectlCaller) apply(ctx context.Context, manifest string) (string, bool) {
	return combined(k.run(ctx, manifest, "apply", "-f", "-"))
}

func (k *kubectlCaller) patchStatus(ctx context.Context, resource, ns, name, patch string) (string, bool) {
	return combined(k.run(ctx, "", "patch", resource, name, "-n", ns, "--subresource", "status", "--type=merge", "-p", patch))
}

// clientCaller makes the same requests with client-go and the same token,
// printing what kubectl would. It lets thousands of pods fit on two cores.
type clientCaller struct {
	server string
	dyn    dynamic.Interface
	disc   discovery.DiscoveryInterface
}

func newClientCaller(server, token string, caData []byte) (*clientCaller, error) {
	cfg := &rest.Config{Host: server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: caData},
		QPS: -1, UserAgent: "kubectl/v1.31.4 (dpfdoctor-sim)"}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &clientCaller{server: server, dyn: dyn, disc: disc}, nil
}

func (c *clientCaller) resource(word string) (schema.GroupVersionResource, bool, error) {
	k, ok := dpf.LookupKind(dpf.Kinds(), word)
	if !ok {
		return schema.GroupVersionResource{}, false, fmt.Errorf(`error: the server doesn't have a resource type %q`, word)
	}
	return k.GVR(), k.Namespaced, nil
}

func (c *clientCaller) version(ctx context.Context) (string, bool) {
	v, err := c.disc.ServerVersion()
	out := "Client Version: v1.31.4\nKustomize Version: v5.4.2\n"
	if err != nil {
		return out + kubectlError(c.server, err) + "\n", false
	}
	return out + "Server Version: " + v.GitVersion + "\n", true
}

func (c *clientCaller) get(ctx context.Context, resource, ns, name, jp string) (string, string, bool) {
	gvr, namespaced, err := c.resource(resource)
	if err != nil {
		return "", err.Error() + "\n", false
	}
	var obj *unstructured.Unstructured
	if namespaced {
		obj, err = c.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	} else {
		obj, err = c.dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return "", kubectlError(c.server, err) + "\n", false
	}
	p := jsonpath.New("out")
	if err := p.Parse(jp); err != nil {
		return "", "error: error parsing jsonpath " + jp + ", " + err.Error() + "\n", false
	}
	var b bytes.Buffer
	if err := p.Execute(&b, obj.Object); err != nil {
		return "", "", true // kubectl prints nothing for a missing field
	}
	return b.String(), "", true
}

func (c *clientCaller) apply(ctx context.Context, manifest string) (string, bool) {
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		return "error: error parsing STDIN: " + err.Error() + "\n", false
	}
	gvr, _, err := c.resource(obj.GetKind())
	if err != nil {
		return err.Error() + "\n", false
	}
	ri := c.dyn.Resource(gvr).Namespace(obj.GetNamespace())
	kindLower := strings.ToLower(obj.GetKind()) + "." + gvr.Group
	if _, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{}); err == nil {
		return kindLower + "/" + obj.GetName() + " unchanged\n", true
	} else if !apierrors.IsNotFound(err) {
		return fmt.Sprintf("Error from server (%s): error when retrieving current configuration of:\nResource: %q, GroupVersionKind: %q\nName: %q, Namespace: %q\nfrom server for: \"STDIN\": %s\n",
			reason(err), gvr.String(), obj.GroupVersionKind().String(), obj.GetName(), obj.GetNamespace(), statusMessage(err)), false
	}
	if _, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		return fmt.Sprintf("Error from server (%s): error when creating \"STDIN\": %s\n", reason(err), statusMessage(err)), false
	}
	return kindLower + "/" + obj.GetName() + " created\n", true
}

func (c *clientCaller) patchStatus(ctx context.Context, resource, ns, name, patch string) (string, bool) {
	gvr, _, err := c.resource(resource)
	if err != nil {
		return err.Error() + "\n", false
	}
	// kubectl patch reads the object (here its status) before patching.
	if _, err := c.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{}, "status"); err != nil {
		return kubectlError(c.server, err) + "\n", false
	}
	if _, err := c.dyn.Resource(gvr).Namespace(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
		return kubectlError(c.server, err) + "\n", false
	}
	return resource + "." + gvr.Group + "/" + name + " patched\n", true
}

// kubectlError formats an error the way kubectl prints it.
func kubectlError(server string, err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return fmt.Sprintf("Error from server (%s): %s", reason(err), statusMessage(err))
	}
	host := server
	if u, perr := url.Parse(server); perr == nil {
		host = u.Host
	}
	var oe *net.OpError
	if errors.As(err, &oe) && strings.Contains(err.Error(), "connection refused") {
		return fmt.Sprintf("The connection to the server %s was refused - did you specify the right host or port?", host)
	}
	return fmt.Sprintf("Unable to connect to the server: %v", err)
}

func reason(err error) string {
	r := apierrors.ReasonForError(err)
	if r == metav1.StatusReasonUnknown || r == "" {
		return "InternalError"
	}
	return string(r)
}

func statusMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return se.Status().Message
	}
	return err.Error()
}
