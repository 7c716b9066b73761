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
type BatchPublisher struct {
	js      jetstream.JetStream
	pending []jetstream.PubAckFuture
	maxPend int
}

// NewBatchPublisher returns a publisher that waits for acknowledgements
// whenever maxPending batches are in flight (default 256).
func NewBatchPublisher(js jetstream.JetStream, maxPending int) *BatchPublisher {
	if maxPending <= 0 {
		maxPending = 256
	}
	return &BatchPublisher{js: js, maxPend: maxPending}
}

// Publish sends one batch. It may block to wait for acknowledgements of
// earlier batches.
func (p *BatchPublisher) Publish(ctx context.Context, subject, msgID string, data []byte) error {
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("publishing %s to %s: %w", msgID, subject, err)
	}
	p.pending = append(p.pending, f)
	if len(p.pending) < p.maxPend {
		return nil
	}
	// Sliding window: wait for the oldest half only, so publishing keeps
	// the pipe to JetStream full instead of draining it.
	half := len(p.pending) / 2
	err = p.wait(ctx, p.pending[:half])
	n := copy(p.pending, p.pending[half:])
	clear(p.pending[n:])
	p.pending = p.pending[:n]
	return err
}

func (p *BatchPublisher) wait(ctx context.Context, fs []jetstream.PubAckFuture) error {
	var first error
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("publishing %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for jetstream acks: %w", ctx.Err())
		}
	}
	return first
}

// Check returns the first error among the acknowledgements that have come
// back, without waiting for the others, and forgets the acknowledged
// batches: a publisher that must not wait for each acknowledgement (a
// worker in the closed loop, whose next batch the twin is waiting for) still
// learns of a failed publish at its next batch.
func (p *BatchPublisher) Check() error {
	var first error
	n := 0
	for _, f := range p.pending {
		select {
		case <-f.Ok():
			continue
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("publishing %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			}
			continue
		default:
		}
		p.pending[n] = f
		n++
	}
	clear(p.pending[n:])
	p.pending = p.pending[:n]
	return first
}

// Flush waits until every batch published so far is acknowledged by
// JetStream and returns the first error.
func (p *BatchPublisher) Flush(ctx context.Context) error {
	err := p.wait(ctx, p.pending)
	clear(p.pending)
	p.pending = p.pending[:0]
	return err
}

// Follow delivers every message on subject in stream, oldest first, to fn,
// until ctx is done (it then returns nil) or fn fails. It uses an ordered
// consumer: nothing is acknowledged, and a reconnect resumes after the last
// delivered message.
func Follow(ctx context.Context, js jetstream.JetStream, stream, subject string, fn func(data []byte) error) error {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return fmt.Errorf("following %s: %w", subject, err)
	}
	it, err := cons.Messages()
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
