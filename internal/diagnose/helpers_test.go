package diagnose

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
)

// want is what one fixture must produce for one class.
type want struct {
	code      string
	pods      []string // primary pods, after Diagnose
	secondary []string
	fixable   bool
	missing   []string // access.Request.String() of Missing, in order
	evidence  []string // substrings each found in some evidence text
	summary   string   // substring of the summary
	next      string   // substring of the next step
}

// of returns the classifier of a class.
func of(c Class) Classifier {
	i := slices.IndexFunc(All(), func(x Classifier) bool { return x.Class() == c })
	return All()[i]
}

func load(t *testing.T, file string) *evidence.Bundle {
	t.Helper()
	b, err := evidence.Load(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expect runs the classifier and Diagnose on a fixture and checks the
// class's finding; w == nil means the class must not claim any pod.
func expect(t *testing.T, c Classifier, file string, w *want) {
	t.Helper()
	b := load(t, file)
	d := Diagnose(b)
	var got *Finding
	for i := range d.Findings {
		f := &d.Findings[i]
		if f.Class == c.Class() && (w == nil || f.Code == w.code) {
			got = f
			break
		}
	}
	if w == nil {
		if got != nil && len(got.Pods) > 0 {
			t.Fatalf("%s: %s claims pods %v; want none", file, c.Class(), got.Pods)
		}
		for _, p := range d.Pods {
			if p.Class == c.Class() {
				t.Fatalf("%s: pod %s classified %s; want another class", file, p.Name, p.Class)
			}
		}
		return
	}
	if got == nil {
		t.Fatalf("%s: no %s finding %s; findings: %+v", file, c.Class(), w.code, d.Findings)
	}
	if len(c.Classify(b)) == 0 {
		t.Fatalf("%s: classifier %s returned nothing on its own", file, c.ID())
	}
	if !slices.Equal(got.Pods, w.pods) {
		t.Errorf("%s: pods %v, want %v", file, got.Pods, w.pods)
	}
	if !slices.Equal(got.SecondaryPods, w.secondary) {
		t.Errorf("%s: secondary pods %v, want %v", file, got.SecondaryPods, w.secondary)
	}
	if got.Fixable != w.fixable {
		t.Errorf("%s: fixable %t, want %t", file, got.Fixable, w.fixable)
	}
	var missing []string
	for _, r := range got.Missing {
		missing = append(missing, r.String())
	}
	if !slices.Equal(missing, w.missing) {
		t.Errorf("%s: missing\n  %s\nwant\n  %s", file, strings.Join(missing, "\n  "), strings.Join(w.missing, "\n  "))
	}
	for _, e := range w.evidence {
		found := false
		for _, ev := range got.Evidence {
			found = found || strings.Contains(ev.Text, e) || strings.Contains(ev.Source, e)
		}
		if !found {
			t.Errorf("%s: no evidence mentions %q; evidence: %+v", file, e, got.Evidence)
		}
	}
	if !strings.Contains(got.Summary, w.summary) {
		t.Errorf("%s: summary %q lacks %q", file, got.Summary, w.summary)
	}
	if !strings.Contains(got.NextStep, w.next) {
		t.Errorf("%s: next step %q lacks %q", file, got.NextStep, w.next)
	}
	for _, p := range w.pods {
		for _, r := range d.Pods {
			if r.Name == p && r.Class != c.Class() {
				t.Errorf("%s: pod %s primary class %s, want %s", file, p, r.Class, c.Class())
			}
		}
	}
}
