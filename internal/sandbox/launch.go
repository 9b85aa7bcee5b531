package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrNoSandbox is returned when neither bubblewrap nor util-linux unshare
// is installed.
var ErrNoSandbox = errors.New("no sandbox: install the Debian package bubblewrap (hack/bwrap.sh), or util-linux for unshare")

// LauncherEnv forces a launcher: DPFDOCTOR_SANDBOX=bwrap or unshare.
const LauncherEnv = "DPFDOCTOR_SANDBOX"

// Launcher returns the program that makes the sandbox: bwrap, or unshare
// when bwrap is not on PATH or LauncherEnv asks for it.
func Launcher() (string, error) { return launcher(os.Getenv(LauncherEnv)) }

// launcher returns want (bwrap or unshare) if it is on PATH, or with want
// empty the first of them that is.
func launcher(want string) (string, error) {
	switch want {
	case "":
		for _, l := range []string{"bwrap", "unshare"} {
			if _, err := exec.LookPath(l); err == nil {
				return l, nil
			}
		}
		return "", ErrNoSandbox
	case "bwrap", "unshare":
		if _, err := exec.LookPath(want); err != nil {
			return "", fmt.Errorf("%s=%s: %s not found on PATH", LauncherEnv, want, want)
		}
		return want, nil
	}
	return "", fmt.Errorf("%s=%s: want bwrap or unshare", LauncherEnv, want)
}

// command returns the launcher's command that makes the layout and runs
// argv in it. dir is a scratch directory outside the fake host.
func (l layout) command(ctx context.Context, launcher, dir string, argv []string) (*exec.Cmd, error) {
	if launcher == "bwrap" {
		cmd := exec.CommandContext(ctx, "bwrap", append(l.bwrapArgs(), argv...)...)
		cmd.Env = []string{}
		return cmd, nil
	}
	setup := filepath.Join(dir, "setup.sh")
	if err := os.WriteFile(setup, []byte(l.unshareScript(filepath.Join(dir, "newroot"))), 0o600); err != nil {
		return nil, err
	}
	// User, mount, PID, IPC, UTS and cgroup namespaces (the network one is
	// the caller's, netns.go); the setup script mounts the layout, enters it
	// with pivot_root and drops every capability before exec.
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child",
		"--ipc", "--uts", "--cgroup", "/bin/sh", setup}, argv...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	// bwrap's --new-session and --die-with-parent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// bwrapArgs are bwrap's flags for the layout; bwrap runs as root without a
// user namespace.
func (l layout) bwrapArgs() []string {
	a := []string{"--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--hostname", l.hostname}
	for _, m := range l.mounts {
		switch m.op {
		case "ro-bind", "bind", "symlink":
			a = append(a, "--"+m.op, m.src, m.dst)
		default: // tmpfs, dir, proc, dev
			a = append(a, "--"+m.op, m.dst)
		}
	}
	a = append(a, "--clearenv")
	for _, e := range l.env {
		if k, v, ok := strings.Cut(e, "="); ok {
			a = append(a, "--setenv", k, v)
		}
	}
	return append(a, "--chdir", "/", "--")
}

// unshareScript is the layout as a shell script for unshare: it runs as
// root of the new user namespace and PID 1 of the new PID namespace, builds
// the layout on a tmpfs at newRoot, pivots into it, and execs its
// arguments with no capabilities and only the layout's environment.
func (l layout) unshareScript(newRoot string) string {
	var b strings.Builder
	r := func(p string) string { return shellQuote(newRoot + p) }
	line := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	line("set -eu")
	line("mkdir -p %s && mount -t tmpfs -o mode=0755 sandbox %s", r(""), r(""))
	for _, m := range l.mounts {
		switch m.op {
		case "ro-bind", "bind":
			if fi, err := os.Stat(m.src); err == nil && !fi.IsDir() {
				line("mkdir -p %s && : > %s", shellQuote(filepath.Dir(newRoot+m.dst)), r(m.dst))
			} else {
				line("mkdir -p %s", r(m.dst))
			}
			line("mount --rbind %s %s", shellQuote(m.src), r(m.dst))
			if m.op == "ro-bind" {
				line("mount -o remount,bind,ro %s", r(m.dst))
			}
		case "symlink":
			line("mkdir -p %s && ln -s %s %s", shellQuote(filepath.Dir(newRoot+m.dst)), shellQuote(m.src), r(m.dst))
		case "dir":
			line("mkdir -p %s", r(m.dst))
		case "tmpfs":
			line("mkdir -p %s && mount -t tmpfs -o mode=0755 tmpfs %s", r(m.dst), r(m.dst))
		case "proc":
			line("mkdir -p %s && mount -t proc proc %s", r(m.dst), r(m.dst))
		case "dev":
			d := newRoot + m.dst
			line("mkdir -p %s && mount -t tmpfs -o mode=0755 dev %s", shellQuote(d), shellQuote(d))
			line("for n in null zero full random urandom tty; do : > %s/$n && mount --bind /dev/$n %s/$n; done", shellQuote(d), shellQuote(d))
			line("for f in stdin:0 stdout:1 stderr:2; do ln -s /proc/self/fd/${f#*:} %s/${f%%:*}; done", shellQuote(d))
			line("ln -s /proc/self/fd %s/fd && mkdir %s/shm && mount -t tmpfs -o mode=1777 shm %s/shm", shellQuote(d), shellQuote(d), shellQuote(d))
		}
	}
	line("echo %s > /proc/sys/kernel/hostname", shellQuote(l.hostname))
	line("cd %s && mkdir .oldroot && pivot_root . .oldroot && umount -l /.oldroot && rmdir /.oldroot && cd /", r(""))
	env := make([]string, len(l.env))
	for i, e := range l.env {
		env[i] = shellQuote(e)
	}
	line(`exec setpriv --bounding-set -all --inh-caps -all --no-new-privs /usr/bin/env -i %s "$@"`, strings.Join(env, " "))
	return b.String()
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
