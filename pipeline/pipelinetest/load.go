package pipelinetest

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"testing"

	"github.com/strata-rl/strata/ingest/loadgen"
	"github.com/strata-rl/strata/replay"
	"github.com/strata-rl/strata/schemas/stratapb"
)

// Load is a load generator run against `strata ingest` in the background,
// counting the invocation ids the server acknowledged: the fault tests
// kill a piece in the middle of it and check that every acknowledged
// record arrived once.
type Load struct {
	mu    sync.Mutex
	acked map[string]bool
	done  chan loadOut
}

type loadOut struct {
	res loadgen.Result
	err error
}

// StartLoad sends n records of src to the ingest server at url (token
// "tok", JSON, batches of 100, concurrency requests in flight, 60 retries
// each) until it has sent them or ctx ends.
func StartLoad(ctx context.Context, url string, n int64, concurrency int, src replay.Source) *Load {
	return StartLoadWith(ctx, loadgen.Config{URL: url, Batch: 100, Concurrency: concurrency, Limit: n}, src)
}

// StartLoadWith runs the load generator with cfg (its Token, Format,
// MaxRetries and OnAck set as StartLoad sets them) until it has sent
// cfg.Limit records of src or ctx ends: a paced load is cfg.Rate records
// a second.
func StartLoadWith(ctx context.Context, cfg loadgen.Config, src replay.Source) *Load {
	l := &Load{acked: map[string]bool{}, done: make(chan loadOut, 1)}
	cfg.Token, cfg.Format, cfg.MaxRetries = "tok", loadgen.FormatJSON, 60
	cfg.OnAck = func(ids []string) {
		l.mu.Lock()
		for _, id := range ids {
			l.acked[id] = true
		}
		l.mu.Unlock()
	}
	go func() {
		res, err := loadgen.Run(ctx, cfg, src, slog.New(slog.DiscardHandler))
		l.done <- loadOut{res, err}
	}()
	return l
}

// AckedIDs returns the distinct ids the server acknowledged so far.
func (l *Load) AckedIDs() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.acked)
}

// Acked returns how many distinct ids the server acknowledged so far.
func (l *Load) Acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// Wait waits for the load to end and fails t if it failed, had records
// refused or left any unsent.
func (l *Load) Wait(t testing.TB) loadgen.Result {
	t.Helper()
	out := <-l.done
	if out.err != nil || out.res.Failed > 0 || out.res.Rejected > 0 {
		t.Fatalf("load: %+v, %v", out.res, out.err)
	}
	return out.res
}

// OnKafka checks, after Wait, that every acknowledged id is among obs (the
// run's observations read back from Kafka) and that the server
// acknowledged every record sent; it returns how many times each id is on
// Kafka.
func (l *Load) OnKafka(t testing.TB, res loadgen.Result, obs []*stratapb.Observation) map[string]int {
	t.Helper()
	inKafka := map[string]int{}
	for _, o := range obs {
		inKafka[o.GetArrival().GetInvocationId()]++
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.acked {
		if inKafka[id] == 0 {
			t.Fatalf("acknowledged record %s is not on Kafka", id)
		}
	}
	if int64(len(l.acked)) != res.Records {
		t.Fatalf("%d distinct records acknowledged, %d sent", len(l.acked), res.Records)
	}
	return inKafka
}
