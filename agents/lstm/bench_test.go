package lstm

import (
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/schemas"
)

// BenchmarkTrainStepDefault times one minibatch step of the seed's network
// (5→128→64→32→3) on a batch of 128.
func BenchmarkTrainStepDefault(b *testing.B) {
	net, err := nn.NewLSTMNet(nn.DefaultLSTMConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	x := make([]float32, 128*SeqDim)
	y := make([]float32, 128*Targets)
	for i := range x {
		x[i] = float32(i%17) / 17
	}
	for b.Loop() {
		if _, err := net.TrainStep(nn.LSTMBatch{Seqs: x, Targets: y}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicyDecide times a tick of 100 functions with the seed's
// network whose windows did not change since the previous tick, so every
// prediction is reused (BenchmarkServe250 times computed ones).
func BenchmarkPolicyDecide(b *testing.B) {
	net, err := nn.NewLSTMNet(nn.DefaultLSTMConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	sc, err := FitScalers(nn.ScalerMinMax, []Sample{{Target: [Targets]float32{1, 1, 1}}, {}})
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewPolicy(&Model{Weights: net.Export(), Scalers: sc, Config: DefaultConfig()}, DefaultPolicyConfig())
	if err != nil {
		b.Fatal(err)
	}
	st := stateBatch(100)
	out := &schemas.DecisionBatch{}
	if err := p.Decide(b.Context(), st, out); err != nil { // the previous tick
		b.Fatal(err)
	}
	p.Stats = PolicyStats{}
	for b.Loop() {
		out.Rows = out.Rows[:0]
		if err := p.Decide(b.Context(), st, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(p.Stats.Reused)/float64(p.Stats.Decisions), "reused/decision")
}

// BenchmarkServe250 times the operational decisions of a tick of 250
// functions whose windows all changed since the previous tick (the hour
// sine moved), so every prediction is computed: through the policy (one
// batched forward pass, nn.LSTMWeights.ForwardBatched) and, interleaved
// in the same iterations, through the previous path — scale, the exported
// per-row forward pass (nn.LSTMWeights.Forward), inverse scale, the
// pre-warm rule. It reports µs per computed decision of each and their
// ratio (docs/agents.md, "Serving"; issue goal ≤ 60 µs), in wall time and,
// on Linux, in CPU time of the benchmark's thread (cpu-µs: what the
// decisions cost when other processes share the cores).
func BenchmarkServe250(b *testing.B) {
	const n = 250
	net, err := nn.NewLSTMNet(nn.DefaultLSTMConfig(), 1)
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	sc, err := FitScalers(nn.ScalerMinMax, []Sample{{Target: [Targets]float32{1, 1, 1}}, {}})
	if err != nil {
		b.Fatal(err)
	}
	m := &Model{Weights: net.Export(), Scalers: sc, Config: DefaultConfig()}
	p, err := NewPolicy(m, DefaultPolicyConfig())
	if err != nil {
		b.Fatal(err)
	}
	old := m.Clone()
	st := stateBatch(n)
	out := &schemas.DecisionBatch{}
	var x, y []float32
	var batched, loops, batchedCPU, loopsCPU time.Duration
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ticks := 0
	for b.Loop() {
		ticks++
		st.Header.Tick = int64(ticks)
		for f := range st.Operational {
			for k := range Steps {
				st.Operational[f].HourSin[k] = math.Sin(float64(k+3*f+ticks) / 10)
			}
		}
		c0, _ := threadCPU()
		t0 := time.Now()
		out.Rows = out.Rows[:0]
		if err := p.Decide(b.Context(), st, out); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		c1, _ := threadCPU()
		x = x[:0]
		for f := range st.Operational {
			x = st.Operational[f].AppendVector(x)
		}
		if _, err := old.Scalers.Input.Transform(x, x); err != nil {
			b.Fatal(err)
		}
		if y, err = old.Weights.Forward(y, x); err != nil {
			b.Fatal(err)
		}
		var pred [Targets]float32
		for f := range st.Operational {
			if _, err := old.Scalers.Target.Inverse(pred[:], y[f*Targets:(f+1)*Targets]); err != nil {
				b.Fatal(err)
			}
			sinkPrewarm = max(sinkPrewarm, p.cfg.Rule.Prewarm(&st.Operational[f], float64(max(pred[TargetRequestRate], 0))))
		}
		t2 := time.Now()
		c2, _ := threadCPU()
		batched += t1.Sub(t0)
		loops += t2.Sub(t1)
		batchedCPU += c1 - c0
		loopsCPU += c2 - c1
	}
	if p.Stats.Computed != uint64(ticks*n) {
		b.Fatalf("%d predictions computed in %d ticks of %d functions", p.Stats.Computed, ticks, n)
	}
	perNew := batched.Seconds() * 1e6 / float64(p.Stats.Computed)
	perOld := loops.Seconds() * 1e6 / float64(ticks*n)
	b.ReportMetric(perNew, "µs/decision-batched")
	b.ReportMetric(perOld, "µs/decision-loops")
	b.ReportMetric(perOld/perNew, "loops/batched")
	if _, ok := threadCPU(); ok && batchedCPU > 0 {
		cpuNew := batchedCPU.Seconds() * 1e6 / float64(p.Stats.Computed)
		cpuOld := loopsCPU.Seconds() * 1e6 / float64(ticks*n)
		b.ReportMetric(cpuNew, "cpu-µs/decision-batched")
		b.ReportMetric(cpuOld, "cpu-µs/decision-loops")
		b.ReportMetric(cpuOld/cpuNew, "cpu-loops/batched")
	}
}

// sinkPrewarm keeps the benchmark's reference decisions alive.
var sinkPrewarm int32
