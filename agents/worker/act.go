package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/strata-rl/strata/agents/guard"
	"github.com/strata-rl/strata/schemas"
)

// NATS headers and the queue group of the act protocol.
const (
	// HeaderActError is set on an act reply that carries no decisions: its
	// value says what was wrong with the request or what failed while
	// answering it.
	HeaderActError = "Strata-Error"
	// HeaderActDeadline carries the requester's deadline as a Go duration
	// ("250ms"). The server gives the policy at most that long, counted
	// from when it takes the request; past it the requester has moved on.
	HeaderActDeadline = "Strata-Deadline"
	// ActQueueGroup is the NATS queue group of the act servers: every
	// request on strata.act.<layer> goes to one server of the group, so
	// several agents of a layer share the load.
	ActQueueGroup = "strata-act"
)

// ErrActRejected is wrapped by ActResult.Cause when the server answered an
// act request with an error reply (HeaderActError) instead of decisions.
var ErrActRejected = errors.New("act request rejected")

// errExpired marks a request whose deadline passed while its policy
// decided: it gets no reply (the requester has fallen back already).
var errExpired = errors.New("the request's deadline passed")

// maxErrorHeader bounds the length of an error reply's header value.
const maxErrorHeader = 1024

// ActServer answers single live decisions on strata.act.<layer>
// (request/reply): a request is an Arrow state batch (schemas.EncodeState)
// of the layer holding the entities to decide for (operational rows with
// their whole sequences: the server keeps none between requests), the reply the decision
// batch (schemas.EncodeDecisions) its policy returns, every row stamped
// with the policy's name and version, under the request's header. A
// request that does not decode, is for another layer or that the policy
// fails on gets an empty reply whose HeaderActError says why; the server
// goes on serving.
//
// The policy must be an instance of its own, not the one a tick-batch
// Worker serves: policies keep state across the ticks they see (idle-time
// histograms, moving windows, panic modes, random streams), and the tick
// loop's decisions are deterministic only if its policy sees exactly the
// run's state batches, in order. Live requests arrive at any time, for any
// entity, and would otherwise change the tick loop's decisions.
type ActServer struct {
	nc     *nats.Conn
	layer  schemas.Layer
	policy Policy
	log    *slog.Logger

	// Names prefixes the act subject and queue group (see schemas.Names);
	// set it before Listen or Serve.
	Names schemas.Names

	// Handlers is the number of goroutines that decode, decide and encode
	// requests; set it before Serve. Decoding and encoding overlap, the
	// policy's Decide calls are serialised. Default 2.
	Handlers int
	// Guard, if set, projects every reply's decisions onto the guardrails
	// (agents/guard); set it before Serve. It must be an enforcer of its
	// own: for the keep-warm budget it counts the pre-warm counts this
	// server answered last per function as the ones in force.
	Guard *guard.Enforcer

	mu  sync.Mutex // serialises policy calls: policies are not safe for concurrent use
	sub *nats.Subscription

	answered, rejected atomic.Int64
}

// ActStats counts what an ActServer answered.
type ActStats struct {
	// Answered counts requests answered with decisions.
	Answered int64
	// Rejected counts requests answered with an error reply, or dropped
	// unanswered because their deadline passed while the policy decided.
	Rejected int64
}

// NewActServer returns a server that answers layer's act requests with
// policy, a policy instance no one else uses.
func NewActServer(nc *nats.Conn, layer schemas.Layer, policy Policy, logger *slog.Logger) *ActServer {
	return &ActServer{nc: nc, layer: layer, policy: policy, log: logger, Handlers: 2}
}

// ServeAct answers layer's act requests with policy until ctx is done, as
// one member of the queue group ActQueueGroup. See ActServer.
func ServeAct(ctx context.Context, nc *nats.Conn, layer schemas.Layer, policy Policy, logger *slog.Logger) error {
	return NewActServer(nc, layer, policy, logger).Serve(ctx)
}

// Listen joins the queue group on schemas.ActSubject of the server's layer
// and returns once the NATS server has the subscription: requests sent
// after it returns are queued for this server until Serve takes them.
// Serve calls it if it was not called.
func (s *ActServer) Listen() error {
	if s.sub != nil {
		return nil
	}
	if _, err := schemas.ParseLayer(string(s.layer)); err != nil {
		return fmt.Errorf("serving act requests: %w", err)
	}
	subject := s.Names.ActSubject(s.layer)
	sub, err := s.nc.QueueSubscribeSync(subject, s.Names.Group(ActQueueGroup))
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", subject, err)
	}
	if err := s.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribing to %s: %w", subject, err)
	}
	s.sub = sub
	return nil
}

// Serve answers requests until ctx is done (it then unsubscribes and
// returns nil) or the connection closes. Requests still queued when it
// stops go unanswered: their requesters fall back when their deadline
// passes.
func (s *ActServer) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	defer func() { _ = s.sub.Unsubscribe() }()
	n := max(s.Handlers, 1)
	errs := make(chan error, n)
	for range n {
		go func() { errs <- s.loop(ctx) }()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Stats returns what the server has answered so far.
func (s *ActServer) Stats() ActStats {
	return ActStats{Answered: s.answered.Load(), Rejected: s.rejected.Load()}
}

func (s *ActServer) loop(ctx context.Context) error {
	subject := s.Names.ActSubject(s.layer)
	for {
		msg, err := s.sub.NextMsgWithContext(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrSlowConsumer):
			s.log.Warn("act requests were dropped: the server falls behind", "subject", subject)
			continue
		case err != nil:
			return fmt.Errorf("receiving act requests on %s: %w", subject, err)
		}
		s.handle(ctx, msg)
	}
}

// handle answers one request, with decisions or with an error reply.
func (s *ActServer) handle(ctx context.Context, msg *nats.Msg) {
	if msg.Reply == "" {
		s.log.Warn("ignoring an act request without a reply subject", "subject", msg.Subject)
		return
	}
	data, err := s.decide(ctx, msg)
	if errors.Is(err, errExpired) {
		// The requester has stopped waiting and decided with its fallback:
		// an error reply now could only race its own deadline.
		s.rejected.Add(1)
		s.log.Warn("dropping an act request past its deadline", "subject", msg.Subject, "err", err)
		return
	}
	reply := &nats.Msg{Data: data}
	if err != nil {
		s.rejected.Add(1)
		s.log.Warn("rejecting an act request", "subject", msg.Subject, "err", err)
		reply = &nats.Msg{Header: nats.Header{}}
		reply.Header.Set(HeaderActError, headerValue(err.Error()))
	} else {
		s.answered.Add(1)
	}
	if err := msg.RespondMsg(reply); err != nil {
		s.log.Warn("replying to an act request", "subject", msg.Subject, "err", err)
	}
}

// decide decodes a request, runs the policy and encodes its decisions.
func (s *ActServer) decide(ctx context.Context, msg *nats.Msg) ([]byte, error) {
	st, err := schemas.DecodeState(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("decoding act request (%d bytes) on %s: %w", len(msg.Data), msg.Subject, err)
	}
	h := st.Header
	if h.Layer != s.layer {
		return nil, fmt.Errorf("act request on %s holds a %s state batch, want %s", msg.Subject, h.Layer, s.layer)
	}
	// A request stands alone: the server keeps no sequences between
	// requests, so its rows carry whole ones and none is left out.
	if st.OmitsIdle {
		return nil, fmt.Errorf("act request on %s: the batch leaves out idle rows (%s=true); act requests hold every function whole", msg.Subject, schemas.MetaOmitsIdle)
	}
	for i := range st.Operational {
		if r := &st.Operational[i]; r.Steps != 0 {
			return nil, fmt.Errorf("act request on %s: row %d (%s/%s) carries %d of the %d steps; act requests carry whole sequences", msg.Subject, i, r.App, r.Func, r.Steps, schemas.SeqLen)
		}
	}
	if v := msg.Header.Get(HeaderActDeadline); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("act request on %s: header %s=%q is not a positive duration", msg.Subject, HeaderActDeadline, v)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	out := &schemas.DecisionBatch{Header: h}
	s.mu.Lock()
	err = s.policy.Decide(ctx, st, out)
	name, version := s.policy.Name(), s.policy.Version()
	if err == nil && s.Guard != nil {
		s.Guard.Apply(out)
	}
	s.mu.Unlock()
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("deciding %s act request for tick %d with %s: %w", h.Layer, h.Tick, name, errExpired)
	}
	if err != nil {
		return nil, fmt.Errorf("deciding %s act request for tick %d (%d rows) with %s: %w", h.Layer, h.Tick, st.Len(), name, err)
	}
	for i := range out.Rows {
		out.Rows[i].Policy, out.Rows[i].PolicyVersion = name, version
	}
	enc, err := schemas.EncodeDecisions(out)
	if err != nil {
		return nil, fmt.Errorf("encoding the reply to a %s act request: %w", h.Layer, err)
	}
	return enc, nil
}

// headerValue makes s fit in one header line of bounded length.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxErrorHeader {
		s = s[:maxErrorHeader] + "…"
	}
	return s
}

// ActResult says who decided an Act call's decisions.
type ActResult struct {
	// Fallback is set when the fallback policy decided locally; the rows
	// then carry the fallback's name and version.
	Fallback bool
	// Cause says why the served decision was not used: it wraps
	// context.DeadlineExceeded when no reply came within the deadline,
	// nats.ErrNoResponders when no server listens, ErrActRejected for an
	// error reply, or the failure to encode the request or decode the
	// reply. Nil when the server decided.
	Cause error
}

// Act asks the layer's act servers (schemas.ActSubject of
// state.Header.Layer) for the decisions of the entities in state and waits
// at most deadline for the reply. When no reply comes in time, no server
// listens, the server answers with an error or the exchange fails
// otherwise, fallback decides locally instead and the result says so (its
// Cause says why). Act returns an error only if ctx is done, the arguments
// are invalid, or the served decision failed and the fallback is nil or
// fails too.
//
// The request must fit in the NATS server's max_payload (1 MiB by default;
// strata's embedded server allows 8 MiB). The fallback is called from the
// caller's goroutine and must not be shared with other goroutines.
func Act(ctx context.Context, nc *nats.Conn, state *schemas.StateBatch, deadline time.Duration, fallback Policy) (*schemas.DecisionBatch, ActResult, error) {
	return ActIn(ctx, nc, schemas.Names{}, state, deadline, fallback)
}

// ActIn is Act on the act subjects of a deployment's names (see
// schemas.Names).
func ActIn(ctx context.Context, nc *nats.Conn, names schemas.Names, state *schemas.StateBatch, deadline time.Duration, fallback Policy) (*schemas.DecisionBatch, ActResult, error) {
	var res ActResult
	if state == nil {
		return nil, res, errors.New("act: nil state batch")
	}
	h := state.Header
	if deadline <= 0 {
		return nil, res, fmt.Errorf("act for %s tick %d: deadline %v is not positive", h.Layer, h.Tick, deadline)
	}
	out, err := request(ctx, nc, names.ActSubject(h.Layer), state, deadline)
	if err == nil {
		return out, res, nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, res, fmt.Errorf("act for %s tick %d: %w", h.Layer, h.Tick, cerr)
	}
	res = ActResult{Fallback: true, Cause: err}
	if fallback == nil {
		return nil, res, fmt.Errorf("act for %s tick %d: %w, and there is no fallback policy", h.Layer, h.Tick, err)
	}
	out = &schemas.DecisionBatch{Header: h}
	if ferr := fallback.Decide(ctx, state, out); ferr != nil {
		return nil, res, fmt.Errorf("act for %s tick %d: no served decision (%w), and fallback %s failed: %w", h.Layer, h.Tick, err, fallback.Name(), ferr)
	}
	for i := range out.Rows {
		out.Rows[i].Policy, out.Rows[i].PolicyVersion = fallback.Name(), fallback.Version()
	}
	return out, res, nil
}

// request sends one act request and returns the served decisions.
func request(ctx context.Context, nc *nats.Conn, subject string, state *schemas.StateBatch, deadline time.Duration) (*schemas.DecisionBatch, error) {
	h := state.Header
	data, err := schemas.EncodeState(state)
	if err != nil {
		return nil, fmt.Errorf("encoding act request for %s: %w", subject, err)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(HeaderActDeadline, deadline.String())
	rctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(rctx, msg)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("requesting %s: no reply within %v: %w", subject, deadline, err)
		}
		return nil, fmt.Errorf("requesting %s: %w", subject, err)
	}
	if e := reply.Header.Get(HeaderActError); e != "" {
		return nil, fmt.Errorf("requesting %s: %w: %s", subject, ErrActRejected, e)
	}
	out, err := schemas.DecodeDecisions(reply.Data)
	if err != nil {
		return nil, fmt.Errorf("decoding the reply from %s: %w", subject, err)
	}
	if out.Header.Layer != h.Layer || out.Header.Tick != h.Tick {
		return nil, fmt.Errorf("reply from %s is for %s tick %d, want %s tick %d", subject, out.Header.Layer, out.Header.Tick, h.Layer, h.Tick)
	}
	return out, nil
}
