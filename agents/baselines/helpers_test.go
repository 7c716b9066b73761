package baselines

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// model returns the default cloud model (DefaultCatalog parses its data
// once per process).
func model(tb testing.TB) *cloud.Model {
	tb.Helper()
	m, err := cloud.DefaultModel()
	if err != nil {
		tb.Fatalf("building cloud model: %v", err)
	}
	return m
}

func mustNew(tb testing.TB, name string, layer schemas.Layer, params map[string]string) Policy {
	tb.Helper()
	p, err := New(name, layer, Config{Seed: 7, Model: model(tb), Params: params})
	if err != nil {
		tb.Fatalf("New(%q, %s): %v", name, layer, err)
	}
	return p
}

func decide(tb testing.TB, p Policy, b *schemas.StateBatch) []schemas.DecisionRow {
	tb.Helper()
	out := &schemas.DecisionBatch{Header: b.Header}
	if err := p.Decide(context.Background(), b, out); err != nil {
		tb.Fatalf("%s: Decide tick %d: %v", p.Name(), b.Header.Tick, err)
	}
	return out.Rows
}

func opBatch(tick int64, rows ...schemas.OperationalRow) *schemas.StateBatch {
	return &schemas.StateBatch{
		Header:      schemas.BatchHeader{RunID: "t", Layer: schemas.Operational, Tick: tick, TickStartUS: tick * grid.OperationalTickUS, NShards: 1},
		Operational: rows,
	}
}

func tacBatch(tick int64, rows ...schemas.TacticalRow) *schemas.StateBatch {
	return &schemas.StateBatch{
		Header:   schemas.BatchHeader{RunID: "t", Layer: schemas.Tactical, Tick: tick, TickStartUS: tick * grid.TacticalTickUS, NShards: 1},
		Tactical: rows,
	}
}

func stratBatch(tick int64, rows ...schemas.StrategicRow) *schemas.StateBatch {
	return &schemas.StateBatch{
		Header:    schemas.BatchHeader{RunID: "t", Layer: schemas.Strategic, Tick: tick, TickStartUS: tick * grid.StrategicTickUS, NShards: 1},
		Strategic: rows,
	}
}

// inv is one invocation of a simulated function: [start, end) in µs.
type inv struct{ start, end int64 }

// simRow computes the operational row of tick k for one function's
// invocations (ordered by start) exactly as schemas.OperationalRow defines
// it; ok is false before the first invocation.
func simRow(app, fn string, invs []inv, k int64) (schemas.OperationalRow, bool) {
	const step = grid.OperationalTickUS
	T := k * step
	r := schemas.OperationalRow{App: app, Func: fn}
	seen := false
	for _, v := range invs {
		if v.start < T {
			seen = true
			r.LastStartUS = v.start
		}
	}
	if !seen {
		return r, false
	}
	for i := range schemas.SeqLen {
		s0 := T - int64(schemas.SeqLen-i)*step
		s1 := s0 + step
		var n int
		var busy int64
		for _, v := range invs {
			if v.start >= s0 && v.start < s1 {
				n++
			}
			if ov := min(v.end, s1) - max(v.start, s0); ov > 0 {
				busy += ov
			}
		}
		peak := 0
		points := []int64{s0}
		for _, v := range invs {
			if v.start >= s0 && v.start < s1 {
				points = append(points, v.start)
			}
		}
		for _, t := range points {
			c := 0
			for _, v := range invs {
				if v.start <= t && t < v.end {
					c++
				}
			}
			peak = max(peak, c)
		}
		r.RequestRate[i] = float64(n) / 15
		r.ConcurrencyMean[i] = float64(busy) / float64(step)
		r.ConcurrencyPeak[i] = float64(peak)
		if i == schemas.SeqLen-1 {
			r.Invocations = int64(n)
			latestEnd := int64(-1)
			for _, v := range invs {
				if v.start >= s0 && v.start < s1 && latestEnd >= 0 {
					r.IdleTimesS = append(r.IdleTimesS, float64(max(v.start-latestEnd, 0))/1e6)
				}
				if v.start < s1 {
					latestEnd = max(latestEnd, v.end)
				}
			}
		}
	}
	return r, true
}

// randomOperational returns n operational rows with seeded random
// sequences and idle times, for determinism tests and benchmarks.
func randomOperational(seed uint64, tick int64, n int) []schemas.OperationalRow {
	rng := rand.New(rand.NewPCG(seed, uint64(tick)))
	rows := make([]schemas.OperationalRow, n)
	for i := range rows {
		r := &rows[i]
		r.App = "app" + strconv.Itoa(i%37)
		r.Func = "f" + strconv.Itoa(i)
		for j := range schemas.SeqLen {
			c := rng.ExpFloat64() * float64(1+i%5)
			r.ConcurrencyMean[j] = c
			r.ConcurrencyPeak[j] = float64(int(c) + rng.IntN(3))
			r.RequestRate[j] = c * rng.Float64()
		}
		r.Invocations = int64(r.RequestRate[schemas.SeqLen-1] * 15)
		r.LastStartUS = tick*grid.OperationalTickUS - rng.Int64N(60_000_000)
		for range rng.IntN(4) {
			r.IdleTimesS = append(r.IdleTimesS, rng.ExpFloat64()*float64(30+600*(i%3)))
		}
	}
	return rows
}

func randomTactical(seed uint64, tick int64, n int) []schemas.TacticalRow {
	rng := rand.New(rand.NewPCG(seed, uint64(tick)))
	rows := make([]schemas.TacticalRow, n)
	provs := []string{"aws", "azure", "gcp", ""}
	regions := []string{"us-east", "us-west", "eu-west", "ap-southeast", ""}
	for i := range rows {
		r := &rows[i]
		r.App, r.Func = "app"+strconv.Itoa(i%11), "f"+strconv.Itoa(i)
		r.Invocations = int64(rng.IntN(500))
		r.RequestRate = float64(r.Invocations) / 3600
		r.DurationMeanMS = 5 + rng.ExpFloat64()*800
		r.DurationP95MS = 3 * r.DurationMeanMS
		r.Provider, r.Region = provs[i%4], regions[i%5]
		r.MemoryMB = int32(cloud.TierMB[i%cloud.NumTiers])
		r.MemoryUtil, r.CPUUtil = schemas.Some(rng.Float64()*0.5), schemas.Some(0.5+rng.Float64()*0.5)
	}
	return rows
}

func randomStrategic(seed uint64, tick int64, n int) []schemas.StrategicRow {
	rng := rand.New(rand.NewPCG(seed, uint64(tick)))
	rows := make([]schemas.StrategicRow, n)
	for i := range rows {
		r := &rows[i]
		r.App = "app" + strconv.Itoa(i)
		r.Invocations = int64(rng.IntN(5000))
		r.DurationMeanMS = 5 + rng.ExpFloat64()*800
		r.ColdStartRate = schemas.Some(rng.Float64() * 0.2)
	}
	return rows
}

// randomBatch returns a batch of layer for tick with n random rows.
func randomBatch(layer schemas.Layer, seed uint64, tick int64, n int) *schemas.StateBatch {
	switch layer {
	case schemas.Operational:
		return opBatch(tick, randomOperational(seed, tick, n)...)
	case schemas.Tactical:
		return tacBatch(tick, randomTactical(seed, tick, n)...)
	default:
		return stratBatch(tick, randomStrategic(seed, tick, n)...)
	}
}

// shuffled returns a copy of b with its rows in a seeded random order.
func shuffled(b *schemas.StateBatch, seed uint64) *schemas.StateBatch {
	c := *b
	rng := rand.New(rand.NewPCG(seed, 99))
	c.Operational, c.Tactical, c.Strategic = slices.Clone(b.Operational), slices.Clone(b.Tactical), slices.Clone(b.Strategic)
	rng.Shuffle(len(c.Operational), func(i, j int) { c.Operational[i], c.Operational[j] = c.Operational[j], c.Operational[i] })
	rng.Shuffle(len(c.Tactical), func(i, j int) { c.Tactical[i], c.Tactical[j] = c.Tactical[j], c.Tactical[i] })
	rng.Shuffle(len(c.Strategic), func(i, j int) { c.Strategic[i], c.Strategic[j] = c.Strategic[j], c.Strategic[i] })
	return &c
}
