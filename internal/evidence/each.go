package evidence

import "golang.org/x/sync/errgroup"

// each runs fn for every index in [0, n), at most limit at a time, and
// returns the first error once all have finished.
func each(n, limit int, fn func(i int) error) error {
	var g errgroup.Group
	if limit > 0 {
		g.SetLimit(limit)
	}
	for i := 0; i < n; i++ {
		g.Go(func() error { return fn(i) })
	}
	return g.Wait()
}
