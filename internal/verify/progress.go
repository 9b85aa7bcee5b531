package verify

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// progress prints recovery progress: one line rewritten in place on a
// terminal, plain lines (at most one a second, and only on change)
// otherwise.
type progress struct {
	w        io.Writer
	tty      bool
	now      func() time.Time
	last     string
	lastAt   time.Time
	lastSize int
}

func (p *progress) show(res RecoverResult, states map[string]int) {
	if p.w == nil {
		return
	}
	parts := []string{fmt.Sprintf("pods Ready %d/%d", res.Ready, res.Total)}
	for _, k := range slices.Sorted(maps.Keys(states)) {
		if k != "Ready" {
			parts = append(parts, fmt.Sprintf("%s %d", k, states[k]))
		}
	}
	l := strings.Join(parts, " · ")
	elapsed := fmt.Sprintf(" · %ds", int(res.Seconds))
	if p.tty {
		text := l + elapsed
		fmt.Fprintf(p.w, "\r%s%s", text, strings.Repeat(" ", max(0, p.lastSize-len(text))))
		p.lastSize = len(text)
		return
	}
	if l == p.last || p.now().Sub(p.lastAt) < time.Second {
		return
	}
	p.last, p.lastAt = l, p.now()
	fmt.Fprintln(p.w, l+elapsed)
}

func (p *progress) done(res RecoverResult) {
	if p.w == nil {
		return
	}
	if p.tty {
		fmt.Fprintln(p.w)
	}
	status := "all Ready"
	switch {
	case res.TimedOut:
		status = "timed out"
	case res.Ready < res.Total:
		status = "stopped"
	}
	fmt.Fprintf(p.w, "pods Ready %d/%d after %.1fs (%s)\n", res.Ready, res.Total, res.Seconds, status)
}
