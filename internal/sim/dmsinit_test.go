package sim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// fakeAPI answers dms-init's kubectl calls as the v25.4.0 role would: the
// listed resources are Forbidden, everything else exists or is created.
type fakeAPI struct {
	unreachable bool
	forbidden   map[string]bool // resource → Forbidden ("secret", "dpudevice/status")
	existing    map[string]bool // kind/name that already exist
}

const saUser = "system:serviceaccount:dpf-operator-system:dpf-provisioning-dms-service-account"

func (f *fakeAPI) version(context.Context) (string, bool) {
	if f.unreachable {
		return "Client Version: v1.31.4\nKustomize Version: v5.4.2\nThe connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?\n", false
	}
	return "Client Version: v1.31.4\nServer Version: v1.31.4\n", true
}

func (f *fakeAPI) get(_ context.Context, resource, ns, name, jp string) (string, string, bool) {
	if f.forbidden[resource] {
		return "", fmt.Sprintf("Error from server (Forbidden): secrets %q is forbidden: User %q cannot get resource \"secrets\" in API group \"\" in the namespace %q\n", name, saUser, ns), false
	}
	switch {
	case resource == "cert" && jp == "{.spec.secretName}":
		return dpf.SecretName("n1"), "", true
	case resource == "node":
		return "uid-1", "", true
	case resource == "secret":
		return "c2VjcmV0", "", true
	}
	return name, "", f.existing[resource+"/"+name]
}

func (f *fakeAPI) apply(_ context.Context, manifest string) (string, bool) {
	return "created\n", true
}

func (f *fakeAPI) patchStatus(_ context.Context, resource, ns, name, _ string) (string, bool) {
	if f.forbidden[resource+"/status"] {
		return fmt.Sprintf("Error from server (Forbidden): dpudevices.provisioning.dpu.nvidia.com %q is forbidden: User %q cannot get resource \"dpudevices/status\" in API group \"provisioning.dpu.nvidia.com\" in the namespace %q\n", name, saUser, ns), false
	}
	return "patched\n", true
}

// Each scenario's dms-init output, line by line, and exit code, per script
// version, pinned to what the DPF scripts print (docs/versions.md).
func TestDMSInitOutput(t *testing.T) {
	serial := strings.ToLower(serialNumber("n1"))
	discovery := []string{
		"[dmsinit] DMS image directory: /bfb",
		"[dmsinit] Running cmd register",
		"[dmsinit] Discovered DPU:",
		"[dmsinit]   PCI Address: 0000-3b-00",
		"[dmsinit]   Device ID: 0xa2dc",
		"[dmsinit]   PF0 Name: ens1f0np0",
		"[dmsinit] update number of PFs for 0000-3b-00: 2",
		"[dmsinit] Total DPUs discovered: 1",
		"[dmsinit] Writing PCI addresses to /opt/dpf/dms/pci_addr",
		"[dmsinit] Wrote 1 PCI addresses to /opt/dpf/dms/pci_addr",
		"[dmsinit] kubectl already installed",
	}
	tail := func(skip string) []string {
		return []string{
			"[dmsinit] DPU devices created successfully",
			"[dmsinit] Creating DPUNode",
			"[dmsinit] DPUNode n1 applied successfully",
			"[dmsinit] DMS configuration created at /opt/dpf/dms/dms.conf",
			"[dmsinit] DMS configuration: -bind_address 127.0.0.2:9339 -v 99 -auth cert -ca /opt/dpf/dms/certs/ca.crt -tls_key_file /opt/dpf/dms/certs/tls.key -tls_cert_file /opt/dpf/dms/certs/tls.crt -password admin -username admin -image_folder /bfb -target_pci 0000:3b:00 -exec_timeout 900 -disable_unbind_at_activate -reboot_status_check none -debug_command=true",
			"[dmsinit] DMS systemd service file created at /opt/dpf/dms/dmsd.service",
			"[dmsinit] " + skip,
			"[dmsinit] Get PCI address: 0000:3b:00",
			"[dmsinit] Main function completed successfully",
		}
	}
	join := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	refused := "Client Version: v1.31.4\nKustomize Version: v5.4.2\nThe connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"
	secretForbidden := `Error from server (Forbidden): secrets "n1-server-secret" is forbidden: User "` + saUser + `" cannot get resource "secrets" in API group "" in the namespace "dpf-operator-system"`
	for _, tc := range []struct {
		name     string
		variant  dpf.ScriptVariant
		extCert  string
		api      fakeAPI
		noDPU    bool
		hypo     bool
		want     []string
		wantExit int
		empty    bool // the certificate files written are empty
	}{
		{name: "healthy, B (v25.4.0)", variant: dpf.ScriptB, want: join(discovery, []string{
			"[dmsinit] Creating DPUDevice for PCI address 0000-3b-00",
			"[dmsinit] DPUDevice n1-0000-3b-00 applied successfully",
			"[dmsinit] Added n1-0000-3b-00 to dpudevice_names array",
		}, tail("Skipping restore-vf service creation in Kubernetes environment"))},
		{name: "healthy, E (v25.7)", variant: dpf.ScriptE, want: join(discovery, []string{
			"[dmsinit] Creating DPUDevice for PCI address 0000-3b-00",
			"[dmsinit] DPUDevice " + serial + " applied successfully",
			"[dmsinit] Updated PCI address for DPUDevice " + serial + ": 0000-3b-00",
			"[dmsinit] Added " + serial + " to dpudevice_names array",
		}, tail("Skipping Systemd service creation in Kubernetes environment"))},
		{name: "dpudevice-status-forbidden, C on the v25.4.0 role", variant: dpf.ScriptC, api: fakeAPI{forbidden: map[string]bool{"dpudevice/status": true}}, wantExit: 1,
			want: join(discovery, []string{
				"[dmsinit] Creating DPUDevice for PCI address 0000-3b-00",
				"[dmsinit] DPUDevice " + serial + " applied successfully",
				"[dmsinit] Error (create_dpu_device:312): Failed to update PCI address for DPUDevice " + serial + `: Error from server (Forbidden): dpudevices.provisioning.dpu.nvidia.com "` + serial + `" is forbidden: User "` + saUser + `" cannot get resource "dpudevices/status" in API group "provisioning.dpu.nvidia.com" in the namespace "dpf-operator-system"`,
			})},
		{name: "apiserver-unreachable, B", variant: dpf.ScriptB, api: fakeAPI{unreachable: true}, wantExit: 1,
			want: join(discovery, []string{"[dmsinit] Error (check_and_install_kubectl:168): Failed to check kubectl version: " + refused})},
		{name: "apiserver-unreachable, D", variant: dpf.ScriptD, api: fakeAPI{unreachable: true}, wantExit: 1,
			want: join(discovery, []string{"[dmsinit] Error (check_and_install_kubectl:168): Failed to check kubectl version: " + refused})},
		{name: "apiserver-unreachable, E adds the VIP hint", variant: dpf.ScriptE, api: fakeAPI{unreachable: true}, wantExit: 1,
			want: join(discovery, []string{"[dmsinit] Error (check_and_install_kubectl:168): Failed to check kubectl version: " + refused + dpf.VIPHint})},
		{name: "apiserver-unreachable, F adds the VIP hint", variant: dpf.ScriptF, api: fakeAPI{unreachable: true}, wantExit: 1,
			want: join(discovery, []string{"[dmsinit] Error (check_and_install_kubectl:168): Failed to check kubectl version: " + refused + dpf.VIPHint})},
		{name: "no-dpu-found", variant: dpf.ScriptB, noDPU: true, wantExit: 1, want: []string{
			"[dmsinit] DMS image directory: /bfb",
			"[dmsinit] Running cmd register",
			"[dmsinit] Total DPUs discovered: 0",
			"[dmsinit] No DPUs found on this system",
			"[dmsinit] Error (main:612): No DPUs found on this system, exiting",
		}},
		{name: "hypothetical-empty-certificate-files: B with --external-certificate none and Forbidden Secret reads exits 0 (empty files)", variant: dpf.ScriptB, extCert: "none", empty: true,
			api: fakeAPI{forbidden: map[string]bool{"secret": true}, existing: map[string]bool{"Certificate/n1-dms-server-cert": true}},
			want: join(discovery, []string{
				"[dmsinit] Resource n1-dms-server-cert of type Certificate already exists, skipping creation",
				"[dmsinit] Certificate n1-dms-server-cert already exists, skipping creation",
				"[dmsinit] Certificate secret name: n1-server-secret",
				secretForbidden, secretForbidden, secretForbidden,
				"[dmsinit] Creating DPUDevice for PCI address 0000-3b-00",
				"[dmsinit] DPUDevice n1-0000-3b-00 applied successfully",
				"[dmsinit] Added n1-0000-3b-00 to dpudevice_names array",
			}, tail("Skipping restore-vf service creation in Kubernetes environment"))},
		{name: "C–F with --external-certificate none: hidden reads, timeout, exit 1", variant: dpf.ScriptE, extCert: "none",
			api: fakeAPI{forbidden: map[string]bool{"secret": true}, existing: map[string]bool{"Certificate/n1-dms-server-cert": true}}, wantExit: 1,
			want: join(discovery, []string{
				"[dmsinit] Resource n1-dms-server-cert of type Certificate already exists, skipping creation",
				"[dmsinit] Certificate n1-dms-server-cert already exists, skipping creation",
				"[dmsinit] Waiting for secret n1-server-secret to be fully populated... (attempt 1/2)",
				"[dmsinit] Waiting for secret n1-server-secret to be fully populated... (attempt 2/2)",
				"[dmsinit] Error (create_certificate:241): Timed out waiting for secret n1-server-secret to be fully populated. ca.crt: 0 chars, tls.crt: 0 chars, tls.key: 0 chars",
			})},
		{name: "hypothetical-secrets-forbidden (no real script does this)", variant: dpf.ScriptB, extCert: "none", hypo: true,
			api: fakeAPI{forbidden: map[string]bool{"secret": true}, existing: map[string]bool{"Certificate/n1-dms-server-cert": true}}, wantExit: 1,
			want: join(discovery, []string{
				"[dmsinit] Resource n1-dms-server-cert of type Certificate already exists, skipping creation",
				"[dmsinit] Certificate n1-dms-server-cert already exists, skipping creation",
				"[dmsinit] Certificate secret name: n1-server-secret",
				secretForbidden, secretForbidden, secretForbidden,
				"[dmsinit] Waiting for certificate secret to be created... (attempt 1/2)",
				secretForbidden, secretForbidden, secretForbidden,
				"[dmsinit] Waiting for certificate secret to be created... (attempt 2/2)",
				"[dmsinit] Error (create_certificate:241): Timed out waiting for certificate secret to be created",
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv := dpf.OperatorArgs("n1", "127.0.0.2", tc.extCert)
			api := tc.api
			d := &dmsInit{variant: tc.variant, args: dpf.ParseArgs(argv), node: "n1", pci: PCIAddress, serial: serialNumber("n1"),
				noDPU: tc.noDPU, hypothetical: tc.hypo, api: &api, attempts: 2, sleep: func(context.Context, time.Duration) {}}
			got, code := d.run(context.Background())
			if d.emptyCerts != tc.empty {
				t.Errorf("empty certificate files: %v, want %v", d.emptyCerts, tc.empty)
			}
			if code != tc.wantExit || strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("exit %d, want %d; lines:\n%s\nwant:\n%s", code, tc.wantExit, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// The dms container of hypothetical-empty-certificate-files: it exits 1 with
// the (modelled) dmsd line while dms-init's certificate files are empty,
// and starts when they are not.
func TestDMSContainerOnEmptyCertificates(t *testing.T) {
	k := &kubelet{}
	pod := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n1"}}
	for _, empty := range []bool{true, false} {
		run := k.runContainer(context.Background(), pod, HypotheticalEmptyCertificateFiles, corev1.Container{Name: dpf.ContainerDMS}, &podState{emptyCerts: empty})
		wantExit, wantLine := int32(0), "starting dms"
		if empty {
			wantExit, wantLine = 1, DMSEmptyCertificate
		}
		if run.exitCode != wantExit || len(run.lines) != 1 || !strings.Contains(run.lines[0], wantLine) {
			t.Errorf("empty=%v: exit %d, lines %q; want exit %d and %q", empty, run.exitCode, run.lines, wantExit, wantLine)
		}
	}
}
