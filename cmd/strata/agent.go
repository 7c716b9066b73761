package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/pipeline"
	"github.com/strata-rl/strata/schemas"
	"github.com/strata-rl/strata/schemas/grid"
)

// agentDrainTimeout bounds how long a stopping agent waits for its NATS
// connection to drain (replies and acknowledgements still in flight).
const agentDrainTimeout = 10 * time.Second

// agentMain runs `strata agent`: one layer's policy served over NATS until
// ctx is done. With --run-id it answers that run's state batches on
// strata.state.<layer> with decision batches on strata.decision.<layer>
// (the tick loop); with --act it also answers single live decisions on
// strata.act.<layer> in the queue group worker.ActQueueGroup.
func agentMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		layerF   = fs.String("layer", "", "layer to serve: strategic, tactical or operational")
		policyF  = fs.String("policy", "", "policy `NAME`: strategic "+policyNames(schemas.Strategic)+"; tactical "+policyNames(schemas.Tactical)+"; operational "+policyNames(schemas.Operational))
		natsURL  = fs.String("nats", "", "NATS `URL` (required)")
		runID    = fs.String("run-id", "", "answer this run's state batches (the tick loop); may be left out with --act to serve live requests only")
		act      = fs.Bool("act", false, "also answer single live decisions on strata.act.<layer> (request/reply, queue group "+worker.ActQueueGroup+")")
		seed     = fs.Int64("seed", 1, "seed of the policy's random choices")
		models   = fs.String("models", "", "`DIR` of trained checkpoints for the learned policies (dqn, ppo, lstm)")
		follow   = fs.Bool("follow", false, "serve the checkpoints that strata learner publishes for --run-id (policy dqn or ppo, exploring as in training): switch at the interval each checkpoint names, waiting for the learner")
		live     = fs.Bool("live", false, "with --follow: switch to a new checkpoint on arrival, never wait (live mode)")
		epochF   = fs.String("trace-epoch", grid.DefaultEpoch.Format(time.RFC3339), "wall-clock instant of trace time 0 (sets hour of day)")
		logLevel = fs.String("log-level", "warn", "log level: debug, info, warn, error")
		names    schemas.Names
	)
	registerPrefix(fs, &names)
	conf, err := parseModelFlags(fs, args)
	if err != nil {
		return err
	}
	if err := schemas.ValidatePrefix(names.Prefix); err != nil {
		return err
	}
	layer, err := schemas.ParseLayer(*layerF)
	if err != nil {
		return fmt.Errorf("strata agent --layer: %w", err)
	}
	switch {
	case *policyF == "":
		return fmt.Errorf("strata agent needs --policy (%s policies: %s)", layer, policyNames(layer))
	case *natsURL == "":
		return errors.New("strata agent needs --nats")
	case *runID == "" && !*act:
		return errors.New("strata agent needs --run-id (the run whose state batches to answer), --act, or both")
	case *follow && (*runID == "" || *policyF != agents.LearnedName(layer) || layer == schemas.Operational):
		return fmt.Errorf("strata agent --follow needs --run-id and the layer's learned policy (%s); the operational LSTM is trained offline", agents.LearnedName(layer))
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	epoch, err := parseEpoch(*epochF)
	if err != nil {
		return err
	}
	model, err := conf.newModel(epoch)
	if err != nil {
		return err
	}
	opts := agents.Options{Seed: *seed, Model: model, Epoch: epoch, Models: *models}
	// The tick loop and the act server each get an instance of their own:
	// policies keep state across the ticks they see, so live requests
	// sharing the tick loop's instance would change its decisions.
	var tickPolicy, actPolicy agents.Policy
	if *runID != "" && !*follow {
		if tickPolicy, err = agents.New(*policyF, layer, opts); err != nil {
			return err
		}
	}
	if *act {
		if actPolicy, err = agents.New(*policyF, layer, opts); err != nil {
			return err
		}
	}
	log := logger.With("role", "agent", "layer", layer, "policy", *policyF)

	nc, err := natsbus.Connect(*natsURL, "strata-agent-"+string(layer))
	if err != nil {
		return err
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	defer func() {
		// Last: drain the connection (replies still buffered go out) and
		// wait for it to close.
		if err := nc.Drain(); err != nil {
			nc.Close()
		}
		select {
		case <-closed:
		case <-time.After(agentDrainTimeout):
			log.Warn("nats connection did not drain in time; closing it")
			nc.Close()
		}
	}()

	var w *worker.Worker
	if *runID != "" {
		js, err := jsFor(ctx, nc, names)
		if err != nil {
			return err
		}
		var wp worker.Policy = tickPolicy
		if *follow {
			ms, err := natsbus.OpenModelStore(ctx, js, names)
			if err != nil {
				return err
			}
			wp = learner.NewFollower(*policyF, layer, *runID, ms, pipeline.FollowerLoader(layer, opts, true), *live)
		}
		w = worker.New(js, natsbus.NewBatchPublisher(js, 0), layer, *runID, wp, log)
		w.Names = names
	}
	var as *worker.ActServer
	if actPolicy != nil {
		as = worker.NewActServer(nc, layer, actPolicy, log)
		as.Names = names
		if err := as.Listen(); err != nil {
			return err
		}
	}
	log.Info("serving", "run", *runID, "act", *act)
	g, gctx := errgroup.WithContext(ctx)
	if w != nil {
		g.Go(func() error { return w.Run(gctx) })
	}
	if as != nil {
		g.Go(func() error { return as.Serve(gctx) })
	}
	err = g.Wait()
	var parts []string
	if w != nil {
		parts = append(parts, fmt.Sprintf("%d tick batches decided (run %s)", w.Decided, *runID))
	}
	if as != nil {
		st := as.Stats()
		parts = append(parts, fmt.Sprintf("%d act requests answered, %d rejected", st.Answered, st.Rejected))
	}
	fmt.Fprintf(stdout, "agent %s %s: %s\n", layer, *policyF, strings.Join(parts, "; "))
	if err != nil {
		return fmt.Errorf("serving %s policy %s: %w", layer, *policyF, err)
	}
	return nil
}
