package experiments

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// ParseDays parses "13-14" or "13" (1-based, inclusive).
func ParseDays(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	if first, err = strconv.Atoi(strings.TrimSpace(a)); err == nil {
		last, err = strconv.Atoi(strings.TrimSpace(b))
	}
	if err != nil || first < 1 || last < first {
		return 0, 0, fmt.Errorf("parsing days %q: want FIRST-LAST, 1-based, e.g. 13-14", s)
	}
	return first, last, nil
}

// Window replays the invocations of Src that start in [FromUS, ToUS),
// shifted by −FromUS so the window starts at trace time 0.
type Window struct {
	Src          replay.Source
	FromUS, ToUS int64
}

// Next returns the window's next invocation.
func (w *Window) Next() (replay.Invocation, error) {
	for {
		in, err := w.Src.Next()
		if err != nil {
			return in, err
		}
		if s := in.StartUS(); s < w.FromUS || s >= w.ToUS {
			continue
		}
		in.EndUS -= w.FromUS
		return in, nil
	}
}

// FullSpeed returns the pipeline configuration of one evaluation,
// training, validation or export run: base's Kafka, NATS, partitions and
// names (embedded when empty), full speed, its own metrics registry.
func FullSpeed(base pipeline.Config, epoch time.Time, latenessUS int64, logger *slog.Logger, runID string) pipeline.Config {
	return pipeline.Config{Brokers: base.Brokers, NATSURL: base.NATSURL, Partitions: base.Partitions, Names: base.Names,
		Speed: replay.Speed(0), Epoch: epoch, LatenessUS: latenessUS, Logger: logger, Registerer: pipeline.NewRegistry(), RunID: runID}
}

// RunWindow runs the closed loop over the invocations of lo.Source that
// start in [fromUS, toUS), replayed from trace time 0 with o.Epoch moved
// by fromUS, so hours of day, weekdays and the carbon series stay those of
// the trace's days; function properties and static-best come from the
// unshifted trace under o.Epoch. Ticks before scoreFromTick are warm-up.
// It returns the source's name and the configuration the run used.
//
// With rec, the run is recorded in rec's store: its row (rec.Row, the
// fields the caller did not set filled in here), its latency histogram per
// scored day and, unless rec.RowOnly, its rewards of the scored days and
// its strategic and tactical decisions (pipeline.Recorder.Apply).
func RunWindow(ctx context.Context, lo pipeline.LoopOptions, o pipeline.Config, fromUS, toUS, scoreFromTick int64, rec *RunRecord) (pipeline.LoopResult, string, pipeline.Config, error) {
	trainEpoch := o.Epoch
	o.Epoch = trainEpoch.Add(time.Duration(fromUS) * time.Microsecond)
	src, name, _, closeSrc, err := lo.Source.Open()
	if err != nil {
		return pipeline.LoopResult{}, "", o, err
	}
	defer closeSrc()
	lc, _, err := pipeline.SetupLoop(ctx, lo, o, name, trainEpoch)
	if err != nil {
		return pipeline.LoopResult{}, name, o, err
	}
	lc.ScoreFromTick = scoreFromTick
	var row *stratapb.Run
	if rec != nil {
		if row, err = rec.row(lo, o, name, trainEpoch, fromUS, toUS, scoreFromTick); err != nil {
			return pipeline.LoopResult{}, name, o, err
		}
		if !rec.RowOnly {
			rec.Rec.Apply(&lc, row, scoreFromTick)
		}
	}
	res, err := pipeline.ClosedLoop(ctx, lc, &Window{Src: src, FromUS: fromUS, ToUS: toUS}, name, toUS-fromUS)
	if err == nil && rec != nil {
		err = rec.Rec.Finish(ctx, row, res.Twin, res.Wall)
	}
	return res, name, o, err
}

// RunRecord records one window's run in a store (RunWindow).
type RunRecord struct {
	// Rec is the store.
	Rec *pipeline.Recorder
	// Row is the run's row as far as the caller knows it: its kind,
	// label, models, episode and configuration. RunWindow fills in the
	// run id, start, source, seeds, policies, placement, epoch and days.
	Row *stratapb.Run
	// RowOnly records the row and the latency histogram only, not the
	// rewards and decisions (a training episode's run).
	RowOnly bool
}

// row returns the run's row: the window's fields (pipeline.RunRow), the
// caller's r.Row over them, and the days.
func (r *RunRecord) row(lo pipeline.LoopOptions, o pipeline.Config, name string, epoch time.Time, fromUS, toUS, scoreFromTick int64) (*stratapb.Run, error) {
	row, err := pipeline.RunRow(lo, o, name, epoch)
	if err != nil {
		return nil, err
	}
	if r.Row != nil {
		proto.Merge(row, r.Row) // the caller's kind, label, models, episode, configuration
	}
	first := int32(fromUS/grid.StrategicTickUS) + 1
	row.FirstDay = first
	row.ScoredFirstDay = first + int32(scoreFromTick/grid.TicksPerDay)
	row.ScoredLastDay = int32((toUS + grid.StrategicTickUS - 1) / grid.StrategicTickUS)
	return row, nil
}
