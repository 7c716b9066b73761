package twin

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Shadow mode (ServiceConfig.Shadow, docs/shadow.md): the twin follows a
// live run's observed invocations on strata.telemetry.v1 instead of a
// replay's arrivals, simulates each tick under the decisions the agents
// published in time for it, and scores them; it writes no telemetry of its
// own and never waits for a decision batch.

// errInvalidArrival marks a live observation that cannot be simulated.
var errInvalidArrival = errors.New("invalid live observation")

// liveArrival converts an observation of the run from strata.telemetry.v1
// to an arrival; ok is false for a record of another run or one the twin
// wrote itself (Source "twin"). An observation without app or func, or with
// a negative duration, is an error wrapping errInvalidArrival.
func liveArrival(value []byte, runID string) (a Arrival, ok bool, err error) {
	var o stratapb.Observation
	if err := proto.Unmarshal(value, &o); err != nil {
		return Arrival{}, false, fmt.Errorf("%w: decoding: %w", errInvalidArrival, err)
	}
	in := o.GetArrival()
	if in.GetRunId() != runID || o.GetSource() == "twin" {
		return Arrival{}, false, nil
	}
	switch {
	case in.GetApp() == "" || in.GetFunc() == "":
		return Arrival{}, false, fmt.Errorf("%w: invocation %q has no app or func", errInvalidArrival, in.GetInvocationId())
	case in.GetDurationUs() < 0:
		return Arrival{}, false, fmt.Errorf("%w: invocation %q has a negative duration", errInvalidArrival, in.GetInvocationId())
	}
	return Arrival{ID: in.GetInvocationId(), App: in.GetApp(), Func: in.GetFunc(), StartUS: in.GetStartUs(),
		DurationUS: in.GetDurationUs(), Row: in.GetRow()}, true, nil
}

// shadowDecisions returns the decisions to apply at tick k in shadow mode,
// without waiting for any: for each layer whose interval i starts at k,
// the complete batches that have arrived for intervals ≤ i and newer than
// the last one applied, merged into one batch stamped with interval i (a
// newer batch's row wins over an older one's for the same entity). A batch
// for an earlier interval that completed after that interval's first tick
// was evaluated is late: it takes effect now, and is counted. A layer with
// no batch keeps its decisions in force. Incomplete batches of earlier
// intervals are dropped: their interval is over and a shard that never
// came would hold them forever. Slower layers take effect only at their
// interval's first tick, so a late tactical or strategic batch waits for
// the next hour or day: a switch within an interval would blur the
// interval's reward and transition.
//
// late receives, per layer and interval, the entities whose decision was
// taken late: their rewards are scored, but they yield no transition (the
// decision was made from an older state than the interval's).
func (s *Service) shadowDecisions(k, startTick int64, late map[batchKey]map[FuncID]bool) []*schemas.DecisionBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*schemas.DecisionBatch
	for _, l := range s.cfg.Layers {
		per := l.OperationalTicks()
		if k%per != 0 {
			continue
		}
		i := k / per
		last, hasLast := s.applied[l]
		var ready []*pendingBatch
		for bk, p := range s.batches {
			if bk.layer != l || bk.tick > i {
				continue
			}
			complete := p.complete()
			if !complete && bk.tick == i {
				continue // may still complete: then it is late, for the next interval
			}
			delete(s.batches, bk)
			switch {
			case !complete:
				s.log.Debug("dropping an incomplete decision batch whose interval is over", "layer", l, "interval", bk.tick,
					"shards", len(p.shards), "of", p.n)
			case hasLast && bk.tick <= last:
				s.log.Debug("dropping a decision batch superseded by a newer one", "layer", l, "interval", bk.tick, "applied", last)
			default:
				ready = append(ready, p)
			}
		}
		if len(ready) == 0 {
			continue
		}
		slices.SortFunc(ready, func(a, b *pendingBatch) int { return cmpInt(a.merged.Header.Tick, b.merged.Header.Tick) })
		merged := &schemas.DecisionBatch{Header: schemas.BatchHeader{RunID: s.cfg.RunID, Layer: l, Tick: i,
			TickStartUS: k * grid.OperationalTickUS, NShards: 1}}
		newer := map[FuncID]bool{}
		for j := len(ready) - 1; j >= 0; j-- {
			b := ready[j].merged
			isLate := b.Header.Tick < i
			if isLate && b.Header.Tick*per >= startTick {
				s.stats.LateDecisionBatches++
				s.log.Info("applying a late decision batch", "layer", l, "interval", b.Header.Tick, "at", i)
			}
			var taken []FuncID
			for _, r := range b.Rows {
				id := FuncID{r.App, r.Func}
				if newer[id] {
					continue
				}
				merged.Rows = append(merged.Rows, r)
				taken = append(taken, id)
				if isLate {
					lk := batchKey{l, i}
					if late[lk] == nil {
						late[lk] = map[FuncID]bool{}
					}
					late[lk][id] = true
				}
			}
			for _, id := range taken {
				newer[id] = true
			}
		}
		s.applied[l] = ready[len(ready)-1].merged.Header.Tick
		out = append(out, merged)
	}
	return out
}

// dropLateTransitions removes from trs the transitions of decisions taken
// late (shadowDecisions) and forgets the late entities of the intervals
// before tick k's; it returns how many it removed.
func dropLateTransitions(trs []*stratapb.Transition, late map[batchKey]map[FuncID]bool, k int64) ([]*stratapb.Transition, int64) {
	n := len(trs)
	trs = slices.DeleteFunc(trs, func(tr *stratapb.Transition) bool {
		return late[batchKey{schemas.Layer(tr.Layer), tr.Tick}][FuncID{tr.App, tr.Func}]
	})
	for bk := range late {
		if bk.tick < k/bk.layer.OperationalTicks() {
			delete(late, bk)
		}
	}
	return trs, int64(n - len(trs))
}
