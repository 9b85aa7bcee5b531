package rbac

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
)

// FuzzParseManifests: any input gives a Set or a *ManifestError with a line
// inside the input, never a panic; whatever parses can be evaluated.
func FuzzParseManifests(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("testdata/*.json")
	for _, p := range append(seeds, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("kind: List\napiVersion: v1\nitems: [[[]]]\n"))
	f.Add([]byte("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nrules: [{verbs: ['*'], apiGroups: ['*'], resources: ['*']}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseManifests("fuzz.yaml", data)
		if err != nil {
			me, ok := err.(*ManifestError)
			if !ok {
				t.Fatalf("error %T is not a *ManifestError: %v", err, err)
			}
			if me.Line < 1 {
				t.Fatalf("error line %d < 1: %v", me.Line, err)
			}
			return
		}
		subj := access.ServiceAccount("ns", "sa")
		for _, r := range []access.Request{
			{Verb: "get", Resource: "secrets", Namespace: "ns", Name: "x"},
			{Verb: "get", NonResourceURL: "/version"},
			{Verb: "patch", Group: "g", Resource: "r", Subresource: "status", Namespace: "ns"},
		} {
			s.Evaluate(subj, r)
		}
	})
}
