package lstm

import (
	"fmt"
	"math"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/schemas"
)

// Shapes of a sample.
const (
	// Features is the number of values per step of an input sequence, in
	// schemas.OperationalRow.Vector order: request rate, memory util, CPU
	// util, queue depth, hour sine.
	Features = 5
	// Steps is the sequence length (schemas.SeqLen, 12 × 15 s).
	Steps = schemas.SeqLen
	// SeqDim is the flattened sequence, Steps × Features (60).
	SeqDim = schemas.OperationalDim
	// Targets is the number of predicted values.
	Targets = 3
)

// Input feature indices within a step.
const (
	FeatRequestRate = 0
	FeatMemoryUtil  = 1
	FeatCPUUtil     = 2
	FeatQueueDepth  = 3
	FeatHourSin     = 4
)

// Target indices: the seed's output order (§2.6).
const (
	// TargetCPU is the next step's CPU utilisation (fraction of the
	// instances' CPU time, schemas.OperationalRow.CPUUtil).
	TargetCPU = 0
	// TargetMemory is the next step's memory utilisation (fraction,
	// schemas.OperationalRow.MemoryUtil).
	TargetMemory = 1
	// TargetRequestRate is the next step's request rate in invocations per
	// second (schemas.OperationalRow.RequestRate).
	TargetRequestRate = 2
)

// Sample is one supervised example: a raw sequence and the raw values of
// the step that follows it.
type Sample struct {
	// Seq holds Steps × Features raw values, step-major, oldest first, as
	// schemas.OperationalRow.Vector returns them (missing values as 0).
	Seq [SeqDim]float32
	// Target holds the next step's CPU util, memory util and request rate
	// (invocations/s), in that order.
	Target [Targets]float32
}

// Dataset is a collection of samples. NaN or ±Inf samples are rejected by
// Add and counted in Rejected, never stored.
type Dataset struct {
	Samples  []Sample
	Rejected uint64
}

// Add appends a sample built from seq (SeqDim values) and target
// (Targets values). It returns false, and counts the sample in Rejected,
// when a value is NaN or ±Inf; a slice of the wrong length is an error.
func (d *Dataset) Add(seq, target []float32) (bool, error) {
	if len(seq) != SeqDim || len(target) != Targets {
		return false, fmt.Errorf("adding LSTM sample: %w: %d sequence and %d target values, want %d and %d", ErrConfig, len(seq), len(target), SeqDim, Targets)
	}
	if !schemas.Finite(seq) || !schemas.Finite(target) {
		d.Rejected++
		return false, nil
	}
	var s Sample
	copy(s.Seq[:], seq)
	copy(s.Target[:], target)
	d.Samples = append(d.Samples, s)
	return true, nil
}

// AddRows appends the sample of two consecutive ticks of one function: the
// sequence of cur and, as target, the newest step of next (the step after
// cur's newest). See Add for rejection.
func (d *Dataset) AddRows(cur, next *schemas.OperationalRow) (bool, error) {
	return d.Add(cur.Vector(), TargetOf(next))
}

// TargetOf returns the target values of a row's newest step: CPU util,
// memory util (missing as 0) and request rate.
func TargetOf(r *schemas.OperationalRow) []float32 {
	const last = Steps - 1
	return []float32{or0(r.CPUUtil[last]), or0(r.MemoryUtil[last]), float32(r.RequestRate[last])}
}

func or0(v schemas.Value) float32 {
	if !v.Valid {
		return 0
	}
	return float32(v.V)
}

// Len returns the number of samples.
func (d *Dataset) Len() int { return len(d.Samples) }

// Scalers are the input and target scalers, fitted on training samples
// only.
type Scalers struct {
	// Input has Dim Features and log1p on request rate and queue depth.
	Input *nn.Scaler `json:"input"`
	// Target has Dim Targets and log1p on request rate.
	Target *nn.Scaler `json:"target"`
}

// FitScalers fits both scalers of the given kind (nn.ScalerMinMax or
// nn.ScalerRobust) on samples: request rate and queue depth are
// log1p-transformed, every feature is then mapped affinely (min-max to
// [0, 1], or median/IQR).
func FitScalers(kind string, samples []Sample) (Scalers, error) {
	if len(samples) == 0 {
		return Scalers{}, fmt.Errorf("fitting LSTM scalers: %w: no samples", ErrConfig)
	}
	in := make([]float32, 0, len(samples)*SeqDim)
	out := make([]float32, 0, len(samples)*Targets)
	for i := range samples {
		in = append(in, samples[i].Seq[:]...)
		out = append(out, samples[i].Target[:]...)
	}
	si, err := nn.FitScaler(kind, in, Features, []bool{true, false, false, true, false})
	if err != nil {
		return Scalers{}, fmt.Errorf("fitting LSTM input scaler: %w", err)
	}
	st, err := nn.FitScaler(kind, out, Targets, []bool{false, false, true})
	if err != nil {
		return Scalers{}, fmt.Errorf("fitting LSTM target scaler: %w", err)
	}
	return Scalers{Input: si, Target: st}, nil
}

// validate checks both scalers' shapes.
func (s Scalers) validate() error {
	if s.Input == nil || s.Target == nil {
		return fmt.Errorf("%w: missing scaler", ErrConfig)
	}
	if err := s.Input.Validate(); err != nil {
		return fmt.Errorf("input scaler: %w", err)
	}
	if err := s.Target.Validate(); err != nil {
		return fmt.Errorf("target scaler: %w", err)
	}
	if s.Input.Dim != Features || s.Target.Dim != Targets {
		return fmt.Errorf("%w: scalers of %d and %d features, want %d and %d", ErrConfig, s.Input.Dim, s.Target.Dim, Features, Targets)
	}
	return nil
}

// finite reports whether x is neither NaN nor ±Inf.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
