package apply_test

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/faultproxy"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
)

// randomFaults draws one to three faults: dropped connections, 429 with
// Retry-After, 500, 503 and delays, on the nth request, every request after
// the nth, or writes only.
func randomFaults(rng *rand.Rand) ([]*faultproxy.Rule, string) {
	var rules []*faultproxy.Rule
	var desc []string
	for i := 0; i < 1+rng.Intn(3); i++ {
		k := int64(rng.Intn(10))
		var match func(int64, *http.Request) bool
		where := ""
		switch rng.Intn(3) {
		case 0:
			match, where = faultproxy.Nth(k+1), fmt.Sprintf("request %d", k+1)
		case 1:
			match, where = faultproxy.AfterN(k), fmt.Sprintf("requests after %d", k)
		default:
			w := faultproxy.Writes()
			match, where = func(n int64, r *http.Request) bool { return n > k && w(n, r) }, fmt.Sprintf("writes after %d", k)
		}
		var a faultproxy.Action
		switch rng.Intn(5) {
		case 0:
			a = faultproxy.Action{Drop: true}
		case 1:
			a = faultproxy.Action{Status: http.StatusTooManyRequests, RetryAfter: 1}
		case 2:
			a = faultproxy.Action{Status: http.StatusInternalServerError}
		case 3:
			a = faultproxy.Action{Status: http.StatusServiceUnavailable}
		default:
			a = faultproxy.Action{Delay: time.Duration(10+rng.Intn(50)) * time.Millisecond}
		}
		rules = append(rules, &faultproxy.Rule{Match: match, Action: a, Times: int64(1 + rng.Intn(3))})
		desc = append(desc, fmt.Sprintf("%+v on %s", a, where))
	}
	return rules, strings.Join(desc, "; ")
}

// Property: whatever faults hit `fix --apply` and `rollback` (drops, delays,
// 429/500/503), the cluster ends with the full grant or none after apply,
// with none after a rollback that says it succeeded, and a later clean
// rollback always restores the exact pre-state and is idempotent.
func TestApplyAndRollbackUnderRandomFaults(t *testing.T) {
	f := setupAlone(t)
	ctx := context.Background()
	p, err := faultproxy.Start(f.c.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	faulty, err := kube.New(p.Config, f.c.Namespace, nil)
	if err != nil {
		t.Fatal(err)
	}
	clean := &apply.Applier{Clients: admin(t, f.c)}
	var applied, failed, rolledBackUnderFaults int
	for seed := int64(1); seed <= 24; seed++ {
		rng := rand.New(rand.NewSource(seed))
		rules, desc := randomFaults(rng)
		p.SetRules(rules...)
		b := apply.NewBackup(t.TempDir(), f.plan, "", nil)
		_, err := (&apply.Applier{Clients: faulty, Backoff: 20 * time.Millisecond}).Apply(ctx, b)
		p.SetRules()
		allowed, objects := f.grant(t)
		full := allowed == len(f.plan.Expect) && objects == 2
		none := allowed == 0 && objects == 0
		switch {
		case err == nil && !full:
			t.Fatalf("seed %d (%s): apply succeeded with a partial grant: %d allowed, %d objects", seed, desc, allowed, objects)
		case err != nil && !none:
			t.Fatalf("seed %d (%s): apply failed (%v) and left %d allowed, %d objects", seed, desc, err, allowed, objects)
		case err == nil:
			applied++
		default:
			failed++
		}
		if !b.Created() {
			continue
		}
		rules, desc2 := randomFaults(rng)
		p.SetRules(rules...)
		_, rerr := (&apply.Applier{Clients: faulty, Backoff: 20 * time.Millisecond}).Rollback(ctx, b.Dir)
		p.SetRules()
		if a, o := f.grant(t); rerr == nil && (a != 0 || o != 0) {
			t.Fatalf("seed %d (%s / %s): rollback reported success but %d allowed, %d objects remain", seed, desc, desc2, a, o)
		} else if rerr == nil {
			rolledBackUnderFaults++
		}
		for i := 0; i < 2; i++ {
			if _, err := clean.Rollback(ctx, b.Dir); err != nil {
				t.Fatalf("seed %d: clean rollback #%d: %v", seed, i+1, err)
			}
			if a, o := f.grant(t); a != 0 || o != 0 {
				t.Fatalf("seed %d: clean rollback #%d left %d allowed, %d objects", seed, i+1, a, o)
			}
		}
	}
	t.Logf("%d applies succeeded, %d failed cleanly, %d rollbacks succeeded under faults; %d faults injected", applied, failed, rolledBackUnderFaults, p.Injected())
	if applied == 0 || failed == 0 || p.Injected() == 0 {
		t.Fatalf("the seeds did not exercise both outcomes (applied %d, failed %d, injected %d)", applied, failed, p.Injected())
	}
}
