package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Actors is a run group: named actors, started in stages and stopped in the
// stages' order. The first stage holds the drivers — the actors that end on
// their own when the run's input is done (the replay, the twin, the
// features). Every later stage holds readers that run until they are
// stopped (the agents, the learner, the sink, the broker's trimmer).
//
// Wait waits for the drivers to return, then for each later stage in the
// order the stages were added: waits for its drain condition (the sink has
// written what the twin produced, the learner has trained on the last
// interval), cancels the stage's context and waits for its actors. So a
// reader is stopped only after everything upstream of it has stopped and
// it has caught up, and it flushes and commits on the way out.
//
// The first failure — an actor returning an error other than its own
// stage's cancellation, or a drain that fails — aborts the run: the
// drivers' context is cancelled, pending drains are skipped, and the later
// stages are still stopped one after another in order. Wait returns every
// failure, each prefixed with its actor's name. Cancelling the parent
// context stops the run the same way and Wait returns its cause.
//
// The zero value is not usable; call NewActors. Add stages and actors from
// one goroutine before calling Wait.
type Actors struct {
	parent context.Context
	log    *slog.Logger
	// abortCtx is cancelled at the first failure (or with the parent): the
	// drivers and the drains run under it.
	abortCtx context.Context
	abort    context.CancelFunc
	stages   []*Stage

	mu   sync.Mutex
	errs []error
}

// Stage is one stage of an Actors group: the actors in it start when they
// are added and stop together.
type Stage struct {
	g      *Actors
	name   string
	drain  func(ctx context.Context) error
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewActors returns an empty run group under ctx; log receives a line per
// actor started and stopped (debug level) and per failure.
func NewActors(ctx context.Context, log *slog.Logger) *Actors {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Actors{parent: ctx, log: log}
	a.abortCtx, a.abort = context.WithCancel(ctx)
	return a
}

// Stage adds a stage named name. The first stage added holds the drivers
// (drain is ignored there: the group waits for them to return). For a
// later stage, drain, if not nil, is what the group waits for before
// stopping the stage; it is skipped once the run has failed, and its ctx
// is cancelled when the run fails while it waits.
func (a *Actors) Stage(name string, drain func(ctx context.Context) error) *Stage {
	s := &Stage{g: a, name: name, drain: drain}
	if len(a.stages) == 0 {
		s.ctx, s.cancel = context.WithCancel(a.abortCtx)
	} else {
		// Later stages are stopped by the group, in order, not by the
		// parent: their readers must outlive what feeds them.
		s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(a.parent))
	}
	a.stages = append(a.stages, s)
	return s
}

// Go starts the actor name running run with the stage's context. run
// returns when its work is done or its context is cancelled; an error it
// returns fails the run unless it is the stage's own cancellation.
func (s *Stage) Go(name string, run func(ctx context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t0 := time.Now()
		s.g.log.Debug("actor started", "stage", s.name, "actor", name)
		err := run(s.ctx)
		stopped := s.ctx.Err() != nil
		if err != nil && (!stopped || !errors.Is(err, context.Canceled)) {
			s.g.fail(fmt.Errorf("%s: %w", name, err))
		}
		s.g.log.Debug("actor stopped", "stage", s.name, "actor", name, "ran", time.Since(t0), "err", err)
	}()
}

// fail records err and aborts the run.
func (a *Actors) fail(err error) {
	a.mu.Lock()
	a.errs = append(a.errs, err)
	a.mu.Unlock()
	a.log.Error("run failed", "err", err)
	a.abort()
}

// failed reports whether the run has failed.
func (a *Actors) failed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.errs) > 0
}

// Wait runs the shutdown described on Actors and returns the run's
// failures joined, the parent's cause when it was cancelled, or nil.
func (a *Actors) Wait() error {
	defer a.abort()
	for i, s := range a.stages {
		if i > 0 && s.drain != nil && !a.failed() && a.parent.Err() == nil {
			if err := s.drain(a.abortCtx); err != nil && !a.failed() && a.parent.Err() == nil {
				a.fail(fmt.Errorf("%s: %w", s.name, err))
			}
		}
		if i == 0 {
			s.wg.Wait() // the drivers end on their own, or at an abort
			s.cancel()
			continue
		}
		a.log.Debug("stopping stage", "stage", s.name)
		s.cancel()
		s.wg.Wait()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.errs) > 0 {
		return errors.Join(a.errs...)
	}
	if a.parent.Err() != nil {
		return context.Cause(a.parent)
	}
	return nil
}
