package pipeline

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/strata-rl/strata/agents/nn"
	"github.com/strata-rl/strata/schemas"
)

// FuzzDecodeLearnerState feeds arbitrary bytes to decodeLearnerState, as
// `strata learner` does with the state it reads back from the model store
// when it restarts: it must return a position and the learner's state, or
// an error, never panic or allocate what an archive header claims. A
// position it accepts re-encodes to a state that decodes to the same
// position and learner bytes.
func FuzzDecodeLearnerState(f *testing.F) {
	const run, topic = "run-1", "strata.transitions.v1"
	archive := func(pos any, learnerState []byte) []byte {
		pj, err := json.Marshal(pos)
		if err != nil {
			f.Fatal(err)
		}
		var b bytes.Buffer
		if err := nn.WriteArchive(&b, []nn.ArchiveEntry{{Name: roleStatePosition, Data: pj}, {Name: roleStateLearner, Data: learnerState}}); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	pos := learnerPosition{Format: LearnerStateFormat, RunID: run, Topic: topic, Offsets: map[int32]int64{0: 17, 3: 4},
		Done: map[schemas.Layer]int64{schemas.Tactical: 5}, Saved: time.Unix(1_700_000_000, 5).UTC()}
	f.Add(archive(pos, []byte("learner state")))
	other := pos
	other.RunID = "run-2"
	f.Add(archive(other, []byte{}))
	f.Add(archive(map[string]any{"format": LearnerStateFormat, "offsets": map[string]any{"x": 1}}, []byte("s")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, st, err := decodeLearnerState(data, run, topic)
		if err != nil {
			return
		}
		if got.Format != LearnerStateFormat || got.RunID != run || got.Topic != topic || st == nil {
			t.Fatalf("accepted position %+v with state %v", got, st != nil)
		}
		pj, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("re-encoding an accepted position: %v", err)
		}
		var b bytes.Buffer
		if err := nn.WriteArchive(&b, []nn.ArchiveEntry{{Name: roleStatePosition, Data: pj}, {Name: roleStateLearner, Data: st}}); err != nil {
			t.Fatal(err)
		}
		again, st2, err := decodeLearnerState(b.Bytes(), run, topic)
		if err != nil || !bytes.Equal(st, st2) || !reflect.DeepEqual(normalPosition(got), normalPosition(again)) {
			t.Fatalf("round trip: %+v became %+v (%v)", got, again, err)
		}
	})
}

// normalPosition drops what JSON does not keep: the time's monotonic
// reading and location, and empty maps against nil ones.
func normalPosition(p learnerPosition) learnerPosition {
	p.Saved = p.Saved.UTC()
	if len(p.Offsets) == 0 {
		p.Offsets = nil
	}
	if len(p.Done) == 0 {
		p.Done = nil
	}
	return p
}
