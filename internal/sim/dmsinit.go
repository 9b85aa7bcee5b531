package sim

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
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
)

// apiCaller makes the API requests dmsinit.sh makes through kubectl, as the
// pod's ServiceAccount. Outputs are what kubectl would print.
type apiCaller interface {
	// version is `kubectl version` (stdout and stderr combined).
	version(ctx context.Context) (out string, ok bool)
	// get is `kubectl -n ns get <resource> <name> -o jsonpath=<jp>`.
	get(ctx context.Context, resource, namespace, name, jsonpath string) (stdout, stderr string, ok bool)
	// apply is `kubectl apply -f -` fed with manifest (combined output).
	apply(ctx context.Context, manifest string) (out string, ok bool)
	// patchStatus is `kubectl patch <resource> <name> -n ns --subresource status --type=merge -p <patch>`.
	patchStatus(ctx context.Context, resource, namespace, name, patch string) (out string, ok bool)
}

// dmsInit replays dmsinit.sh for one node: the same calls in the same order
// with the same log lines and exit code (internal/dpf holds them; see
// docs/versions.md). log() lines go to stdout, error() prints
// "[dmsinit] Error (<func>:<line>): <msg>" to stderr and exits 1; kubectl's
// own stderr shows where the script does not capture or hide it. The
// variant decides B (v25.4.0) or C–F (v25.7 era).
type dmsInit struct {
	variant  dpf.ScriptVariant
	args     dpf.Args
	node     string
	pci      string // 0000:3b:00.0, the first PF in sysfs
	serial   string
	noDPU    bool
	occupied bool // rshim-preflight: the host's rshim holds the DPU
	// hypothetical makes the B certificate path retry a Forbidden Secret
	// read and time out, as the widely shared story claims; the real B
	// script ignores the failed reads and goes on.
	hypothetical bool
	// emptyCerts is set when B's unchecked Secret reads failed: the
	// certificate files it wrote are empty.
	emptyCerts bool
	api        apiCaller
	attempts   int                                  // secret wait attempts (the script uses 30)
	sleep      func(context.Context, time.Duration) // scaled sleep
	out        []string
}

// Error sites: the line error() reports for each call site. create_dpu_device
// :312 for the status patch is the line observed with script C (docs/versions.md); the others follow the order of the sites in the file and shift by a
// few lines between builds.
var errLines = map[string]int{
	"main": 612, "check_and_install_kubectl": 168, "create_certificate": 241,
	"create_dpu_device": 290, "create_dpu_device/status": 312, "create_dpunode": 402, "create_dpunode/uid": 345,
}

func (d *dmsInit) log(format string, a ...any) {
	d.out = append(d.out, dpf.LogPrefix+fmt.Sprintf(format, a...))
}

// raw appends kubectl's own output (stderr the script does not hide).
func (d *dmsInit) raw(text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if l != "" {
			d.out = append(d.out, l)
		}
	}
}

// fail is error(): print the error line and exit 1.
func (d *dmsInit) fail(site, msg string) ([]string, int) {
	fn, _, _ := strings.Cut(site, "/")
	d.out = append(d.out, dpf.FormatError(fn, errLines[site], msg))
	return d.out, 1
}

func (d *dmsInit) statusPatching() bool { return d.variant != dpf.ScriptB }

// pciLabel is format_pci_address: 0000:3b:00.0 → 0000-3b-00.
func (d *dmsInit) pciLabel() string {
	return strings.ReplaceAll(strings.TrimSuffix(d.pci, d.pci[strings.LastIndex(d.pci, "."):]), ":", "-")
}

// firstPCI is get_the_first_pci_address: the label with colons, 0000:3b:00.
func (d *dmsInit) firstPCI() string { return strings.ReplaceAll(d.pciLabel(), "-", ":") }

// confDir is --dms-conf-dir, by default /opt/dpf/dms.
func (d *dmsInit) confDir() string { return cmp.Or(d.args.ConfDir, "/opt/dpf/dms") }

// imageDir is --dms-image-dir, by default <conf dir>/bfb.
func (d *dmsInit) imageDir() string { return cmp.Or(d.args.ImageDir, d.confDir()+"/bfb") }

// discover is parse_arguments' last line, main's first and discover_dpu: a
// BlueField-3 with two PFs, or none.
func (d *dmsInit) discover() bool {
	d.log("DMS image directory: %s", d.imageDir())
	d.log("Running cmd %s", d.args.Cmd)
	if d.noDPU {
		d.log("Total DPUs discovered: 0")
		d.log("No DPUs found on this system")
		return false
	}
	pci := d.pciLabel()
	d.log("Discovered DPU:")
	d.log("  PCI Address: %s", pci)
	d.log("  Device ID: 0xa2dc")
	d.log("  PF0 Name: ens1f0np0")
	d.log("update number of PFs for %s: 2", pci)
	d.log("Total DPUs discovered: 1")
	d.log("Writing PCI addresses to %s/pci_addr", d.confDir())
	d.log("Wrote 1 PCI addresses to %s/pci_addr", d.confDir())
	return true
}

// exists is check_resource_exists: any error (NotFound, Forbidden,
// unreachable) counts as absent and is never printed.
func (d *dmsInit) exists(ctx context.Context, kind, ns, name string) bool {
	if _, _, ok := d.api.get(ctx, kind, ns, name, "{.metadata.name}"); !ok {
		return false
	}
	d.log("Resource %s of type %s already exists, skipping creation", name, kind)
	return true
}

// run executes the script and returns its output lines and exit code.
func (d *dmsInit) run(ctx context.Context) ([]string, int) {
	found := d.discover()
	if d.args.Cmd == "check-rshim-not-occupied" {
		if !found {
			return d.fail("main", "No DPUs found on this system, exiting")
		}
		d.log("Using /dev/termination-log for output")
		d.log("Get PCI address: %s", d.firstPCI())
		if d.occupied {
			return d.out, 1 // the PCI address goes to /dev/termination-log
		}
		d.log(dpf.MsgCompleted)
		return d.out, 0
	}
	if !found {
		return d.fail("main", "No DPUs found on this system, exiting")
	}
	ns := d.args.Namespace
	d.log("kubectl already installed")
	if out, ok := d.api.version(ctx); !ok {
		msg := dpf.MsgVersionFailed + strings.TrimRight(out, "\n")
		if d.variant == dpf.ScriptE || d.variant == dpf.ScriptF {
			msg += dpf.VIPHint
		}
		return d.fail("check_and_install_kubectl", msg)
	}

	if d.args.CertPath() {
		if msg := d.createCertificate(ctx, ns); msg != "" {
			return d.fail("create_certificate", msg)
		}
	}

	// create_dpu_device
	pci := d.pciLabel()
	name := d.node + "-" + pci
	spec := fmt.Sprintf("  pciAddress: %s\n  pf0Name: ens1f0np0\n  numberOfPFs: 2\n", pci)
	if d.statusPatching() {
		name = strings.ToLower(d.serial)
		spec = fmt.Sprintf("  serialNumber: %s\n  pf0Name: ens1f0np0\n  numberOfPFs: 2\n", d.serial)
	}
	if !d.exists(ctx, "DPUDevice", ns, name) {
		d.log("Creating DPUDevice for PCI address %s", pci)
		manifest := fmt.Sprintf("apiVersion: provisioning.dpu.nvidia.com/v1alpha1\nkind: DPUDevice\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, ns, spec)
		if out, ok := d.api.apply(ctx, manifest); !ok {
			return d.fail("create_dpu_device", dpf.MsgCreateDPUDeviceFailed+name+": "+strings.TrimRight(out, "\n"))
		}
		d.log("DPUDevice %s applied successfully", name)
	}
	if d.statusPatching() {
		patch := fmt.Sprintf(`{"status":{"pciAddress":%q}}`, pci)
		if out, ok := d.api.patchStatus(ctx, "dpudevice", ns, name, patch); !ok {
			return d.fail("create_dpu_device/status", dpf.MsgUpdatePCIFailed+name+": "+strings.TrimRight(out, "\n"))
		}
		d.log("Updated PCI address for DPUDevice %s: %s", name, pci)
	}
	d.log("Added %s to dpudevice_names array", name)
	d.log("DPU devices created successfully")

	// create_dpunode
	if !d.exists(ctx, "DPUNode", ns, d.node) {
		d.log("Creating DPUNode")
		uid, stderr, _ := d.api.get(ctx, "node", "", d.args.KubeNodeRef, "{.metadata.uid}")
		d.raw(stderr)
		if strings.TrimSpace(uid) == "" {
			return d.fail("create_dpunode/uid", dpf.MsgNodeUIDFailed+d.args.KubeNodeRef)
		}
		manifest := fmt.Sprintf(`apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUNode
metadata:
  name: %s
  namespace: %s
  ownerReferences:
  - apiVersion: v1
    kind: Node
    name: %s
    uid: %s
    controller: true
spec:
  nodeRebootMethod:
    gNOI: {}
  nodeDMSAddress:
    ip: %s
    port: %s
  dpus:
    - name: %s
`, d.node, ns, d.args.KubeNodeRef, strings.TrimSpace(uid), d.args.DMSIP, d.args.DMSPort, name)
		if out, ok := d.api.apply(ctx, manifest); !ok {
			return d.fail("create_dpunode", dpf.MsgCreateDPUNodeFailed+d.node+": "+strings.TrimRight(out, "\n"))
		}
		d.log("DPUNode %s applied successfully", d.node)
	}
	conf := d.confDir()
	d.log("DMS configuration created at %s/dms.conf", conf)
	d.log("DMS configuration: -bind_address %s:%s -v 99 -auth cert -ca %[3]s/certs/ca.crt -tls_key_file %[3]s/certs/tls.key -tls_cert_file %[3]s/certs/tls.crt -password admin -username admin -image_folder %s -target_pci %s -exec_timeout 900 -disable_unbind_at_activate -reboot_status_check none -debug_command=true",
		d.args.DMSIP, d.args.DMSPort, conf, d.imageDir(), d.firstPCI())
	d.log("DMS systemd service file created at %s/dmsd.service", conf)
	if d.statusPatching() {
		d.log("Skipping Systemd service creation in Kubernetes environment")
	} else {
		d.log("Skipping restore-vf service creation in Kubernetes environment")
	}
	d.log("Get PCI address: %s", d.firstPCI())
	d.log(dpf.MsgCompleted)
	return d.out, 0
}

// createCertificate is the --external-certificate none path. It returns the
// message error() exits with, or "" when the script goes on.
func (d *dmsInit) createCertificate(ctx context.Context, ns string) string {
	cert, secret := dpf.CertificateName(d.node), dpf.SecretName(d.node)
	if !d.exists(ctx, "Certificate", ns, cert) {
		d.log("Creating certificate")
		manifest := fmt.Sprintf("apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  secretName: %s\n  commonName: %s\n  duration: 8760h\n  issuerRef:\n    name: %s\n    kind: Issuer\n  ipAddresses:\n  - %q\n", cert, ns, secret, cert, dpf.Issuer, d.args.DMSIP)
		if out, ok := d.api.apply(ctx, manifest); !ok {
			return dpf.MsgCreateCertFailed + cert + ": " + strings.TrimRight(out, "\n")
		}
		d.log("Certificate %s created successfully", cert)
	} else {
		d.log("Certificate %s already exists, skipping creation", cert)
	}
	if d.variant == dpf.ScriptB {
		// B polls the Certificate's spec.secretName (stderr visible), which
		// the Certificate sets at once, then reads the three keys once,
		// stderr visible and unchecked: a Forbidden read leaves an empty
		// file and the script goes on.
		name := ""
		for i := 1; i <= d.attempts && name == ""; i++ {
			var stderr string
			name, stderr, _ = d.api.get(ctx, "cert", ns, cert, "{.spec.secretName}")
			d.raw(stderr)
			if name == "" {
				d.log("%s (attempt %d/%d)", dpf.MsgWaitingSecretB, i, d.attempts)
				d.sleep(ctx, 2*time.Second)
			}
		}
		if name == "" {
			return dpf.MsgSecretTimeoutB
		}
		d.log("Certificate secret name: %s", name)
		if !d.hypothetical {
			d.emptyCerts = !d.readSecret(ctx, ns, name, false)
			return ""
		}
		// The widely shared story: the reads are retried and time out.
		for i := 1; i <= d.attempts; i++ {
			if d.readSecret(ctx, ns, name, false) {
				return ""
			}
			d.log("%s (attempt %d/%d)", dpf.MsgWaitingSecretB, i, d.attempts)
			d.sleep(ctx, 2*time.Second)
		}
		return dpf.MsgSecretTimeoutB
	}
	// C and later: poll the three keys with stderr hidden.
	for i := 1; i <= d.attempts; i++ {
		if d.readSecret(ctx, ns, secret, true) {
			d.log("Certificate secret name: %s", secret)
			return ""
		}
		d.log("%s%s to be fully populated... (attempt %d/%d)", dpf.MsgWaitingSecretC, secret, i, d.attempts)
		d.sleep(ctx, 2*time.Second)
	}
	return fmt.Sprintf("%s%s to be fully populated. ca.crt: 0 chars, tls.crt: 0 chars, tls.key: 0 chars", dpf.MsgSecretTimeoutC, secret)
}

// readSecret reads ca.crt, tls.crt and tls.key; the values are only checked
// for being non-empty and are never logged.
func (d *dmsInit) readSecret(ctx context.Context, ns, name string, quiet bool) bool {
	all := true
	for _, key := range dpf.SecretKeys {
		v, stderr, ok := d.api.get(ctx, "secret", ns, name, `{.data.`+strings.ReplaceAll(key, ".", `\.`)+`}`)
		if !quiet {
			d.raw(stderr)
		}
		if !ok || strings.TrimSpace(v) == "" {
			all = false
		}
	}
	return all
}

// hostAgent replays the v25.10 host agent's start-up (`/hostagent serve`):
// reach the API server, find the DPU, register DPUDevice and DPUNode as the
// host agent's ServiceAccount. Lines are klog-formatted as a Go program's.
func hostAgent(ctx context.Context, api apiCaller, ns, node string, noDPU bool) ([]string, int) {
	var out []string
	logf := func(sev byte, file string, format string, a ...any) {
		out = append(out, fmt.Sprintf("%c%s %d hostagent.go:%s] %s", sev, time.Now().UTC().Format("0102 15:04:05.000000"), 1, file, fmt.Sprintf(format, a...)))
	}
	fail := func(file string, format string, a ...any) ([]string, int) {
		logf('E', file, format, a...)
		return out, 1
	}
	logf('I', "88", "starting host agent on node %s", node)
	if v, ok := api.version(ctx); !ok {
		return fail("97", "unable to reach the Kubernetes API server: %s", strings.TrimSpace(lastLine(v)))
	}
	if _, stderr, ok := api.get(ctx, "dpfoperatorconfig", ns, "", ""); !ok {
		return fail("112", "failed to list DPFOperatorConfigs: %s", oneLine(stderr))
	}
	if noDPU {
		return fail("131", "no DPU found on this host (looked for PCI device IDs 0xa2dc, 0xa2d6)")
	}
	serial := strings.ToLower(serialNumber(node))
	if _, _, ok := api.get(ctx, "dpudevice", ns, serial, "{.metadata.name}"); !ok {
		manifest := fmt.Sprintf("apiVersion: provisioning.dpu.nvidia.com/v1alpha1\nkind: DPUDevice\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  serialNumber: %s\n", serial, ns, serialNumber(node))
		if msg, ok := api.apply(ctx, manifest); !ok {
			return fail("164", "failed to create DPUDevice %s: %s", serial, oneLine(msg))
		}
	}
	if msg, ok := api.patchStatus(ctx, "dpudevice", ns, serial, fmt.Sprintf(`{"status":{"pciAddress":%q}}`, PCIAddress)); !ok {
		return fail("171", "failed to update DPUDevice %s status: %s", serial, oneLine(msg))
	}
	uid, stderr, _ := api.get(ctx, "node", "", node, "{.metadata.uid}")
	if uid == "" {
		return fail("180", "failed to get node %s: %s", node, oneLine(stderr))
	}
	if _, _, ok := api.get(ctx, "dpunode", ns, node, "{.metadata.name}"); !ok {
		manifest := fmt.Sprintf("apiVersion: provisioning.dpu.nvidia.com/v1alpha1\nkind: DPUNode\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  nodeRebootMethod:\n    hostAgent: {}\n  dpus:\n  - name: %s\n", node, ns, serial)
		if msg, ok := api.apply(ctx, manifest); !ok {
			return fail("193", "failed to create DPUNode %s: %s", node, oneLine(msg))
		}
	}
	if msg, ok := api.patchStatus(ctx, "dpunode", ns, node, `{"status":{"dpuInstallInterface":"hostAgent"}}`); !ok {
		return fail("201", "failed to update DPUNode %s status: %s", node, oneLine(msg))
	}
	logf('I', "210", "host agent ready: DPUDevice %s, DPUNode %s", serial, node)
	return out, 0
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

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
	// goClient: as a Go program uses client-go, a patch is sent without
	// kubectl's read of the object first, and prints nothing.
	goClient bool
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
	if name == "" { // a list, as a Go client's informer starts
		if _, err := c.dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{}); err != nil {
			return "", kubectlError(c.server, err) + "\n", false
		}
		return "", "", true
	}
	if !namespaced {
		ns = ""
	}
	obj, err := c.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
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
	if !c.goClient {
		if _, err := c.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{}, "status"); err != nil {
			return kubectlError(c.server, err) + "\n", false
		}
	}
	if _, err := c.dyn.Resource(gvr).Namespace(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
		return kubectlError(c.server, err) + "\n", false
	}
	if c.goClient {
		return "", true
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
