package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/strata-rl/strata/pipeline"
)

// mainFunc runs a command with the arguments after its name.
type mainFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// command is one entry of strata's command table, which the dispatch, the
// usage and the help test all read: a command cannot be dispatched
// without being listed.
type command struct {
	name string
	// summary is the command's one-line description in the usage.
	summary string
	// main runs the command. A group's main (group set) only dispatches
	// to its subcommands and prints the group's usage; another command's
	// main is the command, and a subcommand named first is dispatched
	// before it (strata ingest load).
	main  mainFunc
	group bool
	subs  []command
}

// commands returns the command table. It is a function, not a variable:
// the group mains read it, and a variable would refer to itself through
// them.
func commands() []command {
	return []command{
		{name: "run", summary: "replay a trace through the closed loop in one process (--observed: the open loop)", main: runMain},
		{name: "replay", summary: "produce a trace into Kafka: invocations, or telemetry with --observed", main: roleMain("strata replay", pipeline.DefaultReplayRole)},
		{name: "features", summary: "window strata.telemetry.v1 into state batches on NATS", main: roleMain("strata features", pipeline.DefaultFeaturesRole)},
		{name: "agent", summary: "serve one layer's policy on NATS: a run's ticks, and single decisions with --act", main: agentMain},
		{name: "sink", summary: "write decisions, rewards and outcomes from Kafka to ClickHouse or DuckDB", main: roleMain("strata sink", pipeline.DefaultSinkRole)},
		{name: "sql", summary: "query the decision and reward tables (DuckDB file or ClickHouse)", main: sqlMain},
		{name: "eval", summary: "compare the baselines (--baselines) or trained models (--models) on evaluation days", main: evalMain},
		{name: "report", summary: "run (or find in the store) an evaluation and write report.md with figures and summary.json", main: reportMain},
		{name: "bounds", summary: "how far causal tactical rules get against the per-hour hindsight oracle, from the twin's counterfactuals", main: boundsMain},
		{name: "trace", group: true, main: traceRun, subs: []command{
			{name: "synth", summary: "write a synthetic trace calibrated to the Azure Functions 2021 trace", main: traceSynth},
			{name: "stats", summary: "print statistics of a trace in the Azure 2021 format", main: traceStats},
		}},
		{name: "export", group: true, main: exportMain, subs: []command{
			{name: "sequences", summary: "the operational state of a closed-loop run as LSTM samples (Parquet)", main: exportSequencesMain},
			{name: "dataset", summary: "the seed's Phase-1 dataset: 47 features per invocation, train/valid/test Parquet, scaler, profiles", main: exportDatasetMain},
		}},
		{name: "learner", summary: "train DQN and PPO on a run's transitions, publish checkpoints to JetStream", main: roleMain("strata learner", pipeline.DefaultLearnerRole)},
		{name: "train", summary: "train the learned agents: closed-loop episodes on days 1–10, validation on 11–12", main: trainMain},
		{name: "models", summary: "list and inspect checkpoints: train directories, files, the JetStream registry", main: modelsMain},
		{name: "train-lstm", summary: "train the operational LSTM on exported sequences", main: trainLSTMMain},
		{name: "ingest", summary: "serve live telemetry over HTTP (JSON, OTLP) into Kafka, and the decisions API", main: ingestMain, subs: []command{
			{name: "load", summary: "send a trace to strata ingest as live telemetry at a target rate", main: roleMain("strata ingest load", pipeline.DefaultLoadRole)},
		}},
		{name: "live", summary: "live mode in one process: ingest, features, agents, decisions API, shadow twin, sink", main: liveMain},
		{name: "shadow", summary: "a live run's shadow twin alone, beside ingest, features and agent processes on external Kafka and NATS", main: shadowMain},
		{name: "bench", group: true, main: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			defaultMemoryLimit(false)
			return benchMain(ctx, args, stdout, stderr)
		}, subs: []command{
			{name: "pipeline", summary: "replay → features → NATS throughput against raw franz-go produce", main: benchPipelineMain},
			{name: "twin", summary: "pure twin Engine arrivals/s against the replay source alone", main: benchTwinMain},
			{name: "loop", summary: "closed-loop ticks/s against the pure twin Engine on the same days", main: benchLoopMain},
			{name: "sink", summary: "sink rows/s into ClickHouse or DuckDB against a raw batch insert", main: benchSinkMain},
			{name: "ingest", summary: "strata ingest over HTTP against raw franz-go produce, with request latency", main: benchIngestMain},
		}},
	}
}

// findCommand returns the entry of cmds named name.
func findCommand(cmds []command, name string) (command, bool) {
	for _, c := range cmds {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// subcommand returns the subcommand name of the command group.
func subcommand(group, name string) (command, bool) {
	g, ok := findCommand(commands(), group)
	if !ok {
		return command{}, false
	}
	return findCommand(g.subs, name)
}

// runGroup runs the subcommand of group that args[0] names. Without one
// it prints usage to stderr (exit status 2); -h, --help and help print it
// to stdout.
func runGroup(ctx context.Context, group string, args []string, stdout, stderr io.Writer, usage string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	if sub, ok := subcommand(group, args[0]); ok {
		return sub.main(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown %s command %q", group, args[0])
}

// listCommands writes one line per command and subcommand of cmds, with
// its summary in a column.
func listCommands(w *strings.Builder, cmds []command) {
	type line struct{ name, summary string }
	var lines []line
	for _, c := range cmds {
		if !c.group {
			lines = append(lines, line{c.name, c.summary})
		}
		for _, s := range c.subs {
			lines = append(lines, line{c.name + " " + s.name, s.summary})
		}
	}
	width := 0
	for _, l := range lines {
		width = max(width, len(l.name))
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s  %s\n", width, l.name, l.summary)
	}
}

// usage is the top-level usage: every command and subcommand of the
// table, each with its summary.
func usage() string {
	var b strings.Builder
	b.WriteString(`strata — multi-cloud serverless placement with hierarchical learning agents

Usage: strata <command> [subcommand] [flags]

Commands:
`)
	listCommands(&b, commands())
	b.WriteString(`
Every command takes --config FILE: its flags from a YAML file, and for the
commands that build the cloud model its reward, model and catalog sections
(docs/config.md). Run 'strata <command> -h' for the flags of a command.
`)
	return b.String()
}
