package evidence

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// A kubectl patch --subresource status is asked only when kubectl's read of
// the same object may be allowed for some node.
func TestAnswerAsksAfterReadCallsOnlyWhenReached(t *testing.T) {
	pods := []Pod{dmsPod("w1", "v25.7.0", "TODO", done, failed), dmsPod("w2", "v25.7.0", "TODO", done, failed)}
	patterns := AccessPatterns(pods, "v25.4.0")
	isRead := func(p Pattern) bool {
		return p.Call.Resource == "dpudevices" && p.Call.Subresource == "status" && p.Call.Verb == "get"
	}
	isPatch := func(p Pattern) bool { return p.Call.AfterRead }
	if !slices.ContainsFunc(patterns, isRead) || !slices.ContainsFunc(patterns, isPatch) {
		t.Fatalf("the v25.7 call table has no status read and patch: %+v", patterns)
	}
	for _, tc := range []struct {
		name       string
		read       func(c *AccessCheck)
		wantAsked  bool
		wantMethod string
	}{
		{"read denied", func(c *AccessCheck) {}, false, MethodNotReached},
		{"read allowed", func(c *AccessCheck) { c.Allowed = true }, true, MethodReview},
		{"read allowed for one node by name", func(c *AccessCheck) {
			c.NodeOverrides = []NodeOverride{{Node: "w2", Allowed: true}}
		}, true, MethodReview},
		{"read unanswered", func(c *AccessCheck) { c.Error = "timeout" }, true, MethodReview},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var asked []Pattern
			checks, err := Answer(patterns, 4, func(p Pattern) (AccessCheck, error) {
				mu.Lock()
				asked = append(asked, p)
				mu.Unlock()
				c := p.Question(nil)
				c.Method = MethodReview
				if isRead(p) {
					tc.read(&c)
				}
				return c, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(checks) != len(patterns) {
				t.Fatalf("%d checks for %d patterns", len(checks), len(patterns))
			}
			if got := slices.ContainsFunc(asked, isPatch); got != tc.wantAsked {
				t.Errorf("patch asked: %t, want %t", got, tc.wantAsked)
			}
			for i, p := range patterns {
				if checks[i].Key() != p.Key {
					t.Errorf("check %d is %s, want %s (order)", i, checks[i].Key(), p.Key)
				}
				if isPatch(p) {
					c := checks[i]
					if c.Method != tc.wantMethod || (c.Method == MethodNotReached && (c.Allowed || !c.Known())) {
						t.Errorf("patch check: %+v", c)
					}
				}
			}
		})
	}
}

func TestAnswerStopsOnError(t *testing.T) {
	pods := []Pod{dmsPod("w1", "v25.7.0", "TODO", done, failed)}
	patterns := AccessPatterns(pods, "v25.4.0")
	boom := errors.New("unreachable")
	var mu sync.Mutex
	var asked []Pattern
	_, err := Answer(patterns, 1, func(p Pattern) (AccessCheck, error) {
		mu.Lock()
		asked = append(asked, p)
		mu.Unlock()
		return AccessCheck{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if i := slices.IndexFunc(asked, func(p Pattern) bool { return p.Call.AfterRead }); i >= 0 {
		t.Errorf("the second round ran after the first failed: %s asked", asked[i].Key)
	}
}

// A --node must name a DPU node, a DMS pod's node or a DPUNode; with the
// Node list refused, every name passes.
func TestCheckNodes(t *testing.T) {
	b := &Bundle{
		Install:  Install{Namespace: "dpf-operator-system"},
		Pods:     []Pod{{Name: "w1-dms", Node: "w1"}, {Name: "w2-dms"}},
		Nodes:    []Node{{Name: "w3"}},
		DPUNodes: []Object{{Name: "w4"}, {Name: "dpunode-x", Fields: map[string]string{"status.kubeNodeRef": "w5"}}},
	}
	for _, tc := range []struct {
		names   []string
		gap     bool
		unknown string // "" = accepted
	}{
		{names: nil},
		{names: []string{"w1", "w2", "w3", "w4", "w5"}},
		{names: []string{"w1", "nope", "w1-dms", "nope"}, unknown: `--node "nope", "w1-dms" names`},
		{names: []string{"nope"}, gap: true},
	} {
		c := *b
		if tc.gap {
			c.Gaps = []Gap{{What: "nodes"}}
		}
		err := c.CheckNodes(tc.names)
		switch {
		case tc.unknown == "" && err != nil:
			t.Errorf("%v: %v", tc.names, err)
		case tc.unknown != "" && (!errors.Is(err, ErrUnknownNode) || !strings.Contains(fmt.Sprint(err), tc.unknown) ||
			!strings.Contains(fmt.Sprint(err), "in dpf-operator-system")):
			t.Errorf("%v: got %v, want one naming %s", tc.names, err, tc.unknown)
		}
	}
}
