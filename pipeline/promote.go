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
