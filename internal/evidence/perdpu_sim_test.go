package evidence_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/diagnose"
	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/sim"
)

// v25.1's DMS pods are unlabelled, per DPU and owned by the DPU: the
// collector finds them with one extra LIST, and each is classified right.
func TestPerDPUPodsClassified(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server (envtest); skipped under -short")
	}
	if sim.Assets() == "" {
		t.Fatal("envtest binaries not found: export KUBEBUILDER_ASSETS=$(hack/envtest.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o, err := onShared(sim.Options{Version: "v25.1.0", Nodes: 3, Scenario: "healthy=1,rshim-occupied=1,certificate-not-ready=1",
		TimeScale: 0.05, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sim.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	want := map[string]diagnose.Class{}
	mix, _ := sim.ParseMix("healthy=1,rshim-occupied=1,certificate-not-ready=1")
	for i, s := range mix.Assign(len(c.Nodes)) {
		want[c.Nodes[i]] = map[sim.Scenario]diagnose.Class{sim.Healthy: diagnose.ClassHealthy,
			sim.RshimOccupied: diagnose.ClassRshimOccupied, sim.CertificateNotReady: diagnose.ClassCertificateNotReady}[s]
	}

	var (
		d    *diagnose.Diagnosis
		b    *evidence.Bundle
		last string
	)
	for {
		b, _, err = collect(t, c.Config, evidence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		d = diagnose.Diagnose(b)
		last = ""
		for _, p := range d.Pods {
			if p.Class != want[p.Node] {
				last += " " + p.Name + "=" + string(p.Class) + "(" + p.State + ")"
			}
		}
		if len(d.Pods) == len(want) && last == "" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d pods, not classified as wanted:%s", len(d.Pods), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if b.Install.Version != "v25.1.0" {
		t.Errorf("version %q from %q", b.Install.Version, b.Install.VersionSource)
	}
	// The pods' kubectl-free release needs no access reviews, and the
	// request count does not grow with the pods: one labelled LIST, one
	// unlabelled.
	if len(b.Access) != 0 {
		t.Errorf("access checks on a release without dms-init: %+v", b.Access)
	}
	for _, p := range b.Pods {
		if !strings.HasSuffix(p.Name, "-dms") || p.Component != "" || !strings.HasPrefix(p.Name, p.Node+"-") {
			t.Errorf("pod %s on %q (component %q)", p.Name, p.Node, p.Component)
		}
	}
	for _, f := range d.Findings {
		switch f.Class {
		case diagnose.ClassRBACForbidden, diagnose.ClassAPIServerUnreachable, diagnose.ClassNoDPUFound, diagnose.ClassStatusSubresourceSkew:
			t.Errorf("dms-init class on v25.1: %+v", f)
		case diagnose.ClassCertificateNotReady:
			dpu := strings.TrimSuffix(f.Pods[0], "-dms")
			if !strings.Contains(evidenceText(f), dpf.SecretName(dpu)) || !strings.Contains(f.NextStep, dpf.CertificateName(dpu)) {
				t.Errorf("certificate finding names the node's objects, not the DPU's:\n%s\n%s", evidenceText(f), f.NextStep)
			}
		}
	}
	// Without the label the namespace LIST is the only way: no pod is
	// asked about one by one.
	_, budget, err := collect(t, c.Config, evidence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var lists []string
	for _, r := range budget.Records() {
		if strings.HasSuffix(r.Path, "/pods") || strings.Contains(r.Path, "/pods/") {
			lists = append(lists, r.Method+" "+r.Path+"?"+r.Query)
		}
	}
	if len(lists) != 2 {
		t.Errorf("%d pod requests, want the labelled and the unlabelled LIST: %v", len(lists), lists)
	}
}
