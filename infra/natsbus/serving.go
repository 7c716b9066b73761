package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/schemas"
)

// ErrNothingServed is wrapped by Rollback when there is no earlier model to
// go back to, and by ServedCheckpoint when the version is not indexed.
var ErrNothingServed = errors.New("no model to serve")

// Served names the model a deployment serves for a layer: a version of a
// run's checkpoint index (strata models lists them).
type Served struct {
	Run     string `json:"run"`
	Version string `json:"version"`
}

// servedRecord is the value of a deployment's served key: the model in
// force and the ones promoted before it, oldest first.
type servedRecord struct {
	Served
	History []Served `json:"history,omitempty"`
}

// deploymentName is what a deployment name may hold: it is part of a
// key-value key.
var deploymentName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// servedKey is the key, in the learner's key-value bucket, of the model a
// deployment serves for layer l.
func servedKey(deployment string, l schemas.Layer) string {
	return "served." + deployment + "." + string(l)
}

func checkDeployment(deployment string, l schemas.Layer) error {
	if !deploymentName.MatchString(deployment) {
		return fmt.Errorf("deployment %q: want 1 to 64 letters, digits, '-' or '_'", deployment)
	}
	if _, err := schemas.ParseLayer(string(l)); err != nil {
		return err
	}
	return nil
}

// Promote makes s the model deployment serves for layer l: the workers
// that follow the deployment (WatchServed) switch to it between two
// ticks. The version must be in the run's checkpoint index. The model it
// replaces is kept for Rollback. It returns the key's new revision.
func (m *ModelStore) Promote(ctx context.Context, deployment string, l schemas.Layer, s Served) (uint64, error) {
	if err := checkDeployment(deployment, l); err != nil {
		return 0, fmt.Errorf("promoting %s %s/%s: %w", l, s.Run, s.Version, err)
	}
	if _, err := m.entry(ctx, s, l); err != nil {
		return 0, fmt.Errorf("promoting %s %s/%s for %s: %w", l, s.Run, s.Version, deployment, err)
	}
	return m.updateServed(ctx, deployment, l, func(rec *servedRecord, ok bool) error {
		if ok {
			rec.History = append(rec.History, rec.Served)
		}
		rec.Served = s
		return nil
	})
}

// Rollback makes the model deployment served for layer l before the one in
// force the one it serves again, and returns it; it wraps
// ErrNothingServed when there is none.
func (m *ModelStore) Rollback(ctx context.Context, deployment string, l schemas.Layer) (Served, error) {
	if err := checkDeployment(deployment, l); err != nil {
		return Served{}, fmt.Errorf("rolling back %s: %w", l, err)
	}
	var back Served
	_, err := m.updateServed(ctx, deployment, l, func(rec *servedRecord, ok bool) error {
		if !ok || len(rec.History) == 0 {
			return fmt.Errorf("%w: %s has served only one %s model, or none", ErrNothingServed, deployment, l)
		}
		back = rec.History[len(rec.History)-1]
		rec.Served, rec.History = back, rec.History[:len(rec.History)-1]
		return nil
	})
	if err != nil {
		return Served{}, fmt.Errorf("rolling back %s for %s: %w", l, deployment, err)
	}
	return back, nil
}

// updateServed changes the deployment's record with change, a
// compare-and-set on the key's revision so that two operators at once do
// not lose a promotion.
func (m *ModelStore) updateServed(ctx context.Context, deployment string, l schemas.Layer, change func(rec *servedRecord, ok bool) error) (uint64, error) {
	key := servedKey(deployment, l)
	for {
		var rec servedRecord
		var rev uint64
		e, err := m.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return 0, fmt.Errorf("reading %s: %w", key, err)
		default:
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return 0, fmt.Errorf("decoding %s: %w", key, err)
			}
			rev = e.Revision()
		}
		if err := change(&rec, rev != 0); err != nil {
			return 0, err
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return 0, fmt.Errorf("encoding %s: %w", key, err)
		}
		var n uint64
		if rev == 0 {
			n, err = m.kv.Create(ctx, key, v)
		} else {
			n, err = m.kv.Update(ctx, key, v, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
			continue // someone else changed it meanwhile: again, on theirs
		}
		if err != nil {
			return 0, fmt.Errorf("writing %s: %w", key, err)
		}
		return n, nil
	}
}

// isWrongSequence reports a compare-and-set that lost to another writer.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ServedNow returns the model deployment serves for layer l; ok is false
// when none was promoted.
func (m *ModelStore) ServedNow(ctx context.Context, deployment string, l schemas.Layer) (s Served, ok bool, err error) {
	if err := checkDeployment(deployment, l); err != nil {
		return s, false, err
	}
	e, err := m.kv.Get(ctx, servedKey(deployment, l))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("reading %s: %w", servedKey(deployment, l), err)
	}
	var rec servedRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return s, false, fmt.Errorf("decoding %s: %w", servedKey(deployment, l), err)
	}
	return rec.Served, true, nil
}

// WatchServed calls fn with the model deployment serves for layer l — the
// one in force when it starts, if any, then each one promoted or rolled
// back to — until ctx is done (it then returns nil) or fn fails. fn runs
// on WatchServed's goroutine, one call at a time.
func (m *ModelStore) WatchServed(ctx context.Context, deployment string, l schemas.Layer, fn func(Served) error) error {
	if err := checkDeployment(deployment, l); err != nil {
		return err
	}
	key := servedKey(deployment, l)
	w, err := m.kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watching %s: %w", key, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watching %s: the watch ended", key)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue // the initial values are delivered, or a delete
			}
			var rec servedRecord
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return fmt.Errorf("decoding %s: %w", key, err)
			}
			if err := fn(rec.Served); err != nil {
				return err
			}
		}
	}
}

// entry returns the index entry of s.
func (m *ModelStore) entry(ctx context.Context, s Served, l schemas.Layer) (IndexEntry, error) {
	idx, err := m.index(ctx, s.Run, l)
	if err != nil {
		return IndexEntry{}, err
	}
	for _, e := range idx {
		if e.Version == s.Version {
			return e, nil
		}
	}
	return IndexEntry{}, fmt.Errorf("%w: run %s has no %s checkpoint %q (strata models --nats … --run %s lists them)", ErrNothingServed, s.Run, l, s.Version, s.Run)
}

// ServedCheckpoint returns the checkpoint s names.
func (m *ModelStore) ServedCheckpoint(ctx context.Context, s Served, l schemas.Layer) (schemas.Checkpoint, error) {
	e, err := m.entry(ctx, s, l)
	if err != nil {
		return schemas.Checkpoint{}, err
	}
	data, err := m.object(ctx, e.Object)
	if err != nil {
		return schemas.Checkpoint{}, err
	}
	return schemas.Checkpoint{Layer: l, Version: e.Version, InForce: e.InForce, Data: data}, nil
}
