package replay

import (
	"container/heap"
	"errors"
	"fmt"
)

// ErrLate is wrapped by Orderer.Push for an invocation that starts more than
// the allowed lateness before the latest start seen.
var ErrLate = errors.New("invocation later than the allowed lateness")

// Orderer puts a nearly ordered stream of invocations into start-time order
// and derives an exact watermark from it.
//
// It holds invocations until the latest start seen is more than the allowed
// lateness past theirs, then releases them in (start, row) order. After each
// release every invocation with start < Watermark() has been released, and an
// invocation that would break that promise is rejected as late by Push. Its
// memory is bounded by the number of invocations within one lateness window.
type Orderer struct {
	lateness  int64
	h         invHeap
	maxStart  int64
	seen      bool
	watermark int64
	late      int64
}

// NewOrderer returns an orderer with the given allowed lateness in
// microseconds; the watermark starts at 0, the start of trace time.
func NewOrderer(latenessUS int64) *Orderer {
	return &Orderer{lateness: latenessUS}
}

// Push adds an invocation, or rejects it with an error wrapping ErrLate when
// it starts before the current watermark.
func (o *Orderer) Push(in Invocation) error {
	s := in.StartUS()
	if s < o.watermark {
		o.late++
		return fmt.Errorf("%w: starts at %s s, before the watermark %s s (allowed lateness %s s)",
			ErrLate, FormatSeconds(s), FormatSeconds(o.watermark), FormatSeconds(o.lateness))
	}
	heap.Push(&o.h, in)
	if !o.seen || s > o.maxStart {
		o.maxStart, o.seen = s, true
	}
	if w := o.maxStart - o.lateness; w > o.watermark {
		o.watermark = w
	}
	return nil
}

// Pop releases the next invocation whose start is before the watermark; ok is
// false when none is ready.
func (o *Orderer) Pop() (in Invocation, ok bool) {
	if len(o.h) == 0 || o.h[0].StartUS() >= o.watermark {
		return Invocation{}, false
	}
	return heap.Pop(&o.h).(Invocation), true
}

// Drain releases the remaining invocations in order at the end of the input
// and moves the watermark past all of them.
func (o *Orderer) Drain() (in Invocation, ok bool) {
	if len(o.h) == 0 {
		return Invocation{}, false
	}
	in = heap.Pop(&o.h).(Invocation)
	if s := in.StartUS() + 1; s > o.watermark {
		o.watermark = s
	}
	return in, true
}

// Watermark returns the current watermark in microseconds: every invocation
// with an earlier start has been released (or rejected as late).
func (o *Orderer) Watermark() int64 { return o.watermark }

// MaxStart returns the latest start pushed so far and whether any was.
func (o *Orderer) MaxStart() (int64, bool) { return o.maxStart, o.seen }

// Late returns the number of invocations rejected as late.
func (o *Orderer) Late() int64 { return o.late }

// Buffered returns the number of invocations held.
func (o *Orderer) Buffered() int { return len(o.h) }

type invHeap []Invocation

func (h invHeap) Len() int { return len(h) }
func (h invHeap) Less(i, j int) bool {
	si, sj := h[i].StartUS(), h[j].StartUS()
	if si != sj {
		return si < sj
	}
	return h[i].Row < h[j].Row
}
func (h invHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *invHeap) Push(x any)   { *h = append(*h, x.(Invocation)) }
func (h *invHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
