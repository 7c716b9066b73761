package baselines

import (
	"cmp"
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

func TestNew(t *testing.T) {
	m := model(t)
	tests := []struct {
		name   string
		layer  schemas.Layer
		cfg    Config
		errIs  error
		errHas string
	}{
		{"greedy-cost", schemas.Strategic, Config{Model: m}, nil, ""},
		{"power-tuning", schemas.Tactical, Config{Model: m}, nil, ""},
		{"knative", schemas.Operational, Config{}, nil, ""},
		{"power-tuning", schemas.Strategic, Config{Model: m}, ErrUnknownPolicy, "valid names are random, greedy-latency, greedy-cost, greedy-carbon"},
		{"lstm", schemas.Operational, Config{}, ErrUnknownPolicy, "reactive, static-2x, moving-average, keepalive-10m, keepalive-20m, knative, hybrid-histogram"},
		{"static-best", schemas.Tactical, Config{Model: m}, ErrUnknownPolicy, "power-tuning"},
		{"random", schemas.Layer("daily"), Config{}, nil, "unknown layer"},
		{"greedy-cost", schemas.Tactical, Config{}, nil, "cloud model is required"},
		{"moving-average", schemas.Operational, Config{Params: map[string]string{"windw": "3"}}, ErrInvalidParam, "unknown parameter(s) windw: valid are window"},
		{"moving-average", schemas.Operational, Config{Params: map[string]string{"window": "13"}}, ErrInvalidParam, "window"},
		{"reactive", schemas.Operational, Config{Params: map[string]string{"x": "1"}}, ErrInvalidParam, "valid are (none)"},
		{"hybrid-histogram", schemas.Operational, Config{Params: map[string]string{"unit": "region"}}, ErrInvalidParam, "want one of function, app"},
		{"knative", schemas.Operational, Config{Params: map[string]string{"panic_threshold": "abc"}}, ErrInvalidParam, "panic_threshold"},
		{"power-tuning", schemas.Tactical, Config{Model: m, Params: map[string]string{"strategy": "fast"}}, ErrInvalidParam, "cost, speed, balanced"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+string(tt.layer), func(t *testing.T) {
			p, err := New(tt.name, tt.layer, tt.cfg)
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if p.Name() != tt.name || p.Layer() != tt.layer || p.Version() != Version {
					t.Errorf("Name/Layer/Version = %s/%s/%s", p.Name(), p.Layer(), p.Version())
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want an error containing %q", tt.errHas)
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("error %v does not wrap %v", err, tt.errIs)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q does not contain %q", err, tt.errHas)
			}
		})
	}
}

func TestVersionCarriesOverrides(t *testing.T) {
	p := mustNew(t, "hybrid-histogram", schemas.Operational, map[string]string{"unit": "app", "cv_threshold": "3"})
	if got, want := p.Version(), "1+cv_threshold=3,unit=app"; got != want {
		t.Errorf("Version %q, want %q", got, want)
	}
}

// everyPolicy calls f for each baseline of each layer.
func everyPolicy(t *testing.T, f func(t *testing.T, layer schemas.Layer, name string)) {
	for _, layer := range schemas.Layers {
		for _, name := range Names(layer) {
			t.Run(string(layer)+"/"+name, func(t *testing.T) { f(t, layer, name) })
		}
	}
}

// run feeds ticks random batches to a fresh policy and returns every tick's
// decisions. Tactical ticks cross a day boundary so that power-tuning
// sweeps.
func run(t *testing.T, layer schemas.Layer, name string, ticks int, shuffle bool) [][]schemas.DecisionRow {
	p := mustNew(t, name, layer, nil)
	var out [][]schemas.DecisionRow
	for k := range int64(ticks) {
		tick := 20 + k
		b := randomBatch(layer, 5, tick, 60)
		if shuffle {
			b = shuffled(b, uint64(tick))
		}
		rows := decide(t, p, b)
		if shuffle { // back to the unshuffled order, by entity
			slices.SortFunc(rows, func(a, b schemas.DecisionRow) int {
				return cmpEntity(a, b)
			})
		}
		out = append(out, rows)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	everyPolicy(t, func(t *testing.T, layer schemas.Layer, name string) {
		a, b := run(t, layer, name, 8, false), run(t, layer, name, 8, false)
		if !reflect.DeepEqual(a, b) {
			t.Fatal("two runs over the same batches decided differently")
		}
		if len(slices.Concat(a...)) == 0 {
			t.Fatal("no decisions at all")
		}
	})
}

func TestIndependentOfRowOrder(t *testing.T) {
	everyPolicy(t, func(t *testing.T, layer schemas.Layer, name string) {
		a, b := run(t, layer, name, 8, false), run(t, layer, name, 8, true)
		for k := range a {
			slices.SortFunc(a[k], func(x, y schemas.DecisionRow) int {
				return cmpEntity(x, y)
			})
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatal("shuffling the rows of each batch changed the decisions")
		}
	})
}

func TestRowsCarryEntityAndPolicy(t *testing.T) {
	everyPolicy(t, func(t *testing.T, layer schemas.Layer, name string) {
		p := mustNew(t, name, layer, map[string]string{})
		for k := range int64(30) {
			b := randomBatch(layer, 9, 20+k, 25)
			rows := decide(t, p, b)
			seen := map[entity]bool{}
			for i := range b.Len() {
				switch layer {
				case schemas.Operational:
					seen[key(b.Operational[i].App, b.Operational[i].Func)] = true
				case schemas.Tactical:
					seen[key(b.Tactical[i].App, b.Tactical[i].Func)] = true
				default:
					seen[key(b.Strategic[i].App, "")] = true
				}
			}
			if layer == schemas.Operational && len(rows) != b.Len() {
				t.Fatalf("tick %d: %d rows for %d functions", k, len(rows), b.Len())
			}
			for _, d := range rows {
				if !seen[key(d.App, d.Func)] {
					t.Fatalf("decision for %s/%s, not in the batch", d.App, d.Func)
				}
				if d.Policy != name || d.PolicyVersion != Version {
					t.Fatalf("decision stamped %s %s", d.Policy, d.PolicyVersion)
				}
				switch layer {
				case schemas.Strategic:
					if d.Provider == "" || d.Action < 0 || d.Action > 2 {
						t.Fatalf("strategic decision %+v", d)
					}
				case schemas.Tactical:
					if d.Region == "" || d.MemoryMB == 0 || d.Action < 0 || d.Action >= numTactical {
						t.Fatalf("tactical decision %+v", d)
					}
				default:
					if d.Prewarm < 0 || d.KeepWarmMS < 0 || d.Action != d.Prewarm {
						t.Fatalf("operational decision %+v", d)
					}
				}
			}
		}
	})
}

func TestRandomCoversActions(t *testing.T) {
	for _, layer := range []schemas.Layer{schemas.Strategic, schemas.Tactical} {
		p := mustNew(t, "random", layer, nil)
		counts := map[int32]int{}
		for k := range int64(50) {
			for _, d := range decide(t, p, randomBatch(layer, 1, k, 60)) {
				counts[d.Action]++
			}
		}
		n := map[schemas.Layer]int{schemas.Strategic: 3, schemas.Tactical: numTactical}[layer]
		if len(counts) != n {
			t.Errorf("%s random used %d distinct actions, want %d", layer, len(counts), n)
		}
		for a, c := range counts { // 3000 draws: expected 1000 or 125 each
			if exp := 3000 / n; c < exp/2 || c > exp*2 {
				t.Errorf("%s random: action %d drawn %d times, expected about %d", layer, a, c, exp)
			}
		}
	}
}

func TestRandomDependsOnSeed(t *testing.T) {
	b := randomBatch(schemas.Tactical, 1, 3, 60)
	p1, _ := New("random", schemas.Tactical, Config{Seed: 1})
	p2, _ := New("random", schemas.Tactical, Config{Seed: 2})
	if reflect.DeepEqual(decide(t, p1, b), decide(t, p2, b)) {
		t.Error("seeds 1 and 2 gave the same 60 random decisions")
	}
}

func TestDecideRejects(t *testing.T) {
	p := mustNew(t, "reactive", schemas.Operational, nil)
	out := &schemas.DecisionBatch{}
	if err := p.Decide(context.Background(), tacBatch(1), out); err == nil || !strings.Contains(err.Error(), "tactical state batch") {
		t.Errorf("Decide on a tactical batch: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Decide(ctx, opBatch(1), out); !errors.Is(err, context.Canceled) {
		t.Errorf("Decide with a cancelled context: %v", err)
	}
}

func BenchmarkDecideOperational(b *testing.B) {
	for _, name := range Names(schemas.Operational) {
		b.Run(name, func(b *testing.B) {
			p := mustNew(b, name, schemas.Operational, nil)
			batches := make([]*schemas.StateBatch, 16)
			for i := range batches {
				batches[i] = randomBatch(schemas.Operational, 3, int64(100+i), 300)
			}
			out := &schemas.DecisionBatch{Rows: make([]schemas.DecisionRow, 0, 300)}
			ctx := context.Background()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				out.Rows = out.Rows[:0]
				if err := p.Decide(ctx, batches[i%len(batches)], out); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func cmpEntity(a, b schemas.DecisionRow) int {
	return cmp.Or(strings.Compare(a.App, b.App), strings.Compare(a.Func, b.Func))
}

func TestNonFiniteInput(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	everyPolicy(t, func(t *testing.T, layer schemas.Layer, name string) {
		p := mustNew(t, name, layer, nil)
		op := schemas.OperationalRow{App: "a", Func: "f", IdleTimesS: []float64{nan, inf, -3, 70}}
		for j := range schemas.SeqLen {
			op.ConcurrencyMean[j], op.ConcurrencyPeak[j], op.RequestRate[j] = nan, inf, inf
		}
		tac := schemas.TacticalRow{App: "a", Func: "f", Invocations: 3, DurationMeanMS: inf, MemoryMB: 512,
			MemoryUtil: schemas.Some(inf), CPUUtil: schemas.Some(0), ColdStartRate: schemas.Some(nan)}
		str := schemas.StrategicRow{App: "a", Invocations: 3, DurationMeanMS: nan, ColdStartRate: schemas.Some(nan)}
		for k := range int64(3) {
			var b *schemas.StateBatch
			switch layer {
			case schemas.Operational:
				b = opBatch(k, op)
			case schemas.Tactical:
				b = tacBatch(k, tac)
			default:
				b = stratBatch(k, str)
			}
			for _, d := range decide(t, p, b) {
				if d.Prewarm < 0 || d.KeepWarmMS < 0 || (d.Predicted.Valid && math.IsNaN(d.Predicted.V)) {
					t.Fatalf("decision from non-finite input: %+v", d)
				}
			}
		}
	})
}
