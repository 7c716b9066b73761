package lstm

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/strata-rl/strata/schemas"
)

// Name is the policy's registry name.
const Name = "lstm"

// DefaultReuseTicks is how many ticks a function's last window and
// prediction are kept after the tick it was last seen in (PolicyConfig):
// a function in the feature service's active set is in every tick's
// batch, so one that misses four ticks (a minute) has left it.
const DefaultReuseTicks = 4

// PolicyConfig configures a serving policy.
type PolicyConfig struct {
	// Version is reported in every decision row (the checkpoint's version).
	Version string
	// Rule converts predictions into pre-warm counts.
	Rule PrewarmRule
	// ReuseTicks bounds the reuse cache (see Policy): a function not seen
	// in a batch for more than ReuseTicks ticks is forgotten. 0 means
	// DefaultReuseTicks; a negative value turns reuse off, so every
	// prediction is computed (decisions are the same either way).
	ReuseTicks int
}

// DefaultPolicyConfig returns the default pre-warm rule, no version and
// the default reuse bound.
func DefaultPolicyConfig() PolicyConfig { return PolicyConfig{Rule: DefaultPrewarmRule()} }

// PolicyStats counts what a policy did. Every decision row's prediction
// is counted once, in Computed, Reused or Shared.
type PolicyStats struct {
	// Decisions counts decision rows written.
	Decisions uint64
	// NonFiniteInputs counts sequence values that were NaN or ±Inf and
	// were replaced by 0, the missing-value convention of schemas.
	NonFiniteInputs uint64
	// NonFinitePredictions counts rows whose predicted request rate was
	// not finite; they get Prewarm 0 and no Predicted value.
	NonFinitePredictions uint64
	// Computed counts predictions the network computed.
	Computed uint64
	// Reused counts predictions taken from the function's previous
	// decision, whose input window was bitwise the same.
	Reused uint64
	// Shared counts predictions taken from another row of the same batch
	// whose input window was bitwise the same (computed once for all of
	// them: functions idle for the whole window, for instance).
	Shared uint64
	// Evicted counts functions forgotten by the reuse cache.
	Evicted uint64
}

// PredictionCounts returns the running totals of predictions computed,
// reused from a function's previous decision and shared within a batch;
// the worker exports them (strata_worker_predictions_total).
func (p *Policy) PredictionCounts() (computed, reused, shared uint64) {
	return p.Stats.Computed, p.Stats.Reused, p.Stats.Shared
}

// fnKey names a function.
type fnKey struct{ app, fn string }

// window is an input window's bits (the raw sequence after non-finite
// values were replaced), compared bitwise: equal windows give equal
// predictions, bit for bit.
type window [SeqDim]uint32

// hash returns the FNV-1a hash of the window's values: equal windows
// have equal hashes (the batch's windows are looked up by it; keys of
// 240 bytes would be allocated per insertion).
func (w *window) hash() uint64 {
	h := uint64(14695981039346656037)
	for _, v := range w {
		h = (h ^ uint64(v)) * 1099511628211
	}
	return h
}

// cached is a function's last window, its prediction and the last tick
// the function was seen in.
type cached struct {
	win  window
	pred [Targets]float32
	tick int64
}

// Policy is the operational LSTM serving policy: one model shared by every
// function. For each operational row it builds the 12×5 sequence
// (schemas.OperationalRow.Vector), scales it, runs the batched forward pass
// (nn.LSTMWeights.ForwardBatched: one pass for all rows of the batch that
// need one), inverse-scales the prediction and applies the pre-warm rule
// to the predicted request rate. Each row's prediction depends on that
// row's window only, bit for bit — not on the other rows of the batch —
// so decisions do not depend on the order of the rows, on which functions
// share a tick or on earlier ticks.
//
// Because of that, a prediction is computed once per distinct window: a
// row whose window is bitwise the one its function had at its previous
// decision reuses that prediction (Stats.Reused), and rows of one batch
// with bitwise equal windows share one computation (Stats.Shared). The
// pre-warm rule runs on every row (it reads the row's durations). The
// cache keeps, per (app, function), the last window and prediction, and
// forgets a function not seen for more than PolicyConfig.ReuseTicks
// ticks, so it holds at most the functions of the last ReuseTicks+1
// ticks. Reused and shared predictions equal computed ones bit for bit
// (TestPolicyReuseIsExact). The window includes the hour sine of each
// step, which moves every tick, so in a closed loop a function's window
// rarely repeats from one tick to the next; idle functions of one tick,
// whose windows are equal, share.
//
// It implements agents.Policy and is not safe for concurrent use.
type Policy struct {
	m     *Model
	cfg   PolicyConfig
	Stats PolicyStats

	// Scratch reused across ticks.
	x     []float32          // the windows to compute
	pred  [][Targets]float32 // their predictions
	src   []int32            // per row: index into pred, or −1 − index into reuse
	reuse [][Targets]float32 // reused predictions
	wins  []window           // per row: its window
	same  map[uint64]int32   // window hash → the first row with it, this batch
	cache map[fnKey]*cached
	free  []*cached
	// swept is the tick the cache was last swept at.
	swept int64
}

// NewPolicy returns a policy serving m (which it clones, so m may be
// reused).
func NewPolicy(m *Model, cfg PolicyConfig) (*Policy, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("creating LSTM policy: %w", err)
	}
	if err := cfg.Rule.Validate(); err != nil {
		return nil, fmt.Errorf("creating LSTM policy: %w", err)
	}
	if cfg.ReuseTicks == 0 {
		cfg.ReuseTicks = DefaultReuseTicks
	}
	return &Policy{m: m.Clone(), cfg: cfg, same: map[uint64]int32{}, cache: map[fnKey]*cached{}, swept: math.MinInt64}, nil
}

// Name returns "lstm".
func (p *Policy) Name() string { return Name }

// Version returns the version of the weights served.
func (p *Policy) Version() string { return p.cfg.Version }

// Layer returns schemas.Operational.
func (p *Policy) Layer() schemas.Layer { return schemas.Operational }

// sweep forgets the functions last seen more than ReuseTicks ticks
// before tick.
func (p *Policy) sweep(tick int64) {
	if tick == p.swept {
		return
	}
	p.swept = tick
	for k, e := range p.cache {
		if tick-e.tick > int64(p.cfg.ReuseTicks) {
			delete(p.cache, k)
			p.free = append(p.free, e)
			p.Stats.Evicted++
		}
	}
}

// Decide appends one decision per operational row to out.Rows: Prewarm
// and Action (the pre-warm count) and Predicted, the predicted invocations
// in the next step (predicted request rate × 15 s). KeepWarmMS is 0 (the
// provider's keep-alive).
func (p *Policy) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lstm deciding: %w", err)
	}
	if state == nil || out == nil {
		return fmt.Errorf("lstm deciding: nil state or output batch")
	}
	tick := state.Header.Tick
	if state.Header.Layer != schemas.Operational {
		return fmt.Errorf("lstm deciding tick %d: got a %s state batch, want %s", tick, state.Header.Layer, schemas.Operational)
	}
	n := len(state.Operational)
	if n == 0 {
		return nil
	}
	reuse := p.cfg.ReuseTicks > 0
	if reuse {
		p.sweep(tick)
	}
	p.x, p.src, p.reuse = p.x[:0], p.src[:0], p.reuse[:0]
	p.wins = slices.Grow(p.wins[:0], n)[:n]
	clear(p.same)
	computed := int32(0)
	for i := range state.Operational {
		r := &state.Operational[i]
		at := len(p.x)
		p.x = r.AppendVector(p.x)
		v := p.x[at:]
		w := &p.wins[i]
		for j, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				v[j], x = 0, 0
				p.Stats.NonFiniteInputs++
			}
			w[j] = math.Float32bits(x)
		}
		if !reuse {
			p.src = append(p.src, computed)
			computed++
			continue
		}
		h := w.hash()
		if e := p.cache[fnKey{r.App, r.Func}]; e != nil && e.win == *w {
			p.x = p.x[:at]
			s := -1 - int32(len(p.reuse))
			p.reuse = append(p.reuse, e.pred)
			p.src = append(p.src, s)
			if _, ok := p.same[h]; !ok {
				p.same[h] = int32(i)
			}
			p.Stats.Reused++
			continue
		}
		j, ok := p.same[h]
		if ok && p.wins[j] == *w {
			p.x = p.x[:at]
			p.src = append(p.src, p.src[j])
			p.Stats.Shared++
			continue
		}
		if !ok { // on a collision of unequal windows the first keeps the entry
			p.same[h] = int32(i)
		}
		p.src = append(p.src, computed)
		computed++
	}
	p.pred = slices.Grow(p.pred[:0], int(computed))[:computed]
	if err := p.m.PredictInto(p.pred, p.x); err != nil {
		return fmt.Errorf("lstm deciding tick %d: %w", tick, err)
	}
	p.Stats.Computed += uint64(computed)
	for i := range state.Operational {
		r := &state.Operational[i]
		var pred [Targets]float32
		if s := p.src[i]; s >= 0 {
			pred = p.pred[s]
		} else {
			pred = p.reuse[-1-s]
		}
		if reuse {
			p.remember(fnKey{r.App, r.Func}, &p.wins[i], pred, tick)
		}
		d := schemas.DecisionRow{App: r.App, Func: r.Func, Policy: Name, PolicyVersion: p.cfg.Version}
		rate := float64(pred[TargetRequestRate])
		if finite(rate) {
			d.Prewarm = p.cfg.Rule.Prewarm(r, rate)
			d.Predicted = schemas.Some(rate * StepS)
		} else {
			p.Stats.NonFinitePredictions++
		}
		d.Action = d.Prewarm
		out.Rows = append(out.Rows, d)
		p.Stats.Decisions++
	}
	return nil
}

// remember stores a function's window and prediction as seen at tick.
func (p *Policy) remember(k fnKey, w *window, pred [Targets]float32, tick int64) {
	e := p.cache[k]
	if e == nil {
		if n := len(p.free); n > 0 {
			e, p.free = p.free[n-1], p.free[:n-1]
		} else {
			e = &cached{}
		}
		p.cache[k] = e
	}
	e.win, e.pred, e.tick = *w, pred, tick
}
