package schemas_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/strata-rl/strata/schemas"
)

// stepValue is the made-up telemetry of function f at step t.
func stepValue(f int, t int64) float64 { return float64(f*1000) + float64(t) + 0.25 }

// wholeRow is function f's whole operational row for tick k.
func wholeRow(f int, k int64) schemas.OperationalRow {
	r := schemas.OperationalRow{App: fmt.Sprintf("app%d", f%3), Func: fmt.Sprintf("f%d", f), Invocations: int64(f), IdleTimesS: []float64{float64(k)}}
	for j := range schemas.SeqLen {
		t := k - schemas.SeqLen + int64(j)
		v := stepValue(f, t)
		r.RequestRate[j], r.HourSin[j] = v, math.Sin(v)
		r.ConcurrencyMean[j], r.ConcurrencyPeak[j] = v/2, v/3
		r.CPUUtil[j] = schemas.Some(v / 4)
		if t%5 != 0 {
			r.MemoryUtil[j] = schemas.Some(v / 5)
		}
		if t%7 == 0 {
			r.QueueDepth[j] = schemas.Some(v / 7)
		}
	}
	return r
}

// TestSequencesRebuildWholeRows sends, per shard and tick, the active
// functions' rows as the feature service does — whole when a function
// enters its shard's batches, its newest step after that — through the
// Arrow encoding, and checks that Sequences gives back every whole row.
func TestSequencesRebuildWholeRows(t *testing.T) {
	// active reports whether function f is in tick k's batch: functions
	// come and go.
	active := func(f int, k int64) bool { return (k/17+int64(f))%4 != 0 }
	const shards, funcs, ticks = 2, 9, 120
	var seq schemas.Sequences
	prevIn := map[[2]int]bool{}
	for k := range int64(ticks) {
		for sh := range shards {
			b := &schemas.StateBatch{Header: schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, Tick: k, TickStartUS: k * 15_000_000, Shard: sh, NShards: shards}}
			var want []schemas.OperationalRow
			in := map[[2]int]bool{}
			for f := sh; f < funcs; f += shards {
				if !active(f, k) {
					continue
				}
				w := wholeRow(f, k)
				want = append(want, w)
				r := w
				if prevIn[[2]int{sh, f}] {
					r.Steps = 1
				}
				b.Operational = append(b.Operational, r)
				in[[2]int{sh, f}] = true
			}
			for key := range prevIn {
				if key[0] == sh && !in[key] {
					delete(prevIn, key)
				}
			}
			for key := range in {
				prevIn[key] = true
			}
			// Rows travel in (app, func) order, as the contract says.
			byKey := func(a, c schemas.OperationalRow) int {
				return strings.Compare(a.App+"\x00"+a.Func, c.App+"\x00"+c.Func)
			}
			slices.SortFunc(b.Operational, byKey)
			slices.SortFunc(want, byKey)
			data, err := schemas.EncodeState(b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := schemas.DecodeState(data)
			if err != nil {
				t.Fatal(err)
			}
			seq.Fill(got)
			if len(got.Operational) != len(want) {
				t.Fatalf("tick %d shard %d: %d rows, want %d", k, sh, len(got.Operational), len(want))
			}
			for i := range want {
				if !sameOperationalRow(got.Operational[i], want[i]) {
					t.Fatalf("tick %d shard %d: row %d rebuilt as\n%+v\nwant\n%+v", k, sh, i, got.Operational[i], want[i])
				}
			}
		}
	}
	if seq.Partial != 0 || seq.Gaps != 0 || seq.Stale != 0 {
		t.Fatalf("partial %d, gaps %d, stale %d; want none", seq.Partial, seq.Gaps, seq.Stale)
	}
}

// TestSequencesAfterAGap checks that a reader that missed a batch keeps
// the steps it can still know, zeroes the rest and counts the gap.
func TestSequencesAfterAGap(t *testing.T) {
	var seq schemas.Sequences
	batch := func(k int64, steps int) *schemas.StateBatch {
		r := wholeRow(1, k)
		r.Steps = steps
		if steps > 0 {
			for j := range schemas.SeqLen - steps { // what the wire does not carry
				r.RequestRate[j] = 0
			}
		}
		return &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: k}, Operational: []schemas.OperationalRow{r}}
	}
	seq.Fill(batch(10, 0))
	b := batch(13, 1) // ticks 11 and 12 missed
	seq.Fill(b)
	want := wholeRow(1, 13)
	for j := range schemas.SeqLen - 3 {
		if b.Operational[0].RequestRate[j] != want.RequestRate[j] {
			t.Errorf("step %d: %v, want %v (known from tick 10's row)", j, b.Operational[0].RequestRate[j], want.RequestRate[j])
		}
	}
	for j := schemas.SeqLen - 3; j < schemas.SeqLen-1; j++ {
		if b.Operational[0].RequestRate[j] != 0 {
			t.Errorf("step %d: %v, want 0 (in the gap)", j, b.Operational[0].RequestRate[j])
		}
	}
	if seq.Gaps != 1 || seq.Partial != 1 {
		t.Errorf("gaps %d, partial %d; want 1 gap and 1 partial row", seq.Gaps, seq.Partial)
	}
	seq.Fill(batch(40, 1)) // far past the history
	if seq.Gaps != 2 || seq.Partial != 2 {
		t.Errorf("gaps %d, partial %d; want 2 and 2", seq.Gaps, seq.Partial)
	}
	seq.Fill(batch(5, 1))
	if seq.Stale != 1 {
		t.Errorf("stale %d, want 1", seq.Stale)
	}
}

func sameOperationalRow(a, b schemas.OperationalRow) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

// TestSequencesOmittedRows: what Fill makes of a batch that leaves idle
// rows out, after a batch that held functions a, b and c.
func TestSequencesOmittedRows(t *testing.T) {
	row := func(fn string, steps int) schemas.OperationalRow {
		r := schemas.OperationalRow{App: "app", Func: fn, Steps: steps, LastStartUS: 7}
		for j := range schemas.SeqLen {
			r.RequestRate[j], r.CPUUtil[j] = 1, schemas.Some(0.5)
		}
		return r
	}
	first := func() *schemas.StateBatch {
		return &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: 10},
			Operational: []schemas.OperationalRow{row("a", 0), row("b", 0), row("c", 0)}}
	}
	tests := []struct {
		name      string
		tick      int64
		omits     bool
		rows      []schemas.OperationalRow
		wantFuncs string
		stale     int64
	}{
		{name: "left-out rows come back, a departure goes", tick: 11, omits: true,
			rows: []schemas.OperationalRow{row("b", 1), {App: "app", Func: "c", Left: true}}, wantFuncs: "a b"},
		{name: "a new function among left-out ones keeps the order", tick: 11, omits: true,
			rows: []schemas.OperationalRow{row("aa", 0)}, wantFuncs: "a aa b c"},
		{name: "a batch that omits nothing: missing functions left", tick: 11, omits: false,
			rows: []schemas.OperationalRow{row("b", 1)}, wantFuncs: "b"},
		{name: "a stale batch is applied as it came, departures dropped", tick: 9, omits: true,
			rows: []schemas.OperationalRow{row("b", 1), {App: "app", Func: "c", Left: true}}, wantFuncs: "b", stale: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var seq schemas.Sequences
			seq.Fill(first())
			b := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: tc.tick},
				OmitsIdle: tc.omits, HourSin: 0.25, Operational: tc.rows}
			seq.Fill(b)
			var got []string
			for _, r := range b.Operational {
				got = append(got, r.Func)
				if r.Steps != 0 || r.Left {
					t.Errorf("%s: Steps %d, Left %v after Fill", r.Func, r.Steps, r.Left)
				}
			}
			if s := strings.Join(got, " "); s != tc.wantFuncs {
				t.Fatalf("functions %q, want %q", s, tc.wantFuncs)
			}
			if seq.Stale != tc.stale {
				t.Errorf("stale %d, want %d", seq.Stale, tc.stale)
			}
			if tc.name != "left-out rows come back, a departure goes" {
				return
			}
			// a was left out: its sequence moved on one idle step.
			a := b.Operational[0]
			last := schemas.SeqLen - 1
			if a.RequestRate[last] != 0 || a.RequestRate[last-1] != 1 || a.CPUUtil[last] != schemas.Some(0) ||
				a.MemoryUtil[last].Valid || a.HourSin[last] != 0.25 || a.LastStartUS != 7 || a.Invocations != 0 {
				t.Errorf("rebuilt row of a: %+v", a)
			}
		})
	}
}

// TestSequencesUnsortedBatch: a batch whose rows are not in (app, func)
// order (another writer than the feature service) is completed all the
// same, and comes out in order.
func TestSequencesUnsortedBatch(t *testing.T) {
	var seq schemas.Sequences
	first := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: 1},
		Operational: []schemas.OperationalRow{wholeRow(2, 1), wholeRow(1, 1)}}
	seq.Fill(first)
	next := func(f int) schemas.OperationalRow {
		r := wholeRow(f, 2)
		r.Steps = 1
		return r
	}
	b := &schemas.StateBatch{Header: schemas.BatchHeader{Layer: schemas.Operational, Tick: 2},
		Operational: []schemas.OperationalRow{next(2), next(1)}}
	seq.Fill(b)
	want := []schemas.OperationalRow{wholeRow(1, 2), wholeRow(2, 2)}
	for i := range want {
		if !sameOperationalRow(b.Operational[i], want[i]) {
			t.Fatalf("row %d: %+v\nwant %+v", i, b.Operational[i], want[i])
		}
	}
	if seq.Partial != 0 {
		t.Errorf("partial %d, want 0", seq.Partial)
	}
}

// BenchmarkSequencesFill fills, tick after tick, a shard's batch that
// carries the newest step of 100 of its 1,000 functions and leaves the
// idle others out, as the 14-day closed loop's operational batches do: the
// work of every operational agent and of the twin's transitions per tick.
func BenchmarkSequencesFill(b *testing.B) {
	const funcs, active = 1000, 100
	whole := make([]schemas.OperationalRow, funcs)
	for f := range funcs {
		whole[f] = wholeRow(f, 0)
	}
	byKey := func(a, c schemas.OperationalRow) int {
		return strings.Compare(a.App+"\x00"+a.Func, c.App+"\x00"+c.Func)
	}
	slices.SortFunc(whole, byKey)
	var seq schemas.Sequences
	first := &schemas.StateBatch{Header: schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, NShards: 1}, Operational: slices.Clone(whole)}
	seq.Fill(first)
	rows := make([]schemas.OperationalRow, 0, active)
	for i := 0; i < funcs; i += funcs / active {
		r := whole[i]
		r.Steps = 1
		rows = append(rows, r)
	}
	k := int64(0)
	for b.Loop() {
		k++
		bt := &schemas.StateBatch{Header: schemas.BatchHeader{RunID: "r", Layer: schemas.Operational, Tick: k, NShards: 1},
			OmitsIdle: true, Operational: append(make([]schemas.OperationalRow, 0, active), rows...)}
		seq.Fill(bt)
		if len(bt.Operational) != funcs {
			b.Fatalf("%d rows filled, want %d", len(bt.Operational), funcs)
		}
	}
}
