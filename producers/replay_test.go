package producers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
	"github.com/strata-rl/strata/schemas/stratapb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const realSamplePath = "../testdata/azure2021/AzureFunctionsInvocationTraceForTwoWeeksJan2021.csv"

// replayInput is the real sample with two malformed lines and one row far
// later than the allowed lateness spliced in.
type replayInput struct {
	csv      []byte
	bad      []badLine // the malformed lines: 1-based line number and text
	lateRow  int64     // data-row number of the late row
	lateLine string
	want     []replay.Invocation // what must be produced
}

type badLine struct {
	line   int64
	text   string
	reason string // fragment of the reader's reason
}

func buildReplayInput(t *testing.T) replayInput {
	t.Helper()
	src, err := os.ReadFile(realSamplePath)
	if err != nil {
		t.Fatalf("reading the real sample (tracked in git, testdata/azure2021): %v", err)
	}
	rows := strings.Split(strings.TrimRight(string(src), "\n"), "\n")
	if len(rows) != 999 {
		t.Fatalf("sample has %d lines, want 999", len(rows))
	}
	var in replayInput
	lines := []string{rows[0]}
	first := strings.Split(rows[1], ",")
	for i, row := range rows[1:] {
		lines = append(lines, row)
		switch i + 1 {
		case 100:
			text := first[0] + "," + first[1] + ",12.5"
			lines = append(lines, text)
			in.bad = append(in.bad, badLine{int64(len(lines)), text, "got 3 fields"})
		case 500:
			text := first[0] + "," + first[1] + ",NaN,0.5"
			lines = append(lines, text)
			in.bad = append(in.bad, badLine{int64(len(lines)), text, "not finite"})
		case 900:
			// Starts at 1 s, while the trace has reached ~100 min.
			in.lateLine = first[0] + "," + first[1] + ",2.000000,1.000000"
			lines = append(lines, in.lateLine)
			in.lateRow = int64(len(lines) - 1) // the header is not a row
		}
	}
	in.csv = []byte(strings.Join(lines, "\n") + "\n")

	// The expected invocations: everything the reader accepts but the late row.
	r, err := replay.NewCSVReader(bytes.NewReader(in.csv), "check")
	if err != nil {
		t.Fatal(err)
	}
	for {
		inv, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *replay.LineError
		if errors.As(err, &le) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if inv.Row != in.lateRow {
			in.want = append(in.want, inv)
		}
	}
	if len(in.want) != 998 {
		t.Fatalf("input holds %d good on-time rows, want 998", len(in.want))
	}
	return in
}

func TestReplayerEmbeddedKafka(t *testing.T) {
	for _, observed := range []bool{false, true} {
		t.Run(fmt.Sprintf("observed=%v", observed), func(t *testing.T) {
			testReplayerEmbedded(t, observed)
		})
	}
}

func testReplayerEmbedded(t *testing.T, observed bool) {
	const (
		partitions = 3
		runID      = "run-test"
		source     = "trace.csv"
	)
	in := buildReplayInput(t)

	topic := schemas.TopicInvocations
	if observed {
		topic = schemas.TopicTelemetry
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, schemas.TopicInvocations, schemas.TopicTelemetry, schemas.TopicDeadLetter))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	logger := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	prod, err := kgo.NewClient(kafka.CommonOpts(cluster.ListenAddrs(), logger)...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	reg := prometheus.NewRegistry()
	rp, err := producers.NewReplayer(producers.ReplayConfig{
		RunID: runID, Observed: observed, Partitions: partitions, SourceName: source,
	}, prod, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	if rp.Topic() != topic {
		t.Fatalf("Topic() = %s, want %s", rp.Topic(), topic)
	}
	src, err := replay.NewCSVReader(bytes.NewReader(in.csv), source)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rp.Run(ctx, src)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Invocations != 998 || res.BadLines != 2 || res.Late != 1 || res.DeadLetters != 3 {
		t.Errorf("result %+v: want 998 invocations, 2 bad lines, 1 late, 3 dead letters", res)
	}

	// Consume everything back.
	cons, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ConsumeTopics(topic, schemas.TopicDeadLetter),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	byPart := map[int32][]*kgo.Record{}
	var dead []*kgo.Record
	total := res.Invocations + res.Watermarks + res.DeadLetters
	for got := int64(0); got < total; {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", got, total, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetching %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if r.Topic == schemas.TopicDeadLetter {
				dead = append(dead, r)
				return
			}
			byPart[r.Partition] = append(byPart[r.Partition], r)
		})
	}

	wantByID := map[string]replay.Invocation{}
	var maxStart int64
	for _, inv := range in.want {
		wantByID[inv.ID()] = inv
		maxStart = max(maxStart, inv.StartUS())
	}
	horizon := (grid.TickOf(maxStart, grid.OperationalTickUS) + 1) * grid.OperationalTickUS
	if res.HorizonUS != horizon {
		t.Errorf("HorizonUS = %d, want %d", res.HorizonUS, horizon)
	}

	seen := map[string]int{}
	appPart := map[string]int32{}
	var watermarks int64
	var wmSeqs [][]int64
	for p := range int32(partitions) {
		recs := byPart[p]
		if len(recs) == 0 {
			t.Fatalf("partition %d is empty", p)
		}
		var (
			lastStart int64 = -1
			wm        int64 = -1
			wmSeq     []int64
		)
		for i, r := range recs {
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d has offset %d", p, i, r.Offset)
			}
			if kafka.IsWatermark(r) {
				var w stratapb.Watermark
				if err := proto.Unmarshal(r.Value, &w); err != nil {
					t.Fatalf("partition %d offset %d: decoding watermark: %v", p, r.Offset, err)
				}
				watermarks++
				if w.RunId != runID || w.WatermarkUs%grid.OperationalTickUS != 0 || w.WatermarkUs < wm {
					t.Fatalf("partition %d offset %d: watermark %+v after %d: want run %s, a non-decreasing tick boundary", p, r.Offset, &w, wm, runID)
				}
				if i == 0 && (w.WatermarkUs != 0 || w.Final) {
					t.Errorf("partition %d starts with watermark %+v, want the initial watermark 0", p, &w)
				}
				last := i == len(recs)-1
				if w.Final != last {
					t.Fatalf("partition %d offset %d of %d: watermark final=%v", p, r.Offset, len(recs), w.Final)
				}
				if last && w.WatermarkUs != horizon {
					t.Errorf("partition %d: final watermark %d, want %d (end of the tick of the last start %d)", p, w.WatermarkUs, horizon, maxStart)
				}
				wm = w.WatermarkUs
				wmSeq = append(wmSeq, wm)
				continue
			}
			if i == len(recs)-1 {
				t.Fatalf("partition %d ends with an invocation, not the final watermark", p)
			}
			arr := decodeArrival(t, r, observed)
			inv := replay.Invocation{App: arr.App, Func: arr.Func, EndUS: arr.EndUs, DurationUS: arr.DurationUs, Row: arr.Row}
			want, ok := wantByID[arr.InvocationId]
			if !ok || want != inv || inv.ID() != arr.InvocationId {
				t.Fatalf("partition %d offset %d: unexpected invocation %v (id ok %v)", p, r.Offset, arr, ok)
			}
			if arr.StartUs != inv.StartUS() || arr.RunId != runID {
				t.Fatalf("partition %d offset %d: arrival %v: start or run id wrong", p, r.Offset, arr)
			}
			seen[arr.InvocationId]++
			if string(r.Key) != arr.App {
				t.Fatalf("partition %d offset %d: key %q, want the app %q", p, r.Offset, r.Key, arr.App)
			}
			if prev, ok := appPart[arr.App]; ok && prev != p {
				t.Fatalf("app %s on partitions %d and %d", arr.App, prev, p)
			}
			appPart[arr.App] = p
			if kp := kafka.KeyPartition(r.Key, partitions); int32(kp) != p {
				t.Fatalf("app %s on partition %d, KeyPartition says %d", arr.App, p, kp)
			}
			if arr.StartUs < lastStart {
				t.Fatalf("partition %d offset %d: start %d after start %d", p, r.Offset, arr.StartUs, lastStart)
			}
			lastStart = arr.StartUs
			if arr.StartUs < wm {
				t.Fatalf("partition %d offset %d: start %d follows watermark %d", p, r.Offset, arr.StartUs, wm)
			}
		}
		wmSeqs = append(wmSeqs, wmSeq)
	}
	for p := 1; p < len(wmSeqs); p++ {
		if !slices.Equal(wmSeqs[p], wmSeqs[0]) {
			t.Errorf("partition %d saw watermarks %v, partition 0 %v", p, wmSeqs[p], wmSeqs[0])
		}
	}
	if watermarks != res.Watermarks {
		t.Errorf("consumed %d watermarks, Run reports %d", watermarks, res.Watermarks)
	}
	if len(seen) != len(wantByID) {
		t.Errorf("consumed %d distinct invocations, want %d", len(seen), len(wantByID))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("invocation %s consumed %d times", id, n)
		}
	}
	if len(appPart) != 21 {
		t.Errorf("%d apps consumed, want 21", len(appPart))
	}

	t.Logf("replayed %d invocations, %d watermarks (%d per partition), %d dead letters; horizon %d µs",
		res.Invocations, res.Watermarks, len(wmSeqs[0]), len(dead), res.HorizonUS)
	checkDeadLetters(t, dead, in, runID, source)
}

func decodeArrival(t *testing.T, r *kgo.Record, observed bool) *stratapb.Arrival {
	t.Helper()
	if !observed {
		var a stratapb.Arrival
		if err := proto.Unmarshal(r.Value, &a); err != nil {
			t.Fatalf("partition %d offset %d: decoding arrival: %v", r.Partition, r.Offset, err)
		}
		return &a
	}
	var o stratapb.Observation
	if err := proto.Unmarshal(r.Value, &o); err != nil {
		t.Fatalf("partition %d offset %d: decoding observation: %v", r.Partition, r.Offset, err)
	}
	if o.GetProvider() != "azure" || o.GetSource() != "trace" || o.GetArrival() == nil {
		t.Fatalf("partition %d offset %d: observation %v: want provider azure, source trace and an arrival", r.Partition, r.Offset, &o)
	}
	if o.LatencyMs != nil || o.MemoryMb != nil || o.CostUsd != nil || o.ColdStart != nil {
		t.Fatalf("partition %d offset %d: trace observation carries values it cannot know: %v", r.Partition, r.Offset, &o)
	}
	return o.GetArrival()
}

func checkDeadLetters(t *testing.T, dead []*kgo.Record, in replayInput, runID, source string) {
	t.Helper()
	if len(dead) != 3 {
		t.Fatalf("dead-letter topic holds %d records, want 3", len(dead))
	}
	type want struct {
		location, reason, payload string
	}
	wants := []want{
		{fmt.Sprintf("line %d", in.bad[0].line), in.bad[0].reason, in.bad[0].text},
		{fmt.Sprintf("line %d", in.bad[1].line), in.bad[1].reason, in.bad[1].text},
		{fmt.Sprintf("row %d", in.lateRow), replay.ErrLate.Error(), in.lateLine},
	}
	var got []*stratapb.DeadLetter
	for _, r := range dead {
		var d stratapb.DeadLetter
		if err := proto.Unmarshal(r.Value, &d); err != nil {
			t.Fatalf("decoding dead letter: %v", err)
		}
		if string(r.Key) != source || d.Source != source || d.Component != "replay" || d.RunId != runID {
			t.Errorf("dead letter %v keyed %q: want source/key %s, component replay, run %s", &d, r.Key, source, runID)
		}
		got = append(got, &d)
	}
	for _, w := range wants {
		i := slices.IndexFunc(got, func(d *stratapb.DeadLetter) bool { return d.Location == w.location })
		if i < 0 {
			t.Errorf("no dead letter at %s; got %v", w.location, got)
			continue
		}
		d := got[i]
		if !strings.Contains(d.Reason, w.reason) || string(d.Payload) != w.payload {
			t.Errorf("dead letter at %s: reason %q, payload %q; want a reason containing %q and payload %q",
				w.location, d.Reason, d.Payload, w.reason, w.payload)
		}
	}
}

func TestNewReplayerValidates(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	for _, cfg := range []producers.ReplayConfig{
		{RunID: "r", Partitions: 0},
		{RunID: "r", Partitions: -1},
		{RunID: "", Partitions: 3},
	} {
		if _, err := producers.NewReplayer(cfg, nil, logger, nil); err == nil {
			t.Errorf("NewReplayer(%+v) accepted an invalid config", cfg)
		}
	}
}
