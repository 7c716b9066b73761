package lstm

import (
	"testing"

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

// BenchmarkPolicyDecide times a decision for 100 functions with the seed's
// network.
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
	for b.Loop() {
		out := &schemas.DecisionBatch{}
		if err := p.Decide(b.Context(), st, out); err != nil {
			b.Fatal(err)
		}
	}
}
