package sandbox

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// launchers runs test once per launcher, each forced through LauncherEnv.
// It fails (never skips) when one is missing: make test installs
// bubblewrap (hack/bwrap.sh), and unshare is util-linux's. Only -short
// skips sandbox runs.
func launchers(t *testing.T, test func(t *testing.T)) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs bubblewrap and unshare; skipped under -short")
	}
	for _, l := range []string{"bwrap", "unshare"} {
		t.Run(l, func(t *testing.T) {
			t.Setenv(LauncherEnv, l)
			if got, err := Launcher(); err != nil || got != l {
				t.Fatalf("launcher %q, %v", got, err)
			}
			test(t)
		})
	}
}

// listen serves one line ("hello <name>") per connection on a loopback port.
func listen(t *testing.T, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello " + name + "\n"))
			_ = c.Close()
		}
	}()
	return l.Addr().String()
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(p, []byte("#!/bin/bash\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The sandbox reaches the API server's port and nothing else on the host's
// loopback, sees the fake host and not the real one, and reports output,
// exit code and termination message: the same with either launcher.
func TestIsolation(t *testing.T) { launchers(t, isolation) }

func isolation(t *testing.T) {
	api, other := listen(t, "api"), listen(t, "other")
	apiHost, apiPort, _ := net.SplitHostPort(api)
	otherHost, otherPort, _ := net.SplitHostPort(other)
	script := writeScript(t, `
read_port() { exec 3<>/dev/tcp/$1/$2 && head -n1 <&3; }
echo "api: $(read_port "$KUBERNETES_SERVICE_HOST" "$KUBERNETES_SERVICE_PORT")"
if read_port `+otherHost+` `+otherPort+` 2>/dev/null; then echo "other: reachable"; else echo "other: unreachable"; fi
for d in /work /home /root/.cache /usr/local/go /sys/class /sys/bus/pci/devices/*; do [ -e "$d" ] && echo "exists: $d"; done
cat /sys/bus/pci/devices/0000:3b:00.0/device
ls /sys/bus/pci/devices/0000:3b:00.0/net
lspci -vvs 0000:3b:00.0 | grep '\[SN\]' | awk '{print $NF}'
cat /run/secrets/kubernetes.io/serviceaccount/namespace; echo
grep DEV_NAME /dev/rshim0/misc
touch /usr/x 2>/dev/null && ro=writable || ro=read-only
[ $$ -le 2 ] && pid=own || pid=host
echo "$(hostname) uid=$(id -u) /usr $ro, $pid PIDs, host devices: $(ls /dev | grep -c -x -e vda -e sda -e kmsg -e mem)"
echo "$1 $2" >&2
echo 0000:3b:00 > /dev/termination-log
exit 7
`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, Spec{
		Script: script, Argv: []string{"/bin/bash", "/opt/dpf/dmsinit.sh", "--cmd", "x"},
		Env:  []string{"KUBERNETES_SERVICE_HOST=" + apiHost, "KUBERNETES_SERVICE_PORT=" + apiPort},
		Host: Host{Name: "node-1", Devices: []Device{{PCI: "0000:3b:00.0", DeviceID: "0xa2dc", Serial: "MT2306XZ0001", PF0: "ens1f0np0"}}, RshimOccupied: true},
		SA:   ServiceAccount{Token: "t", CA: []byte("ca"), Namespace: "dpf-operator-system"}, APIServer: api,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"api: hello api",
		"other: unreachable",
		"exists: /sys/bus/pci/devices/0000:00:00.0",
		"exists: /sys/bus/pci/devices/0000:3b:00.0",
		"exists: /sys/bus/pci/devices/0000:3b:00.1",
		"0xa2dc",
		"ens1f0np0",
		"MT2306XZ0001",
		"dpf-operator-system",
		"DEV_NAME        pcie-0000:3b:00.0",
		"node-1 uid=0 /usr read-only, own PIDs, host devices: 0",
		"--cmd x",
	}
	if got := res.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.ExitCode != 7 || res.TerminationMessage != "0000:3b:00" {
		t.Errorf("exit %d, termination message %q; want 7, 0000:3b:00", res.ExitCode, res.TerminationMessage)
	}
	// The host port stays reachable from outside: the refusal above was
	// the sandbox's.
	c, err := net.Dial("tcp", other)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	_ = c.Close()
	if line != "hello other\n" {
		t.Errorf("host port answered %q", line)
	}
}

// Without bwrap on PATH the sandbox falls back to unshare; without either
// it names both.
func TestLauncherFallback(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	t.Setenv(LauncherEnv, "")
	if _, err := Launcher(); !errors.Is(err, ErrNoSandbox) {
		t.Errorf("no launcher: %v, want ErrNoSandbox", err)
	}
	if err := os.Symlink(unshare, filepath.Join(dir, "unshare")); err != nil {
		t.Fatal(err)
	}
	if l, err := Launcher(); l != "unshare" || err != nil {
		t.Errorf("launcher %q, %v; want unshare", l, err)
	}
	t.Setenv(LauncherEnv, "bwrap")
	if _, err := Launcher(); err == nil {
		t.Error("DPFDOCTOR_SANDBOX=bwrap without bwrap: no error")
	}
	t.Setenv(LauncherEnv, "chroot")
	if _, err := Launcher(); err == nil {
		t.Error("DPFDOCTOR_SANDBOX=chroot: no error")
	}
}
