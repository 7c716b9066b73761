package pipeline_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/strata-rl/strata/pipeline"
)

// journal records what the actors of a test did, in order.
type journal struct {
	mu  sync.Mutex
	log []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	j.log = append(j.log, s)
	j.mu.Unlock()
}

func (j *journal) lines() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.log)
}

// TestActors checks the run group's ordered shutdown: drivers end, each
// later stage drains and then stops in order; a failure anywhere aborts the
// drivers, skips the drains and still stops the stages in order; the
// parent's cancellation does the same and is returned.
func TestActors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		// failAgent makes the agent fail while the drivers run;
		// failDrain makes the sink's drain fail; cancel cancels the
		// parent while the drivers run.
		failAgent, failDrain, cancel bool
		wantErr                      string
		want                         []string
	}{
		{name: "clean run", want: []string{"driver done", "agents drained", "agent stopped", "sink drained", "sink stopped", "trim stopped"}},
		{name: "an agent fails", failAgent: true, wantErr: "agent: boom",
			want: []string{"driver cancelled", "sink stopped", "trim stopped"}},
		{name: "a drain fails", failDrain: true, wantErr: "sink: boom",
			want: []string{"driver done", "agents drained", "agent stopped", "sink stopped", "trim stopped"}},
		{name: "the parent is cancelled", cancel: true, wantErr: context.Canceled.Error(),
			want: []string{"driver cancelled", "agent stopped", "sink stopped", "trim stopped"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var j journal
			g := pipeline.NewActors(ctx, nil)
			drivers := g.Stage("drivers", nil)
			agents := g.Stage("agents", func(context.Context) error { j.add("agents drained"); return nil })
			sink := g.Stage("sink", func(context.Context) error {
				if tc.failDrain {
					return boom
				}
				j.add("sink drained")
				return nil
			})
			trim := g.Stage("trim", nil)
			started := make(chan struct{})
			release := make(chan struct{})
			drivers.Go("driver", func(ctx context.Context) error {
				close(started)
				select {
				case <-release:
					j.add("driver done")
					return nil
				case <-ctx.Done():
					j.add("driver cancelled")
					return ctx.Err()
				}
			})
			agents.Go("agent", func(ctx context.Context) error {
				<-started
				if tc.failAgent {
					return boom
				}
				<-ctx.Done()
				j.add("agent stopped")
				return ctx.Err()
			})
			for _, a := range []struct {
				s    *pipeline.Stage
				name string
			}{{sink, "sink"}, {trim, "trim"}} {
				a.s.Go(a.name, func(ctx context.Context) error {
					<-ctx.Done()
					j.add(a.name + " stopped")
					return nil
				})
			}
			<-started
			switch {
			case tc.cancel:
				cancel()
			case !tc.failAgent:
				close(release)
			}
			err := g.Wait()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Wait: %v, want an error containing %q", err, tc.wantErr)
			}
			if got := j.lines(); !slices.Equal(got, tc.want) {
				t.Fatalf("journal\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}
