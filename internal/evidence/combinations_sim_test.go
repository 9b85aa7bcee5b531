package evidence_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/fanout"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// Every pair of distinct failing scenarios that can happen on a release is
// classified right with default options, on every release: a fleet failing
// for two reasons is diagnosed as well as one failing for one. The pairs are
// generated from sim.Scenarios() and sim.Applies, so a new scenario is
// covered without editing this test. One sim per release carries two nodes
// per scenario; each pair is collected with the --node filter on its four
// nodes. "Right" is the class the scenario's pods get when the whole
// fleet's logs are read, which must be one class per scenario and never
// Unknown (TestScenariosClassified pins those classes to the scenarios).
// Each pair is also collected with a log budget of 1, so that sampling and
// escalation, not reading everything, must get it right.
func TestScenarioPairsClassified(t *testing.T) {
	if testing.Short() {
		t.Skip("starts one simulated cluster per DPF release")
	}
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: export KUBEBUILDER_ASSETS=$(hack/envtest.sh)")
	}
	for _, r := range dpf.Releases() {
		var failing []sim.Scenario
		for _, s := range sim.Scenarios() {
			if s != sim.Healthy && sim.Applies(s, r) {
				failing = append(failing, s)
			}
		}
		if len(failing) < 2 {
			continue
		}
		t.Run(r.Version, func(t *testing.T) { scenarioPairs(t, r, failing) })
	}
}

func scenarioPairs(t *testing.T, r dpf.Release, failing []sim.Scenario) {
	const perScenario = 2
	var mix []string
	for _, s := range failing {
		mix = append(mix, fmt.Sprintf("%s=%d", s, perScenario))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o, err := onShared(sim.Options{Version: r.Version, Nodes: perScenario * len(failing), Scenario: strings.Join(mix, ","),
		TimeScale: 0.05, SecretWaitAttempts: 1, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sim.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	m, _ := sim.ParseMix(strings.Join(mix, ","))
	scenarioOf := map[string]sim.Scenario{}
	nodesOf := map[sim.Scenario][]string{}
	for i, s := range m.Assign(len(c.Nodes)) {
		scenarioOf[c.Nodes[i]] = s
		nodesOf[s] = append(nodesOf[s], c.Nodes[i])
	}
	want := settledClasses(ctx, t, c, scenarioOf)
	t.Logf("%s: %v", r.Version, want)
	// Not in the mixed sim of TestScenariosClassified: pinned here. dms-init
	// exits 0, so it must never read as dms-init's RBAC failure.
	if got, ok := want[sim.HypotheticalEmptyCertificateFiles]; ok && got != diagnose.ClassEmptyCertificateFiles {
		t.Errorf("%s: %s pods are %s, want %s", r.Version, sim.HypotheticalEmptyCertificateFiles, got, diagnose.ClassEmptyCertificateFiles)
	}

	// The pairs are collected four at a time: each collection is a
	// separate client with its own node filter, as separate runs are.
	type pair struct {
		a, b  sim.Scenario
		nodes []string
		o     evidence.Options
	}
	var pairs []pair
	for i, a := range failing {
		for _, b := range failing[i+1:] {
			nodes := append(append([]string(nil), nodesOf[a]...), nodesOf[b]...)
			for _, o := range []evidence.Options{{Nodes: nodes}, {Nodes: nodes, LogBudget: 1}} {
				pairs = append(pairs, pair{a, b, nodes, o})
			}
		}
	}
	err = fanout.Each(len(pairs), 4, func(i int) error {
		pr := pairs[i]
		bundle, _, err := collectAs(c.Config, pr.o)
		if err != nil {
			return fmt.Errorf("%s + %s (log budget %d): %w", pr.a, pr.b, pr.o.LogBudget, err)
		}
		d := diagnose.Diagnose(bundle)
		if len(d.Pods) != len(pr.nodes) {
			t.Errorf("%s + %s: %d pods for %d nodes", pr.a, pr.b, len(d.Pods), len(pr.nodes))
		}
		for _, p := range d.Pods {
			if s := scenarioOf[p.Node]; p.Class != want[s] {
				t.Errorf("%s + %s (log budget %d): %s (%s) is %s, want %s: %s [%s]",
					pr.a, pr.b, pr.o.LogBudget, p.Name, s, p.Class, want[s], p.Detail, p.LogNotRead)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// settledClasses waits until every node's pod has settled (Ready, failed
// twice, or never started) and every scenario's pods share one class other
// than Unknown, twice in a row, and returns that class per scenario. It
// looks again whenever a pod changes (a watch), at least every second.
func settledClasses(ctx context.Context, t *testing.T, c *sim.Cluster, scenarioOf map[string]sim.Scenario) map[sim.Scenario]diagnose.Class {
	t.Helper()
	w, err := kubernetes.NewForConfigOrDie(c.Config).CoreV1().Pods(c.Namespace).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var prev, last string
	for {
		b, _, err := collect(t, c.Config, evidence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		d := diagnose.Diagnose(b)
		classes := map[sim.Scenario]diagnose.Class{}
		var why []string
		if len(d.Pods) != len(scenarioOf) {
			why = append(why, fmt.Sprintf("%d pods for %d nodes", len(d.Pods), len(scenarioOf)))
		}
		for _, p := range d.Pods {
			s := scenarioOf[p.Node]
			settled := p.Class == diagnose.ClassHealthy || p.Restarts >= 2 || strings.HasPrefix(p.State, "Init:0/") || p.State == "Pending" || p.State == "ContainerCreating"
			switch c, seen := classes[s]; {
			case !settled || p.Class == diagnose.ClassUnknown:
				why = append(why, fmt.Sprintf("%s (%s) %s %s", p.Name, s, p.State, p.Class))
			case seen && c != p.Class:
				why = append(why, fmt.Sprintf("%s: %s and %s", s, c, p.Class))
			}
			classes[s] = p.Class
		}
		sort.Strings(why)
		state := fmt.Sprint(classes)
		if len(why) == 0 && state == prev {
			return classes
		}
		if len(why) == 0 {
			prev = state
		} else {
			prev, last = "", strings.Join(why, "; ")
		}
		// The next pod change, then whatever follows it within 50 ms.
		select {
		case <-ctx.Done():
			t.Fatalf("pods did not settle to one known class per scenario: %s", last)
		case _, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("pod watch closed")
			}
		case <-time.After(time.Second):
		}
		for quiet := time.After(50 * time.Millisecond); ; {
			select {
			case <-w.ResultChan():
				continue
			case <-quiet:
			}
			break
		}
	}
}
