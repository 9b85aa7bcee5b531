package sandbox_test

import (
	"os"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// planes lends the package's sims API servers: starting one costs more
// than most tests here, and two let two tests run in parallel (go test's
// -parallel defaults to the two cores of our machines).
var planes = newPlanePool(2)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime
	code := m.Run()
	planes.stop()
	os.Exit(code)
}

// planePool holds up to n shared control planes with an audit log (lint
// --dynamic needs one), each started on first use so that -short starts
// none.
type planePool struct {
	free    chan *sim.ControlPlane // nil: not started yet
	mu      sync.Mutex
	started []*sim.ControlPlane
}

func newPlanePool(n int) *planePool {
	p := &planePool{free: make(chan *sim.ControlPlane, n)}
	for range n {
		p.free <- nil
	}
	return p
}

// get lends the test a control plane until its cleanup: register it before
// the cleanup that stops the test's sim, which resets the control plane.
func (p *planePool) get(t *testing.T) *sim.ControlPlane {
	t.Helper()
	cp := <-p.free
	if cp == nil {
		var err error
		if cp, err = sim.StartControlPlane(true); err != nil {
			p.free <- nil
			t.Fatal(err)
		}
		p.mu.Lock()
		p.started = append(p.started, cp)
		p.mu.Unlock()
	}
	t.Cleanup(func() { p.free <- cp })
	return cp
}

func (p *planePool) stop() {
	for _, cp := range p.started {
		_ = cp.Stop()
	}
}
