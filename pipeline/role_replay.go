package pipeline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
)

// ReplayRole is `strata replay`: the replay producer alone against an
// external Kafka, writing a trace as arrivals, or as telemetry observed on
// its own platform (the open loop).
type ReplayRole struct {
	Common
	Source Source
	Replay ReplayFlags
	// Observed writes to strata.telemetry.v1 as observed on Provider.
	Observed bool
	Provider string
}

// DefaultReplayRole is the replay role's defaults.
func DefaultReplayRole() ReplayRole {
	return ReplayRole{Source: DefaultSource(), Replay: DefaultReplayFlags(), Provider: "azure"}
}

// RegisterFlags registers the role's flags, each name preceded by prefix;
// their defaults are r's values.
func (r *ReplayRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	r.Common.RegisterFlags(fs, prefix)
	r.Source.RegisterFlags(fs, prefix)
	r.Replay.RegisterFlags(fs, prefix)
	fs.BoolVar(&r.Observed, prefix+"observed", r.Observed, "write to strata.telemetry.v1 as observed on the trace's own platform (open loop)")
	fs.StringVar(&r.Provider, prefix+"provider", r.Provider, "with --observed: the platform the trace was recorded on")
}

// Validate reports a missing --kafka.
func (r *ReplayRole) Validate() error {
	if len(r.Brokers) == 0 {
		return errors.New("strata replay needs --kafka (use strata run for the embedded pipeline)")
	}
	return nil
}

// Run replays the trace to Kafka and prints what it wrote to stdout; the
// progress bar and the log go to stderr.
func (r *ReplayRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := prepare(r, stderr, r.LogLevel)
	if err != nil {
		return err
	}
	sp, err := replay.ParseSpeed(r.Replay.Speed)
	if err != nil {
		return err
	}
	reg := NewRegistry()
	if err := ServeMetrics(ctx, r.Metrics, reg); err != nil {
		return err
	}
	src, name, traceLen, closeSrc, err := r.Source.Open()
	if err != nil {
		return err
	}
	defer closeSrc()
	cl, err := kgo.NewClient(append(kafka.CommonOpts(r.Brokers, logger), kgo.ProducerLinger(2*time.Millisecond), kafka.DeliveryTimeout(r.KafkaOutage))...)
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	if err := schemas.ValidatePrefix(r.Names.Prefix); err != nil {
		return err
	}
	n, err := kafka.ResolvePartitions(ctx, cl, r.Partitions, r.Names.Topics()...)
	if err != nil {
		return err
	}
	logger.Info("kafka topics", "partitions", n, "asked", r.Partitions, "prefix", r.Names.Prefix)
	runID := r.Replay.RunID
	if runID == "" {
		runID = NewRunID()
	}
	rcfg := producers.ReplayConfig{RunID: runID, Observed: r.Observed, Provider: r.Provider,
		AllowedLatenessUS: r.Replay.Lateness.Microseconds(), Speed: sp, Partitions: n, SourceName: name, Names: r.Names}
	var pw io.Writer
	if r.Replay.Progress {
		pw = stderr
	}
	bar := NewProgress(pw, traceLen, &rcfg)
	rep, err := producers.NewReplayer(rcfg, cl, logger, reg)
	if err != nil {
		return err
	}
	res, err := rep.Run(ctx, src)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %d invocations (run %s) to %s: %d watermarks, %d dead letters, horizon %.0f s, %.1f s wall, %.0f records/s\n",
		res.Invocations, runID, rep.Topic(), res.Watermarks, res.DeadLetters, float64(res.HorizonUS)/1e6, res.WallSeconds, res.RecordsPerSec)
	return nil
}
