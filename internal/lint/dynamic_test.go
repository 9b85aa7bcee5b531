package lint

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
	"github.com/dpfdoctor/dpfdoctor/internal/rbac"
)

func TestNewDynamicRun(t *testing.T) {
	get := access.Request{Verb: "get", Group: "provisioning.dpu.nvidia.com", Resource: "dpudevices", Namespace: "ns"}
	create := get
	create.Verb = "create"
	static := &Report{Findings: []Finding{
		{Line: 1, Request: get, NamePattern: "${serial}", Certainty: Certain, Decision: rbac.Decision{Allowed: true}},
		{Line: 2, Request: create, Certainty: Possible, Decision: rbac.Decision{Allowed: true}},
		{Line: 3, Request: access.Request{Verb: "get", Resource: "nodes", Name: "n1"}, Certainty: Certain},
	}}
	named := func(r access.Request, name string) access.Request { r.Name = name; return r }
	secret := access.Request{Verb: "get", Resource: "secrets", Namespace: "ns", Name: "s"}
	version := access.Request{Verb: "get", NonResourceURL: "/version"}
	run := NewDynamicRun(static, "s.sh", []string{"--x"}, 1, nil, []Observed{
		{Request: named(get, "mt1"), Allowed: true, Code: 404},
		{Request: named(get, "mt1"), Allowed: true, Code: 404},
		{Request: named(create, "mt1"), Allowed: true, Code: 201},
		{Request: access.Request{Verb: "get", Resource: "nodes", Name: "n2"}, Allowed: true, Code: 200}, // another node: not predicted
		{Request: secret, Code: 403},
		{Request: version, Allowed: true, Code: 200}, // kubectl's own, not predicted
	})
	if o := run.Calls[0].Observed; len(o) != 1 || o[0].Count != 2 {
		t.Errorf("get by name pattern: %+v", o)
	}
	if o := run.Calls[1].Observed; len(o) != 1 || o[0].Request.Name != "mt1" {
		t.Errorf("create matches any name: %+v", o)
	}
	if len(run.Calls[2].Observed) != 0 {
		t.Errorf("node n2 matched n1: %+v", run.Calls[2].Observed)
	}
	if len(run.Missed) != 2 || run.Missed[0].Request.Name != "n2" || run.Missed[1].Request != secret || run.Denied != 1 {
		t.Errorf("missed %+v, denied %d", run.Missed, run.Denied)
	}
	r := &DynamicReport{Runs: []DynamicRun{run}}
	if !r.Failed() {
		t.Error("a miss must fail")
	}
	var text, sarif, js bytes.Buffer
	for _, w := range []struct {
		buf    *bytes.Buffer
		format string
	}{{&text, FormatText}, {&sarif, FormatSARIF}, {&js, FormatJSON}} {
		if err := WriteDynamic(w.buf, r, w.format, "test", 3); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(text.String(), "STATIC MISS") || !strings.Contains(text.String(), "FAILED: 1 run, 1 observed request denied, 2 requests static analysis missed") {
		t.Errorf("text:\n%s", text.String())
	}
	var doc struct {
		Runs []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(sarif.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, res := range doc.Runs[0].Results {
		ids[res.RuleID]++
	}
	if ids[RuleObservedDenied] != 1 || ids[RuleStaticMiss] != 2 {
		t.Errorf("sarif rules %v", ids)
	}
	var back DynamicReport
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Runs[0].Missed) != 2 {
		t.Errorf("json: %v %+v", err, back)
	}
}
