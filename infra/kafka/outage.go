package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultOutageBound is how long a role keeps polling through a broker
// outage before it gives up (Outage).
const DefaultOutageBound = 2 * time.Minute

// Outage decides, poll after poll, whether a consumer's fetch errors end
// its role. Errors a broker outage causes — the connection refused or
// cut, a retriable Kafka error, the group session lost while the
// coordinator is away — are tolerated (logged once) until Bound has passed
// since the first of them without a poll in between that returned no
// error; the client reconnects and resumes by itself meanwhile. Any other
// error ends the role at once. The zero Outage uses DefaultOutageBound.
type Outage struct {
	// Bound is the longest outage tolerated; 0 means DefaultOutageBound,
	// a negative one tolerates none.
	Bound time.Duration
	// Log, if set, hears of an outage's start and end.
	Log *slog.Logger
	// What names the role's input in the messages ("the twin's arrivals").
	What string

	since time.Time
	first error
	count int
}

// Check returns nil when fetches carry no error or only errors of an
// outage younger than the bound (now is the time of the poll), and
// otherwise the error that ends the role: the first error that is not an
// outage's, or one saying how long the broker has been unreachable.
// Context cancellations are not errors.
func (o *Outage) Check(fetches kgo.Fetches, now time.Time) error {
	var hard, soft error
	fetches.EachError(func(t string, p int32, err error) {
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		case Transient(err):
			if soft == nil {
				soft = fmt.Errorf("fetching %s/%d: %w", t, p, err)
			}
		case hard == nil:
			hard = fmt.Errorf("fetching %s/%d: %w", t, p, err)
		}
	})
	if hard != nil {
		return hard
	}
	if soft == nil {
		if !o.since.IsZero() && o.Log != nil {
			o.Log.Info("Kafka reachable again", "input", o.What, "outage", now.Sub(o.since).Round(time.Millisecond), "errors", o.count)
		}
		o.since, o.first, o.count = time.Time{}, nil, 0
		return nil
	}
	if o.since.IsZero() {
		o.since, o.first = now, soft
		if o.Log != nil {
			o.Log.Warn("Kafka unreachable: retrying", "input", o.What, "bound", o.bound(), "err", soft)
		}
	}
	o.count++
	if o.Bound < 0 || now.Sub(o.since) > o.bound() {
		return fmt.Errorf("kafka unreachable for %s (longer than the outage bound %s) reading %s: first error: %w; last: %w",
			now.Sub(o.since).Round(time.Second), o.bound(), o.what(), o.first, soft)
	}
	return nil
}

// DeliveryTimeout is the producer option of an outage bound (0 is
// DefaultOutageBound; franz-go's least, one second, for a shorter or
// negative one): a record that cannot be delivered for that long fails,
// and its role ends with the error, instead of being retried for ever.
func DeliveryTimeout(bound time.Duration) kgo.Opt {
	o := Outage{Bound: bound}
	return kgo.RecordDeliveryTimeout(max(o.bound(), time.Second))
}

// Down reports whether an outage is under way (the last Check saw one).
func (o *Outage) Down() bool { return !o.since.IsZero() }

// After is what a role calls after each poll: Check at the current time,
// and, during an outage, a short pause before the next poll (until ctx is
// done at most): the client reports the same errors poll after poll while
// it reconnects, and the role should not spin on them.
func (o *Outage) After(ctx context.Context, fetches kgo.Fetches) error {
	if err := o.Check(fetches, time.Now()); err != nil {
		return err
	}
	if o.Down() {
		outagePause(ctx)
	}
	return nil
}

// outagePauseFor is how long a role waits between polls during an outage.
const outagePauseFor = 250 * time.Millisecond

// outagePause waits outagePauseFor or until ctx is done.
func outagePause(ctx context.Context) {
	t := time.NewTimer(outagePauseFor)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (o *Outage) bound() time.Duration {
	switch {
	case o.Bound == 0:
		return DefaultOutageBound
	case o.Bound < 0:
		return 0
	}
	return o.Bound
}

func (o *Outage) what() string {
	if o.What == "" {
		return "a topic"
	}
	return o.What
}

// Transient reports whether err is what a broker outage causes: a network
// error (refused, reset, cut, timed out), a retriable Kafka error, or the
// consumer group's session lost while its coordinator is away.
func Transient(err error) bool {
	var ne net.Error
	var oe *net.OpError
	switch {
	case err == nil:
		return false
	case errors.As(err, &oe), errors.As(err, &ne):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	case kerr.IsRetriable(err):
		return true
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.RebalanceInProgress):
		return true
	}
	return false
}
