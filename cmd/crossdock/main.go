// Command crossdock is the crossdock integration hub: one binary that stores
// business events durably on NATS JetStream and delivers them to every
// subscribed system, with retries, back-off and dead-letter queues.
//
// Usage:
//
//	crossdock serve    [--config FILE] [--data DIR] [--listen ADDR] [--nats-url URL]
//	crossdock demo     [--data DIR] [--listen ADDR] [--rate N]
//	crossdock validate --config FILE
//	crossdock bench    [--clients N] [--duration D]
//	crossdock relay    --db DSN (--hub URL | --nats-url URL) [--init] [--batch N] [--poll D]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `crossdock — an event-driven integration hub

Usage:
  crossdock serve    [--config FILE] [--data DIR] [--listen ADDR] [--nats-url URL]
  crossdock demo     [--data DIR] [--listen ADDR] [--rate N]
  crossdock validate --config FILE
  crossdock bench    [--clients N] [--size BYTES] [--duration D] [--only publish,pipeline,latency,memory]
  crossdock relay    --db DSN (--hub URL | --nats-url URL) [--init] [--batch N] [--poll D]

Run "crossdock COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "crossdock:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for usage errors and 1 for everything else.
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run executes one command until it ends or ctx is cancelled (a signal).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "validate":
		return runValidate(args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "relay":
		return runRelay(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}

// newLogger returns a text logger on w at the named level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: use debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
