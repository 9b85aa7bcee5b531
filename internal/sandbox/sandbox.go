// Package sandbox runs a provisioning script (a real dmsinit.sh) hermetically
// with bubblewrap, or util-linux unshare without it: a fake host (sysfs, /dev/rshim*, /opt/dpf, shims for
// lspci, devlink, systemctl and ip), the in-cluster ServiceAccount files, the
// real kubectl, and a network namespace of its own in which exactly one
// loopback port, the API server's, is bridged to the host (docs/sim.md).
package sandbox

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// Device is one BlueField DPU in the fake host's sysfs: function 0 and 1 of
// its PCI address, each with a PF netdev.
type Device = sim.DPU

// Host is the fake host a script sees.
type Host struct {
	Name    string
	Devices []Device // none: no-dpu-found
	// RshimOccupied makes /dev/rshim0/misc name the first device, as when
	// the host's rshim driver holds it.
	RshimOccupied bool
}

// ServiceAccount is what the kubelet projects into
// /var/run/secrets/kubernetes.io/serviceaccount.
type ServiceAccount struct {
	Token     string
	CA        []byte
	Namespace string
}

// Spec is one container run.
type Spec struct {
	// Script is the host path of the script, installed as /opt/dpf/dmsinit.sh.
	Script string
	// Argv is the container's command and args, e.g.
	// /bin/bash /opt/dpf/dmsinit.sh --cmd register ….
	Argv []string
	// Env is the container's environment (KUBERNETES_SERVICE_HOST/PORT).
	Env  []string
	Host Host
	SA   ServiceAccount
	// Kubectl is the host path of the kubectl binary put on PATH.
	Kubectl string
	// APIServer is the API server's host:port on the host's loopback: the
	// only address the sandbox can reach, at the same host:port inside.
	APIServer string
	// Timeout bounds the run (default 2 minutes).
	Timeout time.Duration
	// Launcher forces bwrap or unshare, as LauncherEnv does (default
	// Launcher()).
	Launcher string
}

// Result is the container's outcome.
type Result struct {
	// Output is stdout and stderr interleaved, as a container log.
	Output   []byte
	ExitCode int
	// TerminationMessage is what the script wrote to /dev/termination-log.
	TerminationMessage string
	// EmptyCertificates: the script left an empty file in
	// /opt/dpf/dms/certs (dmsinit.sh B after Forbidden Secret reads).
	EmptyCertificates bool
}

// Lines splits the output into log lines.
func (r Result) Lines() []string {
	s := strings.TrimRight(string(r.Output), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Run runs the spec in a fresh sandbox and returns its outcome. An error
// means the sandbox itself failed; a script failure is a Result.
func Run(ctx context.Context, s Spec) (Result, error) {
	prog, err := launcher(cmp.Or(s.Launcher, os.Getenv(LauncherEnv)))
	if err != nil {
		return Result{}, err
	}
	if s.Timeout == 0 {
		s.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "dpfdoctor-sandbox-")
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	root := filepath.Join(dir, "root")
	if err := s.Host.write(root, s); err != nil {
		return Result{}, fmt.Errorf("build fake host: %w", err)
	}
	cmd, err := newLayout(root, s).command(ctx, prog, dir, s.Argv)
	if err != nil {
		return Result{}, err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out // one pipe: the log keeps the order of the writes
	cmd.WaitDelay = 5 * time.Second
	err = runInNetNS(ctx, cmd, s.APIServer)
	res := Result{Output: out.Bytes()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
		if res.ExitCode < 0 {
			res.ExitCode = 137 // killed (timeout)
		}
	case err != nil:
		return res, fmt.Errorf("run sandbox: %w", err)
	}
	if msg, err := os.ReadFile(filepath.Join(root, "termination-log")); err == nil {
		res.TerminationMessage = strings.TrimSpace(string(msg))
	}
	certs, _ := os.ReadDir(filepath.Join(root, "opt", "dpf", "dms", "certs"))
	for _, e := range certs {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			res.EmptyCertificates = true
		}
	}
	return res, nil
}

// layout is the sandbox a launcher (bwrap or unshare, launch.go) makes:
// the fake host mounted over a read-only view of the host's programs and
// libraries, in order over an empty root, plus hostname and environment.
// Nothing else of the host is visible: not /home, /root, /work, /var or the
// host's /sys and /dev.
type layout struct {
	hostname string
	mounts   []mount
	env      []string // the whole environment, K=V
}

// mount is one step: op is ro-bind, bind, tmpfs, dir, symlink (src is the
// target), proc or dev (a minimal /dev, as bwrap's --dev).
type mount struct{ op, src, dst string }

func newLayout(root string, s Spec) layout {
	l := layout{hostname: s.Host.Name}
	add := func(op, src, dst string) { l.mounts = append(l.mounts, mount{op, src, dst}) }
	add("ro-bind", "/usr", "/usr")
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if t, err := os.Readlink(d); err == nil {
			add("symlink", t, d)
		} else if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			add("ro-bind", d, d)
		}
	}
	for _, f := range []string{"/etc/alternatives", "/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf"} {
		if _, err := os.Stat(f); err == nil {
			add("ro-bind", f, f)
		}
	}
	add("ro-bind", filepath.Join(root, "etc", "hosts"), "/etc/hosts")
	add("proc", "", "/proc")
	add("dev", "", "/dev")
	for _, d := range []string{"/tmp", "/root", "/run"} {
		add("tmpfs", "", d)
	}
	add("dir", "", "/var")
	add("symlink", "../run", "/var/run")
	add("ro-bind", filepath.Join(root, "serviceaccount"), "/run/secrets/kubernetes.io/serviceaccount")
	add("ro-bind", filepath.Join(root, "sys"), "/sys")
	add("bind", filepath.Join(root, "termination-log"), "/dev/termination-log")
	add("bind", filepath.Join(root, "opt"), "/opt")
	// The image's /usr/local: the shims and kubectl, nothing of the host's.
	add("tmpfs", "", "/usr/local")
	add("ro-bind", filepath.Join(root, "sbin"), "/usr/local/sbin")
	if s.Kubectl != "" {
		add("ro-bind", s.Kubectl, "/usr/local/bin/kubectl")
	}
	if s.Host.RshimOccupied {
		add("ro-bind", filepath.Join(root, "rshim0"), "/dev/rshim0")
	}
	l.env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "HOSTNAME=" + s.Host.Name}, s.Env...)
	return l
}

// write lays out the fake host under root.
func (h Host) write(root string, s Spec) error {
	w := &treeWriter{root: root}
	w.file("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n", 0o644)
	w.file("termination-log", "", 0o666)
	w.file("serviceaccount/token", s.SA.Token, 0o644)
	w.file("serviceaccount/ca.crt", string(s.SA.CA), 0o644)
	w.file("serviceaccount/namespace", s.SA.Namespace, 0o644)
	script, err := os.ReadFile(s.Script)
	if err != nil {
		return err
	}
	w.file("opt/dpf/dmsinit.sh", string(script), 0o755)
	w.dir("opt/dpf/dms")
	w.dir("opt/dpf/dms/bfb")
	// A non-DPU device first, so discovery has to filter by ID.
	w.pciFunction("0000:00:00.0", "0x8086", "0x09a2", "")
	for _, d := range h.Devices {
		base := strings.TrimSuffix(d.PCI, ".0")
		w.pciFunction(d.PCI, "0x15b3", d.DeviceID, d.PF0)
		w.pciFunction(base+".1", "0x15b3", d.DeviceID, strings.Replace(d.PF0, "f0np0", "f1np1", 1))
	}
	if h.RshimOccupied && len(h.Devices) > 0 {
		w.file("rshim0/misc", rshimMisc(h.Devices[0]), 0o644)
	}
	for name, body := range shims(h) {
		w.file("sbin/"+name, body, 0o755)
	}
	return w.err
}

// pciFunction is /sys/bus/pci/devices/<addr>/{vendor,device,net/<pf>}.
func (w *treeWriter) pciFunction(addr, vendor, device, netdev string) {
	d := "sys/bus/pci/devices/" + addr
	w.file(d+"/vendor", vendor+"\n", 0o444)
	w.file(d+"/device", device+"\n", 0o444)
	if netdev != "" {
		w.dir(d + "/net/" + netdev)
	}
}

// rshimMisc is the rshim driver's misc file for a device it has claimed.
func rshimMisc(d Device) string {
	model := "BlueField-3"
	if d.DeviceID == sim.DeviceBlueField2 {
		model = "BlueField-2"
	}
	return "DISPLAY_LEVEL   0 (0:basic, 1:advanced, 2:log)\nBOOT_MODE       1 (0:rshim, 1:emmc, 2:emmc-boot-swap)\n" +
		"BOOT_TIMEOUT    150 (seconds)\nDROP_MODE       0 (0:normal, 1:drop)\nSW_RESET        0 (1: reset)\n" +
		"DEV_NAME        pcie-" + d.PCI + "\nDEV_INFO        " + model + "(Rev 1)\n"
}

// treeWriter writes files, keeping the first error.
type treeWriter struct {
	root string
	err  error
}

func (w *treeWriter) dir(rel string) {
	if w.err == nil {
		w.err = os.MkdirAll(filepath.Join(w.root, rel), 0o755)
	}
}

func (w *treeWriter) file(rel, content string, mode os.FileMode) {
	w.dir(filepath.Dir(rel))
	if w.err == nil {
		p := filepath.Join(w.root, rel)
		if w.err = os.WriteFile(p, []byte(content), mode); w.err == nil {
			w.err = os.Chmod(p, mode) // not reduced by the umask
		}
	}
}
