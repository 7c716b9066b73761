package features_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/strata-rl/strata/consumers/features"
	"github.com/strata-rl/strata/infra/kafka"
	"github.com/strata-rl/strata/infra/kafka/kafkatest"
	"github.com/strata-rl/strata/producers"
	"github.com/strata-rl/strata/replay"
)

// flakyCheckpoints is an in-memory checkpoint store whose first failPuts
// writes fail, as a store that does not answer in time.
type flakyCheckpoints struct {
	mu       sync.Mutex
	failPuts int
	puts     int
	failed   int
	m        map[string][]byte
}

var errStoreDown = errors.New("checkpoint store not answering")

func (c *flakyCheckpoints) Get(_ context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	if !ok {
		return nil, features.ErrNoCheckpoint
	}
	return v, nil
}

func (c *flakyCheckpoints) Put(_ context.Context, key string, value []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed < c.failPuts {
		c.failed++
		return errStoreDown
	}
	c.puts++
	c.m[key] = value
	return nil
}

// memPublisher keeps the published batches' ids.
type memPublisher struct {
	mu  sync.Mutex
	ids []string
}

func (p *memPublisher) Publish(_ context.Context, _, msgID string, _ []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = append(p.ids, msgID)
	return nil
}

func (p *memPublisher) Flush(context.Context) error { return nil }

// TestServiceRetriesFailedCheckpoints: a periodic checkpoint that cannot be
// stored is retried at the next interval instead of ending the service (its
// state stays in memory and the previous checkpoint stays consistent), up to
// six failures in a row.
func TestServiceRetriesFailedCheckpoints(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tests := []struct {
		name     string
		failPuts int
		wantErr  string
	}{
		{name: "a few failures are retried", failPuts: 3},
		{name: "six in a row end the service", failPuts: 1000, wantErr: "6 checkpoints in a row failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkatest.New(t, 1)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			logger := slog.New(slog.DiscardHandler)
			prod, err := kgo.NewClient(kafka.CommonOpts(c.Brokers, logger)...)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			ckpt := &flakyCheckpoints{failPuts: tc.failPuts, m: map[string][]byte{}}
			pub := &memPublisher{}
			svc, err := features.NewService(ctx, features.Config{Brokers: c.Brokers, Names: c.Names, RunID: "ckpt",
				CheckpointEvery: time.Nanosecond, StopAfterFinal: true}, pub, ckpt, logger, nil)
			if err != nil {
				t.Fatal(err)
			}
			runErr := make(chan error, 1)
			go func() { runErr <- svc.Run(ctx) }()
			// The replay waits every 100 records until the service has read
			// them, so that it polls (and checkpoints) many times.
			sent := 0
			gate := func(ctx context.Context, _ int64) error {
				if sent > 0 && sent%100 == 0 {
					if err := prod.Flush(ctx); err != nil {
						return err
					}
					for svc.Stats().Invocations < int64(sent) {
						select {
						case err := <-runErr:
							runErr <- err
							return errors.New("the service stopped")
						case <-ctx.Done():
							return ctx.Err()
						case <-time.After(time.Millisecond):
						}
					}
				}
				sent++
				return nil
			}
			rp, err := producers.NewReplayer(producers.ReplayConfig{RunID: "ckpt", Observed: true, Partitions: 1,
				SourceName: "synthetic", Names: c.Names, Gate: gate}, prod, logger, nil)
			if err != nil {
				t.Fatal(err)
			}
			src, err := replay.NewSynth(replay.SynthConfig{Days: 1, Seed: 3, Apps: 4})
			if err != nil {
				t.Fatal(err)
			}
			res, replayErr := rp.Run(ctx, src)
			err = <-runErr
			if tc.wantErr == "" && replayErr != nil {
				t.Fatal(replayErr)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errStoreDown) {
					t.Fatalf("Run = %v, want an error containing %q wrapping the store's", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Invocations < 1000 {
				t.Fatalf("the trace has %d invocations; the test needs at least 1000", res.Invocations)
			}
			if st := svc.Stats(); st.Invocations != res.Invocations {
				t.Errorf("windowed %d invocations, replayed %d", st.Invocations, res.Invocations)
			}
			ckpt.mu.Lock()
			defer ckpt.mu.Unlock()
			if ckpt.failed != tc.failPuts || ckpt.puts == 0 {
				t.Errorf("%d puts failed and %d stored, want %d failed and some stored", ckpt.failed, ckpt.puts, tc.failPuts)
			}
			if len(pub.ids) == 0 {
				t.Error("no state batch published")
			}
		})
	}
}
