package features

import (
	"bytes"
	"cmp"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

const s15 = grid.OperationalTickUS

// collectSeqs completes each partition's operational rows across collect
// calls, as a reader of the state stream does (schemas.Sequences).
var collectSeqs = map[*Partition]*schemas.Sequences{}

// collect advances p to wm and returns the batches it emitted, their
// operational rows completed to whole sequences.
func collect(t *testing.T, p *Partition, wm int64, final bool) []*schemas.StateBatch {
	t.Helper()
	seqs := collectSeqs[p]
	if seqs == nil {
		seqs = &schemas.Sequences{}
		collectSeqs[p] = seqs
	}
	out := advance(t, p, wm, final)
	for _, b := range out {
		seqs.Fill(b)
		// The filled rows are the Sequences' until its next Fill but one:
		// a reader that keeps them copies them.
		b.Operational = slices.Clone(b.Operational)
	}
	return out
}

// advance advances p to wm and returns copies of the batches it emitted as
// they go on the wire (operational rows with their newest steps only).
func advance(t *testing.T, p *Partition, wm int64, final bool) []*schemas.StateBatch {
	t.Helper()
	var out []*schemas.StateBatch
	if err := p.Advance(wm, final, func(b *schemas.StateBatch) error {
		cp := *b // rows are only valid during the call: copy them
		cp.Operational = append([]schemas.OperationalRow(nil), b.Operational...)
		cp.Tactical = append([]schemas.TacticalRow(nil), b.Tactical...)
		cp.Strategic = append([]schemas.StrategicRow(nil), b.Strategic...)
		out = append(out, &cp)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPartitionCountsEachInvocationInItsStartTick(t *testing.T) {
	p := NewPartition("r", 0, 1, grid.DefaultEpoch)
	first := collect(t, p, 0, false)
	if len(first) != 3 {
		t.Fatalf("first advance emitted %d batches, want operational+tactical+strategic for tick 0", len(first))
	}
	for _, b := range first {
		if b.Len() != 0 || b.Header.Tick != 0 {
			t.Fatalf("initial batch %+v not empty for tick 0", b.Header)
		}
	}
	// Three invocations in tick 0, one in tick 2 (start = end − duration).
	evs := []Event{
		{App: "a", Func: "f", StartUS: 1_000_000, DurationUS: 500_000},
		{App: "a", Func: "f", StartUS: 14_999_999, DurationUS: 30_000_000}, // ends in tick 2, starts in tick 0
		{App: "a", Func: "g", StartUS: 0, DurationUS: 0},
		{App: "a", Func: "f", StartUS: 2*s15 + 1, DurationUS: 10},
	}
	for i := range evs {
		if err := p.Add(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, p, 3*s15, false)
	// Ticks 0,1,2 close → operational batches for ticks 1,2,3.
	if len(got) != 3 {
		t.Fatalf("got %d batches, want 3", len(got))
	}
	var sum int64
	for i, b := range got {
		if b.Header.Layer != schemas.Operational || b.Header.Tick != int64(i+1) {
			t.Fatalf("batch %d header %+v", i, b.Header)
		}
		for _, r := range b.Operational {
			sum += r.Invocations
		}
	}
	if sum != 4 {
		t.Fatalf("invocations counted in last steps: %d, want 4", sum)
	}
	f := got[2].Operational[0] // tick 3 state, function a/f
	if f.Func != "f" {
		t.Fatalf("rows not sorted by (app, func): %+v", got[2].Operational)
	}
	want := [schemas.SeqLen]float64{}
	want[9] = 2.0 / 15 // tick 0
	want[11] = 1.0 / 15
	if f.RequestRate != want {
		t.Fatalf("request rate sequence %v, want %v", f.RequestRate, want)
	}
	for i := range schemas.SeqLen {
		if f.CPUUtil[i].Valid || f.MemoryUtil[i].Valid || f.QueueDepth[i].Valid {
			t.Fatalf("trace telemetry carries no utilisation, step %d marked valid", i)
		}
	}
	// A late event is rejected and counted.
	if err := p.Add(&Event{App: "a", Func: "f", StartUS: s15}); !errors.Is(err, ErrLate) {
		t.Fatalf("late event: err %v, want ErrLate", err)
	}
	if p.Late() != 1 {
		t.Fatalf("late count %d", p.Late())
	}
}

func TestPartitionUtilisationAndActivity(t *testing.T) {
	p := NewPartition("r", 0, 1, grid.DefaultEpoch)
	collect(t, p, 0, false)
	ev := Event{App: "a", Func: "f", StartUS: 0, DurationUS: 3_000_000,
		HasCPU: true, CPUBusyMS: 1500, HasMemory: true, MemoryUsed: 64, MemoryMB: 128, Instances: 2,
		HasQueue: true, QueueWaitMS: 300, HasLatency: true, LatencyMS: 40, HasCold: true, Cold: true,
		Provider: "aws", Region: "us-east"}
	if err := p.Add(&ev); err != nil {
		t.Fatal(err)
	}
	b := collect(t, p, s15, false)[0].Operational[0]
	last := schemas.SeqLen - 1
	if got, want := b.CPUUtil[last].V, 1.5/(2*15.0); math.Abs(got-want) > 1e-12 {
		t.Fatalf("cpu util %v want %v", got, want)
	}
	// Memory is held for the busy time (1.5 s), not the trace's duration
	// (3 s): memory and CPU utilisation divide the same time, so their
	// ratio is the memory in use over the tier (64 of 128).
	if got, want := b.MemoryUtil[last].V, 64*1.5/(2*128*15.0); math.Abs(got-want) > 1e-12 {
		t.Fatalf("memory util %v want %v", got, want)
	}
	if got := b.MemoryUtil[last].V / b.CPUUtil[last].V; math.Abs(got-64.0/128) > 1e-12 {
		t.Fatalf("memory ÷ CPU utilisation %v, want the share of the tier in use 0.5", got)
	}
	if got, want := b.QueueDepth[last].V, 0.3/15; math.Abs(got-want) > 1e-12 {
		t.Fatalf("queue depth %v want %v", got, want)
	}
	if !b.CPUUtil[0].Valid || b.CPUUtil[0].V != 0 {
		t.Fatalf("idle step of a function with CPU telemetry should be a known 0, got %+v", b.CPUUtil[0])
	}
	// The function stays active for 4 h after its last invocation, then drops out.
	hour := grid.TacticalTickUS / s15
	var lastActive int64 = -1
	var tac []*schemas.StateBatch
	for _, bt := range collect(t, p, 5*grid.TacticalTickUS, false) {
		if bt.Header.Layer == schemas.Operational && bt.Len() > 0 {
			lastActive = bt.Header.Tick
		}
		if bt.Header.Layer == schemas.Tactical {
			tac = append(tac, bt)
		}
	}
	if want := ActiveWindowUS / s15; lastActive != want {
		t.Fatalf("last active tick %d, want %d (4 h after the start in tick 0)", lastActive, want)
	}
	if len(tac) != 5 || tac[0].Header.Tick != 1 || tac[0].Len() != 1 {
		t.Fatalf("tactical batches %d, first %+v", len(tac), tac[0].Header)
	}
	r := tac[0].Tactical[0]
	if r.Invocations != 1 || r.Provider != "aws" || r.Region != "us-east" || r.MemoryMB != 128 ||
		!r.ColdStartRate.Valid || r.ColdStartRate.V != 1 || !r.LatencyMeanMS.Valid || r.LatencyMeanMS.V != 40 {
		t.Fatalf("tactical row %+v", r)
	}
	if math.Abs(r.DurationP95MS-3000)/3000 > 0.025 {
		t.Fatalf("duration p95 %v, want 3000 within 2.5%%", r.DurationP95MS)
	}
	_ = hour
}

func TestSnapshotRestoresIdenticalOutput(t *testing.T) {
	mk := func() *Partition {
		p := NewPartition("r", 1, 3, grid.DefaultEpoch)
		collect(t, p, 0, false)
		for i := range int64(50) {
			e := Event{App: "a", Func: []string{"f", "g"}[i%2], StartUS: i * 7_000_000, DurationUS: 1000, HasCPU: i%3 == 0, CPUBusyMS: 1, Instances: 1}
			if err := p.Add(&e); err != nil {
				t.Fatal(err)
			}
		}
		collect(t, p, 10*s15, false)
		return p
	}
	a := mk()
	b := restored(t, a)
	enc := func(p *Partition) []string {
		var out []string
		for _, bt := range advance(t, p, 2*grid.TacticalTickUS, true) {
			d, err := schemas.EncodeState(bt)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(d))
		}
		return out
	}
	ea, eb := enc(a), enc(b)
	if len(ea) != len(eb) || len(ea) == 0 {
		t.Fatalf("batch counts %d vs %d", len(ea), len(eb))
	}
	for i := range ea {
		if ea[i] != eb[i] {
			t.Fatalf("batch %d differs after restore", i)
		}
	}
}

func TestPartitionConcurrencyAndIdleTimes(t *testing.T) {
	p := NewPartition("r", 0, 1, grid.DefaultEpoch)
	collect(t, p, 0, false)
	sec := int64(1_000_000)
	for _, iv := range [][2]int64{{0, 20}, {5, 6}, {10, 10}, {14, 16}, {40, 41}} {
		e := Event{App: "a", Func: "f", StartUS: iv[0] * sec, DurationUS: (iv[1] - iv[0]) * sec}
		if err := p.Add(&e); err != nil {
			t.Fatal(err)
		}
	}
	bs := collect(t, p, 4*s15, false)
	if len(bs) != 4 {
		t.Fatalf("%d batches, want operational batches for ticks 1..4", len(bs))
	}
	last := schemas.SeqLen - 1
	cases := []struct {
		batch      int // state for tick batch+1, last step = tick batch
		mean, peak float64
		idle       []float64
	}{
		// Tick 0: [0,20) 15 s + [5,6) 1 s + [10,10) 0 s + [14,16) 1 s = 17 s;
		// two in flight at 5 s, at 10 s (the instant) and at 14 s.
		{0, 17.0 / 15, 2, []float64{0, 0, 0}},
		// Tick 1: [0,20) 5 s + [14,16) 1 s; both in flight at 15 s.
		{1, 6.0 / 15, 2, nil},
		// Tick 2: [40,41) 1 s; its idle time is 40 − 20 = 20 s.
		{2, 1.0 / 15, 1, []float64{20}},
		// Tick 3: nothing in flight.
		{3, 0, 0, nil},
	}
	for _, c := range cases {
		r := bs[c.batch].Operational[0]
		if math.Abs(r.ConcurrencyMean[last]-c.mean) > 1e-12 || r.ConcurrencyPeak[last] != c.peak {
			t.Errorf("tick %d: concurrency mean %v peak %v, want %v and %v", c.batch, r.ConcurrencyMean[last], r.ConcurrencyPeak[last], c.mean, c.peak)
		}
		if len(r.IdleTimesS) != len(c.idle) {
			t.Errorf("tick %d: idle times %v, want %v", c.batch, r.IdleTimesS, c.idle)
			continue
		}
		for i := range c.idle {
			if r.IdleTimesS[i] != c.idle[i] {
				t.Errorf("tick %d: idle times %v, want %v", c.batch, r.IdleTimesS, c.idle)
			}
		}
	}
	// The sequence of the tick-4 state holds ticks 0..3 in its last four steps.
	seq := bs[3].Operational[0].ConcurrencyPeak
	if got := seq[last-3 : last+1]; got[0] != 2 || got[1] != 2 || got[2] != 1 || got[3] != 0 {
		t.Errorf("peak sequence %v", seq)
	}
}

func TestPartitionDeduplicatesOpenTicks(t *testing.T) {
	ev := func(id string, start int64) Event {
		return Event{ID: id, App: "a", Func: "f", StartUS: start, DurationUS: 1000}
	}
	tests := []struct {
		name string
		// first is added before the watermark moves to wm; second after.
		first, second Event
		wm            int64
		wantErr       error
		wantDup       int64
		wantLate      int64
	}{
		{name: "same tick", first: ev("x", 1_000_000), second: ev("x", 2_000_000), wm: 0,
			wantErr: ErrDuplicate, wantDup: 1},
		{name: "another open tick", first: ev("x", 1_000_000), second: ev("x", 3*s15+5), wm: s15 / 2,
			wantErr: ErrDuplicate, wantDup: 1},
		{name: "after its tick closed it is late", first: ev("x", 1_000_000), second: ev("x", 1_000_000), wm: s15,
			wantErr: ErrLate, wantLate: 1},
		{name: "after its tick closed a later tick takes it", first: ev("x", 1_000_000), second: ev("x", s15+1), wm: s15},
		{name: "empty id is never deduplicated", first: ev("", 1_000_000), second: ev("", 1_000_000), wm: 0},
		{name: "distinct ids", first: ev("x", 1_000_000), second: ev("y", 1_000_000), wm: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPartition("r", 0, 1, grid.DefaultEpoch)
			collect(t, p, 0, false)
			if err := p.Add(&tt.first); err != nil {
				t.Fatal(err)
			}
			collect(t, p, tt.wm, false)
			err := p.Add(&tt.second)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("second Add: err %v, want %v", err, tt.wantErr)
			}
			if p.Duplicates() != tt.wantDup || p.Late() != tt.wantLate {
				t.Fatalf("duplicates %d late %d, want %d and %d", p.Duplicates(), p.Late(), tt.wantDup, tt.wantLate)
			}
			// The windows count the invocation once (twice when both were taken).
			want := int64(1)
			if tt.wantErr == nil {
				want = 2
			}
			var n int64
			for _, b := range collect(t, p, 5*s15, false) {
				for _, r := range b.Operational {
					n += r.Invocations
				}
			}
			if tt.wm < s15 && n != want { // with wm ≥ s15 the first invocation's tick closed earlier
				t.Fatalf("windowed %d invocations, want %d", n, want)
			}
		})
	}
}

func TestSnapshotKeepsOpenIDs(t *testing.T) {
	p := NewPartition("r", 0, 1, grid.DefaultEpoch)
	collect(t, p, 0, false)
	for i, start := range []int64{1_000_000, s15 + 1, 2*s15 + 1} {
		e := Event{ID: fmt.Sprintf("id%d", i), App: "a", Func: "f", StartUS: start, DurationUS: 1000}
		if err := p.Add(&e); err != nil {
			t.Fatal(err)
		}
	}
	dup := Event{ID: "id1", App: "a", Func: "f", StartUS: s15 + 2}
	if err := p.Add(&dup); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate before the snapshot: err %v", err)
	}
	collect(t, p, s15, false) // closes tick 0: id0 is forgotten
	q := restored(t, p)
	if q.Duplicates() != 1 {
		t.Fatalf("restored duplicate count %d, want 1", q.Duplicates())
	}
	for _, c := range []struct {
		id      string
		start   int64
		wantErr error
	}{
		{"id1", s15 + 3, ErrDuplicate},
		{"id2", 3 * s15, ErrDuplicate}, // another open tick
		{"id0", 1_000_000, ErrLate},
		{"id0", s15 + 4, nil}, // tick 0 closed: its ids are forgotten
	} {
		e := Event{ID: c.id, App: "a", Func: "f", StartUS: c.start}
		if err := q.Add(&e); c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
			t.Fatalf("restored Add(%s at %d): err %v, want %v", c.id, c.start, err, c.wantErr)
		}
	}
	// A snapshot without the deduplication fields (written before they
	// existed) still restores.
	type oldSnapshot struct {
		RunID    string
		Shard    int
		NShards  int
		Started  bool
		NextTick int64
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(oldSnapshot{RunID: "r", NShards: 1, Started: true, NextTick: 7}); err != nil {
		t.Fatal(err)
	}
	old, err := RestorePartition(buf.Bytes())
	if err != nil {
		t.Fatalf("restoring a snapshot without open ids: %v", err)
	}
	e := Event{ID: "z", App: "a", Func: "f", StartUS: 7 * s15}
	if err := old.Add(&e); err != nil || old.NextTick() != 7 {
		t.Fatalf("old snapshot: add err %v, next tick %d", err, old.NextTick())
	}
}

// restored returns a partition restored from p's snapshot.
func restored(t *testing.T, p *Partition) *Partition {
	t.Helper()
	snap, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	q, err := RestorePartition(snap)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// rowsByTick returns the rows of bs's batches of layer l by tick.
func rowsByTick[T any](bs []*schemas.StateBatch, l schemas.Layer, rows func(*schemas.StateBatch) []T) map[int64][]T {
	out := map[int64][]T{}
	for _, b := range bs {
		if b.Header.Layer == l {
			out[b.Header.Tick] = rows(b)
		}
	}
	return out
}

// TestTacticalHistory checks the history a tactical row carries (state
// version 4): the function's memory peak and its app's busiest hour of day
// come from closed hours only, survive a snapshot, and start as 0 and −1.
func TestTacticalHistory(t *testing.T) {
	p := NewPartition("r", 0, 1, grid.DefaultEpoch) // trace time 0 is 00:00 UTC
	collect(t, p, 0, false)
	add := func(fn string, startUS int64, memMB float64) {
		t.Helper()
		e := Event{App: "a", Func: fn, StartUS: startUS, DurationUS: 1000, HasMemory: memMB > 0, MemoryUsed: memMB, MemoryMB: 1024}
		if err := p.Add(&e); err != nil {
			t.Fatal(err)
		}
	}
	tactical := func(bs []*schemas.StateBatch) map[int64][]schemas.TacticalRow {
		return rowsByTick(bs, schemas.Tactical, func(b *schemas.StateBatch) []schemas.TacticalRow { return b.Tactical })
	}
	h := grid.TacticalTickUS
	// Hour 0: f once (300 MB); hour 1: four invocations of f and g (g
	// 700 MB), so hour 1 becomes the app's busiest.
	add("f", 10, 300)
	add("f", h+10, 0)
	add("g", h+20, 700)
	add("g", h+30, 0)
	add("f", h+40, 0)
	rows := tactical(collect(t, p, 2*h, false))
	want := map[int64]map[string]struct {
		peak float64
		hour int32
	}{
		1: {"f": {300, 0}},
		2: {"f": {300, 1}, "g": {700, 1}},
	}
	for hour, fns := range want {
		if len(rows[hour]) != len(fns) {
			t.Fatalf("hour %d: rows %+v, want %d", hour, rows[hour], len(fns))
		}
		for _, r := range rows[hour] {
			w := fns[r.Func]
			if r.MemoryPeakMB != w.peak || r.AppPeakHour != w.hour || r.Hour != int32(hour) {
				t.Errorf("hour %d %s: memory peak %v, app peak hour %d, hour %d; want %v, %d, %d", hour, r.Func, r.MemoryPeakMB, r.AppPeakHour, r.Hour, w.peak, w.hour, hour)
			}
		}
	}
	// An invocation of the still-open hour 2 is not in hour 2's row, and a
	// restored partition goes on with the same history.
	add("g", 2*h+10, 900)
	q := restored(t, p)
	for _, part := range []*Partition{p, q} {
		r3 := tactical(collect(t, part, 3*h, false))[3]
		for _, r := range r3 {
			if r.Func == "g" && (r.MemoryPeakMB != 900 || r.AppPeakHour != 1 || r.Hour != 3) {
				t.Errorf("hour 3 g: %+v, want memory peak 900, app peak hour 1 (3 invocations against 1 in hour 2), hour 3", r)
			}
		}
	}
	// A new app has no history.
	add2 := Event{App: "b", Func: "x", StartUS: 3*h + 5, DurationUS: 10}
	if err := q.Add(&add2); err != nil {
		t.Fatal(err)
	}
	for _, r := range tactical(collect(t, q, 4*h, false))[4] {
		if r.App == "b" && (r.MemoryPeakMB != 0 || r.AppPeakHour != 3) {
			t.Errorf("app b after its first hour: %+v, want memory peak 0 (none reported) and peak hour 3", r)
		}
	}
}

// TestStrategicHistory checks what a strategic row adds in state version
// 5: the placement most of the day's invocations ran under, the app's
// memory peak over its closed days and its busiest hour of day; a
// restored partition goes on with the same history.
func TestStrategicHistory(t *testing.T) {
	p := NewPartition("r", 0, 1, grid.DefaultEpoch) // trace time 0 is 00:00 UTC
	collect(t, p, 0, false)
	add := func(q *Partition, app, provider string, startUS int64, memMB float64) {
		t.Helper()
		e := Event{App: app, Func: "f", StartUS: startUS, DurationUS: 1000, HasMemory: memMB > 0, MemoryUsed: memMB,
			MemoryMB: 1024, Provider: provider, Region: "eu-west"}
		if err := q.Add(&e); err != nil {
			t.Fatal(err)
		}
	}
	strategic := func(bs []*schemas.StateBatch) map[int64][]schemas.StrategicRow {
		return rowsByTick(bs, schemas.Strategic, func(b *schemas.StateBatch) []schemas.StrategicRow { return b.Strategic })
	}
	d, h := grid.StrategicTickUS, grid.TacticalTickUS
	// Day 0: two invocations on azure at 21 UTC (400 MB), one on aws at
	// 22 UTC (no memory reported): azure is the day's provider, 21 the
	// busiest hour. (An app is active within 4 hours of its latest
	// invocation.)
	add(p, "a", "azure", 21*h+1, 400)
	add(p, "a", "azure", 21*h+2, 0)
	add(p, "a", "aws", 22*h+1, 0)
	// Day 1: one invocation on gcp at 23 UTC reporting 200 MB.
	add(p, "a", "gcp", d+23*h, 200)
	rows := strategic(collect(t, p, d, false))[1]
	if len(rows) != 1 {
		t.Fatalf("day 1 rows %+v, want 1", rows)
	}
	if r := rows[0]; r.Provider != "azure" || r.Region != "eu-west" || r.MemoryMB != 1024 || r.MemoryPeakMB != 400 || r.AppPeakHour != 21 {
		t.Errorf("day 1: %+v, want azure/eu-west/1024, memory peak 400, app peak hour 21", r)
	}
	for _, part := range []*Partition{p, restored(t, p)} {
		rows := strategic(collect(t, part, 2*d, false))[2]
		if len(rows) != 1 {
			t.Fatalf("day 2 rows %+v, want 1", rows)
		}
		// The peak stays the closed days' largest; 21 UTC still leads
		// (2 invocations against 1 at 22 and at 23).
		if r := rows[0]; r.Provider != "gcp" || r.MemoryPeakMB != 400 || r.AppPeakHour != 21 {
			t.Errorf("day 2: %+v, want gcp, memory peak 400, app peak hour 21", r)
		}
	}
}

// TestOmittedRowsRebuildExactly: a reader of the batches that leave idle
// rows out (state schema version 6) rebuilds, with schemas.Sequences, the
// same rows — every value, in the same order — as from batches that hold
// every active function, tick after tick over a day in which functions go
// idle, leave the active set after 4 h, come back and change the fields
// their telemetry carries; both through the wire encoding.
func TestOmittedRowsRebuildExactly(t *testing.T) {
	omit := NewPartition("r", 0, 1, grid.DefaultEpoch)
	full := NewPartition("r", 0, 1, grid.DefaultEpoch)
	full.omitIdle = false
	var seqOmit, seqFull schemas.Sequences
	wire := func(b *schemas.StateBatch) *schemas.StateBatch {
		d, err := schemas.EncodeState(b)
		if err != nil {
			t.Fatal(err)
		}
		out, err := schemas.DecodeState(d)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Four functions: a busy one, one invoked every 20 minutes, one that
	// stops after 2 h (and leaves the active set 4 h later), one invoked
	// twice 9 h apart (leaves and comes back); the every-20-minutes one
	// carries CPU, then also memory from hour 10 (its fields change).
	var events []Event
	for t0 := int64(0); t0 < 24*3600; t0 += 7 {
		events = append(events, Event{App: "a", Func: "busy", StartUS: t0 * 1e6, DurationUS: 3e6, HasCPU: true, CPUBusyMS: 900, Instances: 2})
	}
	for t0 := int64(30); t0 < 24*3600; t0 += 1200 {
		e := Event{App: "b", Func: "periodic", StartUS: t0 * 1e6, DurationUS: 40e6, HasCPU: true, CPUBusyMS: 10_000, Instances: 1}
		if t0 > 10*3600 {
			e.HasMemory, e.MemoryUsed, e.MemoryMB = true, 100, 512
		}
		events = append(events, e)
	}
	for t0 := int64(100); t0 < 2*3600; t0 += 301 {
		events = append(events, Event{App: "c", Func: "stops", StartUS: t0 * 1e6, DurationUS: 500e3, HasQueue: true, QueueWaitMS: 20})
	}
	events = append(events, Event{App: "d", Func: "returns", StartUS: 600e6, DurationUS: 1e6},
		Event{App: "d", Func: "returns", StartUS: 9*3600e6 + 5e6, DurationUS: 1e6})
	slices.SortStableFunc(events, func(a, b Event) int { return cmp.Compare(a.StartUS, b.StartUS) })
	var rows, left, omitted int
	next := 0
	for tick := int64(0); tick < 24*3600/15; tick++ {
		for ; next < len(events) && events[next].StartUS < (tick+1)*s15; next++ {
			for _, p := range []*Partition{omit, full} {
				e := events[next]
				if err := p.Add(&e); err != nil {
					t.Fatal(err)
				}
			}
		}
		bo, bf := advance(t, omit, (tick+1)*s15, false), advance(t, full, (tick+1)*s15, false)
		if len(bo) != len(bf) {
			t.Fatalf("tick %d: %d batches against %d", tick, len(bo), len(bf))
		}
		for i := range bo {
			if bo[i].Header.Layer != schemas.Operational {
				continue
			}
			for _, r := range bo[i].Operational {
				if r.Left {
					left++
				}
			}
			wo, wf := wire(bo[i]), wire(bf[i])
			omitted += len(bf[i].Operational) - len(bo[i].Operational)
			seqOmit.Fill(wo)
			seqFull.Fill(wf)
			rows += len(wf.Operational)
			if !reflect.DeepEqual(wo.Operational, wf.Operational) {
				t.Fatalf("tick %d: rebuilt rows differ\n got %+v\nwant %+v", wo.Header.Tick, wo.Operational, wf.Operational)
			}
		}
	}
	if left < 2 || omitted < rows/4 || seqOmit.Partial != seqFull.Partial || seqOmit.Gaps != 0 {
		t.Fatalf("%d rows, %d left out, %d Left rows, partial %d vs %d, gaps %d: the day does not exercise what it should",
			rows, omitted, left, seqOmit.Partial, seqFull.Partial, seqOmit.Gaps)
	}
	t.Logf("%d rows over the day, %d left out (%.0f %%), %d departures", rows, omitted, 100*float64(omitted)/float64(rows), left)
}
