package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/dpfdoctor/dpfdoctor/internal/apply"
	"github.com/dpfdoctor/dpfdoctor/internal/doctor"
	"github.com/dpfdoctor/dpfdoctor/internal/evidence"
	"github.com/dpfdoctor/dpfdoctor/internal/kube"
	"github.com/dpfdoctor/dpfdoctor/internal/outcome"
)

// Exit codes, shared by every command. Documented in README.md and in
// `dpfdoctor --help`.
const (
	ExitOK           = 0
	ExitInternal     = 1
	ExitUsage        = 2
	ExitProblems     = 3
	ExitUnreachable  = 4
	ExitNotInstalled = 5
	ExitNoRights     = 6
	ExitDeclined     = 7
	ExitGuard        = 8
	ExitTimeout      = 124
	ExitInterrupted  = 130
)

// ExitCodesHelp is appended to the root command's help.
const ExitCodesHelp = `Exit codes (every command):
  0    healthy / nothing to do / every check passed
  1    internal error
  2    usage error: bad flag or argument, unknown command, malformed input file
  3    problems found (diagnose findings, lint denials, recovery not reached)
  4    cluster unreachable, bad kubeconfig or authentication failed
  5    DPF not installed in the cluster
  6    you lack rights dpfdoctor needs (the message names them)
  7    declined at the confirmation prompt: nothing was changed
  8    refused: a dpfdoctor guard in repair mode would undo it (rollback --pause-guard); nothing was changed
  124  timed out
  130  interrupted`

// UsageError marks errors caused by how the command was called.
type UsageError struct{ Err error }

func (u UsageError) Error() string { return u.Err.Error() }
func (u UsageError) Unwrap() error { return u.Err }

// Usagef builds a UsageError.
func Usagef(format string, a ...any) error { return UsageError{Err: fmt.Errorf(format, a...)} }

// ExitCode maps an error returned by a command to its exit code.
func ExitCode(err error) int {
	var u UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &u), errors.Is(err, evidence.ErrUnknownNode):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, context.DeadlineExceeded):
		return ExitTimeout
	case errors.Is(err, kube.ErrInsufficientRights):
		return ExitNoRights
	case errors.Is(err, kube.ErrUnreachable), errors.Is(err, kube.ErrUnauthenticated), errors.Is(err, kube.ErrBadKubeconfig):
		return ExitUnreachable
	case errors.Is(err, outcome.ErrNotInstalled):
		return ExitNotInstalled
	case errors.Is(err, outcome.ErrProblems):
		return ExitProblems
	case errors.Is(err, doctor.ErrDeclined):
		return ExitDeclined
	case errors.Is(err, apply.ErrGuardRepairing):
		return ExitGuard
	default:
		return ExitInternal
	}
}
