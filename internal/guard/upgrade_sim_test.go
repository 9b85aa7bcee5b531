package guard

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/preflight"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// The DPFOperatorConfig's version changes from v25.4.0 to v25.7.0 while the
// DPUDevice CRD stays v25.4's: the guard raises preflight's finding as a
// metric and an Event on the config.
func TestGuardUpgradeCheck(t *testing.T) {
	t.Parallel()
	e := startEnv(t, sim.Options{Nodes: 2})
	g := e.startGuard(Options{Mode: ModeObserve})
	series := func(version string) string {
		return MetricUpgradeFindings + `{code="` + preflight.CodeCRD + `",version="` + version + `"}`
	}
	e.eventually(30*time.Second, "the v25.4.0 check", func() bool { v, ok := e.scrape(g)[series("v25.4.0")]; return ok && v == 0 })

	patch := []byte(`{"metadata":{"labels":{"` + dpf.VersionLabel + `":"v25.7.0"}}}`)
	if _, err := e.dyn.Resource(dpf.MustGVR(dpf.GroupOperator, "DPFOperatorConfig")).Namespace(e.c.Namespace).
		Patch(context.Background(), dpf.OperatorConfigName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually(30*time.Second, "the v25.7.0 check", func() bool { return e.scrape(g)[series("v25.7.0")] == 1 })
	if _, old := e.scrape(g)[series("v25.4.0")]; old {
		t.Errorf("the v25.4.0 series stayed")
	}
	evs := e.guardEvents(ReasonUpgradeCheck)
	if len(evs) != 1 || evs[0].InvolvedObject.Kind != "DPFOperatorConfig" || evs[0].Type != "Warning" ||
		!strings.Contains(evs[0].Message, preflight.CodeCRD+": The DPUDevice CRD") || strings.Contains(evs[0].Message, preflight.CodeRBAC) {
		t.Errorf("%s events: %+v", ReasonUpgradeCheck, evs)
	}
}
