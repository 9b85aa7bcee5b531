package sim

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
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

// dmsInit replays dmsinit.sh --cmd register for one node: the same calls in
// the same order with the same log lines (internal/dpf holds them; see
// docs/versions.md). The variant decides the B (v25.4.0) or C+ (v25.7)
// behaviour.
type dmsInit struct {
	variant  dpf.ScriptVariant
	args     dpf.Args
	node     string
	pci      string
	serial   string
	noDPU    bool
	api      apiCaller
	attempts int                                  // secret wait attempts (the script uses 30)
	sleep    func(context.Context, time.Duration) // scaled sleep
	out      []string
}

// Line numbers in error() output. They follow the shape of the real script
// (error sites in order of the file); exact numbers vary between builds.
var errLines = map[string]int{
	"main": 612, "check_and_install_kubectl": 168, "create_certificate": 241,
	"create_dpu_device": 318, "create_dpunode": 402,
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
func (d *dmsInit) fail(fn, msg string) ([]string, int) {
	d.out = append(d.out, dpf.FormatError(fn, errLines[fn], msg))
	return d.out, 1
}

func (d *dmsInit) statusPatching() bool { return d.variant != dpf.ScriptB }

// run executes the script and returns its log lines and exit code.
func (d *dmsInit) run(ctx context.Context) ([]string, int) {
	ns := d.args.Namespace
	d.log("Running cmd %s", d.args.Cmd)
	d.log("DMS image directory: /bfb")
	if d.noDPU {
		d.log("No DPUs found on this system")
		return d.fail("main", "No DPUs found on this system, exiting")
	}
	d.log("Discovered DPU: %s (BlueField-3, device id 0xa2dc)", d.pci)
	d.log("Total DPUs discovered: 1")
	d.log("kubectl already installed")
	if out, ok := d.api.version(ctx); !ok {
		msg := dpf.MsgVersionFailed + strings.TrimRight(out, "\n")
		if d.variant == dpf.ScriptE || d.variant == dpf.ScriptF {
			msg += dpf.VIPHint
		}
		return d.fail("check_and_install_kubectl", msg)
	}

	if d.args.CertPath() {
		if lines, code, done := d.createCertificate(ctx, ns); done {
			return lines, code
		}
	}

	// create_dpu_device
	d.log("Creating DPUDevice for PCI address %s", d.pci)
	name := d.node + "-" + strings.NewReplacer(":", "-", ".", "-").Replace(d.pci)
	spec := fmt.Sprintf("  pciAddress: %q\n  psid: MT_0000000884\n  opn: 900-9D3B6-00CV-AA0\n  numberOfPFs: 2\n  pf0Name: ens1f0np0\n", d.pci)
	if d.statusPatching() {
		name = strings.ToLower(d.serial)
		spec = fmt.Sprintf("  serialNumber: %s\n  psid: MT_0000000884\n  opn: 900-9D3B6-00CV-AA0\n  numberOfPFs: 2\n  pf0Name: ens1f0np0\n", d.serial)
	}
	if _, _, exists := d.api.get(ctx, "dpudevice", ns, name, "{.metadata.name}"); exists {
		d.log("Resource %s of type DPUDevice already exists, skipping creation", name)
	} else {
		manifest := fmt.Sprintf("apiVersion: provisioning.dpu.nvidia.com/v1alpha1\nkind: DPUDevice\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, ns, spec)
		if out, ok := d.api.apply(ctx, manifest); !ok {
			return d.fail("create_dpu_device", dpf.MsgCreateDPUDeviceFailed+name+": "+strings.TrimRight(out, "\n"))
		}
		d.log("DPUDevice %s applied successfully", name)
	}
	if d.statusPatching() {
		patch := fmt.Sprintf(`{"status":{"pciAddress":%q}}`, d.pci)
		if out, ok := d.api.patchStatus(ctx, "dpudevice", ns, name, patch); !ok {
			return d.fail("create_dpu_device", dpf.MsgUpdatePCIFailed+name+": "+strings.TrimRight(out, "\n"))
		}
		d.log("Updated PCI address for DPUDevice %s: %s", name, d.pci)
	}
	d.log("Added %s to dpudevice_names array", name)
	d.log("DPU devices created successfully")

	// create_dpunode
	d.log("Creating DPUNode")
	if _, _, exists := d.api.get(ctx, "dpunode", ns, d.node, "{.metadata.name}"); exists {
		d.log("Resource %s of type DPUNode already exists, skipping creation", d.node)
	} else {
		uid, stderr, _ := d.api.get(ctx, "node", "", d.args.KubeNodeRef, "{.metadata.uid}")
		d.raw(stderr)
		if strings.TrimSpace(uid) == "" {
			return d.fail("create_dpunode", dpf.MsgNodeUIDFailed+d.args.KubeNodeRef)
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
	d.log("DMS configuration created at /opt/dpf/dms/dms.conf")
	if d.statusPatching() {
		d.log("Skipping Systemd service creation in Kubernetes environment")
	} else {
		d.log("Skipping restore-vf service creation in Kubernetes environment")
	}
	d.log(dpf.MsgCompleted)
	return d.out, 0
}

// createCertificate is the --external-certificate none path. done is true
// when the script exits inside it.
func (d *dmsInit) createCertificate(ctx context.Context, ns string) (lines []string, code int, done bool) {
	cert, secret := dpf.CertificateName(d.node), dpf.SecretName(d.node)
	d.log("Creating certificate")
	if _, _, exists := d.api.get(ctx, "certificate", ns, cert, "{.metadata.name}"); exists {
		d.log("Certificate %s already exists, skipping creation", cert)
	} else {
		manifest := fmt.Sprintf("apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  secretName: %s\n  ipAddresses:\n  - %s\n  issuerRef:\n    name: %s\n    kind: Issuer\n", cert, ns, secret, d.args.DMSIP, dpf.Issuer)
		if out, ok := d.api.apply(ctx, manifest); !ok {
			lines, code = d.fail("create_certificate", dpf.MsgCreateCertFailed+cert+": "+strings.TrimRight(out, "\n"))
			return lines, code, true
		}
		d.log("Certificate %s created successfully", cert)
	}
	if d.variant == dpf.ScriptB {
		// B: poll spec.secretName (stderr visible), then read the three keys
		// with stderr visible. The reported v25.4.0 build retries the reads
		// and gives up with the B timeout message.
		name, stderr, _ := d.api.get(ctx, "cert", ns, cert, "{.spec.secretName}")
		d.raw(stderr)
		if name == "" {
			name = secret
		}
		for i := 1; i <= d.attempts; i++ {
			if d.readSecret(ctx, ns, name, false) {
				d.log("Certificate secret name: %s", name)
				return nil, 0, false
			}
			d.log("%s (attempt %d/%d)", dpf.MsgWaitingSecretB, i, d.attempts)
			d.sleep(ctx, 2*time.Second)
		}
		lines, code = d.fail("create_certificate", dpf.MsgSecretTimeoutB)
		return lines, code, true
	}
	// C and later: poll the three keys with stderr hidden.
	for i := 1; i <= d.attempts; i++ {
		if d.readSecret(ctx, ns, secret, true) {
			d.log("Certificate secret name: %s", secret)
			return nil, 0, false
		}
		d.log("%s%s to be fully populated... (attempt %d/%d)", dpf.MsgWaitingSecretC, secret, i, d.attempts)
		d.sleep(ctx, 2*time.Second)
	}
	lines, code = d.fail("create_certificate", fmt.Sprintf("%s%s to be fully populated. ca.crt: 0 chars, tls.crt: 0 chars, tls.key: 0 chars", dpf.MsgSecretTimeoutC, secret))
	return lines, code, true
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
