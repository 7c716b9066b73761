// Command strata decides where serverless functions run. Each subcommand is
// one role of the pipeline; `strata run` wires them together in one process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second signal forces exit.
		<-ctx.Done()
		stop()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		fmt.Fprintln(os.Stderr, "strata: second signal, exiting now")
		os.Exit(130)
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	code := exitCode(err)
	if code == 1 {
		fmt.Fprintln(os.Stderr, "strata:", err)
	}
	os.Exit(code)
}

// errUsage reports a command line without a command (the usage was
// printed): exit status 2, as for a flag error.
var errUsage = errors.New("no command given")

// exitCode maps run's error to the process's exit status: 0 on success and
// when help was asked for (-h, --help), 2 when no command was given, 1
// otherwise.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		return 1
	}
}

// run dispatches to a command of the command table; it is what main and
// the in-process tests call.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage())
		return nil
	}
	c, ok := findCommand(commands(), args[0])
	if !ok {
		fmt.Fprint(stderr, usage())
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.main(ctx, args[1:], stdout, stderr)
}

// embeddedMemoryLimit is the Go soft memory limit of `strata run` and
// `strata bench` unless GOMEMLIMIT says otherwise. They host the embedded
// broker and nats-server too; without a limit the Go GC lets the heap grow
// to twice the live data. The closed loop once kept ~0.8 GB live on the
// 14-day trace — the brokers' logs — and thrashed under this limit; since
// the embedded broker frees consumed records (4 MiB segments, trimmed) and
// its state streams keep 32 MiB, its live heap stays near 250 MB and the
// 14-day run peaks at 770 MB RSS with the limit (README, Performance).
const embeddedMemoryLimit = 768 << 20

// embeddedGCPercent is their GOGC unless the environment sets one. At
// Go's default of 100 the collector ran whenever the heap reached twice
// the ~250 MB live data, well under the soft limit above; at 300 it uses
// that headroom (the limit still bounds the heap) and collects about half
// as often: the 2-day closed loop took 10.0 s instead of 12.4 s, the 14-day
// run 109.7 s instead of 115.1 s at 864 MB peak RSS instead of 746 MB
// (README, Performance).
const embeddedGCPercent = 300

// duckDBMemoryLimit is the Go soft memory limit of a `strata run` that
// writes a DuckDB store in its own process: DuckDB's buffer pool
// (store.DuckDBMemoryLimit, 256 MB) lives beside the Go heap, and the
// process stays under 1 GiB (README, "Backpressure").
const duckDBMemoryLimit = 512 << 20

// defaultMemoryLimit sets the soft memory limit and GC percentage of
// `strata run` and `strata bench` that GOMEMLIMIT and GOGC leave unset;
// withDuckDB lowers the limit for a process that also holds DuckDB.
func defaultMemoryLimit(withDuckDB bool) {
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := int64(embeddedMemoryLimit)
		if withDuckDB {
			limit = duckDBMemoryLimit
		}
		debug.SetMemoryLimit(limit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(embeddedGCPercent)
	}
}
