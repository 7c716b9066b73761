package cloud

import (
	"fmt"
	"slices"
)

// SharedReplay replays one function's ticks under several placements whose
// instance dynamics agree — the same provider and tier in other metros have
// the same keep-alive, cold start and execution times — from pools holding
// the same instances (none, most often), so that every request is served
// alike under each and the placements differ only in prices, carbon and
// latency. The twin scores a function's hour under all 24 metro × tier
// placements of its provider, most of them new to the function or long
// cold; a SharedReplay keeps one set of instances for a group of them and
// each placement's own AWS provisioned-concurrency units. A tick without
// requests — most ticks: a function held warm — is run once for the
// instances and priced once per placement; a tick with requests is
// evaluated per placement from the shared instances.
//
// Each placement's figures are those of replaying it alone on its own
// pool with EvaluateInto, bit for bit (TestSharedReplayEqualsSeparate).
// A SharedReplay is not safe for concurrent use.
type SharedReplay struct {
	evs []Evaluator
	// members holds each placement's time and AWS units; its instances
	// are the shared ones, in inst.
	members []Pool
	inst    Pool
	scratch Pool
	res     Result
	aggs    []Aggregate
	prewarm [1]int
}

// NewSharedReplay returns a SharedReplay of function fn under placements
// pls (at least one), each from its pool in starts — which it copies — or,
// where starts has nil, from an empty pool at startUS. It refuses
// placements whose instance dynamics differ from the first one's, and
// starting pools of another placement or holding other instances than the
// first one's.
func (m *Model) NewSharedReplay(fn *Function, pls []Placement, starts []*Pool, startUS int64) (*SharedReplay, error) {
	if len(pls) == 0 || len(starts) != len(pls) {
		return nil, fmt.Errorf("sharing a replay: %w: %d placements, %d starting pools", ErrInvalidInput, len(pls), len(starts))
	}
	s := &SharedReplay{evs: make([]Evaluator, len(pls)), members: make([]Pool, len(pls)), aggs: make([]Aggregate, len(pls))}
	var inst []instance
	if starts[0] != nil {
		inst = starts[0].inst
	}
	now := startUS
	for i, pl := range pls {
		ev, err := m.Evaluator(fn, pl)
		if err != nil {
			return nil, err
		}
		if e0 := &s.evs[0]; i > 0 && (ev.keepUS != e0.keepUS || ev.coldUS != e0.coldUS || ev.execFactor != e0.execFactor || ev.tickUS != e0.tickUS) {
			return nil, fmt.Errorf("sharing a replay of %s/%s: %w: %v serves requests otherwise than %v", fn.App, fn.Func, ErrInvalidInput, pl, e0.pl)
		}
		s.evs[i] = ev
		s.members[i] = Pool{placement: pl, now: startUS}
		if st := starts[i]; st != nil {
			if st.placement != pl || !slices.Equal(st.inst, inst) {
				return nil, fmt.Errorf("sharing a replay of %s/%s: %w: the pool of %v is not one of its own holding the first pool's instances", fn.App, fn.Func, ErrInvalidInput, pl)
			}
			s.members[i] = Pool{placement: pl, now: st.now, pcPaid: slices.Clone(st.pcPaid)}
			now = max(now, st.now)
		}
	}
	s.inst = Pool{placement: pls[0], now: now, inst: slices.Clone(inst)}
	return s, nil
}

// IdleTick runs the whole tick from startUS without requests, with hold
// instances pre-warmed, and returns each placement's aggregate of it, in
// the order of the placements; the slice is reused by the next call.
func (s *SharedReplay) IdleTick(startUS int64, hold int) ([]Aggregate, error) {
	ev0 := &s.evs[0]
	s.prewarm[0] = hold
	ks, ke := startUS, startUS+ev0.tickUS
	if err := ev0.checkInterval(&s.inst, Interval{StartUS: ks, EndUS: ke}, s.prewarm[:], nil); err != nil {
		return nil, fmt.Errorf("evaluating %s/%s: %w", ev0.fn.App, ev0.fn.Func, err)
	}
	// The instances, once: idleTick's steps.
	busy := busyIn(s.inst.inst, ks, ke)
	h := ev0.holdWarm(&s.inst, ks, 0, hold)
	s.inst.closeAt(ke, ev0.keepUS)
	// The prices, per placement.
	for i := range s.evs {
		ev, p := &s.evs[i], &s.members[i]
		cost := 0.0
		if h > 0 {
			cost = ev.prewarmCost(p, h, ks, ke)
		}
		p.now = ke
		s.aggs[i] = idleAggregate(cost, ev.idleCarbon(h, busy, ks))
	}
	return s.aggs, nil
}

// Tick evaluates the whole tick from startUS with requests reqs and hold
// instances pre-warmed under each placement in turn, from the shared
// instances, and calls f with the placement's index and Result (valid
// during the call only).
func (s *SharedReplay) Tick(startUS int64, hold int, reqs []Request, f func(i int, res *Result)) error {
	iv := Interval{StartUS: startUS, EndUS: startUS + s.evs[0].tickUS}
	s.prewarm[0] = hold
	sc := &s.scratch
	for i := range s.evs {
		p := &s.members[i]
		sc.placement, sc.now = p.placement, s.inst.now
		sc.inst = append(sc.inst[:0], s.inst.inst...)
		sc.pcPaid = append(sc.pcPaid[:0], p.pcPaid...)
		if err := s.evs[i].EvaluateInto(&s.res, sc, iv, s.prewarm[:], reqs); err != nil {
			return err
		}
		p.pcPaid = append(p.pcPaid[:0], sc.pcPaid...)
		p.now = sc.now
		f(i, &s.res)
	}
	// Every placement left the same instances.
	s.inst.inst = append(s.inst.inst[:0], sc.inst...)
	s.inst.now = sc.now
	return nil
}
