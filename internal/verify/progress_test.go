package verify

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	res := RecoverResult{Ready: 1, Total: 3, Seconds: 2}
	states := map[string]int{"Ready": 1, "Init:CrashLoopBackOff": 1, "Deleted": 1}

	var plain bytes.Buffer
	p := &progress{w: &plain, now: clock}
	p.show(res, states)
	p.show(res, states) // unchanged: no new line
	now = now.Add(2 * time.Second)
	res.Ready, states = 2, map[string]int{"Ready": 2, "Deleted": 1}
	p.show(res, states)
	p.done(RecoverResult{Ready: 3, Total: 3, Seconds: 4})
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 3 || lines[0] != "pods Ready 1/3 · Deleted 1 · Init:CrashLoopBackOff 1 · 2s" || !strings.Contains(lines[2], "3/3 after 4.0s (all Ready)") {
		t.Fatalf("plain output:\n%s", plain.String())
	}

	var tty bytes.Buffer
	p = &progress{w: &tty, tty: true, now: clock}
	p.show(RecoverResult{Ready: 0, Total: 3}, map[string]int{"Init:CrashLoopBackOff": 3})
	p.show(RecoverResult{Ready: 3, Total: 3}, map[string]int{"Ready": 3})
	p.done(RecoverResult{Ready: 2, Total: 3, TimedOut: true, Seconds: 600})
	out := tty.String()
	if strings.Count(out, "\r") != 2 || !strings.Contains(out, "(timed out)") || strings.Count(out, "\n") != 2 {
		t.Fatalf("tty output: %q", out)
	}
}
