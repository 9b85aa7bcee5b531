package dpf

import (
	"slices"
	"strings"
)

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
