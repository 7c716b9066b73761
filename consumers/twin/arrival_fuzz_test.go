package twin

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// FuzzLiveArrival feeds arbitrary values of strata.telemetry.v1 to
// liveArrival, as a Shadow twin reads them: it must return an arrival of
// the run, skip a record of another run or of the twin itself, or return
// an error wrapping errInvalidArrival — never panic. An arrival it takes
// has an app, a func and a duration that is not negative, all as the
// observation carried them.
func FuzzLiveArrival(f *testing.F) {
	add := func(o *stratapb.Observation) {
		b, err := proto.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	arrival := func() *stratapb.Arrival {
		return &stratapb.Arrival{InvocationId: "0123456789abcdef", App: "app", Func: "fn", StartUs: 1_000_000,
			EndUs: 1_250_000, DurationUs: 250_000, Row: 3, RunId: "run"}
	}
	add(&stratapb.Observation{Arrival: arrival(), Provider: proto.String("aws"), Region: proto.String("us-east-1"), MemoryMb: proto.Int32(256), Source: "live"})
	twin := &stratapb.Observation{Arrival: arrival(), Source: "twin"}
	add(twin)
	neg := arrival()
	neg.DurationUs = -1
	add(&stratapb.Observation{Arrival: neg})
	add(&stratapb.Observation{Arrival: &stratapb.Arrival{RunId: "run"}})
	add(&stratapb.Observation{})
	f.Add([]byte{0x0a, 0x80})
	f.Fuzz(func(t *testing.T, value []byte) {
		a, ok, err := liveArrival(value, "run")
		switch {
		case err != nil:
			if !errors.Is(err, errInvalidArrival) || ok {
				t.Fatalf("error %v (ok %v) does not wrap errInvalidArrival", err, ok)
			}
		case ok:
			var o stratapb.Observation
			if err := proto.Unmarshal(value, &o); err != nil {
				t.Fatalf("took an arrival from a value that does not decode: %v", err)
			}
			in := o.GetArrival()
			if a.App == "" || a.Func == "" || a.DurationUS < 0 || a.App != in.GetApp() || a.Func != in.GetFunc() ||
				a.ID != in.GetInvocationId() || a.StartUS != in.GetStartUs() || a.DurationUS != in.GetDurationUs() || a.Row != in.GetRow() {
				t.Fatalf("arrival %+v from %v", a, in)
			}
		}
	})
}
