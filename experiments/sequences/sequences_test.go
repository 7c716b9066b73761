package sequences

import (
	"fmt"
	"slices"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

// TestSampleKeyOrderIndependent checks that the kept sample depends only on
// the seed and the samples, not on the order they arrive in.
func TestSampleKeyOrderIndependent(t *testing.T) {
	mk := func(order []int) []*Sample {
		c := NewCollector(7, 5)
		for _, k := range order {
			cur := &row{ok: true}
			next := &row{ok: true, target: [3]float32{float32(k), 0, 0}}
			c.pair(int64(k), "a", "f", cur, next)
		}
		return c.sorted()
	}
	var fwd, rev []int
	for k := range 50 {
		fwd = append(fwd, k)
		rev = append([]int{k}, rev...)
	}
	a, b := mk(fwd), mk(rev)
	if len(a) != 5 || len(b) != 5 {
		t.Fatalf("kept %d and %d samples, want 5", len(a), len(b))
	}
	for i := range a {
		if a[i].Tick != b[i].Tick {
			t.Fatalf("sample %d: tick %d forward, %d reversed", i, a[i].Tick, b[i].Tick)
		}
	}
	if sampleKey(1, 3, "a", "f") == sampleKey(2, 3, "a", "f") {
		t.Fatal("the key does not depend on the seed")
	}
	c := NewCollector(1, 0)
	c.pair(1, "a", "f", &row{ok: true}, &row{ok: false})
	if c.Seen != 1 || c.Skipped != 1 || len(c.sorted()) != 0 {
		t.Fatalf("missing target: seen %d skipped %d kept %d, want 1 1 0", c.Seen, c.Skipped, len(c.sorted()))
	}
}

// TestSeqCollectorShardsAtTheirOwnPace feeds the same operational batches
// of two shards interleaved tick by tick and one shard after the other (a
// lagging partition): the samples kept are the same, none late.
func TestSeqCollectorShardsAtTheirOwnPace(t *testing.T) {
	const ticks = 100 // more than window: one shard runs far ahead
	batch := func(shard int, k int64) []byte {
		r := schemas.OperationalRow{App: fmt.Sprintf("app%d", shard), Func: "f"}
		for i := range schemas.SeqLen {
			r.RequestRate[i] = float64(k + int64(i))
			r.CPUUtil[i], r.MemoryUtil[i] = schemas.Some(0.5), schemas.Some(0.25)
		}
		h := schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, Tick: k, TickStartUS: k * 15_000_000, Shard: shard, NShards: 2}
		data, err := schemas.EncodeState(&schemas.StateBatch{Header: h, Operational: []schemas.OperationalRow{r}})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	collect := func(order [][2]int64) *Collector {
		c := NewCollector(7, 10)
		for _, o := range order {
			c.OnBatch(schemas.BatchHeader{Layer: schemas.Operational}, 1, batch(int(o[0]), o[1]))
		}
		return c
	}
	var interleaved, lagging [][2]int64
	for k := range int64(ticks) {
		interleaved = append(interleaved, [2]int64{0, k}, [2]int64{1, k})
	}
	for s := range int64(2) {
		for k := range int64(ticks) {
			lagging = append(lagging, [2]int64{s, k})
		}
	}
	a, b := collect(interleaved), collect(lagging)
	if a.Late != 0 || b.Late != 0 || a.Seen != b.Seen || a.Seen != 2*(ticks-1) {
		t.Fatalf("late %d/%d, seen %d/%d; want 0 late and %d seen each", a.Late, b.Late, a.Seen, b.Seen, 2*(ticks-1))
	}
	key := func(c *Collector) []string {
		var ks []string
		for _, s := range c.kept {
			ks = append(ks, fmt.Sprintf("%s/%d", s.App, s.Tick))
		}
		slices.Sort(ks)
		return ks
	}
	if !slices.Equal(key(a), key(b)) {
		t.Fatalf("kept %v interleaved, %v with a lagging shard", key(a), key(b))
	}
}
