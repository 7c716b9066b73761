package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/pipeline/roleconf"
)

// newFlagSet returns the flag set of command name, its errors and usage
// written to stderr.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// role is a pipeline role run alone: its flags and its run.
type role interface {
	RegisterFlags(fs *flag.FlagSet, prefix string)
	Run(ctx context.Context, stdout, stderr io.Writer) error
}

// roleMain runs the role def returns (its defaults, afresh for each call)
// as the command name, with a --config file that builds no cloud model.
func roleMain[R any, P interface {
	*R
	role
}](name string, def func() R) mainFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		c := def()
		r := P(&c)
		fs := newFlagSet(name, stderr)
		r.RegisterFlags(fs, "")
		if _, err := roleconf.Parse(fs, args); err != nil {
			return err
		}
		return r.Run(ctx, stdout, stderr)
	}
}

// runMain runs `strata run`: the closed loop in one process, or with
// --observed the open loop.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	r := pipeline.DefaultRunRole()
	fs := newFlagSet("strata run", stderr)
	r.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	if r.Observed && conf.HasCloud() {
		return errors.New("strata run --observed builds no cloud model: its config file cannot hold the reward, model and catalog sections")
	}
	defaultMemoryLimit(!r.Observed && r.Store.ClickHouse == "" && r.Store.File != "")
	r.NewModel, r.RunJSON = conf.NewModel, conf.RunJSON(args)
	return r.Run(ctx, stdout, stderr)
}

// agentMain runs `strata agent`: one layer's policy served over NATS.
func agentMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	r := pipeline.DefaultAgentRole()
	fs := newFlagSet("strata agent", stderr)
	r.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	r.NewModel = conf.NewModel
	return r.Run(ctx, stdout, stderr)
}

// shadowMain runs `strata shadow`: a live run's shadow twin alone.
func shadowMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	r := pipeline.DefaultShadowRole()
	fs := newFlagSet("strata shadow", stderr)
	r.RegisterFlags(fs, "")
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	r.NewModel = conf.NewModel
	return r.Run(ctx, stdout, stderr)
}

// ingestMain runs `strata ingest` (the HTTP service) or `strata ingest load`.
func ingestMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if sub, ok := subcommand("ingest", args[0]); ok {
			return sub.main(ctx, args[1:], stdout, stderr)
		}
	}
	r := pipeline.DefaultIngestRole()
	fs := newFlagSet("strata ingest", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: strata ingest --kafka HOST:PORT [--nats URL] [flags]
       strata ingest load --trace FILE --rate R [flags]

Serves live telemetry over HTTP into strata.telemetry.v1 (POST /v1/telemetry:
JSON; POST /v1/traces: OTLP/HTTP) with wall-clock watermarks, and, with
--nats, the decisions in force (GET /v1/decisions/{app}[/{func}]).
See docs/ingest.md.

`)
		fs.PrintDefaults()
	}
	r.RegisterFlags(fs, "")
	if _, err := roleconf.Parse(fs, args); err != nil {
		return err
	}
	return r.Run(ctx, stdout, stderr)
}

// liveMain runs `strata live`: ingest, features, agents, the decisions API,
// the twin in shadow and the sink in one process, on embedded Kafka, NATS
// and DuckDB unless addresses are given.
func liveMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	r := pipeline.DefaultLiveRole()
	fs := newFlagSet("strata live", stderr)
	r.RegisterFlags(fs, "")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: strata live [flags]

Live mode in one process: the HTTP ingest service (JSON and OTLP telemetry),
the feature consumer on wall-clock ticks, one agent per layer (and its
strata.act.<layer> server), the decisions API, the twin in shadow and the
sink — on an embedded broker, nats-server and DuckDB file unless --kafka,
--nats or --clickhouse are given. See docs/ingest.md.

Stop it with Ctrl-C (SIGINT or SIGTERM): ingest stops accepting and answers
the requests in flight. On the embedded broker, which keeps records in
memory only, it then writes a last watermark past every acknowledged record
and waits, up to --drain-timeout, until the features have closed their
ticks, the shadow twin has scored them and the sink has written its rows;
if the wait runs out it exits with an error saying how many records were
left, and those are lost, as is everything not yet in the tables after a
crash, a second Ctrl-C or SIGKILL. With --kafka an acknowledged record is
durable on Kafka: the back end stops at what it has handled and resumes from
its committed offsets on the next start.

`)
		fs.PrintDefaults()
	}
	conf, err := roleconf.ParseModel(fs, args)
	if err != nil {
		return err
	}
	r.NewModel, r.RunJSON = conf.NewModel, conf.RunJSON(nil)
	return r.Run(ctx, stdout, stderr)
}
