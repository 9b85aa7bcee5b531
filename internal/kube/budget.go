// Package kube builds the clients every command uses: explicit QPS/Burst, a
// user agent, a request counter that can also enforce a budget, and the
// mapping from transport and API errors to the sentinels the exit codes use.
package kube

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBudgetExceeded is returned by a Budget's RoundTripper once more requests
// were attempted than the budget allows.
var ErrBudgetExceeded = errors.New("API request budget exceeded")

// Record is one request seen by a Budget.
type Record struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	// Accept tells metadata-only requests (PartialObjectMetadata) apart.
	Accept string `json:"accept,omitempty"`
	Status int    `json:"status,omitempty"`
}

// Budget counts the API requests of every client built for one command, and
// optionally records them. It is safe for concurrent use.
type Budget struct {
	used atomic.Int64
	max  atomic.Int64
	// waited sums the Retry-After the API server answered with (429, or
	// 5xx with the header), which client-go sleeps before it retries.
	waited atomic.Int64

	mu      sync.Mutex
	record  bool
	records []Record
}

// NewBudget returns a Budget allowing max requests (0 = unlimited).
func NewBudget(max int64) *Budget {
	b := &Budget{}
	b.max.Store(max)
	return b
}

// Recording makes the Budget keep every request; used by tests and audits.
func (b *Budget) Recording() *Budget {
	b.mu.Lock()
	b.record = true
	b.mu.Unlock()
	return b
}

// Used returns the number of requests attempted so far; a nil Budget (clients
// built without one) counts none.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Records returns a copy of the recorded requests.
func (b *Budget) Records() []Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Record(nil), b.records...)
}

// Waited is the time the API server asked the clients to wait (429 and
// Retry-After, as API Priority and Fairness answers when it sheds load).
// With client-side rate limiting off (Tune) it is the only wait there is.
func (b *Budget) Waited() time.Duration { return time.Duration(b.waited.Load()) }

// Reset zeroes the counter and drops the records.
func (b *Budget) Reset() {
	b.used.Store(0)
	b.mu.Lock()
	b.records = nil
	b.mu.Unlock()
}

// Wrap is a transport.WrapperFunc: it returns a new RoundTripper around next
// on every call, as rest.Config.Wrap expects.
func (b *Budget) Wrap(next http.RoundTripper) http.RoundTripper {
	return &counting{b: b, next: next}
}

type counting struct {
	b    *Budget
	next http.RoundTripper
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	n := c.b.used.Add(1)
	if max := c.b.max.Load(); max > 0 && n > max {
		return nil, fmt.Errorf("%w: more than %d requests", ErrBudgetExceeded, max)
	}
	resp, err := c.next.RoundTrip(r)
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) {
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			c.b.waited.Add(int64(time.Duration(s) * time.Second))
		}
	}
	c.b.mu.Lock()
	if c.b.record {
		rec := Record{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Accept: r.Header.Get("Accept")}
		if resp != nil {
			rec.Status = resp.StatusCode
		}
		c.b.records = append(c.b.records, rec)
	}
	c.b.mu.Unlock()
	return resp, err
}
