// Package dedup keeps the invocation ids seen in the ticks still open, so
// that a consumer of at-least-once telemetry (a retried ingest request
// re-sends the same ids) counts each invocation once. Both the feature
// consumer and the shadow twin use it.
package dedup

import (
	"maps"
	"slices"
)

// Set holds invocation ids by the tick they were added to. The zero value
// is not usable; call New.
type Set struct {
	ids    map[string]int64   // id → tick it was added to
	byTick map[int64][]string // tick → ids, in the order added
}

// New returns an empty set.
func New() *Set {
	return &Set{ids: map[string]int64{}, byTick: map[int64][]string{}}
}

// Add records id in tick and reports whether it is new; when it is not,
// tick0 is the tick it was added to first. An empty id is always new and
// never recorded.
func (s *Set) Add(id string, tick int64) (tick0 int64, added bool) {
	if id == "" {
		return tick, true
	}
	if t, ok := s.ids[id]; ok {
		return t, false
	}
	s.ids[id] = tick
	s.byTick[tick] = append(s.byTick[tick], id)
	return tick, true
}

// Forget drops the ids of tick k (once it is closed: a later copy is late).
func (s *Set) Forget(k int64) {
	for _, id := range s.byTick[k] {
		if s.ids[id] == k {
			delete(s.ids, id)
		}
	}
	delete(s.byTick, k)
}

// ForgetBefore drops the ids of every tick before k.
func (s *Set) ForgetBefore(k int64) {
	for t := range s.byTick {
		if t < k {
			s.Forget(t)
		}
	}
}

// Ticks returns the ticks that hold ids, in order.
func (s *Set) Ticks() []int64 { return slices.Sorted(maps.Keys(s.byTick)) }

// IDs returns the ids of tick k in the order added; the slice is the set's.
func (s *Set) IDs(k int64) []string { return s.byTick[k] }

// Restore adds the ids of tick k, as IDs returned them (a snapshot).
func (s *Set) Restore(k int64, ids []string) {
	for _, id := range ids {
		s.Add(id, k)
	}
}
