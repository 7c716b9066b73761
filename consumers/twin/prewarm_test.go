package twin

import (
	"fmt"
	"testing"

	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// TestPrewarmCoversKnownBurst checks the engine's pre-warm semantics on a
// known burst, on every provider: one invocation of p/f at tick 0, then a
// burst of n concurrent invocations at tick k, 25 min later — longer than
// every provider's free keep-alive (aws 10, azure 20, gcp 15 min), so the
// first instance has expired. An operational decision Prewarm = P applied
// for tick k tops the pool up to P ready instances at the tick's start
// (cloud.Model.Evaluate), so the burst has exactly n − P cold starts:
// P = n → 0, P = n − 1 → 1, P = 0 → n. Counted from Config.Outcomes and
// cross-checked against the telemetry and the tick's operational reward.
func TestPrewarmCoversKnownBurst(t *testing.T) {
	const (
		n     = 5
		k     = 100 // 25 min after tick 0
		durUS = 2_000_000
	)
	cat, err := cloud.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	m, err := cloud.NewModel(cat, cloud.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	burstUS := int64(k)*grid.OperationalTickUS + 3_000_000
	for p := range cloud.NumProviders {
		if ka := int64(cat.KeepAliveMin[p].Value * 60e6); ka >= burstUS-(1_000_000+durUS) {
			t.Fatalf("%s free keep-alive %v min reaches the burst: the gap no longer tests pre-warm", cloud.Provider(p), cat.KeepAliveMin[p].Value)
		}
	}
	arrivals := map[int64][]Arrival{0: {{ID: "first", App: "p", Func: "f", StartUS: 1_000_000, DurationUS: durUS}}}
	for i := range n {
		arrivals[k] = append(arrivals[k], Arrival{ID: fmt.Sprintf("burst-%d", i), App: "p", Func: "f", StartUS: burstUS, DurationUS: durUS})
	}
	for p := range cloud.NumProviders {
		for _, tt := range []struct{ prewarm, cold int }{{n, 0}, {n - 1, 1}, {0, n}} {
			t.Run(fmt.Sprintf("%s/prewarm=%d", cloud.Provider(p), tt.prewarm), func(t *testing.T) {
				e, err := NewEngine(m, Config{RunID: "r", Reward: cloud.DefaultRewardConfig(), Outcomes: true,
					DefaultPlacement: cloud.Placement{Provider: cloud.Provider(p), Metro: cloud.USEast, Tier: 3}},
					func(app, fn string) cloud.Function { return m.NewFunction(app, fn, cloud.USEast, nil) })
				if err != nil {
					t.Fatal(err)
				}
				for tick := range int64(k + 1) {
					if tick == k {
						h := schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, Tick: k, TickStartUS: k * grid.OperationalTickUS, NShards: 1}
						if err := e.Apply(&schemas.DecisionBatch{Header: h, Rows: []schemas.DecisionRow{
							{App: "p", Func: "f", Prewarm: int32(tt.prewarm), Action: int32(tt.prewarm), Policy: "test"}}}); err != nil {
							t.Fatal(err)
						}
					}
					out, err := e.Tick(tick, arrivals[tick])
					if err != nil {
						t.Fatal(err)
					}
					if len(out.Outcomes) != len(arrivals[tick]) || len(out.Telemetry) != len(arrivals[tick]) {
						t.Fatalf("tick %d: %d outcomes, %d observations for %d arrivals", tick, len(out.Outcomes), len(out.Telemetry), len(arrivals[tick]))
					}
					var cold, obsCold int
					for i, o := range out.Outcomes {
						if o.GetColdStart() {
							cold++
						}
						if out.Telemetry[i].GetColdStart() {
							obsCold++
						}
					}
					want := 0
					switch tick {
					case 0:
						want = 1 // nothing warm yet
					case k:
						want = tt.cold
					}
					if cold != want || obsCold != want {
						t.Fatalf("tick %d: %d cold starts in the outcomes, %d in the telemetry, want %d", tick, cold, obsCold, want)
					}
					if tick != k {
						continue
					}
					var op int
					for _, r := range out.Rewards {
						if r.GetLayer() != string(schemas.Operational) {
							continue
						}
						op++
						if r.GetColdStarts() != int64(want) || r.GetInvocations() != n {
							t.Fatalf("burst tick's operational reward counts %d cold starts of %d invocations, want %d of %d", r.GetColdStarts(), r.GetInvocations(), want, n)
						}
					}
					if op != 1 {
						t.Fatalf("burst tick emitted %d operational rewards, want 1", op)
					}
				}
			})
		}
	}
}
