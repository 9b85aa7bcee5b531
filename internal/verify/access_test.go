package verify

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

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

// An authorizer that still sees the old rules for its first answers costs
// Access one review a round, not one per request: the first wanted-allowed
// request goes alone until it passes. A request wanted allowed that the
// server keeps denying is asked until Settle has passed and reported.
func TestAccessProbesALaggingAuthorizer(t *testing.T) {
	old := Settle
	Settle = 500 * time.Millisecond
	t.Cleanup(func() { Settle = old })
	var allow []access.Request
	for i := range 7 {
		allow = append(allow, access.Request{Verb: "get", Resource: "secrets", Namespace: "ns", Name: fmt.Sprintf("s%d", i)})
	}
	never := access.Request{Verb: "get", Resource: "secrets", Namespace: "ns", Name: "never"}
	deny := []access.Request{{Verb: "list", Resource: "secrets"}}
	for _, tc := range []struct {
		name      string
		allow     []access.Request
		lag       time.Duration // the authorizer answers from the old rules this long
		wantFewer int           // reviews at most
		wantOK    bool
	}{
		{"settled", allow, 0, 8, true},
		{"lagging", allow, 120 * time.Millisecond, 12, true},
		{"denied", append(slices.Clone(allow), never), 0, 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			var calls atomic.Int32
			start := time.Now()
			cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
				calls.Add(1)
				stale := time.Since(start) < tc.lag
				ra := sar.Spec.ResourceAttributes
				sar.Status.Allowed = !stale && ra.Namespace != "" && ra.Name != "never"
				return true, sar, nil
			})
			subj := access.ServiceAccount("ns", "dms")
			got, err := Access(context.Background(), cs, subj, tc.allow, deny)
			if err != nil {
				t.Fatal(err)
			}
			if n := int(calls.Load()); n > tc.wantFewer || n < len(got) {
				t.Errorf("%d reviews for %d checks, want at most %d", n, len(got), tc.wantFewer)
			}
			for _, c := range got {
				if c.OK() != (tc.wantOK || c.Request != never) {
					t.Errorf("%s: allowed %t, want %t", c.Request, c.Allowed, c.Want)
				}
			}
		})
	}
}
