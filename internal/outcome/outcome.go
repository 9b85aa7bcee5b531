// Package outcome holds the results that several stages report the same way
// and that the CLI turns into exit codes: problems found, DPF not installed.
package outcome

import "errors"

var (
	// ErrProblems: the command worked and found problems (diagnose findings,
	// lint denials, recovery not reached). Exit code 3.
	ErrProblems = errors.New("problems found")
	// ErrNotInstalled: the cluster has no DPF (no DPFOperatorConfig, or not
	// even its CRDs). Exit code 5.
	ErrNotInstalled = errors.New("DPF not installed")
)
