package doctor_test

import (
	"flag"
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	// The tests are parallel but take turns on an API server (startSim),
	// so most of them wait rather than compute. With -parallel at its
	// default (GOMAXPROCS, 2 on CI) the tests waiting for the shared API
	// server could hold every slot while TestFixRequestBudget, on its own,
	// waits for one; so, unless -parallel is given, every test gets one.
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "16")
	}
	code := m.Run()
	shared.Stop()
	budgetPlane.Stop()
	os.Exit(code)
}
