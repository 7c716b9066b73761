package pipeline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/strata-rl/strata/agents"
	"github.com/strata-rl/strata/agents/learner"
	"github.com/strata-rl/strata/agents/worker"
	"github.com/strata-rl/strata/cloud"
	"github.com/strata-rl/strata/infra/natsbus"
	"github.com/strata-rl/strata/schemas"
)

// agentDrainTimeout bounds how long a stopping agent waits for its NATS
// connection to drain (replies and acknowledgements still in flight).
const agentDrainTimeout = 10 * time.Second

// AgentRole is `strata agent`: one layer's policy served over NATS until
// ctx is done. With RunID it answers that run's state batches on
// strata.state.<layer> with decision batches on strata.decision.<layer>
// (the tick loop); with Act it also answers single live decisions on
// strata.act.<layer> in the queue group worker.ActQueueGroup.
type AgentRole struct {
	// Layer and Policy name what is served.
	Layer, Policy string
	// NATSURL is the NATS server (required).
	NATSURL string
	// NATSOutage bounds how long the worker waits through a NATS outage
	// (Config.NATSOutage).
	NATSOutage time.Duration
	// RunID is the run whose state batches are answered.
	RunID string
	// Act also answers single live decisions.
	Act bool
	// Seed seeds the policy's random choices.
	Seed int64
	// Models is the directory of trained checkpoints.
	Models string
	// Follow serves the learner's checkpoints for RunID; Live switches to
	// a new one on arrival.
	Follow, Live bool
	// Epoch is trace time 0 in RFC 3339.
	Epoch    string
	LogLevel string
	Names    schemas.Names
	// NewModel builds the cloud model with trace time 0 at an epoch; nil
	// is the default catalog and configuration.
	NewModel func(epoch time.Time) (*cloud.Model, error)
	// Serve are the guardrails the agent projects its decisions onto and
	// its layer's fallback.
	Serve ServeFlags
	// Deployment, if set, serves the model promoted for this deployment
	// (strata models --promote) and swaps it, between ticks, when another
	// is promoted or rolled back to.
	Deployment string
}

// DefaultAgentRole is the agent role's defaults.
func DefaultAgentRole() AgentRole {
	def := DefaultCommon()
	return AgentRole{Seed: 1, Epoch: def.Epoch, LogLevel: def.LogLevel}
}

// RegisterFlags registers the role's flags, each name preceded by prefix;
// their defaults are r's values.
func (r *AgentRole) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&r.Layer, prefix+"layer", r.Layer, "layer to serve: strategic, tactical or operational")
	fs.StringVar(&r.Policy, prefix+"policy", r.Policy, "policy `NAME`: strategic "+PolicyNames(schemas.Strategic)+"; tactical "+PolicyNames(schemas.Tactical)+"; operational "+PolicyNames(schemas.Operational))
	fs.StringVar(&r.NATSURL, prefix+"nats", r.NATSURL, "NATS `URL` (required)")
	RegisterNATSOutageFlag(fs, prefix+"nats-outage", &r.NATSOutage)
	fs.StringVar(&r.RunID, prefix+"run-id", r.RunID, "answer this run's state batches (the tick loop); may be left out with --act to serve live requests only")
	fs.BoolVar(&r.Act, prefix+"act", r.Act, "also answer single live decisions on strata.act.<layer> (request/reply, queue group "+worker.ActQueueGroup+")")
	fs.Int64Var(&r.Seed, prefix+"seed", r.Seed, "seed of the policy's random choices")
	fs.StringVar(&r.Models, prefix+"models", r.Models, "`DIR` of trained checkpoints for the learned policies (dqn, ppo, lstm)")
	fs.BoolVar(&r.Follow, prefix+"follow", r.Follow, "serve the checkpoints that strata learner publishes for --run-id (policy dqn or ppo, exploring as in training): switch at the interval each checkpoint names, waiting for the learner")
	fs.BoolVar(&r.Live, prefix+"live", r.Live, "with --follow: switch to a new checkpoint on arrival, never wait (live mode)")
	fs.StringVar(&r.Epoch, prefix+"trace-epoch", r.Epoch, "wall-clock instant of trace time 0 (sets hour of day)")
	fs.StringVar(&r.LogLevel, prefix+"log-level", r.LogLevel, "log level: debug, info, warn, error")
	RegisterPrefixFlag(fs, prefix+"prefix", &r.Names)
	r.Serve.RegisterFlags(fs, prefix)
	fs.StringVar(&r.Deployment, prefix+"deployment", r.Deployment, "serve the learned model promoted for deployment `NAME` (strata models --promote; --models until one is), switching between ticks when another is promoted or rolled back to (docs/guardrails.md)")
}

// Validate reports what the flags set wrongly, before anything connects.
func (r *AgentRole) Validate() error {
	if err := schemas.ValidatePrefix(r.Names.Prefix); err != nil {
		return err
	}
	layer, err := schemas.ParseLayer(r.Layer)
	if err != nil {
		return fmt.Errorf("strata agent --layer: %w", err)
	}
	switch {
	case r.Policy == "":
		return fmt.Errorf("strata agent needs --policy (%s policies: %s)", layer, PolicyNames(layer))
	case r.NATSURL == "":
		return errors.New("strata agent needs --nats")
	case r.RunID == "" && !r.Act:
		return errors.New("strata agent needs --run-id (the run whose state batches to answer), --act, or both")
	case r.Follow && (r.RunID == "" || r.Policy != agents.LearnedName(layer) || layer == schemas.Operational):
		return fmt.Errorf("strata agent --follow needs --run-id and the layer's learned policy (%s); the operational LSTM is trained offline", agents.LearnedName(layer))
	}
	if r.Deployment != "" && (r.Follow || r.Policy != agents.LearnedName(layer)) {
		return fmt.Errorf("strata agent --deployment serves promoted checkpoints of the layer's learned policy (--policy %s), without --follow", agents.LearnedName(layer))
	}
	if err := r.Serve.Validate(); err != nil {
		return err
	}
	sv, _ := r.Serve.Load()
	for l, n := range sv.Fallback {
		switch {
		case l != layer:
			return fmt.Errorf("strata agent --fallback %s=%s: the agent serves the %s layer", l, n, layer)
		case r.Follow:
			return errors.New("strata agent --fallback with --follow: the followed checkpoints are a training run's, served as in training; a fallback is for live use")
		}
	}
	return nil
}

// policies builds the tick loop's policy (with RunID, not following the
// learner) and the act server's (with Act), each an instance of its own.
func (r *AgentRole) policies(newPolicy func() (agents.Policy, error)) (tick, act agents.Policy, err error) {
	if r.RunID != "" && !r.Follow {
		if tick, err = newPolicy(); err != nil {
			return nil, nil, err
		}
	}
	if r.Act {
		if act, err = newPolicy(); err != nil {
			return nil, nil, err
		}
	}
	return tick, act, nil
}

// Run serves the policy until ctx is done and prints what it answered to
// stdout.
func (r *AgentRole) Run(ctx context.Context, stdout, stderr io.Writer) error {
	logger, err := prepare(r, stderr, r.LogLevel)
	if err != nil {
		return err
	}
	layer, _ := schemas.ParseLayer(r.Layer)
	epoch, err := ParseEpoch(r.Epoch)
	if err != nil {
		return err
	}
	model, err := ModelAt(r.NewModel, epoch)
	if err != nil {
		return err
	}
	opts := agents.Options{Seed: r.Seed, Model: model, Epoch: epoch, Models: r.Models}
	sv, err := r.Serve.Load()
	if err != nil {
		return err
	}
	log := logger.With("role", "agent", "layer", layer, "policy", r.Policy)
	// Without a deployment the policies are built before anything
	// connects: a name or checkpoint that is wrong fails at once.
	var early, earlyAct agents.Policy
	if r.Deployment == "" {
		if early, earlyAct, err = r.policies(func() (agents.Policy, error) {
			p, err := agents.New(r.Policy, layer, opts)
			if err != nil {
				return nil, err
			}
			return sv.Wrap(p, layer, opts)
		}); err != nil {
			return err
		}
	}

	nc, err := natsbus.Connect(r.NATSURL, "strata-agent-"+string(layer), natsbus.WithLogger(logger))
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
	var js jetstream.JetStream
	if r.RunID != "" || r.Deployment != "" {
		if js, err = OpenJetStream(ctx, nc, r.Names); err != nil {
			return err
		}
	}
	var ms *natsbus.ModelStore
	if r.Follow || r.Deployment != "" {
		if ms, err = natsbus.OpenModelStore(ctx, js, r.Names); err != nil {
			return err
		}
	}
	// With --deployment the policy starts from the model the deployment
	// serves (or --models when none was promoted yet) and is swapped when
	// one is promoted or rolled back.
	var dep *Deployment
	newPolicy := func() (agents.Policy, error) {
		p, err := dep.New()
		if err != nil {
			return nil, err
		}
		return sv.Wrap(p, layer, opts)
	}
	if r.Deployment != "" {
		var start func() (agents.Policy, error)
		if r.Models != "" {
			start = func() (agents.Policy, error) { return agents.New(r.Policy, layer, opts) }
		}
		if dep, err = NewDeployment(ctx, ms, r.Deployment, layer, opts, start); err != nil {
			return fmt.Errorf("strata agent --deployment: %w", err)
		}
	}
	var tickPolicy, actPolicy agents.Policy
	if r.Deployment != "" {
		if tickPolicy, actPolicy, err = r.policies(newPolicy); err != nil {
			return err
		}
	} else {
		tickPolicy, actPolicy = early, earlyAct
	}

	var w *worker.Worker
	if r.RunID != "" {
		var wp worker.Policy = tickPolicy
		if r.Follow {
			wp = learner.NewFollower(r.Policy, layer, r.RunID, ms, FollowerLoader(layer, opts, true), r.Live)
		}
		w = worker.New(js, natsbus.NewBatchPublisher(js, 0).SetOutageBound(r.NATSOutage), layer, r.RunID, wp, log)
		w.Names = r.Names
		if w.Guard, err = sv.Enforcer(layer, model); err != nil {
			return err
		}
	}
	var as *worker.ActServer
	if actPolicy != nil {
		as = worker.NewActServer(nc, layer, actPolicy, log)
		as.Names = r.Names
		if as.Guard, err = sv.Enforcer(layer, model); err != nil {
			return err
		}
		if err := as.Listen(); err != nil {
			return err
		}
	}
	log.Info("serving", "run", r.RunID, "act", r.Act)
	g, gctx := errgroup.WithContext(ctx)
	if w != nil {
		g.Go(func() error { return w.Run(gctx) })
	}
	if as != nil {
		g.Go(func() error { return as.Serve(gctx) })
	}
	if dep != nil {
		g.Go(func() error { return dep.Follow(gctx, log, nil) })
	}
	err = g.Wait()
	var parts []string
	if w != nil {
		parts = append(parts, fmt.Sprintf("%d tick batches decided (run %s)", w.Decided, r.RunID))
	}
	if as != nil {
		st := as.Stats()
		parts = append(parts, fmt.Sprintf("%d act requests answered, %d rejected", st.Answered, st.Rejected))
	}
	fmt.Fprintf(stdout, "agent %s %s: %s\n", layer, r.Policy, strings.Join(parts, "; "))
	if err != nil {
		return fmt.Errorf("serving %s policy %s: %w", layer, r.Policy, err)
	}
	return nil
}
