// Package fanout runs independent API requests side by side, bounded: the
// one fan-out every stage uses (errgroup with a limit).
package fanout

import "golang.org/x/sync/errgroup"

// Limit is how many requests dpfdoctor sends at once by default: enough to
// hide round trips, well inside API Priority and Fairness' seats for one
// client.
const Limit = 16

// Each runs fn for every index in [0, n), at most limit at a time (Limit
// when limit <= 0), and returns the first error once all have finished.
func Each(n, limit int, fn func(i int) error) error {
	var g errgroup.Group
	if limit <= 0 {
		limit = Limit
	}
	g.SetLimit(limit)
	for i := 0; i < n; i++ {
		g.Go(func() error { return fn(i) })
	}
	return g.Wait()
}
