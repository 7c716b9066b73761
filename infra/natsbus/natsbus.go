package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// Connect connects to url with a client name.
func Connect(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connecting to nats at %s: %w", url, err)
	}
	return nc, nil
}

// ConnectInProcess connects a client of this process to the embedded
// server over an in-memory connection instead of its loopback port: the
// same client and server protocol, without the socket. On a loaded machine
// a goroutine blocked on a socket waits for the runtime's network poller,
// which a busy scheduler runs late, and the closed loop's round trip pays
// it at every hop; a pipe wakes its reader directly.
func (e *Embedded) ConnectInProcess(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.Name(name), nats.InProcessServer(e.s))
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

// EnsureStreams creates or updates the state and decision streams and the
// checkpoint bucket.
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
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.Bucket(schemas.BucketLearner), Storage: storage})
		return err
	}); err != nil {
		return fmt.Errorf("creating key-value bucket %s: %w", n.Bucket(schemas.BucketLearner), err)
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: n.Bucket(schemas.BucketModels), Storage: storage}); err != nil {
		return fmt.Errorf("creating object store %s: %w", n.Bucket(schemas.BucketModels), err)
	}
	return nil
}

// BatchPublisher publishes tick batches to JetStream asynchronously, with a
// message id per batch so that a batch republished after a restart is
// dropped as a duplicate. Published batches count as durable only after
// Flush returns without error.
//
// It keeps the stream in publication order through a nats-server restart:
// while the connection is down it waits (at most OutageBound) instead of
// publishing, and once the client has reconnected, or when an attempt is
// not acknowledged, it sends every unacknowledged batch again, in order,
// before any new one. The stream's duplicate window drops those stored
// before the failure, so each batch is stored once and the readers see the
// batches in the order they were published. Past the bound it returns one
// error that says so.
type BatchPublisher struct {
	js      jetstream.JetStream
	pending []pendingPub
	maxPend int
	// OutageBound is how long the publisher waits for the connection, or
	// keeps sending a batch that fails, before it gives up (default
	// DefaultOutageBound).
	OutageBound time.Duration
	// reconnects is the connection's reconnect count when the pending
	// batches were last sent.
	reconnects uint64
}

// PublishAsyncTimeout is the JetStream option strata's connections use: an
// asynchronous publish not acknowledged within 10 s fails (and a
// BatchPublisher sends it again) instead of waiting forever for an
// acknowledgement a restarted server will never send.
func PublishAsyncTimeout() jetstream.JetStreamOpt {
	return jetstream.WithPublishAsyncTimeout(10 * time.Second)
}

// DefaultOutageBound is how long a BatchPublisher waits through a NATS
// outage: as long as strata tolerates a Kafka outage.
const DefaultOutageBound = 2 * time.Minute

// pendingPub is a published batch waiting for its acknowledgement: its
// message and the future of its latest attempt.
type pendingPub struct {
	msg *nats.Msg
	f   jetstream.PubAckFuture
}

// NewBatchPublisher returns a publisher that waits for acknowledgements
// whenever maxPending batches are in flight (default 256).
func NewBatchPublisher(js jetstream.JetStream, maxPending int) *BatchPublisher {
	if maxPending <= 0 {
		maxPending = 256
	}
	return &BatchPublisher{js: js, maxPend: maxPending, reconnects: reconnects(js)}
}

func reconnects(js jetstream.JetStream) uint64 {
	if nc := js.Conn(); nc != nil {
		return nc.Stats().Reconnects
	}
	return 0
}

func (p *BatchPublisher) bound() time.Duration {
	if p.OutageBound > 0 {
		return p.OutageBound
	}
	return DefaultOutageBound
}

// Publish sends one batch. It may block to wait for acknowledgements of
// earlier batches, and while the connection to NATS is down.
func (p *BatchPublisher) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	if err := p.resync(ctx); err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	p.pending = append(p.pending, pendingPub{msg: msg})
	if err := p.send(ctx, len(p.pending)-1); err != nil {
		return err
	}
	if len(p.pending) < p.maxPend {
		return nil
	}
	// Sliding window: wait for the oldest half only, so publishing keeps
	// the pipe to JetStream full instead of draining it.
	half := len(p.pending) / 2
	err := p.wait(ctx, half)
	n := copy(p.pending, p.pending[half:])
	clear(p.pending[n:])
	p.pending = p.pending[:n]
	return err
}

// resync waits, at most the bound, while the connection is not connected;
// if the client reconnected since the pending batches were sent, it sends
// them all again, in order.
func (p *BatchPublisher) resync(ctx context.Context) error {
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
		if d := time.Since(since); d > p.bound() {
			return fmt.Errorf("publishing to jetstream: nats unreachable for %s, longer than the outage bound %s", d.Round(time.Second), p.bound())
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("waiting for nats to reconnect: %w", ctx.Err())
		}
	}
	if r := nc.Stats().Reconnects; r != p.reconnects {
		p.reconnects = r
		return p.sendFrom(ctx, 0)
	}
	return nil
}

// sendFrom sends pending[i:] again, in order.
func (p *BatchPublisher) sendFrom(ctx context.Context, i int) error {
	for k := i; k < len(p.pending); k++ {
		if err := p.send(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// send publishes pending[k] (a copy of its message: the client sets the
// reply subject of what it sends), again with backoff while the client
// refuses it outright, at most the bound.
func (p *BatchPublisher) send(ctx context.Context, k int) error {
	pp := &p.pending[k]
	var first time.Time
	for attempt := 0; ; attempt++ {
		m := &nats.Msg{Subject: pp.msg.Subject, Data: pp.msg.Data, Header: pp.msg.Header}
		f, err := p.js.PublishMsgAsync(m)
		if err == nil {
			pp.f = f
			return nil
		}
		if first.IsZero() {
			first = time.Now()
		}
		if d := time.Since(first); d > p.bound() {
			return fmt.Errorf("publishing %s to %s: refused for %s, longer than the outage bound %s: %w",
				pp.msg.Header.Get(jetstream.MsgIDHeader), pp.msg.Subject, d.Round(time.Second), p.bound(), err)
		}
		select {
		case <-time.After(min(50*time.Millisecond<<min(attempt, 5), time.Second)):
		case <-ctx.Done():
			return fmt.Errorf("publishing %s: %w", pp.msg.Header.Get(jetstream.MsgIDHeader), ctx.Err())
		}
	}
}

// failed handles a failed attempt of pending[k]: once the connection is
// back it sends pending[k:] again in order (every pending batch, if the
// client reconnected). It gives up once the batch has failed for longer
// than the bound since first.
func (p *BatchPublisher) failed(ctx context.Context, k int, first time.Time, cause error) error {
	if d := time.Since(first); d > p.bound() {
		return fmt.Errorf("publishing %s to %s: failing for %s, longer than the outage bound %s: %w",
			p.pending[k].msg.Header.Get(jetstream.MsgIDHeader), p.pending[k].msg.Subject, d.Round(time.Second), p.bound(), cause)
	}
	r := p.reconnects
	if err := p.resync(ctx); err != nil {
		return err
	}
	if p.reconnects != r {
		return nil // resync sent every pending batch
	}
	return p.sendFrom(ctx, k)
}

// wait waits for the acknowledgements of pending[:n], sending failed
// batches again (see BatchPublisher).
func (p *BatchPublisher) wait(ctx context.Context, n int) error {
	for k := 0; k < n; k++ {
		var first time.Time
		for done := false; !done; {
			select {
			case <-p.pending[k].f.Ok():
				done = true
			case err := <-p.pending[k].f.Err():
				if first.IsZero() {
					first = time.Now()
				}
				if err := p.failed(ctx, k, first, err); err != nil {
					return err
				}
			case <-ctx.Done():
				return fmt.Errorf("waiting for jetstream acks: %w", ctx.Err())
			}
		}
	}
	return nil
}

// Check forgets the batches acknowledged so far and sends again, in order,
// those from the first whose attempt failed, without waiting for any
// acknowledgement: a publisher that must not wait for each one (a worker in
// the closed loop, whose next batch the twin is waiting for) still keeps
// its batches stored and in order. It returns an error once the
// connection has been down, or a batch refused, for longer than the bound.
func (p *BatchPublisher) Check() error {
	ctx := context.Background()
	if err := p.resync(ctx); err != nil {
		return err
	}
	n := 0 // the leading batches acknowledged
scan:
	for k := range p.pending {
		select {
		case <-p.pending[k].f.Ok():
			if n == k {
				n++
			}
		case err := <-p.pending[k].f.Err():
			if err := p.failed(ctx, k, time.Now(), err); err != nil {
				return err
			}
			break scan // pending[k:] were sent again
		default:
		}
	}
	m := copy(p.pending, p.pending[n:])
	clear(p.pending[m:])
	p.pending = p.pending[:m]
	return nil
}

// Flush waits until every batch published so far is acknowledged by
// JetStream (sending failed ones again, see BatchPublisher) and returns the
// first error.
func (p *BatchPublisher) Flush(ctx context.Context) error {
	err := p.wait(ctx, len(p.pending))
	clear(p.pending)
	p.pending = p.pending[:0]
	return err
}

// followHeartbeat is the idle heartbeat of Follow's pull requests.
const followHeartbeat = 5 * time.Second

// Follow delivers every message on subject in stream, oldest first, to fn,
// until ctx is done (it then returns nil) or fn fails. It uses an ordered
// consumer: nothing is acknowledged, and a reconnect, or a server restart,
// resumes after the last delivered message (the consumer is recreated there,
// with backoff, for as long as it takes).
func Follow(ctx context.Context, js jetstream.JetStream, stream, subject string, fn func(data []byte) error) error {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return fmt.Errorf("following %s: %w", subject, err)
	}
	// Idle heartbeats every 5 s (the client's default is 15 s): after a
	// server restart, two missed ones make the ordered consumer recreate
	// itself after the last delivered message.
	it, err := cons.Messages(jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
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
