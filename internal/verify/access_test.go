package verify

import (
	"fmt"
	"testing"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
)

func TestSample(t *testing.T) {
	var rs []access.Request
	for i := 0; i < 100; i++ {
		rs = append(rs, access.Request{Verb: "get", Resource: "secrets", Namespace: "ns", Name: fmt.Sprintf("n%03d", i)})
	}
	rs = append(rs, access.Request{Verb: "patch", Resource: "dpudevices", Subresource: "status", Namespace: "ns"})
	got := Sample(rs, 5)
	if len(got) != 6 || got[0].Name != "n000" || got[4].Name != "n099" || got[5].Verb != "patch" {
		t.Fatalf("Sample = %v", got)
	}
	if len(Sample(rs[:3], 5)) != 3 {
		t.Fatal("a small group was sampled")
	}
}
