package dpf

import (
	"slices"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
)

// API groups DPF and its dependencies use.
const (
	GroupProvisioning = "provisioning.dpu.nvidia.com"
	GroupOperator     = "operator.dpu.nvidia.com"
	GroupRBAC         = "rbac.authorization.k8s.io"
	GroupCertManager  = "cert-manager.io"
)

// ScriptVariant names a dmsinit.sh version (see docs/versions.md).
type ScriptVariant string

const (
	// ScriptNone: the release has no dmsinit.sh (v25.1).
	ScriptNone ScriptVariant = "none"
	// ScriptB is the v25.4.0 dmsinit.sh: it polls the Certificate's
	// spec.secretName, reads the Secret with stderr visible and names the
	// DPUDevice "<node>-<pci>".
	ScriptB ScriptVariant = "B"
	// ScriptC and later wait for the Secret's three keys with stderr hidden,
	// name the DPUDevice after the serial number and patch its status.
	ScriptC ScriptVariant = "C"
	ScriptD ScriptVariant = "D"
	// ScriptE adds the KubernetesAPIServerVIP hint to the version error.
	ScriptE ScriptVariant = "E"
	ScriptF ScriptVariant = "F"
	// ScriptHostAgent: the v25.10 host agent replaces dmsinit.sh.
	ScriptHostAgent ScriptVariant = "hostagent"
)

// Name patterns in Call.Name. They are replaced by Call.Request.
const (
	PatternNode   = "{node}"
	PatternPCI    = "{pci}"
	PatternSerial = "{serial}"
)

// Call is one API request dmsinit.sh (or the host agent) makes through
// kubectl, with the function it sits in and how its errors surface.
type Call struct {
	// Func is the dmsinit.sh function that makes the call.
	Func string `json:"func"`
	// Command is the kubectl command line as the script writes it.
	Command string `json:"command"`
	Verb    string `json:"verb"`
	Group   string `json:"group"`
	// Resource and Subresource as RBAC sees them.
	Resource    string `json:"resource,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	// Name is a pattern with {node}, {pci} or {serial}; empty when the call
	// names no object (create, list).
	Name string `json:"name,omitempty"`
	// ClusterScoped is true for nodes and non-resource URLs.
	ClusterScoped bool `json:"clusterScoped,omitempty"`
	// NonResourceURL for calls such as GET /version.
	NonResourceURL string `json:"nonResourceURL,omitempty"`
	// CertPath is true for calls made only when --external-certificate is
	// "none" (create_certificate), which the operator never passes in
	// Kubernetes mode.
	CertPath bool `json:"certPath,omitempty"`
	// StderrHidden is true when the script discards kubectl's stderr, so a
	// Forbidden never reaches the log.
	StderrHidden bool `json:"stderrHidden,omitempty"`
	// FatalMessage is the error the script exits with when the call fails;
	// empty when a failure is ignored or read as "absent".
	FatalMessage string `json:"fatalMessage,omitempty"`
	// AfterRead is true for a request kubectl sends only once the call
	// before it, its read of the same object, succeeded (kubectl patch
	// --subresource): while that read is refused, it is never reached.
	AfterRead bool `json:"afterRead,omitempty"`
	// IfAbsent is true for a call made only when check_resource_exists
	// found the object absent (a first run): the create and what prepares
	// it. The other calls are made on every run that completes.
	IfAbsent bool `json:"ifAbsent,omitempty"`
}

// Lead is the read kubectl makes before an AfterRead call: the same object,
// verb get.
func (c Call) Lead() Call {
	l := c
	l.Verb, l.AfterRead = "get", false
	return l
}

// Request resolves the call for a node in a namespace. A name pattern that
// still holds an unknown part ({pci}, {serial}) resolves to the empty name,
// which a SubjectAccessReview reads as "any name".
func (c Call) Request(namespace, node string) access.Request {
	if c.NonResourceURL != "" {
		return access.Request{Verb: c.Verb, NonResourceURL: c.NonResourceURL}
	}
	r := access.Request{Verb: c.Verb, Group: c.Group, Resource: c.Resource, Subresource: c.Subresource}
	if !c.ClusterScoped {
		r.Namespace = namespace
	}
	if name := strings.ReplaceAll(c.Name, PatternNode, node); !strings.Contains(name, "{") {
		r.Name = name
	}
	return r
}

// Calls returns the calls a script variant makes in the given mode, in the
// order the script makes them. certPath selects the create_certificate path
// (--external-certificate none).
func Calls(v ScriptVariant, certPath bool) []Call {
	return slices.DeleteFunc(callTable(v), func(c Call) bool { return c.CertPath && !certPath })
}

// AllCalls returns every call of the variant, both modes.
func AllCalls(v ScriptVariant) []Call { return callTable(v) }

func callTable(v ScriptVariant) []Call {
	switch v {
	case ScriptNone:
		return nil
	case ScriptHostAgent:
		return hostAgentCalls()
	}
	versionMsg := "Failed to check kubectl version: $output"
	if v == ScriptE || v == ScriptF {
		versionMsg += VIPHint
	}
	calls := []Call{
		{Func: "check_and_install_kubectl", Command: "kubectl version", Verb: "get", NonResourceURL: "/version", ClusterScoped: true, FatalMessage: versionMsg},
		{Func: "check_resource_exists", Command: "kubectl -n $namespace get -o json Certificate $node-dms-server-cert", Verb: "get", Group: GroupCertManager, Resource: "certificates", Name: "{node}-dms-server-cert", CertPath: true},
		{Func: "create_certificate", Command: "kubectl apply -f - (Certificate)", Verb: "create", Group: GroupCertManager, Resource: "certificates", CertPath: true, IfAbsent: true, FatalMessage: "Failed to create certificate $node-dms-server-cert: $output"},
	}
	if v == ScriptB {
		calls = append(calls,
			Call{Func: "create_certificate", Command: "kubectl get cert -n $namespace $node-dms-server-cert -o jsonpath='{.spec.secretName}'", Verb: "get", Group: GroupCertManager, Resource: "certificates", Name: "{node}-dms-server-cert", CertPath: true, FatalMessage: "Timed out waiting for certificate secret to be created"},
			Call{Func: "create_certificate", Command: "kubectl get secret -n $namespace $secret -o jsonpath='{.data.ca\\.crt}' (also tls.crt, tls.key)", Verb: "get", Resource: "secrets", Name: "{node}-server-secret", CertPath: true},
			Call{Func: "check_resource_exists", Command: "kubectl -n $namespace get -o json DPUDevice $node-$pci", Verb: "get", Group: GroupProvisioning, Resource: "dpudevices", Name: "{node}-{pci}"},
			Call{Func: "create_dpu_device", Command: "kubectl apply -f - (DPUDevice)", Verb: "create", Group: GroupProvisioning, Resource: "dpudevices", IfAbsent: true, FatalMessage: "Failed to create DPUDevice $name: $output"},
		)
	} else {
		calls = append(calls,
			Call{Func: "create_certificate", Command: "kubectl get secret -n $namespace \"$secret\" -o jsonpath=... 2> /dev/null || true (ca.crt, tls.crt, tls.key)", Verb: "get", Resource: "secrets", Name: "{node}-server-secret", CertPath: true, StderrHidden: true, FatalMessage: "Timed out waiting for secret $secret_name to be fully populated"},
			Call{Func: "check_resource_exists", Command: "kubectl -n $namespace get -o json DPUDevice $serial", Verb: "get", Group: GroupProvisioning, Resource: "dpudevices", Name: PatternSerial},
			Call{Func: "create_dpu_device", Command: "kubectl apply -f - (DPUDevice)", Verb: "create", Group: GroupProvisioning, Resource: "dpudevices", IfAbsent: true, FatalMessage: "Failed to create DPUDevice $name: $output"},
			Call{Func: "create_dpu_device", Command: "kubectl patch dpudevice $name -n $namespace --subresource status ... (kubectl reads the status first)", Verb: "get", Group: GroupProvisioning, Resource: "dpudevices", Subresource: "status", Name: PatternSerial, FatalMessage: "Failed to update PCI address for DPUDevice $name: $output"},
			Call{Func: "create_dpu_device", Command: "kubectl patch dpudevice $name -n $namespace --subresource status --type=merge -p '{\"status\":{\"pciAddress\":\"$pci\"}}'", Verb: "patch", Group: GroupProvisioning, Resource: "dpudevices", Subresource: "status", Name: PatternSerial, FatalMessage: "Failed to update PCI address for DPUDevice $name: $output", AfterRead: true},
		)
	}
	calls = append(calls,
		Call{Func: "check_resource_exists", Command: "kubectl -n $namespace get -o json DPUNode $node", Verb: "get", Group: GroupProvisioning, Resource: "dpunodes", Name: PatternNode},
		Call{Func: "create_dpunode", Command: "kubectl get node $kube_node_ref -o jsonpath='{.metadata.uid}'", Verb: "get", Resource: "nodes", Name: PatternNode, ClusterScoped: true, IfAbsent: true, FatalMessage: "Failed to get UID for node $kube_node_ref"},
		Call{Func: "create_dpunode", Command: "kubectl apply -f - (DPUNode)", Verb: "create", Group: GroupProvisioning, Resource: "dpunodes", IfAbsent: true, FatalMessage: "Failed to create DPUNode $node: $output"},
	)
	return calls
}

// hostAgentCalls are the v25.10 host agent's start-up requests as
// internal/sim replays them (`/hostagent serve`, a Go client: no read
// before a patch). Each is granted by the host agent's ClusterRole
// (docs/versions.md): it reads its DPFOperatorConfig, registers the
// DPUDevice (status pciAddress) and the DPUNode, and sets the DPUNode's
// status.dpuInstallInterface to hostAgent.
func hostAgentCalls() []Call {
	return []Call{
		{Func: "hostagent", Command: "GET /version", Verb: "get", NonResourceURL: "/version", ClusterScoped: true},
		{Func: "hostagent", Command: "list DPFOperatorConfigs", Verb: "list", Group: GroupOperator, Resource: "dpfoperatorconfigs"},
		{Func: "hostagent", Command: "get DPUDevice", Verb: "get", Group: GroupProvisioning, Resource: "dpudevices", Name: PatternSerial},
		{Func: "hostagent", Command: "create DPUDevice", Verb: "create", Group: GroupProvisioning, Resource: "dpudevices", IfAbsent: true},
		{Func: "hostagent", Command: "patch DPUDevice status", Verb: "patch", Group: GroupProvisioning, Resource: "dpudevices", Subresource: "status", Name: PatternSerial},
		{Func: "hostagent", Command: "get Node", Verb: "get", Resource: "nodes", Name: PatternNode, ClusterScoped: true},
		{Func: "hostagent", Command: "get DPUNode", Verb: "get", Group: GroupProvisioning, Resource: "dpunodes", Name: PatternNode},
		{Func: "hostagent", Command: "create DPUNode", Verb: "create", Group: GroupProvisioning, Resource: "dpunodes", IfAbsent: true},
		{Func: "hostagent", Command: "patch DPUNode status", Verb: "patch", Group: GroupProvisioning, Resource: "dpunodes", Subresource: "status", Name: PatternNode},
	}
}

// VIPHint is what dmsinit.sh E and F append to the version-check error.
const VIPHint = ". This error may be caused by not configuring the KubernetesAPIServerVIP and kubernetesAPIServerPort parameters correctly in DPFOperatorConfig."

// ScriptForImageTag maps a hostdriver image tag to the dmsinit.sh variant it
// ships. Unknown tags map by release line; tags newer than any known line get
// the newest dmsinit variant.
func ScriptForImageTag(tag string) ScriptVariant {
	if tag == "" {
		return ScriptB
	}
	switch Line(tag) {
	case "v25.1", "v24.10":
		return ScriptNone
	case "v25.4":
		return ScriptB
	case "v25.7":
		return ScriptE
	}
	if Compare(tag, "v25.10.0") >= 0 {
		return ScriptHostAgent
	}
	if Compare(tag, "v25.4.0") > 0 {
		return ScriptE
	}
	return ScriptB
}

// ImageTag returns the tag of an image reference, or "" if it has none.
func ImageTag(image string) string {
	image, _, _ = strings.Cut(image, "@")
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[i+1:]
	}
	return ""
}

// Args are the dmsinit.sh flags that decide which calls it makes.
type Args struct {
	Cmd                 string `json:"cmd"`
	KubeNodeRef         string `json:"kubeNodeRef,omitempty"`
	ExternalCertificate string `json:"externalCertificate"`
	Namespace           string `json:"namespace"`
	K8sEnv              string `json:"k8sEnv"`
	DMSIP               string `json:"dmsIP,omitempty"`
	DMSPort             string `json:"dmsPort,omitempty"`
	Kubeconfig          string `json:"kubeconfig,omitempty"`
	NodeRebootMethod    string `json:"nodeRebootMethod,omitempty"`
	// ConfDir and ImageDir are --dms-conf-dir and --dms-image-dir ("" when
	// absent: the script then uses /opt/dpf/dms and <conf dir>/bfb).
	ConfDir  string `json:"dmsConfDir,omitempty"`
	ImageDir string `json:"dmsImageDir,omitempty"`
	// Unknown collects flags dmsinit.sh would reject ("Unknown option").
	Unknown []string `json:"unknown,omitempty"`
}

// CertPath reports whether create_certificate runs: only with
// --external-certificate none, which the operator never passes.
func (a Args) CertPath() bool { return a.ExternalCertificate == "none" }

// ParseArgs reads dmsinit.sh flags from a container's command and args, with
// the script's own defaults for anything absent.
func ParseArgs(argv []string) Args {
	a := Args{Cmd: "register", ExternalCertificate: "none", Namespace: DefaultNamespace, K8sEnv: "true", DMSIP: "0.0.0.0", DMSPort: "9339", NodeRebootMethod: "gNOI"}
	fields := map[string]*string{
		"--cmd":                  &a.Cmd,
		"--kube-node-ref":        &a.KubeNodeRef,
		"--external-certificate": &a.ExternalCertificate,
		"--namespace":            &a.Namespace,
		"--k8s-env":              &a.K8sEnv,
		"--dms-ip":               &a.DMSIP,
		"--dms-port":             &a.DMSPort,
		"--kubeconfig":           &a.Kubeconfig,
		"--node-reboot-method":   &a.NodeRebootMethod,
		"--dms-conf-dir":         &a.ConfDir,
		"--dms-image-dir":        &a.ImageDir,
	}
	known := map[string]bool{"--issuer": true, "--script-name": true}
	// The script may arrive as one "bash -c" string.
	var words []string
	for _, s := range argv {
		words = append(words, strings.Fields(s)...)
	}
	// Flags before the script belong to the shell.
	started := !slices.ContainsFunc(words, func(w string) bool { return strings.HasSuffix(w, "dmsinit.sh") })
	for i := 0; i < len(words); i++ {
		w := words[i]
		if strings.HasSuffix(w, "dmsinit.sh") {
			started = true
			continue
		}
		if !started || !strings.HasPrefix(w, "--") {
			continue
		}
		name, val, hasVal := strings.Cut(w, "=")
		if !hasVal && i+1 < len(words) {
			val = words[i+1]
			i++
		}
		if p, ok := fields[name]; ok {
			*p = val
		} else if !known[name] {
			a.Unknown = append(a.Unknown, name)
		}
	}
	return a
}

// OperatorArgs are the dms-init args the operator passes in Kubernetes mode
// (util/dms/util.go): --external-certificate TODO skips create_certificate.
func OperatorArgs(node, dmsIP, externalCertificate string) []string {
	if externalCertificate == "" {
		externalCertificate = "TODO"
	}
	return []string{"/opt/dpf/dmsinit.sh", "--cmd", "register", "--dms-conf-dir", "/opt/dpf/dms", "--dms-image-dir", "/bfb",
		"--kube-node-ref", node, "--dms-port", "9339", "--dms-ip", dmsIP, "--external-certificate", externalCertificate}
}
