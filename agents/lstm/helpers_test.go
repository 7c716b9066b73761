package lstm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/strata-rl/strata/agents/nn"
)

// smallConfig is a network small enough to train in a few seconds.
func smallConfig() Config {
	c := DefaultConfig()
	c.Net.Hidden = [2]int{16, 16}
	c.Net.DenseHidden = 16
	c.Net.Dropout = 0
	c.Net.Optimizer.LearningRate = 1e-2
	c.BatchSize = 32
	c.MaxEpochs = 30
	c.Seed = 7
	return c
}

// series returns n samples of sliding windows over a series whose
// request rate, memory and CPU util follow rate(t), mem(t), cpu(t).
func series(t *testing.T, n int, rate, mem, cpu func(t int) float64) *Dataset {
	t.Helper()
	var d Dataset
	seq := make([]float32, SeqDim)
	for s := range n {
		for k := range Steps {
			u := s + k
			st := seq[k*Features : (k+1)*Features]
			st[FeatRequestRate], st[FeatMemoryUtil], st[FeatCPUUtil] = float32(rate(u)), float32(mem(u)), float32(cpu(u))
			st[FeatQueueDepth], st[FeatHourSin] = 0, float32(math.Sin(2*math.Pi*float64(u%96)/96))
		}
		u := s + Steps
		if _, err := d.Add(seq, []float32{float32(cpu(u)), float32(mem(u)), float32(rate(u))}); err != nil {
			t.Fatal(err)
		}
	}
	return &d
}

// sineData is a clean period-24 sine on all three targets.
func sineData(t *testing.T, n, offset int) *Dataset {
	w := 2 * math.Pi / 24
	return series(t, n,
		func(u int) float64 { return 5 + 4*math.Sin(w*float64(u+offset)) },
		func(u int) float64 { return 0.4 + 0.2*math.Sin(w*float64(u+offset)+1) },
		func(u int) float64 { return 0.5 + 0.3*math.Sin(w*float64(u+offset)+2) })
}

// noisyData is a slow sine with i.i.d. Gaussian noise on the request rate.
func noisyData(t *testing.T, n int, seed uint64) *Dataset {
	r := rand.New(rand.NewPCG(seed, 1))
	noise := make([]float64, n+Steps+1)
	for i := range noise {
		noise[i] = r.NormFloat64()
	}
	w := 2 * math.Pi / 48
	return series(t, n,
		func(u int) float64 { return max(0, 6+2*math.Sin(w*float64(u))+1.5*noise[u]) },
		func(u int) float64 { return 0.4 },
		func(u int) float64 { return 0.5 })
}

// trainResult trains cfg and registers the network's release.
func trainResult(t *testing.T, cfg Config, train, val *Dataset) *Result {
	t.Helper()
	res, err := Train(cfg, train, val)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Net.Close)
	return res
}

// scaledLoss is the weighted squared error of raw predictions against the
// samples' targets after the target scaler.
func scaledLoss(t *testing.T, sc *nn.Scaler, pred [][Targets]float32, samples []Sample, bu, bo float64) float64 {
	t.Helper()
	p := make([]float32, 0, len(pred)*Targets)
	y := make([]float32, 0, len(pred)*Targets)
	for i := range pred {
		p = append(p, pred[i][:]...)
		y = append(y, samples[i].Target[:]...)
	}
	if _, err := sc.Transform(p, p); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Transform(y, y); err != nil {
		t.Fatal(err)
	}
	return weightedSE(p, y, bu, bo)
}
