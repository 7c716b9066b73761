package natsbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/infra/secret"
	"github.com/strata-rl/strata/schemas"
)

// Embedded is an in-process nats-server with JetStream, listening on a
// random loopback port.
type Embedded struct {
	s *server.Server
}

// StartEmbedded starts nats-server with JetStream storing under dir.
func StartEmbedded(dir string) (*Embedded, error) {
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true,
		MaxPayload: 8 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("creating embedded nats-server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("starting embedded nats-server: not ready after 10s")
	}
	return &Embedded{s: s}, nil
}

// URL returns the client URL of the embedded server.
func (e *Embedded) URL() string { return e.s.ClientURL() }

// Close shuts the server down and waits for it.
func (e *Embedded) Close() {
	e.s.Shutdown()
	e.s.WaitForShutdown()
}

// ConnectOption configures Connect and ConnectInProcess.
type ConnectOption func(*connectConfig)

type connectConfig struct {
	logger *slog.Logger
}

// WithLogger sends the connection's asynchronous errors (a slow consumer,
// a permission violation, a write on a connection that is closing) to
// logger instead of nats.go's default, which writes them to the
// process's stderr unformatted: warnings, or debug lines while the
// connection is closing or draining, with the connection and the
// subscription's subject.
func WithLogger(logger *slog.Logger) ConnectOption {
	return func(c *connectConfig) { c.logger = logger }
}

// connectOptions returns the nats.go options of opts.
func connectOptions(opts []ConnectOption) []nats.Option {
	var c connectConfig
	for _, o := range opts {
		o(&c)
	}
	if c.logger == nil {
		return nil
	}
	logger := c.logger
	return []nats.Option{nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		attrs := []any{"err", err}
		if nc != nil {
			attrs = append(attrs, "connection", nc.Opts.Name)
		}
		if sub != nil {
			attrs = append(attrs, "subject", sub.Subject)
		}
		if nc != nil && (nc.IsClosed() || nc.IsDraining()) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, nats.ErrConnectionClosed) {
			logger.Debug("nats: asynchronous error while the connection closes", attrs...)
			return
		}
		logger.Warn("nats: asynchronous error", attrs...)
	})}
}

// Connect connects to url with a client name. Credentials come from the
// URL (nats://user:password@host:port) or, so that they stay off command
// lines, from the environment: STRATA_NATS_USER and STRATA_NATS_PASSWORD,
// used when the URL names no user. STRATA_NATS_CA names a PEM file of the
// certificate authorities a server that requires TLS is checked against
// (otherwise the system's).
func Connect(url, name string, opts ...ConnectOption) (*nats.Conn, error) {
	// No reconnect buffer: a publish while the connection is down fails
	// at once instead of being written out blind at the reconnect, when
	// the server's JetStream may not serve yet (BatchPublisher sends its
	// unacknowledged batches again, in order, once it does).
	nopts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1)}
	if u, p := os.Getenv("STRATA_NATS_USER"), os.Getenv("STRATA_NATS_PASSWORD"); u != "" && !strings.Contains(url, "@") {
		nopts = append(nopts, nats.UserInfo(u, p))
	}
	if ca := os.Getenv("STRATA_NATS_CA"); ca != "" {
		nopts = append(nopts, nats.RootCAs(ca))
	}
	nc, err := nats.Connect(url, append(nopts, connectOptions(opts)...)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to nats at %s: %w", secret.Redact(url), err)
	}
	return nc, nil
}

// ConnectInProcess connects a client of this process to the embedded
// server over an in-memory connection instead of its loopback port: the
// same client and server protocol, without the socket. On a loaded machine
// a goroutine blocked on a socket waits for the runtime's network poller,
// which a busy scheduler runs late, and the closed loop's round trip pays
// it at every hop; a pipe wakes its reader directly.
func (e *Embedded) ConnectInProcess(name string, opts ...ConnectOption) (*nats.Conn, error) {
	nc, err := nats.Connect("", append([]nats.Option{nats.Name(name), nats.InProcessServer(e.s)}, connectOptions(opts)...)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to the embedded nats-server in process: %w", err)
	}
	return nc, nil
}

// StreamConfig sets the retention of the tick-batch streams.
type StreamConfig struct {
	// MaxBytes bounds each stream; the oldest batches are discarded beyond
	// it. Default 1 GiB.
	MaxBytes int64
	// MaxAge bounds how long batches are kept. Default 24 h.
	MaxAge time.Duration
	// Duplicates is the deduplication window for message ids. Default 10 min.
	Duplicates time.Duration
	// Memory keeps the streams in memory instead of files.
	Memory bool
	// Names prefixes the streams, subjects and buckets (see schemas.Names).
	Names schemas.Names
}

func (c *StreamConfig) setDefaults() {
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.MaxAge == 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.Duplicates == 0 {
		c.Duplicates = 10 * time.Minute
	}
}

// racing runs a create-or-update a few times while it fails because another
// process created the same stream or bucket between its lookup and its
// create (several roles start against a fresh server at once); the next
// attempt then finds it and updates it.
func racing(createOrUpdate func() error) error {
	var err error
	for range 5 {
		if err = createOrUpdate(); err == nil || !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && !errors.Is(err, jetstream.ErrBucketExists) {
			return err
		}
	}
	return err
}

// EnsureStreams creates or updates the state and decision streams, the
// checkpoint and learner buckets, and the models' and twin's object stores.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) error {
	cfg.setDefaults()
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	for _, sc := range []jetstream.StreamConfig{
		{Name: cfg.Names.Stream(schemas.StreamState), Subjects: []string{cfg.Names.StateSubjects()}},
		{Name: cfg.Names.Stream(schemas.StreamDecision), Subjects: []string{cfg.Names.DecisionSubjects()}},
	} {
		sc.Storage = storage
		sc.MaxBytes = cfg.MaxBytes
		sc.MaxAge = cfg.MaxAge
		sc.Duplicates = cfg.Duplicates
		sc.Discard = jetstream.DiscardOld
		if err := racing(func() error { _, err := js.CreateOrUpdateStream(ctx, sc); return err }); err != nil {
			return fmt.Errorf("creating stream %s: %w", sc.Name, err)
		}
	}
	n := cfg.Names
	if err := racing(func() error {
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.Bucket(schemas.BucketCheckpoints), Storage: jetstream.FileStorage})
		return err
	}); err != nil {
		return fmt.Errorf("creating key-value bucket %s: %w", n.Bucket(schemas.BucketCheckpoints), err)
	}
	if err := racing(func() error {
		_, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: n.Bucket(schemas.BucketFeatures), Storage: jetstream.FileStorage})
		return err
	}); err != nil {
		return fmt.Errorf("creating object store %s: %w", n.Bucket(schemas.BucketFeatures), err)
	}
	if err := racing(func() error {
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.Bucket(schemas.BucketLearner), Storage: storage})
		return err
	}); err != nil {
		return fmt.Errorf("creating key-value bucket %s: %w", n.Bucket(schemas.BucketLearner), err)
	}
	for _, b := range []string{schemas.BucketModels, schemas.BucketTwin} {
		if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: n.Bucket(b), Storage: storage}); err != nil {
			return fmt.Errorf("creating object store %s: %w", n.Bucket(b), err)
		}
	}
	return nil
}

// BatchPublisher publishes tick batches to JetStream asynchronously, with a
// message id per batch so that a batch republished after a restart is
// dropped as a duplicate. Published batches count as durable only after
// Flush returns without error. A BatchPublisher is not safe for concurrent
// use.
//
// It rides out a nats-server restart: while the connection is down it
// waits instead of publishing, and once the client has reconnected, or
// when a batch's acknowledgement reports a lost connection, a timeout or
// no stream responding, it sends every unacknowledged batch again, in
// order, before any new one. The stream's duplicate window drops those
// stored before the failure, so each batch is stored once. The first of
// them is sent alone and its acknowledgement awaited before the rest are
// pipelined behind it, so that batches are stored in the order they were
// published even when JetStream refuses publishes for a moment after a
// server restart. An outage
// longer than the bound (SetOutageBound) ends it with one error that
// names the bound.
//
// A batch that fails while its publisher is idle — a worker in the closed
// loop waits for its next state batch, which waits for the decisions it
// has just published — is sent again without a call: on a connection to a
// server over the network (not in process), a goroutine of the publisher
// looks at the acknowledgements every 250 ms while any is due and the
// connection is up, and ends when none is due. A failure it meets past the
// bound is returned by the next call.
type BatchPublisher struct {
	js      jetstream.JetStream
	maxPend int
	bound   time.Duration

	// mu guards what follows: the caller's calls and the healing goroutine
	// take turns.
	mu      sync.Mutex
	pending []pendingPub
	// reconnects is the connection's reconnect count when the pending
	// batches were last sent.
	reconnects uint64
	// healing is set while the healing goroutine runs; err is the failure
	// it met.
	healing bool
	err     error
}

// DefaultOutageBound is how long a BatchPublisher waits through a NATS
// outage before it gives up: as long as strata's roles wait through a
// Kafka outage (kafka.DefaultOutageBound).
const DefaultOutageBound = 2 * time.Minute

// PublishAsyncTimeout is how long strata's JetStream contexts wait for
// the acknowledgement of an asynchronous publish (PublishAsyncTimeoutOpt)
// before it fails, and a BatchPublisher sends the batch again.
const PublishAsyncTimeout = 10 * time.Second

// PublishAsyncTimeoutOpt is the JetStream option strata's contexts are
// opened with: an asynchronous publish not acknowledged within
// PublishAsyncTimeout fails, instead of waiting forever for an
// acknowledgement that a stopped server will never send.
func PublishAsyncTimeoutOpt() jetstream.JetStreamOpt {
	return jetstream.WithPublishAsyncTimeout(PublishAsyncTimeout)
}

// pendingPub is a published batch waiting for its acknowledgement: its
// message and the future of its latest attempt.
type pendingPub struct {
	msg *nats.Msg
	f   jetstream.PubAckFuture
	// acked records that f.Ok() delivered. A future's Ok and Err channels
	// deliver once: read again, they block forever.
	acked bool
	// failedAt is when an attempt of the batch first failed (zero: none
	// has).
	failedAt time.Time
}

// NewBatchPublisher returns a publisher that waits for acknowledgements
// whenever maxPending batches are in flight (default 256), with the
// outage bound DefaultOutageBound.
func NewBatchPublisher(js jetstream.JetStream, maxPending int) *BatchPublisher {
	if maxPending <= 0 {
		maxPending = 256
	}
	return &BatchPublisher{js: js, maxPend: maxPending, bound: DefaultOutageBound, reconnects: reconnects(js)}
}

// SetOutageBound sets how long the publisher waits for a lost connection,
// or keeps sending a batch that fails, before it returns an error: 0 is
// DefaultOutageBound, a negative bound tolerates no failure. Call it
// before the first Publish. It returns p.
func (p *BatchPublisher) SetOutageBound(d time.Duration) *BatchPublisher {
	if d == 0 {
		d = DefaultOutageBound
	}
	p.bound = d
	return p
}

func reconnects(js jetstream.JetStream) uint64 {
	if nc := js.Conn(); nc != nil {
		return nc.Stats().Reconnects
	}
	return 0
}

// outageError is the error of an outage past the bound.
func (p *BatchPublisher) outageError(what string, d time.Duration, cause error) error {
	switch {
	case p.bound < 0 && cause == nil:
		return fmt.Errorf("%s: nats unreachable (no outage tolerated)", what)
	case p.bound < 0:
		return fmt.Errorf("%s: %w", what, cause)
	case cause == nil:
		return fmt.Errorf("%s: nats unreachable for %s, longer than the outage bound %s", what, d.Round(time.Second), p.bound)
	}
	return fmt.Errorf("%s: failing for %s, longer than the outage bound %s: %w", what, d.Round(time.Second), p.bound, cause)
}

// retriable reports whether a publish failed the way a server restart or
// outage makes it fail; any other error ends the publisher at once.
func retriable(err error) bool {
	for _, e := range []error{nats.ErrDisconnected, nats.ErrConnectionReconnecting, nats.ErrNoResponders,
		nats.ErrTimeout, nats.ErrReconnectBufExceeded, jetstream.ErrNoStreamResponse,
		jetstream.ErrAsyncPublishTimeout, jetstream.ErrTooManyStalledMsgs} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Publish sends one batch. It may block to wait for acknowledgements of
// earlier batches, and while the connection to NATS is down.
func (p *BatchPublisher) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	defer p.heal()
	if err := p.resync(ctx); err != nil {
		return err
	}
	// A batch whose send fails stays pending without a future (f nil):
	// resync sends it, in order, before anything newer (the next Publish,
	// Check, Flush), so the caller's error loses nothing and a retry with
	// the same msgID is deduplicated.
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	p.pending = append(p.pending, pendingPub{msg: msg})
	if err := p.send(ctx, len(p.pending)-1); errors.Is(err, errDown) {
		// The connection went down under the publisher: every batch not
		// acknowledged is sent again, in order, once it is back.
		if err := p.deliver(ctx, 0); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if len(p.pending) < p.maxPend {
		return nil
	}
	// Sliding window: wait for the oldest half only, so publishing keeps
	// the pipe to JetStream full instead of draining it.
	err := p.wait(ctx, len(p.pending)/2)
	p.compact()
	return err
}

// errDown marks a publish the client refused because its connection is
// down: nothing was sent.
var errDown = errors.New("the nats connection is down")

// down reports whether the client refused a publish because its
// connection is down (strata's connections keep no reconnect buffer, see
// Connect).
func down(err error) bool {
	return errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrReconnectBufExceeded)
}

// resync returns at once while the connection is up, has not reconnected
// since the pending batches were sent and every one was sent; otherwise it
// delivers every unacknowledged batch again (see deliver), or those from
// the first never sent.
func (p *BatchPublisher) resync(ctx context.Context) error {
	if p.moved() {
		return p.deliver(ctx, 0)
	}
	for k := range p.pending {
		if p.pending[k].f == nil { // never sent: a Publish failed before its send did
			return p.deliver(ctx, k)
		}
	}
	return nil
}

// awaitConnection waits, at most the bound, while the connection is not
// connected.
func (p *BatchPublisher) awaitConnection(ctx context.Context) error {
	nc := p.js.Conn()
	if nc == nil {
		return nil
	}
	var since time.Time
	for nc.Status() != nats.CONNECTED {
		if nc.IsClosed() {
			return errors.New("publishing to jetstream: the nats connection is closed")
		}
		if since.IsZero() {
			since = time.Now()
		}
		if d := time.Since(since); d > p.bound {
			return p.outageError("publishing to jetstream", d, nil)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("waiting for nats to reconnect: %w", ctx.Err())
		}
	}
	return nil
}

// deliver sends the unacknowledged batches of pending[i:] again, in order,
// once the connection is up. The first of them is settled — sent and its
// acknowledgement awaited, again while JetStream refuses it — before the
// others are pipelined behind it: a server that has just started takes
// connections before JetStream serves its streams, and of batches
// pipelined into that gap the first can be refused while later ones are
// stored, out of order. Whenever the connection turns out to be down it
// waits for it and starts again from the first unacknowledged batch of
// all: what was in flight on the lost connection may be lost too.
func (p *BatchPublisher) deliver(ctx context.Context, i int) error {
	for {
		if err := p.awaitConnection(ctx); err != nil {
			return err
		}
		p.reconnects = reconnects(p.js)
		err := p.deliverOnce(ctx, i)
		if !errors.Is(err, errDown) {
			return err
		}
		i = 0
	}
}

// deliverOnce is one attempt of deliver on the current connection.
func (p *BatchPublisher) deliverOnce(ctx context.Context, i int) error {
	settled := false
	for k := i; k < len(p.pending); k++ {
		if p.pending[k].acked {
			continue
		}
		if settled {
			if err := p.send(ctx, k); err != nil {
				return err
			}
			continue
		}
		if err := p.settle(ctx, k); err != nil {
			return err
		}
		settled = true
	}
	return nil
}

// settle sends pending[k] and waits for its acknowledgement, sending it
// again, paced, while it fails the way an outage explains, at most the
// bound. It returns an error wrapping errDown if the connection goes down
// meanwhile.
func (p *BatchPublisher) settle(ctx context.Context, k int) error {
	pp := &p.pending[k]
	for {
		if err := p.send(ctx, k); err != nil {
			return err
		}
		select {
		case <-pp.f.Ok():
			pp.acked = true
			return nil
		case cause := <-pp.f.Err():
			if err := p.attemptFailed(k, cause); err != nil {
				return err
			}
			if p.moved() {
				return fmt.Errorf("%s: %w: %w", p.what(k), errDown, cause)
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for jetstream acks: %w", ctx.Err())
		}
		if err := p.pace(ctx, k); err != nil {
			return err
		}
	}
}

// pace waits between two attempts of pending[k] while JetStream does not
// serve yet (a server just started), instead of spinning on its refusals.
func (p *BatchPublisher) pace(ctx context.Context, k int) error {
	select {
	case <-time.After(100 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for jetstream to serve: %w", p.what(k), ctx.Err())
	}
}

// send publishes pending[k] (a copy of its message: the client sets the
// reply subject of what it sends), again with backoff while the client
// refuses it for too many unacknowledged publishes, at most the bound. A
// refusal because the connection is down returns an error wrapping
// errDown: nothing was sent.
func (p *BatchPublisher) send(ctx context.Context, k int) error {
	pp := &p.pending[k]
	var first time.Time
	for attempt := 0; ; attempt++ {
		f, err := p.js.PublishMsgAsync(&nats.Msg{Subject: pp.msg.Subject, Data: pp.msg.Data, Header: pp.msg.Header})
		if err == nil {
			pp.f, pp.acked = f, false
			return nil
		}
		what := p.what(k)
		switch {
		case down(err):
			return fmt.Errorf("%s: %w: %w", what, errDown, err)
		case !retriable(err):
			return fmt.Errorf("%s: %w", what, err)
		}
		if first.IsZero() {
			first = time.Now()
		}
		if d := time.Since(first); d > p.bound {
			return p.outageError(what, d, err)
		}
		select {
		case <-time.After(min(50*time.Millisecond<<min(attempt, 5), time.Second)):
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}
}

// failed handles a failed attempt of pending[k]: it delivers the
// unacknowledged batches of pending[k:] again (every one, if the client
// reconnected meanwhile; see deliver).
func (p *BatchPublisher) failed(ctx context.Context, k int, cause error) error {
	if err := p.attemptFailed(k, cause); err != nil {
		return err
	}
	if p.moved() {
		return p.deliver(ctx, 0)
	}
	if errors.Is(cause, jetstream.ErrNoStreamResponse) || errors.Is(cause, nats.ErrNoResponders) {
		if err := p.pace(ctx, k); err != nil {
			return err
		}
	}
	return p.deliver(ctx, k)
}

// attemptFailed records that an attempt of pending[k] failed with cause
// and returns an error if the batch is not to be sent again: cause is not
// one an outage explains, or the batch has been failing for longer than
// the bound.
func (p *BatchPublisher) attemptFailed(k int, cause error) error {
	pp := &p.pending[k]
	if !retriable(cause) {
		return fmt.Errorf("%s: %w", p.what(k), cause)
	}
	if pp.failedAt.IsZero() {
		pp.failedAt = time.Now()
	}
	if d := time.Since(pp.failedAt); d > p.bound {
		return p.outageError(p.what(k), d, cause)
	}
	return nil
}

// moved reports whether the connection is down or has reconnected since
// the pending batches were sent.
func (p *BatchPublisher) moved() bool {
	nc := p.js.Conn()
	return nc != nil && (nc.Status() != nats.CONNECTED || nc.Stats().Reconnects != p.reconnects)
}

// what names pending[k] in errors.
func (p *BatchPublisher) what(k int) string {
	m := p.pending[k].msg
	return fmt.Sprintf("publishing %s to %s", m.Header.Get(jetstream.MsgIDHeader), m.Subject)
}

// wait waits for the acknowledgements of pending[:n], sending failed
// batches again (see BatchPublisher).
func (p *BatchPublisher) wait(ctx context.Context, n int) error {
	for k := 0; k < n; k++ {
		for !p.pending[k].acked {
			select {
			case <-p.pending[k].f.Ok():
				p.pending[k].acked = true
			case err := <-p.pending[k].f.Err():
				if err := p.failed(ctx, k, err); err != nil {
					return err
				}
			case <-ctx.Done():
				return fmt.Errorf("waiting for jetstream acks: %w", ctx.Err())
			}
		}
	}
	return nil
}

// compact forgets the acknowledged batches, keeping the others in order.
func (p *BatchPublisher) compact() {
	n := 0
	for _, pp := range p.pending {
		if !pp.acked {
			p.pending[n] = pp
			n++
		}
	}
	clear(p.pending[n:])
	p.pending = p.pending[:n]
}

// Check forgets the batches acknowledged so far and sends again, in order,
// the unacknowledged ones from the first whose attempt failed, without
// waiting for any acknowledgement: a publisher that must not wait for each
// one (a worker in the closed loop, whose next batch the twin is waiting
// for) still learns of a failed publish at its next batch, and its batches
// are stored. It returns an error once the connection has been down, or a
// batch has failed, for longer than the bound, or at once for an error an
// outage does not explain.
func (p *BatchPublisher) Check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	defer p.heal()
	return p.check()
}

// heal starts the healing goroutine (see BatchPublisher) if batches are
// due, the connection is not in process and none runs; p.mu is held.
func (p *BatchPublisher) heal() {
	nc := p.js.Conn()
	if p.healing || len(p.pending) == 0 || nc == nil || nc.Opts.InProcessServer != nil {
		return
	}
	p.healing = true
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			p.mu.Lock()
			if len(p.pending) == 0 || p.err != nil {
				p.healing = false
				p.mu.Unlock()
				return
			}
			// While the connection is down there is nothing to send:
			// waiting here (check would, up to the bound) would keep the
			// caller's calls waiting for p.mu too.
			if nc.Status() != nats.CONNECTED {
				p.mu.Unlock()
				continue
			}
			if err := p.check(); err != nil {
				p.err = err
			}
			p.mu.Unlock()
		}
	}()
}

// check is Check with p.mu held.
func (p *BatchPublisher) check() error {
	ctx := context.Background()
	if err := p.resync(ctx); err != nil {
		return err
	}
scan:
	for k := range p.pending {
		pp := &p.pending[k]
		if pp.acked {
			continue
		}
		select {
		case <-pp.f.Ok():
			pp.acked = true
		case err := <-pp.f.Err():
			if err := p.failed(ctx, k, err); err != nil {
				return err
			}
			break scan // pending[k:] were sent again
		default:
		}
	}
	p.compact()
	return nil
}

// Flush waits until every batch published so far is acknowledged by
// JetStream (sending failed ones again, see BatchPublisher) and returns
// the first error.
func (p *BatchPublisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	if err := p.resync(ctx); err != nil {
		return err
	}
	err := p.wait(ctx, len(p.pending))
	clear(p.pending)
	p.pending = p.pending[:0]
	return err
}

// followAttemptTimeout bounds one attempt to create Follow's consumer.
const followAttemptTimeout = 5 * time.Second

// Follow delivers every message on subject in stream, oldest first, to fn,
// until ctx is done (it then returns nil) or fn fails. It uses an ordered
// consumer: nothing is acknowledged, and a reconnect, or a server restart,
// resumes after the last delivered message (the client recreates the
// consumer there, with backoff, for as long as it takes). Creating the
// consumer is retried, with backoff, while the server is unreachable or
// its JetStream not serving yet (a follower started during a restart
// waits for it).
func Follow(ctx context.Context, js jetstream.JetStream, stream, subject string, fn func(data []byte) error) error {
	it, err := follow(ctx, js, stream, subject)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("following %s: %w", subject, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("following %s: %w", subject, err)
		}
		if err := fn(msg.Data()); err != nil {
			return err
		}
	}
}

// follow creates Follow's ordered consumer and its iterator, again with
// backoff after each failure an outage explains, until ctx is done.
func follow(ctx context.Context, js jetstream.JetStream, stream, subject string) (jetstream.MessagesContext, error) {
	backoff := 50 * time.Millisecond
	for {
		it, err := func() (jetstream.MessagesContext, error) {
			// Each attempt has its own deadline: a request sent while the
			// client reconnects can go unanswered, and would otherwise
			// hold the follower until ctx's.
			actx, cancel := context.WithTimeout(ctx, followAttemptTimeout)
			defer cancel()
			cons, err := js.OrderedConsumer(actx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
			if err != nil {
				return nil, err
			}
			return cons.Messages()
		}()
		if err == nil || ctx.Err() != nil || !retriable(err) && !errors.Is(err, context.DeadlineExceeded) {
			return it, err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, time.Second)
	}
}

// WatchOutage watches nc until ctx is done (it then returns nil) and
// returns an error that names the bound once nc has been disconnected for
// longer than bound (0 is DefaultOutageBound, a negative bound tolerates
// no disconnection), or once nc is closed. Roles that only wait on NATS —
// followers, a features service waiting for decisions — never see an
// outage themselves: the client reconnects underneath them; a run that
// watches its connection ends instead of waiting forever.
func WatchOutage(ctx context.Context, nc *nats.Conn, bound time.Duration) error {
	if bound == 0 {
		bound = DefaultOutageBound
	}
	ch := nc.StatusChanged()
	defer nc.RemoveStatusListener(ch)
	// The status is read on every change and every 250 ms besides: a
	// listener's channel drops changes when it is full.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var since time.Time
	for {
		switch st := nc.Status(); {
		case st == nats.CLOSED:
			return errors.New("nats: the connection is closed")
		case st == nats.CONNECTED:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		}
		if !since.IsZero() {
			if d := time.Since(since); d > bound || bound < 0 {
				return fmt.Errorf("server unreachable for %s, longer than the outage bound %s", d.Round(time.Second), bound)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
		case <-tick.C:
		}
	}
}
