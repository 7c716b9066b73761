package schemas

// Watermarks is one partition's watermark when several writers write
// watermarks into it — `strata ingest` instances behind a load balancer,
// each writing its own, tagged with HeaderWriter. The partition's watermark
// is the minimum over the live writers' and never moves back (alignment, as
// stream processors align the watermarks of their sources).
//
// A writer is live from its first watermark until it falls more than
// IdleUS behind the most advanced writer of the partition: a crashed or
// stopped instance then leaves the set, and the others' watermarks close
// the ticks it held. Idleness is measured in event time, not in the
// reader's wall clock, so that a reader reading the partition again (after
// a restart, or in a replay at another speed) computes the same watermarks:
// for writers whose watermarks follow the wall clock (ingest's, now −
// lateness) the two agree. A writer that comes back, under its old id or a
// new one, rejoins with its next watermark; below the partition's, it holds
// nothing back (the watermark does not move back) until it catches up, and
// its records below the watermark are late. With IdleUS 0 no writer ever
// leaves.
//
// The zero value, given one writer, is the plain monotonic watermark:
// the maximum seen.
type Watermarks struct {
	// IdleUS is how far, in microseconds of event time, a writer may fall
	// behind the most advanced one before it leaves the set (0: never).
	IdleUS int64
	// Writers holds each live writer's latest watermark ("" for a record
	// without HeaderWriter). Exported for the readers' checkpoints.
	Writers map[string]int64
	// WM is the partition's watermark; Started reports whether any
	// watermark was seen.
	WM      int64
	Started bool
}

// Advance applies writer's watermark us and returns the partition's.
func (w *Watermarks) Advance(writer string, us int64) int64 {
	if w.Writers == nil {
		w.Writers = map[string]int64{}
	}
	if prev, ok := w.Writers[writer]; !ok || us > prev {
		w.Writers[writer] = us
	}
	lead := us
	for _, v := range w.Writers {
		lead = max(lead, v)
	}
	low, found := int64(0), false
	for id, v := range w.Writers {
		if w.IdleUS > 0 && lead-v > w.IdleUS {
			delete(w.Writers, id) // idle: it leaves the set
			continue
		}
		if !found || v < low {
			low, found = v, true
		}
	}
	if !w.Started || low > w.WM {
		w.WM, w.Started = low, true
	}
	return w.WM
}
