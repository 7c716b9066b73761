package learner

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-rl/strata/schemas"
)

// Models is where a Follower finds checkpoints and the learner's progress
// (infra/natsbus.ModelStore over JetStream).
type Models interface {
	// WaitProgress blocks until the learner of runID has processed
	// layer's interval i, or ctx ends.
	WaitProgress(ctx context.Context, runID string, layer schemas.Layer, i int64) error
	// InForce returns the newest checkpoint of runID's layer whose InForce
	// is at most i; ok is false when there is none. With i < 0 it returns
	// the newest checkpoint whatever its InForce (live mode).
	InForce(ctx context.Context, runID string, layer schemas.Layer, i int64) (c schemas.Checkpoint, ok bool, err error)
}

// Policy is what a Follower serves (agents.Policy).
type Policy interface {
	Name() string
	Version() string
	Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error
}

// Loader turns a checkpoint into a policy to serve.
type Loader func(c schemas.Checkpoint) (Policy, error)

// ErrNoModel is returned (wrapped) when a Follower has no checkpoint in
// force for the interval it is asked to decide.
var ErrNoModel = errors.New("no model in force")

// Follower serves the checkpoints a learner publishes for one layer of one
// run, switching models at interval boundaries. Not safe for concurrent
// use (one per worker, as agents.Policy).
type Follower struct {
	name   string
	layer  schemas.Layer
	runID  string
	models Models
	load   Loader
	live   bool
	cur    Policy
	// Switches counts model changes (the first load included).
	Switches int
}

// NewFollower returns a follower of runID's layer serving the policy called
// name (the learned policy's name, as decisions record it). In replay (live
// false) it decides interval i only once the learner's progress has
// reached i−1, with the newest checkpoint in force at i: the same
// decisions at any speed. In live mode it never waits and serves the
// newest checkpoint as soon as it is there.
func NewFollower(name string, layer schemas.Layer, runID string, models Models, load Loader, live bool) *Follower {
	return &Follower{name: name, layer: layer, runID: runID, models: models, load: load, live: live}
}

// Name returns the learned policy's name.
func (f *Follower) Name() string { return f.name }

// Version returns the served model's version ("" before the first).
func (f *Follower) Version() string {
	if f.cur == nil {
		return ""
	}
	return f.cur.Version()
}

// Decide switches to the checkpoint in force at the state's interval if it
// is not the one served, then decides with it.
func (f *Follower) Decide(ctx context.Context, state *schemas.StateBatch, out *schemas.DecisionBatch) error {
	i := state.Header.Tick
	at := i
	if f.live {
		at = -1
	} else if i > 0 {
		if err := f.models.WaitProgress(ctx, f.runID, f.layer, i-1); err != nil {
			return fmt.Errorf("waiting for the %s learner to finish interval %d: %w", f.layer, i-1, err)
		}
	}
	c, ok, err := f.models.InForce(ctx, f.runID, f.layer, at)
	if err != nil {
		return fmt.Errorf("looking up the %s model in force at interval %d: %w", f.layer, i, err)
	}
	if ok && (f.cur == nil || c.Version != f.cur.Version()) {
		p, err := f.load(c)
		if err != nil {
			return fmt.Errorf("loading %s model %s (in force from interval %d): %w", f.layer, c.Version, c.InForce, err)
		}
		f.cur = p
		f.Switches++
	}
	if f.cur == nil {
		return fmt.Errorf("deciding %s interval %d of %s: %w", f.layer, i, f.runID, ErrNoModel)
	}
	return f.cur.Decide(ctx, state, out)
}
