package diagnose

import (
	"fmt"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// scaled returns the mixed fixture grown to n pods: every pod, log, group
// and access check repeated under new node names.
func scaled(b *testing.B, n int) *evidence.Bundle {
	b.Helper()
	base, err := evidence.Load("../cli/testdata/mixed.yaml")
	if err != nil {
		b.Fatal(err)
	}
	out := *base
	out.Pods, out.Logs, out.LogGroups, out.Events, out.Secrets, out.Certificates = nil, nil, nil, nil, nil, nil
	groups := map[string]*evidence.LogGroup{}
	var order []string
	for i := 0; len(out.Pods) < n; i++ {
		rename := func(s string) string { return fmt.Sprintf("%s-%d", s, i) }
		for _, p := range base.Pods {
			q := p
			q.Name, q.Node = rename(p.Node)+"-dms", rename(p.Node)
			out.Pods = append(out.Pods, q)
			out.Secrets = append(out.Secrets, evidence.SecretMeta{Name: q.Node + "-server-secret"})
			if g, ok := base.Group(p.Name); ok {
				ng, seen := groups[g.ID]
				if !seen {
					ng = &evidence.LogGroup{ID: g.ID, Signature: g.Signature, Container: g.Container}
					groups[g.ID] = ng
					order = append(order, g.ID)
				}
				ng.Pods = append(ng.Pods, q.Name)
				if i == 0 {
					ng.Fetched = append(ng.Fetched, g.Fetched...)
				}
			}
		}
		for _, e := range base.Events {
			e.Name = rename(e.Name[:len(e.Name)-4]) + "-dms"
			out.Events = append(out.Events, e)
		}
	}
	for _, l := range base.Logs {
		l.Pod = l.Pod[:len(l.Pod)-4] + "-0-dms"
		out.Logs = append(out.Logs, l)
	}
	for _, id := range order {
		g := groups[id]
		for j := range g.Fetched {
			g.Fetched[j] = g.Fetched[j][:len(g.Fetched[j])-4] + "-0-dms"
		}
		out.LogGroups = append(out.LogGroups, *g)
	}
	return &out
}

// BenchmarkDiagnosePure is Diagnose alone on 5,000 pods: no cluster.
func BenchmarkDiagnosePure(b *testing.B) {
	bundle := scaled(b, 5000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := Diagnose(bundle)
		if d.Summary.Pods != 5000 {
			b.Fatalf("%d pods", d.Summary.Pods)
		}
	}
}
