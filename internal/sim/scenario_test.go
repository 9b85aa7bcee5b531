package sim

import (
	"os"

	"github.com/go-logr/logr"
	"reflect"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"testing"
)

func TestMixAssign(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want map[Scenario]int
	}{
		{"hypothetical-secrets-forbidden", 8, map[Scenario]int{HypotheticalSecretsForbidden: 8}},
		{"hypothetical-secrets-forbidden=6,healthy=2", 8, map[Scenario]int{HypotheticalSecretsForbidden: 6, Healthy: 2}},
		{"hypothetical-secrets-forbidden=3,healthy", 8, map[Scenario]int{HypotheticalSecretsForbidden: 3, Healthy: 5}},
		{"healthy,no-dpu-found", 5, map[Scenario]int{Healthy: 2, NoDPUFound: 3}},
		{"healthy=1,rshim-occupied=1", 4, map[Scenario]int{Healthy: 1, RshimOccupied: 3}},
	} {
		m, err := ParseMix(tc.in)
		if err != nil {
			t.Fatalf("ParseMix(%q): %v", tc.in, err)
		}
		got := map[Scenario]int{}
		for _, s := range m.Assign(tc.n) {
			got[s]++
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q over %d nodes = %v, want %v", tc.in, tc.n, got, tc.want)
		}
	}
	for _, bad := range []string{"", "nope", "healthy=x", "healthy=-1", "healthy=1,healthy=2"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) succeeded", bad)
		}
	}
	m, _ := ParseMix("healthy=3")
	if m.Fits(3) != nil || m.Fits(2) == nil {
		t.Errorf("healthy=3 fits 3 nodes and not 2: %v, %v", m.Fits(3), m.Fits(2))
	}
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	for i := range planes {
		planes[i].Stop()
	}
	os.Exit(code)
}
