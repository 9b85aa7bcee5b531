package diagnose

import (
	"strings"
	"testing"
)

func TestPodMissing(t *testing.T) {
	for _, tc := range []struct {
		file string
		want *want
	}{
		{"pod_missing/deleted-pod.yaml", &want{
			code: CodePodMissing, pods: nil, fixable: true,
			evidence: []string{"no pod dpf-operator-system/w3-dms on it and no DPUNode dpf-operator-system/w3", "only on a Node event"},
			summary:  "1 node labelled feature.node.kubernetes.io/dpu-enabled has no DMS pod and no DPUNode",
			next:     "dpfdoctor.dev/restarted-at",
		}},
		{"pod_missing/near-miss-dpunode.yaml", nil},
	} {
		t.Run(tc.file, func(t *testing.T) { expect(t, of(ClassPodMissing), tc.file, tc.want) })
	}
}

// The finding names nodes, counts in the summary, and makes the diagnosis
// a problem although every pod is Ready; the rule follows the release.
func TestPodMissingNodesAndVersions(t *testing.T) {
	b := load(t, "pod_missing/deleted-pod.yaml")
	d := Diagnose(b)
	var f, stranded *Finding
	for i := range d.Findings {
		switch d.Findings[i].Code {
		case CodePodMissing:
			f = &d.Findings[i]
		case CodePodStranded:
			stranded = &d.Findings[i]
		}
	}
	if f == nil || strings.Join(f.Nodes, ",") != "w3" {
		t.Fatalf("PodMissing finding %+v, want node w3", f)
	}
	// w4's DPUNode exists: v25.4.0 never re-creates its pod.
	if stranded == nil || strings.Join(stranded.Nodes, ",") != "w4" || stranded.Fixable || stranded.Severity != SeverityError ||
		!strings.Contains(stranded.NextStep, "v25.7 or later") {
		t.Fatalf("%s finding %+v, want node w4, not fixable", CodePodStranded, stranded)
	}
	if d.Summary.DPUNodes != 4 || d.Summary.NodesWithoutPod != 1 || d.Summary.Pods != 2 || d.Summary.Failing != 0 {
		t.Errorf("summary %+v", d.Summary)
	}
	if !d.Problems() {
		t.Error("a DPU node without its pod is a problem")
	}
	for _, tc := range []struct {
		version, rule string
		fixable, none bool
	}{
		{version: "v25.7.0", rule: "by itself", fixable: true},
		{version: "", rule: "unknown"},
		{version: "v25.1.0", none: true},
	} {
		b := load(t, "pod_missing/deleted-pod.yaml")
		b.Install.Version = tc.version
		fs := of(ClassPodMissing).Classify(b)
		if tc.none {
			if len(fs) != 0 {
				t.Errorf("%s: %+v, want none (pods per DPU)", tc.version, fs)
			}
			continue
		}
		if len(fs) != 1 || fs[0].Fixable != tc.fixable || !strings.Contains(fs[0].Evidence[len(fs[0].Evidence)-1].Text, tc.rule) {
			t.Errorf("%q: %+v", tc.version, fs)
		}
	}
}
