package ingest

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// TestRecordsAsWritten checks the bytes the service writes: each accepted
// record, keyed by its app, exactly proto.Marshal of its Observation with
// the run id; each rejected one dead-lettered with what it was and why.
func TestRecordsAsWritten(t *testing.T) {
	h := start(t, nil)
	end := t0.UnixMicro()
	valid := fmt.Sprintf(`{"invocation_id":"w-1","app":"shop","func":"cart","end_us":%d,"duration_us":2000,"provider":"aws","region":"eu-west-1","memory_mb":256,"latency_ms":2.5,"cold_start":false}`, end)
	invalid := `{"app":"a","func":"f","end_us":-1,"duration_us":0}`
	body := "[" + rec("l-1", t0.Add(-10*time.Second), 10) + "," + valid + "," + invalid + "," + rec("f-1", t0.Add(2*time.Minute), 10) + "]"
	if code, _, b := h.post("/v1/telemetry", "tok", []byte(body)); code != 200 || !strings.Contains(string(b), `"accepted":1,"rejected":3`) {
		t.Fatalf("status %d: %s", code, b)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	want, err := proto.Marshal(&stratapb.Observation{
		Arrival:  &stratapb.Arrival{InvocationId: "w-1", App: "shop", Func: "cart", StartUs: end - 2000, EndUs: end, DurationUs: 2000, RunId: "r"},
		Provider: proto.String("aws"), Region: proto.String("eu-west"), MemoryMb: proto.Int32(256), LatencyMs: proto.Float64(2.5),
		ColdStart: proto.Bool(false), Source: "live"})
	if err != nil {
		t.Fatal(err)
	}
	var written []*kgo.Record
	h.readTopic(schemas.TopicTelemetry, func(r *kgo.Record) {
		if !kafka.IsWatermark(r) {
			written = append(written, r)
		}
	})
	if len(written) != 1 || string(written[0].Key) != "shop" || string(written[0].Value) != string(want) || written[0].Timestamp.IsZero() {
		t.Fatalf("telemetry holds %v, want one record keyed shop of %x", written, want)
	}
	type letter struct{ location, reason, payload string }
	var letters []letter
	h.readTopic(schemas.TopicDeadLetter, func(r *kgo.Record) {
		var d stratapb.DeadLetter
		if err := proto.Unmarshal(r.Value, &d); err != nil {
			t.Fatal(err)
		}
		if d.GetSource() != "POST /v1/telemetry" || d.GetRunId() != "r" || string(r.Key) != "telemetry" {
			t.Errorf("dead letter %v", &d)
		}
		letters = append(letters, letter{d.GetLocation(), d.GetReason(), string(d.GetPayload())})
	})
	lateRaw, _ := json.Marshal(map[string]any{"invocation_id": "l-1", "app": "a", "func": "f",
		"start_us": t0.Add(-10*time.Second).UnixMicro() - 10_000, "end_us": t0.Add(-10 * time.Second).UnixMicro()})
	futureRaw, _ := json.Marshal(map[string]any{"invocation_id": "f-1", "app": "a", "func": "f",
		"start_us": t0.Add(2*time.Minute).UnixMicro() - 10_000, "end_us": t0.Add(2 * time.Minute).UnixMicro()})
	wantLetters := []letter{
		{"record 0", "record 0: start: starts at", string(lateRaw)},
		{"record 2", "record 2: end_us: is -1", invalid},
		{"record 3", "record 3: end: ends at", string(futureRaw)},
	}
	if len(letters) != len(wantLetters) {
		t.Fatalf("dead letters %+v, want %+v", letters, wantLetters)
	}
	for i, w := range wantLetters {
		if l := letters[i]; l.location != w.location || !strings.HasPrefix(l.reason, w.reason) || l.payload != w.payload {
			t.Errorf("dead letter %d: %+v, want %+v", i, l, w)
		}
	}
}

// TestConcurrentRequests sends requests of different sizes and apps from
// several clients at once (the service reuses one request's buffers for
// the next): every accepted record is on Kafka once, intact, under its own
// key, and nothing else is.
func TestConcurrentRequests(t *testing.T) {
	h := start(t, nil)
	const clients, requests = 6, 15
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for q := range requests {
				n := 1 + (c*7+q*13)%60
				var recs []string
				for i := range n {
					app := strings.Repeat("a", 1+(c+q+i)%40)
					recs = append(recs, fmt.Sprintf(`{"invocation_id":"c%d-q%d-r%d","app":%q,"func":"f%d","end_us":%d,"duration_us":%d}`,
						c, q, i, app, i, t0.UnixMicro(), 1000*(i+1)))
				}
				recs = append(recs, `{"app":"bad"}`)
				code, _, b := h.post("/v1/telemetry", "tok", []byte("["+strings.Join(recs, ",")+"]"))
				if want := fmt.Sprintf(`"accepted":%d,"rejected":1`, n); code != 200 || !strings.Contains(string(b), want) {
					t.Errorf("client %d, request %d: status %d, %s; want %s", c, q, code, b, want)
				}
			}
		})
	}
	wg.Wait()
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	h.readTopic(schemas.TopicTelemetry, func(r *kgo.Record) {
		if kafka.IsWatermark(r) {
			return
		}
		var o stratapb.Observation
		if err := proto.Unmarshal(r.Value, &o); err != nil {
			t.Fatalf("record %x: %v", r.Value, err)
		}
		a := o.GetArrival()
		var c, q, i int
		if _, err := fmt.Sscanf(a.GetInvocationId(), "c%d-q%d-r%d", &c, &q, &i); err != nil || seen[a.GetInvocationId()] {
			t.Fatalf("record %v: unknown or repeated id", &o)
		}
		seen[a.GetInvocationId()] = true
		if a.GetApp() != strings.Repeat("a", 1+(c+q+i)%40) || string(r.Key) != a.GetApp() || a.GetFunc() != fmt.Sprintf("f%d", i) ||
			a.GetDurationUs() != int64(1000*(i+1)) || a.GetRunId() != "r" || o.GetSource() != "live" {
			t.Fatalf("record %v under key %q is not the one sent", &o, r.Key)
		}
	})
	total := 0
	for c := range clients {
		for q := range requests {
			total += 1 + (c*7+q*13)%60
		}
	}
	if len(seen) != total {
		t.Errorf("%d records on Kafka, want %d", len(seen), total)
	}
}
