package twin

import (
	"bytes"
	"encoding/gob"
	"testing"
)

// FuzzRestoreCheckpoint feeds arbitrary bytes to what a restarting twin
// reads from its checkpoint object: decodeCheckpoint, then the engine's
// snapshot within (RestoreEngine, the pools' UnmarshalBinary). It must
// return an error or an engine — never panic — and an engine it restores
// snapshots to bytes that restore and snapshot to the same bytes again.
func FuzzRestoreCheckpoint(f *testing.F) {
	e := newEngine(f)
	runFrom(f, e, 0, 30, mixedDecisions, false)
	eng, err := e.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&serviceSnap{Version: serviceSnapshotVersion, RunID: "r", Next: e.NextTick(), Engine: eng,
		Arrivals: map[int64][]Arrival{30: {{ID: "x", App: "a", Func: "f", StartUS: 30 * 15_000_000, DurationUS: 10}}}}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(eng)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		engData := data
		if snap, err := decodeCheckpoint(data, "r"); err == nil {
			engData = snap.Engine
		}
		r, err := RestoreEngine(e.m, e.cfg, e.profile, engData)
		if err != nil {
			return
		}
		once, err := r.Snapshot()
		if err != nil {
			t.Fatalf("a restored engine does not snapshot: %v", err)
		}
		r2, err := RestoreEngine(e.m, e.cfg, e.profile, once)
		if err != nil {
			t.Fatalf("an engine's own snapshot does not restore: %v", err)
		}
		twice, err := r2.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("snapshot → restore → snapshot gave other bytes (%d, %d)", len(once), len(twice))
		}
	})
}
