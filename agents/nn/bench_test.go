package nn

import (
	"fmt"
	"testing"
)

// Forward-pass benchmarks: the gorgonia graph (evaluation mode) against
// the exported-weight pure-Go pass, per network and batch size.

func BenchmarkPPOForwardGorgonia(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			n := mustPPOOpts(b, DefaultPPOConfig(), 1, WithBackend(BackendGorgonia))
			x := randn(1, batch*n.cfg.Inputs)
			for b.Loop() {
				if _, err := n.Forward(x, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

func BenchmarkPPOForwardExported(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			n := mustPPO(b, DefaultPPOConfig(), 1)
			w := n.Export()
			x := randn(1, batch*n.cfg.Inputs)
			var out PPOOutput
			var err error
			for b.Loop() {
				if out, err = w.Forward(out, x, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkPPOForwardCPU is the CPU backend's evaluation forward pass.
func BenchmarkPPOForwardCPU(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			n := mustPPOOpts(b, DefaultPPOConfig(), 1, WithBackend(BackendCPU))
			x := randn(1, batch*n.cfg.Inputs)
			for b.Loop() {
				if _, err := n.Forward(x, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

func BenchmarkQForwardGorgonia(b *testing.B) {
	n := mustQOpts(b, DefaultQConfig(), 1, WithBackend(BackendGorgonia))
	x := randn(1, n.cfg.Inputs())
	for b.Loop() {
		if _, err := n.Forward(x); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQForwardExported(b *testing.B) {
	n := mustQ(b, DefaultQConfig(), 1)
	w := n.Export()
	x := randn(1, n.cfg.Inputs())
	var out []float32
	var err error
	for b.Loop() {
		if out, err = w.Forward(out, x); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLSTMForwardGorgonia(b *testing.B) {
	n := mustLSTMOpts(b, DefaultLSTMConfig(), 1, WithBackend(BackendGorgonia))
	x := randn(1, n.cfg.Inputs())
	for b.Loop() {
		if _, err := n.Forward(x); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLSTMForwardExported(b *testing.B) {
	n := mustLSTM(b, DefaultLSTMConfig(), 1)
	w := n.Export()
	x := randn(1, n.cfg.Inputs())
	var out []float32
	var err error
	for b.Loop() {
		if out, err = w.Forward(out, x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForwardRatio measures both passes side by side with
// CompareForward (alternating rounds, so both see the same load) and
// reports the exported/gorgonia speed ratio over all iterations: the total
// gorgonia time over the total exported time, and the mean time per call
// of each, so one run prints the ratios.
func BenchmarkForwardRatio(b *testing.B) {
	type comparer interface {
		CompareForward(batch, calls int) (ForwardTiming, error)
	}
	cases := []struct {
		name  string
		batch int
		calls int
		net   func() comparer
	}{
		{"PPO/batch=1", 1, 500, func() comparer { return mustPPO(b, DefaultPPOConfig(), 1) }},
		{"PPO/batch=64", 64, 50, func() comparer { return mustPPO(b, DefaultPPOConfig(), 1) }},
		{"Q/batch=1", 1, 500, func() comparer { return mustQ(b, DefaultQConfig(), 1) }},
		{"LSTM/batch=1", 1, 50, func() comparer { return mustLSTM(b, DefaultLSTMConfig(), 1) }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			n := tc.net()
			// Totals over every iteration (each timing is a mean per call
			// over tc.calls calls).
			var total ForwardTiming
			iters := 0
			for b.Loop() {
				t, err := n.CompareForward(tc.batch, tc.calls)
				if err != nil {
					b.Fatal(err)
				}
				total.Gorgonia += t.Gorgonia
				total.Exported += t.Exported
				iters++
			}
			b.ReportMetric(total.Ratio(), "exported/gorgonia")
			b.ReportMetric(float64(total.Gorgonia.Nanoseconds())/float64(iters), "gorgonia-ns/call")
			b.ReportMetric(float64(total.Exported.Nanoseconds())/float64(iters), "exported-ns/call")
		})
	}
}

// Training-step benchmarks (forward, backward, clip, Adam) at the seed's
// minibatch sizes, per backend; samples/s is the custom metric.

var benchBackends = []Backend{BackendCPU, BackendGorgonia}

// benchPPOBatch returns a PPO minibatch whose old log-probabilities are
// the network's own.
func benchPPOBatch(b *testing.B, n *PPONet, batch int) PPOBatch {
	states := randn(1, batch*n.cfg.Inputs)
	out, err := n.Forward(states, nil)
	if err != nil {
		b.Fatal(err)
	}
	actions := make([]int, batch)
	old := make([]float32, batch)
	for i := range actions {
		actions[i] = i % n.cfg.Actions
		old[i] = out.LogProbs[i*n.cfg.Actions+actions[i]]
	}
	return PPOBatch{States: states, Actions: actions, OldLogProbs: old, Advantages: randn(2, batch), Returns: randn(3, batch)}
}

func BenchmarkPPOTrainStep(b *testing.B) {
	for _, be := range benchBackends {
		b.Run("backend="+string(be), func(b *testing.B) {
			n := mustPPOOpts(b, DefaultPPOConfig(), 1, WithBackend(be))
			const batch = 64
			tb := benchPPOBatch(b, n, batch)
			start := cpuTime()
			for b.Loop() {
				if _, err := n.TrainStep(tb); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
			reportCPU(b, start, batch, "samples")
		})
	}
}

func BenchmarkQTrainStep(b *testing.B) {
	for _, be := range benchBackends {
		b.Run("backend="+string(be), func(b *testing.B) {
			n := mustQOpts(b, DefaultQConfig(), 1, WithBackend(be))
			const batch = 64
			tb := QBatch{States: randn(1, batch*n.cfg.Inputs()), Actions: make([]int, batch), Targets: randn(2, batch)}
			start := cpuTime()
			for b.Loop() {
				if _, err := n.TrainStep(tb); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
			reportCPU(b, start, batch, "samples")
		})
	}
}

func BenchmarkLSTMTrainStep(b *testing.B) {
	for _, be := range benchBackends {
		b.Run("backend="+string(be), func(b *testing.B) {
			n := mustLSTMOpts(b, DefaultLSTMConfig(), 1, WithBackend(be))
			const batch = 128
			tb := LSTMBatch{Seqs: randn(1, batch*n.cfg.Inputs()), Targets: randn(2, batch*n.cfg.Outputs)}
			start := cpuTime()
			for b.Loop() {
				if _, err := n.TrainStep(tb); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
			reportCPU(b, start, batch, "samples")
		})
	}
}
