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

const usage = `strata — multi-cloud serverless placement with hierarchical learning agents

Usage: strata <command> [flags]

Commands:
  run        replay a trace through the closed loop in one process — twin,
             features, policy workers (embedded Kafka and NATS unless
             addresses are given); --observed for the open loop
  replay     produce a trace into Kafka (strata.invocations.v1, or
             strata.telemetry.v1 with --observed)
  features   window strata.telemetry.v1 into state batches on NATS
  agent      serve one layer's policy on NATS: a run's tick batches (--act: strata.act.<layer>)
  sink       write decisions, rewards and outcomes from Kafka to ClickHouse or DuckDB
  sql        query the decision and reward tables (DuckDB file or ClickHouse)
  eval       --baselines: compare policies one layer at a time on evaluation days
  trace      synth | stats: generate a synthetic trace, print trace statistics
  export     sequences: operational state of a closed-loop run as LSTM samples (Parquet)
  learner    train DQN and PPO on a run's transitions, publish checkpoints to JetStream
  train      train the learned agents: closed-loop episodes over days 1–10, validation on 11–12
  train-lstm train the operational LSTM on exported sequences, compare with moving-average
  ingest     serve live telemetry over HTTP (JSON, OTLP) into strata.telemetry.v1,
             and the decisions API; ingest load: send a trace as live telemetry
  live       live mode in one process: ingest, features, agents, decisions API,
             shadow twin, sink (embedded Kafka, NATS and DuckDB by default)
  bench      pipeline | twin | loop | sink: throughput against a ceiling measured in the same run

Run 'strata <command> -h' for the flags of a command.
`

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

// run dispatches to a subcommand; it is what main and the in-process tests
// call.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "run":
		return runMain(ctx, args[1:], stdout, stderr)
	case "replay":
		return replayMain(ctx, args[1:], stdout, stderr)
	case "features":
		return featuresMain(ctx, args[1:], stdout, stderr)
	case "agent":
		return agentMain(ctx, args[1:], stdout, stderr)
	case "learner":
		return learnerMain(ctx, args[1:], stdout, stderr)
	case "train":
		return trainMain(ctx, args[1:], stdout, stderr)
	case "trace":
		return traceRun(ctx, args[1:], stdout, stderr)
	case "sink":
		return sinkMain(ctx, args[1:], stdout, stderr)
	case "sql":
		return sqlMain(ctx, args[1:], stdout, stderr)
	case "eval":
		return evalMain(ctx, args[1:], stdout, stderr)
	case "export":
		return exportMain(ctx, args[1:], stdout, stderr)
	case "train-lstm":
		return trainLSTMMain(ctx, args[1:], stdout, stderr)
	case "ingest":
		return ingestMain(ctx, args[1:], stdout, stderr)
	case "live":
		return liveMain(ctx, args[1:], stdout, stderr)
	case "bench":
		defaultMemoryLimit()
		return benchMain(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// embeddedMemoryLimit is the Go soft memory limit of the all-in-one open
// loop (bench, run --observed) unless GOMEMLIMIT says otherwise. It hosts
// the embedded broker and nats-server too; without a limit the Go GC lets
// the heap grow to twice the live data, which for a 14-day replay passes
// 1 GiB. With it the GC works harder near the limit; measured on the 14-day
// benchmark it costs no throughput. The closed loop's live heap is larger
// (~0.8 GB on the 14-day trace): under this limit its GC thrashed and the
// run crawled, so it gets none.
const embeddedMemoryLimit = 768 << 20

func defaultMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(embeddedMemoryLimit)
	}
}
