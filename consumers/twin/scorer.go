package twin

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"github.com/strata-rl/strata/schemas"
)

// scoreQueueTicks bounds how many simulated ticks may wait for their
// scoring: an hour of them. The loop blocks when the queue is full, so a
// scorer that falls behind slows the run down instead of growing memory.
const scoreQueueTicks = 240

// scoreJob is one simulated tick waiting to be scored and written, or,
// with out nil, the transitions of layer tr's interval k−1 to complete
// (core.askTransitions).
type scoreJob struct {
	ctx context.Context
	k   int64
	out *Output
	tr  schemas.Layer
}

// scorer scores a Service's ticks and writes what they produced on a
// goroutine of its own, one tick at a time and in tick order, while the
// loop simulates the next ticks: an hour's close replays every active
// function under 24 placements, which would otherwise hold the closed
// loop still for tens of milliseconds while the next decisions are ready.
// The records of every topic keep their order, so the tables, digests and
// figures do not change (TestEngineScoresBesideSimulation, and every
// closed-loop test's digests).
type scorer struct {
	c    *core
	jobs chan scoreJob
	// pending counts the jobs queued and not yet written (drain).
	pending sync.WaitGroup
	stopped chan struct{}

	mu  sync.Mutex
	err error
}

// startScorer starts c's scorer goroutine; stop ends it.
func startScorer(c *core) *scorer {
	s := &scorer{c: c, jobs: make(chan scoreJob, scoreQueueTicks), stopped: make(chan struct{})}
	go s.run()
	return s
}

func (s *scorer) run() {
	defer close(s.stopped)
	for j := range s.jobs {
		yield()
		if s.failed() == nil {
			if err := s.score(j); err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
		}
		s.pending.Done()
	}
}

// yield lets other goroutines run before the scorer goes on. The scorer is
// off the loop's critical path but CPU-bound, for tens of milliseconds at
// an hour's close and hundreds at a day's: a goroutine that does not block
// keeps its P until it is preempted (every 10 ms), and on a machine with
// two cores the tick's chain — replay, features, agents, twin, each woken
// by the one before — then waits runnable behind it. Yielding between
// jobs, and between functions and apps at a close, lets the chain run
// first: 14-day runs took 65.2 and 65.4 s with it against 77.8 s without
// between them (README, change (28)).
func yield() { runtime.Gosched() }

// score scores job j's tick and writes its output, or completes its
// transitions.
func (s *scorer) score(j scoreJob) error {
	if j.out == nil {
		return s.c.writeTransitions(j.ctx, j.tr, j.k, false)
	}
	t1, err := s.c.scoreTick(j.k, j.out)
	if err != nil {
		return err
	}
	return s.c.write(j.ctx, j.k, j.out, t1)
}

// failed returns the first error the scorer met, if any.
func (s *scorer) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// enqueue hands tick k's simulated output to the scorer (blocking while
// the queue is full) and returns the first error the scorer met so far.
func (s *scorer) enqueue(ctx context.Context, k int64, out *Output) error {
	return s.put(ctx, scoreJob{ctx: ctx, k: k, out: out})
}

// put queues j, blocking while the queue is full, and returns the first
// error the scorer met so far.
func (s *scorer) put(ctx context.Context, j scoreJob) error {
	if err := s.failed(); err != nil {
		return err
	}
	s.pending.Add(1)
	select {
	case s.jobs <- j:
		return nil
	case <-ctx.Done():
		s.pending.Done()
		return ctx.Err()
	}
}

// enqueueTransitions queues the completion of layer l's interval i−1
// behind the ticks queued so far, as enqueue queues a tick.
func (s *scorer) enqueueTransitions(ctx context.Context, l schemas.Layer, i int64) error {
	return s.put(ctx, scoreJob{ctx: ctx, k: i, tr: l})
}

// drain waits until every queued tick is scored and written, and returns
// the first error the scorer met.
func (s *scorer) drain() error {
	s.pending.Wait()
	return s.failed()
}

// errAbandoned is the scorer's error once its run has ended early.
var errAbandoned = errors.New("the run ended before these ticks were scored")

// abandon makes the scorer skip the ticks still queued: the run has ended
// early (an error, or its context).
func (s *scorer) abandon() {
	s.mu.Lock()
	if s.err == nil {
		s.err = errAbandoned
	}
	s.mu.Unlock()
}

// stop ends the scorer once the queued ticks are done (their writes fail
// fast if their context has ended) and waits for it.
func (s *scorer) stop() {
	close(s.jobs)
	<-s.stopped
}
