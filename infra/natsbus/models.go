package natsbus

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/strata-rl/strata/schemas"
)

// ModelStore keeps the learner's checkpoints in the JetStream object store
// schemas.BucketModels (object "<run>/<layer>/<version>") and, in the
// key-value bucket schemas.BucketLearner, each run and layer's checkpoint
// index ("<run>.<layer>.index": JSON list of version, in-force interval and
// object name, oldest first) and progress ("<run>.<layer>.progress": the
// last interval processed, decimal). It implements agents/learner's Store
// and Models without importing that package (which links gorgonia), so the
// twin, the decisions view and the workers that use this package stay free
// of it. The buckets must exist (EnsureStreams).
type ModelStore struct {
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore

	mu    sync.Mutex
	cache map[string][]byte // object name → checkpoint, read once
}

// IndexEntry is one entry of a run and layer's checkpoint index.
type IndexEntry struct {
	Version string `json:"version"`
	InForce int64  `json:"in_force"`
	Object  string `json:"object"`
	Bytes   int    `json:"bytes"`
}

// OpenModelStore opens the model buckets of js under names.
func OpenModelStore(ctx context.Context, js jetstream.JetStream, names schemas.Names) (*ModelStore, error) {
	kv, err := js.KeyValue(ctx, names.Bucket(schemas.BucketLearner))
	if err != nil {
		return nil, fmt.Errorf("opening key-value bucket %s: %w", names.Bucket(schemas.BucketLearner), err)
	}
	obj, err := js.ObjectStore(ctx, names.Bucket(schemas.BucketModels))
	if err != nil {
		return nil, fmt.Errorf("opening object store %s: %w", names.Bucket(schemas.BucketModels), err)
	}
	return &ModelStore{kv: kv, obj: obj, cache: map[string][]byte{}}, nil
}

func indexKey(run string, l schemas.Layer) string    { return run + "." + string(l) + ".index" }
func progressKey(run string, l schemas.Layer) string { return run + "." + string(l) + ".progress" }

// PutCheckpoint stores c and appends it to the run's index of its layer.
// The learner is the index's only writer. Publishing again a checkpoint
// whose version and in-force interval the index already holds — a learner
// restarted from its persisted state re-doing the intervals after it —
// rewrites the object and leaves the index as it is.
func (m *ModelStore) PutCheckpoint(ctx context.Context, runID string, c schemas.Checkpoint) error {
	name := runID + "/" + string(c.Layer) + "/" + c.Version
	if _, err := m.obj.PutBytes(ctx, name, c.Data); err != nil {
		return fmt.Errorf("storing checkpoint %s: %w", name, err)
	}
	m.mu.Lock()
	delete(m.cache, name)
	m.mu.Unlock()
	idx, err := m.index(ctx, runID, c.Layer)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(idx, func(e IndexEntry) bool { return e.Version == c.Version && e.InForce == c.InForce }) {
		return nil
	}
	idx = append(idx, IndexEntry{Version: c.Version, InForce: c.InForce, Object: name, Bytes: len(c.Data)})
	v, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encoding the checkpoint index of %s: %w", name, err)
	}
	if _, err := m.kv.Put(ctx, indexKey(runID, c.Layer), v); err != nil {
		return fmt.Errorf("updating the checkpoint index for %s: %w", name, err)
	}
	return nil
}

// PutProgress records the last interval the learner processed.
func (m *ModelStore) PutProgress(ctx context.Context, runID string, l schemas.Layer, i int64) error {
	if _, err := m.kv.Put(ctx, progressKey(runID, l), []byte(strconv.FormatInt(i, 10))); err != nil {
		return fmt.Errorf("recording %s learner progress of %s: %w", l, runID, err)
	}
	return nil
}

// Index returns the run's checkpoint index of layer l, oldest first (empty
// when there is none).
func (m *ModelStore) Index(ctx context.Context, runID string, l schemas.Layer) ([]IndexEntry, error) {
	return m.index(ctx, runID, l)
}

func (m *ModelStore) index(ctx context.Context, runID string, l schemas.Layer) ([]IndexEntry, error) {
	e, err := m.kv.Get(ctx, indexKey(runID, l))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the %s checkpoint index of %s: %w", l, runID, err)
	}
	var idx []IndexEntry
	if err := json.Unmarshal(e.Value(), &idx); err != nil {
		return nil, fmt.Errorf("decoding the %s checkpoint index of %s: %w", l, runID, err)
	}
	return idx, nil
}

// WaitProgress blocks until the run's progress of layer l reaches i.
func (m *ModelStore) WaitProgress(ctx context.Context, runID string, l schemas.Layer, i int64) error {
	key := progressKey(runID, l)
	if e, err := m.kv.Get(ctx, key); err == nil {
		if p, _ := strconv.ParseInt(string(e.Value()), 10, 64); p >= i {
			return nil
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	w, err := m.kv.Watch(ctx, key)
	if err != nil {
		return fmt.Errorf("watching %s: %w", key, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watching %s: the watch ended", key)
			}
			if e == nil {
				continue // the initial values are all delivered
			}
			p, err := strconv.ParseInt(string(e.Value()), 10, 64)
			if err != nil {
				return fmt.Errorf("reading %s: %q is not an interval: %w", key, e.Value(), err)
			}
			if p >= i {
				return nil
			}
		}
	}
}

// InForce returns the newest checkpoint of the run's layer in force at
// interval i (i < 0: the newest of all).
func (m *ModelStore) InForce(ctx context.Context, runID string, l schemas.Layer, i int64) (schemas.Checkpoint, bool, error) {
	idx, err := m.index(ctx, runID, l)
	if err != nil {
		return schemas.Checkpoint{}, false, err
	}
	for k := len(idx) - 1; k >= 0; k-- {
		e := idx[k]
		if i >= 0 && e.InForce > i {
			continue
		}
		data, err := m.object(ctx, e.Object)
		if err != nil {
			return schemas.Checkpoint{}, false, err
		}
		return schemas.Checkpoint{Layer: l, Version: e.Version, InForce: e.InForce, Data: data}, true, nil
	}
	return schemas.Checkpoint{}, false, nil
}

func (m *ModelStore) object(ctx context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	data, ok := m.cache[name]
	m.mu.Unlock()
	if ok {
		return data, nil
	}
	data, err := m.obj.GetBytes(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint %s: %w", name, err)
	}
	m.mu.Lock()
	m.cache = map[string][]byte{name: data} // the latest only: versions move forward
	m.mu.Unlock()
	return data, nil
}

// RunLayer names a run and layer that have a checkpoint index.
type RunLayer struct {
	Run   string
	Layer schemas.Layer
}

// Indexed lists the runs and layers that have a checkpoint index, sorted
// by run, then in the layers' order.
func (m *ModelStore) Indexed(ctx context.Context) ([]RunLayer, error) {
	kl, err := m.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing checkpoint indexes: %w", err)
	}
	defer func() { _ = kl.Stop() }()
	var out []RunLayer
	for k := range kl.Keys() {
		rest, ok := strings.CutSuffix(k, ".index")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		if i < 0 {
			continue
		}
		out = append(out, RunLayer{Run: rest[:i], Layer: schemas.Layer(rest[i+1:])})
	}
	slices.SortFunc(out, func(a, b RunLayer) int {
		return cmp.Or(cmp.Compare(a.Run, b.Run), cmp.Compare(slices.Index(schemas.Layers, a.Layer), slices.Index(schemas.Layers, b.Layer)))
	})
	return out, nil
}

// Object returns the stored checkpoint named name (an index entry's
// Object).
func (m *ModelStore) Object(ctx context.Context, name string) ([]byte, error) {
	return m.object(ctx, name)
}

// learnerStateObject is the object name of run runID's persisted learner
// state.
func learnerStateObject(runID string) string { return runID + "/learner.state" }

// PutLearnerState stores data as run runID's persisted learner state
// (object "<run>/learner.state" of the models bucket), replacing the one
// before. A reader sees the old state or the new one, never a mix: the
// object store publishes an object's description after all its chunks.
func (m *ModelStore) PutLearnerState(ctx context.Context, runID string, data []byte) error {
	name := learnerStateObject(runID)
	if _, err := m.obj.PutBytes(ctx, name, data); err != nil {
		return fmt.Errorf("storing learner state %s: %w", name, err)
	}
	return nil
}

// LearnerState returns run runID's persisted learner state; ok is false
// when there is none.
func (m *ModelStore) LearnerState(ctx context.Context, runID string) (data []byte, ok bool, err error) {
	name := learnerStateObject(runID)
	data, err = m.obj.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading learner state %s: %w", name, err)
	}
	return data, true, nil
}

// DeleteLearnerState deletes run runID's persisted learner state, if any.
func (m *ModelStore) DeleteLearnerState(ctx context.Context, runID string) error {
	name := learnerStateObject(runID)
	if err := m.obj.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("deleting learner state %s: %w", name, err)
	}
	return nil
}
