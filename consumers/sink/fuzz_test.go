package sink

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/schemas/stratapb"
)

// FuzzDecodeRecord feeds arbitrary values of each topic the sink reads
// (runs, decisions, rewards, outcomes and one it does not) to decodeRecord:
// it must return a message or an error — one that does not decode, or an
// invalidError for a record that cannot be a row — and never panic. A
// message it accepts re-encodes to bytes that decode to an equal message,
// accepted with the same run id.
func FuzzDecodeRecord(f *testing.F) {
	topics := Topics{Runs: "runs", Decisions: "decisions", Rewards: "rewards", Outcomes: "outcomes"}
	names := []string{topics.Runs, topics.Decisions, topics.Rewards, topics.Outcomes, "elsewhere"}
	add := func(topic int, m proto.Message) {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(topic), b)
	}
	add(0, &stratapb.Run{RunId: "run-1", StartedUnixMs: 1_700_000_000_000, Source: "synthetic", Seed: 3})
	add(1, &stratapb.Decision{RunId: "run-1", Layer: "tactical", Tick: 2, TickMs: 7_200_000, App: "app-é", Func: "f1",
		Policy: "greedy-cost", Action: 5, Provider: "aws", Region: "eu-west-1", MemoryMb: 1024})
	add(2, &stratapb.Reward{RunId: "run-1", Layer: "strategic", Tick: 1, TickMs: 86_400_000, App: "app", Func: "f",
		Reward: -0.5, Invocations: 40})
	add(3, &stratapb.Outcome{RunId: "run-1", InvocationId: "inv-9", App: "app", Func: "f", StartUs: 15_000_000,
		Provider: "gcp", Region: "us-east1", MemoryMb: 512, LatencyMs: 120, ColdStart: true, CostUsd: 1e-6})
	add(2, &stratapb.Reward{RunId: "run-1", Layer: "nowhere", App: "app"}) // invalid layer
	add(3, &stratapb.Outcome{RunId: "run-1", App: "app"})                  // no invocation id
	add(4, &stratapb.Run{RunId: "run-1"})
	f.Add(uint8(1), []byte{0x0a, 0x05, 0xff, 0xfe}) // a truncated, non-UTF-8 run id
	f.Fuzz(func(t *testing.T, topic uint8, value []byte) {
		name := names[int(topic)%len(names)]
		m, run, err := decodeRecord(topics, name, value)
		if err != nil {
			var inv invalidError
			if !errors.As(err, &inv) && m != nil {
				t.Fatalf("a %s value that does not decode returned a message: %v", name, err)
			}
			return
		}
		if m == nil || run == "" {
			t.Fatalf("accepted %q record without a message or run id: %v, %q", name, m, run)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatalf("re-encoding an accepted %s: %v", name, err)
		}
		again, run2, err := decodeRecord(topics, name, b)
		if err != nil || run2 != run || !proto.Equal(m, again) {
			t.Fatalf("%s round trip: %v (run %q, want %q)\n%v\nwant\n%v", name, err, run2, run, again, m)
		}
	})
}
