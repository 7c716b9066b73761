package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// ServedStore is what FollowServed reads: natsbus.ModelStore.
type ServedStore interface {
	WatchServed(ctx context.Context, deployment string, l schemas.Layer, fn func(natsbus.Served) error) error
	ServedCheckpoint(ctx context.Context, s natsbus.Served, l schemas.Layer) (schemas.Checkpoint, error)
}

// FollowServed serves, in each of sws, the model deployment serves for
// layer: each time one is promoted or rolled back (strata models
// --promote, --rollback) it loads the checkpoint with load, once per
// Swappable (each is an instance of its own), and swaps it in; the
// workers switch between two ticks. A checkpoint that cannot be read or
// loaded is logged and the model in force stays. The model served when it
// starts is start (zero: none), which it does not load again. onSwap, if
// set, is called after each swap. It returns when ctx is done.
func FollowServed(ctx context.Context, ms ServedStore, deployment string, layer schemas.Layer, load func(schemas.Checkpoint) (agents.Policy, error),
	sws []*agents.Swappable, start natsbus.Served, log *slog.Logger, onSwap func(natsbus.Served)) error {
	first := true
	err := ms.WatchServed(ctx, deployment, layer, func(s natsbus.Served) error {
		if first && s == start {
			first = false
			return nil // the model the policies were built from
		}
		first = false
		c, err := ms.ServedCheckpoint(ctx, s, layer)
		if err != nil {
			log.Error("reading the promoted model; the model in force stays", "deployment", deployment, "run", s.Run, "version", s.Version, "err", err)
			return nil
		}
		ps := make([]agents.Policy, len(sws))
		for i := range sws {
			if ps[i], err = load(c); err != nil {
				log.Error("loading the promoted model; the model in force stays", "deployment", deployment, "run", s.Run, "version", s.Version, "err", err)
				return nil
			}
		}
		for i, sw := range sws {
			sw.Swap(ps[i])
		}
		log.Info("serving the promoted model from the next tick", "deployment", deployment, "layer", layer, "run", s.Run, "version", s.Version)
		if onSwap != nil {
			onSwap(s)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("following the %s model deployment %s serves: %w", layer, deployment, err)
	}
	return nil
}

// ServedLoader loads a promoted checkpoint of layer as a policy for
// serving (greedy, no exploration).
func ServedLoader(layer schemas.Layer, opts agents.Options) func(schemas.Checkpoint) (agents.Policy, error) {
	return func(c schemas.Checkpoint) (agents.Policy, error) {
		return agents.LoadCheckpoint(layer, c.Data, opts, false)
	}
}

// Deployment serves a layer's learned policy from the model a deployment
// has promoted (strata models --promote): New builds instances that start
// from that model — or from a start policy while none is promoted — and
// Follow swaps a newly promoted or rolled-back model into each instance
// between two ticks, without a restart. `strata agent --deployment` and
// `strata live --deployment` serve through it.
type Deployment struct {
	ms     *natsbus.ModelStore
	name   string
	layer  schemas.Layer
	opts   agents.Options
	served natsbus.Served
	base   func() (agents.Policy, error)
	swaps  []*agents.Swappable
}

// NewDeployment reads the model deployment name serves for layer. start
// builds the policy served while none is promoted; without one a promoted
// model is required.
func NewDeployment(ctx context.Context, ms *natsbus.ModelStore, name string, layer schemas.Layer, opts agents.Options,
	start func() (agents.Policy, error)) (*Deployment, error) {
	d := &Deployment{ms: ms, name: name, layer: layer, opts: opts, base: start}
	s, ok, err := ms.ServedNow(ctx, name, layer)
	if err != nil {
		return nil, fmt.Errorf("reading the %s model deployment %s serves: %w", layer, name, err)
	}
	d.served = s
	switch {
	case ok:
		c, err := ms.ServedCheckpoint(ctx, s, layer)
		if err != nil {
			return nil, fmt.Errorf("reading the %s model deployment %s serves: %w", layer, name, err)
		}
		load := ServedLoader(layer, opts)
		d.base = func() (agents.Policy, error) { return load(c) }
	case start == nil:
		return nil, fmt.Errorf("deployment %s: no %s model is promoted for it yet (strata models --promote) and there is no --models to start from", name, layer)
	}
	return d, nil
}

// New returns an instance of the served policy that Follow keeps current
// (each caller that keeps state across ticks needs one of its own).
func (d *Deployment) New() (agents.Policy, error) {
	p, err := d.base()
	if err != nil {
		return nil, err
	}
	sw := agents.NewSwappable(p)
	d.swaps = append(d.swaps, sw)
	return sw, nil
}

// Follow swaps every instance New built to each model the deployment
// serves from now on, until ctx is done (FollowServed); onSwap, if set, is
// called after each swap.
func (d *Deployment) Follow(ctx context.Context, log *slog.Logger, onSwap func(natsbus.Served)) error {
	return FollowServed(ctx, d.ms, d.name, d.layer, ServedLoader(d.layer, d.opts), d.swaps, d.served, log, onSwap)
}
