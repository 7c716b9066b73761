package ppo

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
)

// trainedLearner returns a learner after one short update, so that its
// model is fitted and not uniform.
func trainedLearner(t testing.TB, seed uint64) *Learner {
	t.Helper()
	l := mustLearner(t, smallConfig(128), seed)
	fillRollout(t, l, seed)
	if _, err := l.Update(); err != nil {
		t.Fatal(err)
	}
	return l
}

// byEntity indexes decisions by (app, func).
func byEntity(rows []schemas.DecisionRow) map[[2]string]schemas.DecisionRow {
	m := make(map[[2]string]schemas.DecisionRow, len(rows))
	for _, r := range rows {
		m[[2]string{r.App, r.Func}] = r
	}
	return m
}

// TestDecideDeterministic checks that a decision depends on the seed, tick
// and entity but not on the order of rows, the other rows of the batch or
// earlier calls; and that every decision row is complete.
func TestDecideDeterministic(t *testing.T) {
	l := trainedLearner(t, 21)
	rows := tacticalRows(22, 120)
	for _, greedy := range []bool{false, true} {
		p := mustPolicy(t, l.Model(), PolicyOptions{Seed: 5, Greedy: greedy})
		first := decide(t, p, 100, rows)
		if len(first) != len(rows) {
			t.Fatalf("%d decisions for %d rows", len(first), len(rows))
		}
		for i, d := range first {
			r := &rows[i]
			wantProv := r.Provider
			if wantProv == "" {
				wantProv = "aws"
			}
			metro, tier := cloud.Metro(d.Action/cloud.NumTiers), cloud.Tier(d.Action%cloud.NumTiers)
			if d.App != r.App || d.Func != r.Func || d.Policy != "ppo" || d.PolicyVersion != "v1" ||
				d.Provider != wantProv || d.Region != metro.String() || d.MemoryMB != int32(tier.MB()) ||
				!d.LogProb.Valid || d.LogProb.V > 0 || !d.Value.Valid || d.Action < 0 || d.Action >= Actions {
				t.Fatalf("row %d: decision %+v for %+v", i, d, *r)
			}
		}
		shuffled := append([]schemas.TacticalRow(nil), rows...)
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		fresh := mustPolicy(t, l.Model(), PolicyOptions{Seed: 5, Greedy: greedy})
		want := byEntity(first)
		for name, got := range map[string][]schemas.DecisionRow{
			"shuffled rows":        decide(t, fresh, 100, shuffled),
			"same policy again":    decide(t, p, 100, rows),
			"a subset of the rows": decide(t, fresh, 100, shuffled[:17]),
		} {
			for _, d := range got {
				if w := want[[2]string{d.App, d.Func}]; d != w {
					t.Errorf("greedy %v, %s: %+v, want %+v", greedy, name, d, w)
				}
			}
		}
		// Sampling varies with the tick and seed; argmax does not.
		other := byEntity(decide(t, mustPolicy(t, l.Model(), PolicyOptions{Seed: 6, Greedy: greedy}), 101, rows))
		same := 0
		for k, d := range want {
			if other[k].Action == d.Action {
				same++
			}
		}
		if greedy && same != len(rows) {
			t.Errorf("greedy decisions changed with seed and tick: %d of %d equal", same, len(rows))
		}
		if !greedy && same == len(rows) {
			t.Error("sampled decisions identical for another seed and tick")
		}
	}
}

// TestDecideLogProbs checks that LogProb and Value are the model's for the
// chosen action and that greedy picks the most probable action.
func TestDecideLogProbs(t *testing.T) {
	l := trainedLearner(t, 23)
	rows := tacticalRows(24, 30)
	raw := make([]float32, 0, len(rows)*schemas.TacticalDim)
	for i := range rows {
		raw = append(raw, rows[i].Vector()...)
	}
	out, err := l.Model().Forward(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, greedy := range []bool{false, true} {
		p := mustPolicy(t, l.Model(), PolicyOptions{Seed: 1, Greedy: greedy})
		for i, d := range decide(t, p, 7, rows) {
			lp := out.LogProbs[i*Actions : (i+1)*Actions]
			if d.LogProb.V != float64(lp[d.Action]) || d.Value.V != float64(out.Values[i]) {
				t.Errorf("row %d: log-prob %v value %v, want %v and %v", i, d.LogProb.V, d.Value.V, lp[d.Action], out.Values[i])
			}
			if greedy {
				for j, v := range lp {
					if v > lp[d.Action] || (v == lp[d.Action] && j < int(d.Action)) {
						t.Errorf("row %d: greedy took %d, action %d is at least as likely", i, d.Action, j)
					}
				}
			}
		}
	}
}

// TestSample checks inverse-CDF sampling over allowed actions.
func TestSample(t *testing.T) {
	probs := []float32{0.1, 0, 0.6, 0.3}
	mask := []bool{true, false, true, true}
	for _, c := range []struct {
		u    float64
		want int
	}{{0.05, 0}, {0.1000001, 2}, {0.69, 2}, {0.71, 3}, {0.9999999, 3}} {
		if got := sample(probs, mask, c.u); got != c.want {
			t.Errorf("sample(u=%v) = %d, want %d", c.u, got, c.want)
		}
	}
	// Rounding: probabilities summing to less than u fall to the last
	// allowed action.
	if got := sample([]float32{0.5, 0.4999, 0}, []bool{true, true, false}, 0.99995); got != 1 {
		t.Errorf("rounding leftover went to %d, want 1", got)
	}
	if got := argmax([]float32{0.4, 0.4, 0.2}, []bool{true, true, true}); got != 0 {
		t.Errorf("argmax tie went to %d, want 0", got)
	}
	if got := argmax([]float32{0.9, 0.05, 0.05}, []bool{false, true, true}); got != 1 {
		t.Errorf("argmax with the first action masked = %d, want 1", got)
	}
}

// TestMasking checks the mask plumbing: the embedded catalog masks
// nothing (every provider prices every metro and tier, Azure's 2048 and
// 3008 MB on Flex Consumption); a provider whose actions are forbidden
// never gets them, sampled, greedy or uniform; and the other providers'
// rows are unaffected.
func TestMasking(t *testing.T) {
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if a := CatalogAvailability(cat); !a.All() {
		for p := range cloud.Provider(cloud.NumProviders) {
			t.Errorf("catalog: %s offers %d of %d actions", p, a.Count(p), Actions)
		}
	}
	avail := AllAvailable()
	for a := range Actions {
		if a%cloud.NumTiers >= 4 || a/cloud.NumTiers == 3 { // no 2048/3008 MB, no ap-southeast
			avail.Set(cloud.Azure, a, false)
		}
	}
	avail.Set(cloud.GCP, 0, false)
	rows := tacticalRows(30, 300)
	for i := range rows {
		rows[i].Provider = []string{"azure", "gcp", "aws"}[i%3]
	}
	trained := trainedLearner(t, 31).Model()
	untrained := mustLearner(t, smallConfig(8), 32).Model()
	for _, c := range []struct {
		name   string
		m      *Model
		greedy bool
	}{{"sampled", trained, false}, {"greedy", trained, true}, {"uniform", untrained, false}} {
		p := mustPolicy(t, c.m, PolicyOptions{Seed: 3, Greedy: c.greedy, Availability: avail})
		plain := byEntity(decide(t, mustPolicy(t, c.m, PolicyOptions{Seed: 3, Greedy: c.greedy}), 9, rows))
		for tick := int64(0); tick < 5; tick++ {
			for _, d := range decide(t, p, 9+tick, rows) {
				pv, err := cloud.ParseProvider(d.Provider)
				if err != nil {
					t.Fatal(err)
				}
				if !avail.Allowed(pv, int(d.Action)) {
					t.Fatalf("%s: %s took forbidden action %d", c.name, d.Provider, d.Action)
				}
				if c.name == "uniform" && pv == cloud.Azure && math.Abs(d.LogProb.V+math.Log(12)) > 1e-12 {
					t.Fatalf("uniform log-prob %v over 12 allowed actions", d.LogProb.V)
				}
				if tick == 0 && pv == cloud.AWS && d != plain[[2]string{d.App, d.Func}] {
					t.Errorf("%s: aws row changed by another provider's mask", c.name)
				}
			}
		}
	}
	// The mask reaches the network: forbidden actions have probability 0.
	x := rows[0].Vector()
	out, err := trained.Forward(x, avail.Mask(cloud.Azure))
	if err != nil {
		t.Fatal(err)
	}
	for a, q := range out.Probs {
		if !avail.Allowed(cloud.Azure, a) && q != 0 {
			t.Errorf("forbidden action %d has probability %v", a, q)
		}
	}
	if got := ProviderOfState(rows[1].Vector(), cloud.AWS); got != cloud.GCP {
		t.Errorf("provider of a gcp state = %s", got)
	}
	empty := AllAvailable()
	for a := range Actions {
		empty.Set(cloud.GCP, a, false)
	}
	p := mustPolicy(t, trained, PolicyOptions{Availability: empty})
	var out2 schemas.DecisionBatch
	if err := p.Decide(context.Background(), batch(1, rows[:3]), &out2); err == nil {
		t.Error("a provider offering no action did not fail")
	}
}

// TestDecideGuards checks the non-finite row guard, layer and nil checks.
func TestDecideGuards(t *testing.T) {
	p := mustPolicy(t, trainedLearner(t, 41).Model(), PolicyOptions{})
	rows := tacticalRows(42, 5)
	rows[2].LatencyMeanMS = schemas.Some(math.NaN())
	rows[4].Trend = math.Inf(1)
	got := decide(t, p, 1, rows)
	if len(got) != 3 || p.Stats().SkippedNonFinite != 2 || p.Stats().Decided != 3 {
		t.Errorf("%d decisions, stats %+v; want 3 decided, 2 skipped", len(got), p.Stats())
	}
	var out schemas.DecisionBatch
	b := batch(1, rows)
	b.Header.Layer = schemas.Strategic
	if err := p.Decide(context.Background(), b, &out); err == nil {
		t.Error("a strategic batch was accepted")
	}
	if err := p.Decide(context.Background(), nil, &out); err == nil {
		t.Error("a nil batch was accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Decide(ctx, batch(1, rows), &out); err == nil {
		t.Error("a cancelled context was accepted")
	}
	if p.Name() != "ppo" || p.Layer() != schemas.Tactical || p.Version() != "v1" {
		t.Errorf("name %q, layer %q, version %q", p.Name(), p.Layer(), p.Version())
	}
	if n, err := ParseVersion("v12"); err != nil || n != 12 {
		t.Errorf("ParseVersion(v12) = %d, %v", n, err)
	}
	for _, bad := range []string{"12", "v", "v-1", "vx"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
}
