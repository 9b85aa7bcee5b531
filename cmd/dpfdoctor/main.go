// Command dpfdoctor diagnoses and repairs NVIDIA DPF DMS provisioning.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/dpfdoctor/dpfdoctor/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels the work, which then puts back what it must
	// (fix sends the Node events of pods it deleted); a second one ends
	// the process at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	streams := cli.DefaultStreams()
	cmd := cli.NewRootCommand(streams)
	cmd.SetContext(ctx)
	code := cli.Run(cmd, os.Args[1:], streams.ErrOut)
	stop()
	os.Exit(code)
}
