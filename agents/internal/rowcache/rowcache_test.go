package rowcache

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestCursorAgreesWithMap feeds batches whose rows enter, leave, repeat
// and change order, and checks every hit against the map it stands for.
func TestCursorAgreesWithMap(t *testing.T) {
	tests := []struct {
		name                  string
		rows, ticks           int
		enter, leave, shuffle float64
		repeat                bool
		wantHitsAtLeast       float64
	}{
		{name: "stable", rows: 200, ticks: 50, wantHitsAtLeast: 0.97},
		{name: "churn", rows: 200, ticks: 50, enter: 0.02, leave: 0.02, wantHitsAtLeast: 0.9},
		{name: "shuffled", rows: 50, ticks: 20, shuffle: 1},
		{name: "shared keys", rows: 100, ticks: 20, repeat: true, wantHitsAtLeast: 0.94},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			truth := map[string]*int{}
			var c cursor[string, *int]
			keys := make([]string, tc.rows)
			for i := range keys {
				keys[i] = fmt.Sprintf("k%05d", i*10)
			}
			hits, total := 0, 0
			for tick := range tc.ticks {
				var next, rows []string
				for _, k := range keys {
					if rng.Float64() >= tc.leave {
						next = append(next, k)
					}
					if rng.Float64() < tc.enter {
						next = append(next, fmt.Sprintf("%s-%d", k, tick))
					}
				}
				if rng.Float64() < tc.shuffle {
					rng.Shuffle(len(next), func(i, j int) { next[i], next[j] = next[j], next[i] })
				}
				keys = next
				for _, k := range keys {
					rows = append(rows, k)
					if tc.repeat { // an app's functions share its key
						rows = append(rows, k, k)
					}
				}
				c.Next()
				for _, k := range rows {
					total++
					v, ok := c.Get(k)
					if ok {
						hits++
						if v != truth[k] {
							t.Fatalf("tick %d: key %s: cursor gave %p, map holds %p", tick, k, v, truth[k])
						}
					} else {
						if truth[k] == nil {
							truth[k] = new(int)
						}
						v = truth[k]
					}
					c.Put(k, v)
				}
			}
			if rate := float64(hits) / float64(total); rate < tc.wantHitsAtLeast {
				t.Errorf("hit rate %.3f, want at least %.2f", rate, tc.wantHitsAtLeast)
			}
		})
	}
}

// BenchmarkCursorVersusMap compares a batch's lookups through a cursor and
// through a map keyed by two 64-byte names, as the agents' tables are.
func BenchmarkCursorVersusMap(b *testing.B) {
	type key struct{ app, fn string }
	const n = 250
	keys := make([]key, n)
	m := map[key]*int{}
	for i := range keys {
		keys[i] = key{fmt.Sprintf("%064d", i), fmt.Sprintf("%064d", i+n)}
		m[keys[i]] = new(int)
	}
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			for _, k := range keys {
				_ = m[k]
			}
		}
	})
	b.Run("cursor", func(b *testing.B) {
		var c cursor[key, *int]
		for b.Loop() {
			c.Next()
			for _, k := range keys {
				v, ok := c.Get(k)
				if !ok {
					v = m[k]
				}
				c.Put(k, v)
			}
		}
	})
}

// TestTableRows reads two shards' batches in turn, rows entering and
// leaving, and checks that Row gives each key one value for good, made
// once, the first time the key is seen in either shard.
func TestTableRows(t *testing.T) {
	var tb Table[string, int]
	made := map[string]*int{}
	rng := rand.New(rand.NewPCG(3, 4))
	for tick := range 30 {
		for shard := range 2 {
			tb.Batch(shard)
			for i := range 40 {
				if rng.IntN(10) == 0 {
					continue // left this batch
				}
				k := fmt.Sprintf("s%d-k%d", shard, i)
				if i%7 == 0 {
					k = fmt.Sprintf("shared-%d", i) // in both shards
				}
				v, created := tb.Row(k, func() *int { return new(int) })
				switch want := made[k]; {
				case want == nil && !created:
					t.Fatalf("tick %d shard %d: %s seen first without being made", tick, shard, k)
				case want != nil && (created || v != want):
					t.Fatalf("tick %d shard %d: %s gave %p (made %v), first made %p", tick, shard, k, v, created, want)
				}
				made[k] = v
			}
		}
	}
}
