package verify

import (
	"fmt"
	"slices"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
)

// Pick keeps one request per rule shape and fills up to n with a sample
// that the seed decides: the same seed, the same sample.
func TestPick(t *testing.T) {
	var rs []access.Request
	for i := range 1000 {
		rs = append(rs, access.Request{Verb: "get", Resource: "secrets", Namespace: "ns", Name: fmt.Sprintf("n%04d", i)})
	}
	patch := access.Request{Verb: "patch", Resource: "dpudevices", Subresource: "status", Namespace: "ns"}
	rs = append(rs, patch)
	a, b, c := Pick(rs, 10, 1), Pick(rs, 10, 1), Pick(rs, 10, 2)
	if len(a) != 10 || !slices.Contains(a, patch) || !slices.Contains(a, rs[0]) {
		t.Fatalf("Pick = %v", a)
	}
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatalf("seed 1 twice: %v and %v; seed 2: %v", a, b, c)
	}
	if got := Pick(rs, 0, 1); len(got) != 2 {
		t.Fatalf("n below the shapes: %v", got)
	}
	if got := Pick(rs[:3], 50, 1); len(got) != 3 {
		t.Fatalf("a small set was sampled: %v", got)
	}
}
