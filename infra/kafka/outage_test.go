package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchesWith returns fetches that carry err on topic t, partition 0 (nil:
// none).
func fetchesWith(err error) kgo.Fetches {
	if err == nil {
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: []kgo.FetchPartition{{Partition: 0}}}}}}
	}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: []kgo.FetchPartition{{Partition: 0, Err: err}}}}}}
}

func TestTransient(t *testing.T) {
	dial := fmt.Errorf("unable to join group session: unable to dial: %w",
		&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused, wrapped", dial, true},
		{"connection reset", fmt.Errorf("reading: %w", syscall.ECONNRESET), true},
		{"connection cut mid-response", fmt.Errorf("reading: %w", net.ErrClosed), true},
		{"retriable Kafka error", kerr.NotLeaderForPartition, true},
		{"coordinator away", kerr.CoordinatorNotAvailable, true},
		{"group session lost", kerr.UnknownMemberID, true},
		{"not authorised", kerr.TopicAuthorizationFailed, false},
		{"anything else", errors.New("bad record"), false},
		{"none", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Transient(c.err); got != c.want {
				t.Fatalf("Transient(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

func TestOutageBound(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	t0 := time.Unix(1_764_900_000, 0)
	type poll struct {
		at      time.Duration // after t0
		err     error
		wantErr string // "" for none
	}
	for _, c := range []struct {
		name  string
		bound time.Duration
		polls []poll
	}{
		{"an outage shorter than the bound passes", 10 * time.Second, []poll{
			{0, refused, ""}, {5 * time.Second, refused, ""}, {9 * time.Second, nil, ""},
			// A new outage starts its own clock.
			{15 * time.Second, refused, ""}, {24 * time.Second, refused, ""},
		}},
		{"an outage past the bound ends the role", 10 * time.Second, []poll{
			{0, refused, ""}, {10 * time.Second, refused, ""}, {11 * time.Second, refused, "kafka unreachable for 11s (longer than the outage bound 10s)"},
		}},
		{"any other error ends it at once", 10 * time.Second, []poll{
			{0, refused, ""}, {time.Second, kerr.TopicAuthorizationFailed, "TOPIC_AUTHORIZATION_FAILED"},
		}},
		{"cancellation is no error", 10 * time.Second, []poll{{0, context.Canceled, ""}, {time.Hour, context.Canceled, ""}}},
		{"a negative bound tolerates nothing", -1, []poll{{0, refused, "kafka unreachable for 0s (longer than the outage bound 0s)"}}},
		{"the zero bound is two minutes", 0, []poll{{0, refused, ""}, {2 * time.Minute, refused, ""}, {2*time.Minute + time.Second, refused, "outage bound 2m0s"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := &Outage{Bound: c.bound, What: "the test topic"}
			for i, p := range c.polls {
				err := o.Check(fetchesWith(p.err), t0.Add(p.at))
				switch {
				case p.wantErr == "" && err != nil:
					t.Fatalf("poll %d: %v, want none", i, err)
				case p.wantErr != "" && (err == nil || !strings.Contains(err.Error(), p.wantErr)):
					t.Fatalf("poll %d: %v, want an error with %q", i, err, p.wantErr)
				}
			}
		})
	}
}
