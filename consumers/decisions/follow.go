package decisions

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// Follow applies the decision batches of every layer from JetStream (stream
// schemas.StreamDecision, subjects schemas.DecisionSubject(layer), under
// Config.Names), oldest
// first, until ctx is done; it then returns nil. The subjects are shared by
// all runs: batches of other runs are read and ignored. A batch that cannot
// be decoded is logged, counted and skipped, never fatal. Follow returns an
// error when a layer's subject cannot be followed (the stream is missing,
// the consumer fails), after stopping the other layers.
func (v *View) Follow(ctx context.Context, js jetstream.JetStream) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range schemas.Layers {
		subject := v.cfg.Names.DecisionSubject(l)
		g.Go(func() error {
			err := natsbus.Follow(gctx, js, v.cfg.Names.Stream(schemas.StreamDecision), subject, func(data []byte) error {
				b, err := schemas.DecodeDecisions(data)
				if err != nil {
					v.m.decode.Inc()
					v.log.Warn("skipping undecodable decision batch", "subject", subject, "bytes", len(data), "err", err)
					return nil
				}
				v.Apply(b)
				return nil
			})
			if err != nil {
				return fmt.Errorf("following %s decisions for run %s: %w", l, v.cfg.RunID, err)
			}
			return nil
		})
	}
	err := g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err())) {
		// Done: a layer that was still setting up its consumer fails with
		// the context's error.
		return nil
	}
	return err
}
