package lstm

import (
	"fmt"

	"github.com/strata-rl/strata/agents/nn"
)

// Model is a trained predictor ready to serve: exported weights and the
// scalers. Predict is not safe for concurrent use (the weights own scratch
// buffers); give each goroutine its own Clone.
type Model struct {
	// Weights are the exported network (its Scaler is Scalers.Input).
	Weights *nn.LSTMWeights
	// Scalers are the input and target scalers.
	Scalers Scalers
	// Config is the training configuration.
	Config Config

	x []float32
	y []float32
	b []float32
}

// Clone returns a model that shares the read-only weights and scalers and
// has its own scratch buffers.
func (m *Model) Clone() *Model {
	return &Model{Weights: m.Weights.Clone(), Scalers: m.Scalers, Config: m.Config}
}

// validate checks that the model's shapes fit the operational sequences.
func (m *Model) validate() error {
	if m == nil || m.Weights == nil {
		return fmt.Errorf("%w: nil model", ErrConfig)
	}
	if m.Weights.Features != Features || m.Weights.Steps != Steps || m.Weights.Dense[1].Out != Targets {
		return fmt.Errorf("%w: network of %d×%d inputs and %d outputs, want %d×%d and %d", ErrConfig,
			m.Weights.Steps, m.Weights.Features, m.Weights.Dense[1].Out, Steps, Features, Targets)
	}
	return m.Scalers.validate()
}

// Predict returns the raw predictions (CPU util, memory util, request
// rate per sample) for raw sequences seqs (a whole number of SeqDim
// values, all finite): scale, the batched forward pass
// (nn.LSTMWeights.ForwardBatched), plus the scaled moving average for a
// residual head (Config.Head), inverse scale, and clamp at 0 (every
// target is non-negative). A sample's prediction depends on its sequence
// only, bit for bit, not on the other samples of the call.
func (m *Model) Predict(seqs []float32) ([][Targets]float32, error) {
	out := make([][Targets]float32, len(seqs)/SeqDim)
	if err := m.PredictInto(out, seqs); err != nil {
		return nil, err
	}
	return out, nil
}

// PredictInto is Predict writing into dst, which must hold one row per
// sequence; it allocates nothing once the model's scratch has grown to
// the batch.
func (m *Model) PredictInto(dst [][Targets]float32, seqs []float32) error {
	if len(seqs)%SeqDim != 0 || len(dst) != len(seqs)/SeqDim {
		return fmt.Errorf("predicting: %w: %d values for %d predictions, want %d per prediction", ErrConfig, len(seqs), len(dst), SeqDim)
	}
	if len(dst) == 0 {
		return nil
	}
	bases, err := scaledBases(m.b, m.Config, m.Scalers.Target, seqs)
	if err != nil {
		return fmt.Errorf("predicting: %w", err)
	}
	m.b = bases
	m.x = append(m.x[:0], seqs...)
	if _, err := m.Scalers.Input.Transform(m.x, m.x); err != nil {
		return fmt.Errorf("predicting: %w", err)
	}
	y, err := m.Weights.ForwardBatched(m.y, m.x)
	if err != nil {
		return fmt.Errorf("predicting: %w", err)
	}
	m.y = y
	addBases(y, bases)
	for i := range dst {
		if _, err := m.Scalers.Target.Inverse(dst[i][:], y[i*Targets:(i+1)*Targets]); err != nil {
			return fmt.Errorf("predicting: %w", err)
		}
		for j := range dst[i] {
			dst[i][j] = max(dst[i][j], 0)
		}
	}
	return nil
}

// PredictSamples returns the predictions for the samples' sequences.
func (m *Model) PredictSamples(samples []Sample) ([][Targets]float32, error) {
	x := make([]float32, 0, len(samples)*SeqDim)
	for i := range samples {
		x = append(x, samples[i].Seq[:]...)
	}
	return m.Predict(x)
}
