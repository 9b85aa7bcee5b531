package sandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// runInNetNS starts cmd in a new network namespace whose loopback has one
// listener, on apiServer (host:port), that forwards each connection to the
// same address in the host's namespace, and waits for cmd.
//
// The namespace is made on a locked OS thread (unshare(CLONE_NEWNET) is per
// thread): the thread brings lo up, opens the listener, which stays in that
// namespace whatever thread later accepts on it, and forks cmd, which
// inherits the namespace. The thread then waits for cmd, because bwrap's
// --die-with-parent watches the thread that forked it, and is never
// unlocked, so Go discards it afterwards instead of reusing a thread in the
// wrong namespace. The forwarder's goroutines run on other threads, in the
// host's namespace, where their dials go.
func runInNetNS(ctx context.Context, cmd *exec.Cmd, apiServer string) error {
	type started struct {
		l   net.Listener
		err error
	}
	ready := make(chan started, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- started{err: fmt.Errorf("new network namespace: %w", err)}
			return
		}
		if err := loopbackUp(); err != nil {
			ready <- started{err: err}
			return
		}
		var l net.Listener
		if apiServer != "" {
			var err error
			if l, err = net.Listen("tcp", apiServer); err != nil {
				ready <- started{err: fmt.Errorf("listen on %s in the sandbox: %w", apiServer, err)}
				return
			}
		}
		if err := cmd.Start(); err != nil {
			if l != nil {
				_ = l.Close()
			}
			ready <- started{err: err}
			return
		}
		ready <- started{l: l}
		done <- cmd.Wait()
	}()
	s := <-ready
	if s.err != nil {
		return s.err
	}
	if s.l == nil {
		return <-done
	}
	var wg sync.WaitGroup
	fwdCtx, stop := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		forward(fwdCtx, s.l, apiServer, &wg)
	}()
	err := <-done
	stop()
	_ = s.l.Close()
	wg.Wait()
	return err
}

// loopbackUp sets IFF_UP on lo in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer func() { _ = unix.Close(fd) }()
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// forward accepts on l until it is closed and copies each connection to
// target, dialled from the host's namespace.
func forward(ctx context.Context, l net.Listener, target string, wg *sync.WaitGroup) {
	var d net.Dialer
	for {
		in, err := l.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = in.Close() }()
			out, err := d.DialContext(ctx, "tcp", target)
			if err != nil {
				return
			}
			defer func() { _ = out.Close() }()
			stop := context.AfterFunc(ctx, func() { _ = in.Close(); _ = out.Close() })
			defer stop()
			half := func(dst, src net.Conn, done chan<- struct{}) {
				_, _ = io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				done <- struct{}{}
			}
			done := make(chan struct{}, 2)
			go half(out, in, done)
			go half(in, out, done)
			<-done
			<-done
		}()
	}
}
