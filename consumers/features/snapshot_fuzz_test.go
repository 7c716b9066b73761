package features

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// FuzzRestorePartition feeds arbitrary bytes to decodeEnvelope and
// RestorePartition, as a features service does with the checkpoint it
// reads back from the object store on a partition assignment. They must
// return a partition or an error, never panic; a partition restored
// snapshots to a state that restores and snapshots again to the same
// state, and it advances by a tick without panicking.
func FuzzRestorePartition(f *testing.F) {
	p := NewPartition("r", 1, 3, grid.DefaultEpoch)
	add := func() {
		data, err := p.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(encodeEnvelope(snapshotEnvelope{NextOffset: 42, State: data}))
	}
	add() // never advanced
	if err := p.Advance(0, false, func(*schemas.StateBatch) error { return nil }); err != nil {
		f.Fatal(err)
	}
	for i := range int64(12) {
		e := Event{ID: fmt.Sprintf("id%d", i), App: "a", Func: []string{"f", "g", "h"}[i%3], StartUS: i * 7_000_000, DurationUS: 1000 + i,
			HasCPU: i%3 == 0, CPUBusyMS: 1, HasMemory: i%2 == 0, MemoryUsed: 64, HasLatency: true, LatencyMS: 20,
			HasCost: true, CostUSD: 1e-6, Provider: "aws", Region: "us-east", MemoryMB: 128, Instances: 2}
		if err := p.Add(&e); err != nil {
			f.Fatal(err)
		}
	}
	add() // open ticks and ids
	if err := p.Advance(5*grid.OperationalTickUS, false, func(*schemas.StateBatch) error { return nil }); err != nil {
		f.Fatal(err)
	}
	add() // closed ticks, rings
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := decodeEnvelope(data)
		if err != nil {
			return
		}
		p, err := RestorePartition(env.State)
		if err != nil {
			return
		}
		s1 := snapshotOf(t, p)
		p2, err := RestorePartition(s1)
		if err != nil {
			t.Fatalf("restoring a partition's own snapshot: %v", err)
		}
		s2 := snapshotOf(t, p2)
		if a, b := decodeSnapshot(t, s1), decodeSnapshot(t, s2); a != b {
			t.Fatalf("the snapshot changed through a restore:\n%s\nthen\n%s", a, b)
		}
		if k := p.NextTick(); k >= 0 && k < math.MaxInt64/grid.OperationalTickUS-2 {
			_ = p.Advance((k+1)*grid.OperationalTickUS, false, func(*schemas.StateBatch) error { return nil })
		}
	})
}

func snapshotOf(t *testing.T, p *Partition) []byte {
	t.Helper()
	data, err := p.MarshalBinary()
	if err != nil {
		t.Fatalf("snapshotting a restored partition: %v", err)
	}
	return data
}

// decodeSnapshot returns the snapshot data holds as text: gob writes maps
// in no fixed order, and fmt prints them sorted (and NaN as NaN); a
// period's functions, a set, are listed in no fixed order either.
func decodeSnapshot(t *testing.T, data []byte) string {
	t.Helper()
	var s Snapshot
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		t.Fatalf("decoding a snapshot: %v", err)
	}
	for i := range s.Funcs {
		for j := range s.Funcs[i].Hours {
			slices.Sort(s.Funcs[i].Hours[j].Funcs)
		}
	}
	for i := range s.Apps {
		for j := range s.Apps[i].Days {
			slices.Sort(s.Apps[i].Days[j].Funcs)
		}
	}
	return fmt.Sprintf("%+v", s)
}
