package schemas

import (
	"slices"
	"strings"
)

// Sequences rebuilds whole operational sequences for a reader of state
// batches whose rows carry only their newest steps (OperationalRow.Steps,
// state schema version 3). The feature service sends a function's whole
// sequence when the function enters its shard's batches (and when what it
// knows of the function's telemetry changes) and its newest step after
// that; Fill completes every row from the same function's row in the
// shard's previous batch. A reader applies every batch of a shard in tick
// order, as it reads them from the stream's start; after a gap (a batch it
// never saw) the steps it cannot know stay zero and are counted.
//
// Since version 6 a batch may also leave out the functions whose newest
// step is idle (StateBatch.OmitsIdle) and mark departures with Left rows:
// Fill puts every left-out function of the shard's previous batch back,
// its sequence moved on by one idle step, and removes the Left rows, so
// that on return the batch holds every active function in (app, func)
// order, as in version 5. After a gap, or in the first batch a reader
// sees, a left-out function it does not know stays out, and one that left
// in a batch it missed stays in, until the next batch that omits nothing
// (every OmitFullEvery ticks).
//
// Sequences is not safe for concurrent use.
type Sequences struct {
	shards map[int]*seqShard
	// Partial counts the rows completed without all their history: a
	// function with fewer than SeqLen steps and no sequence held, or
	// steps older than a gap.
	Partial int64
	// Gaps counts the batches whose tick was not the next of their shard.
	Gaps int64
	// Stale counts the batches older than their shard's newest one,
	// applied as they came (without history or the rows they left out)
	// and not kept.
	Stale int64
}

// seqShard holds the whole rows of one shard's latest batch, in (app,
// func) order.
type seqShard struct {
	tick      int64
	prev      []OperationalRow
	hasTicked bool
	// spare is the array the next Fill writes its rows into: the one of
	// the rows handed out before the last. A whole batch of ~1 KB rows
	// allocated, and copied to prev, each tick was the biggest cost of an
	// operational agent.
	spare []OperationalRow
}

// cmpRow orders rows by (app, func).
func cmpRow(a, b *OperationalRow) int {
	if c := strings.Compare(a.App, b.App); c != 0 {
		return c
	}
	return strings.Compare(a.Func, b.Func)
}

// rowsSorted reports whether rows are in (app, func) order. It compares
// through pointers: slices.IsSortedFunc would pass each ~1 KB row by value,
// twice per comparison, on every batch a reader fills.
func rowsSorted(rows []OperationalRow) bool {
	for i := 1; i < len(rows); i++ {
		if cmpRow(&rows[i-1], &rows[i]) > 0 {
			return false
		}
	}
	return true
}

// Fill completes the operational rows of b: on return every row holds its
// whole sequence (Steps 0), the rows b left out are back and its Left rows
// are gone, in (app, func) order. Batches of other layers are left as they
// are. The filled rows are s's own: the next Fill of the same shard reads
// them and the one after overwrites them, so a reader must not change them
// and copies what it keeps past the next Fill (the readers of strata read
// what they need from a batch before the next one).
func (s *Sequences) Fill(b *StateBatch) {
	if b.Header.Layer != Operational {
		return
	}
	if s.shards == nil {
		s.shards = map[int]*seqShard{}
	}
	sh := s.shards[b.Header.Shard]
	if sh == nil {
		sh = &seqShard{}
		s.shards[b.Header.Shard] = sh
	}
	k := b.Header.Tick
	d := k - sh.tick
	switch {
	case sh.hasTicked && d <= 0:
		s.Stale++
		b.Operational = slices.DeleteFunc(b.Operational, func(r OperationalRow) bool { return r.Left })
		for i := range b.Operational {
			if b.Operational[i].steps() < SeqLen {
				s.Partial++
				b.Operational[i].Steps = 0
			}
		}
		return
	case sh.hasTicked && d > 1:
		s.Gaps++
	}
	in := b.Operational
	if !rowsSorted(in) {
		// The feature service sends rows in order; another writer may not.
		in = slices.Clone(in)
		slices.SortStableFunc(in, func(a, c OperationalRow) int { return cmpRow(&a, &c) })
	}
	// One merge of the batch's rows with the previous batch's, both in
	// order: a function in both is completed from its previous row; one
	// only in the batch entered; one only in the previous batch was left
	// out (idle) in a batch that omits idle rows, and left the active set
	// otherwise.
	omits := b.OmitsIdle && sh.hasTicked
	shift := int(min(d, SeqLen))
	prev := sh.prev
	out := slices.Grow(sh.spare[:0], max(len(in), len(prev)))
	i, j := 0, 0
	for i < len(in) || j < len(prev) {
		c := -1
		switch {
		case i == len(in):
			c = 1
		case j < len(prev):
			c = cmpRow(&in[i], &prev[j])
		}
		var p *OperationalRow
		if c >= 0 {
			p = &prev[j]
			j++
		}
		if c > 0 {
			if omits {
				if d > 1 {
					s.Partial++
				}
				// Built in place: a ~1 KB row returned by value and
				// copied into out was a quarter of an agent's Fill.
				out = append(out, OperationalRow{})
				setIdleRow(&out[len(out)-1], p, b.HourSin, shift)
			}
			continue
		}
		r := &in[i]
		i++
		if r.Left {
			continue
		}
		out = append(out, *r)
		r = &out[len(out)-1]
		if p != nil {
			// The same names as the previous row's, whose strings the
			// reader's maps hold as keys: equal by pointer, a lookup
			// with them skips comparing 128 bytes (the names decode into
			// new strings in every batch).
			r.App, r.Func = p.App, p.Func
		}
		if n := r.steps(); n < SeqLen {
			if p == nil || int64(SeqLen-n-1)+d >= SeqLen {
				s.Partial++
			}
			if p != nil {
				fillOlder(r, p, SeqLen-n, shift)
			}
			r.Steps = 0
		}
	}
	// The filled rows are the next batch's previous rows (read only), and
	// the old previous rows' array is the next Fill's to write.
	b.Operational = out
	sh.prev, sh.spare = out, prev[:0]
	sh.tick, sh.hasTicked = k, true
}

// setIdleRow makes r, a zero row, the row of a function left out of a
// batch: prev, its whole row d ticks earlier, moved on to a newest step
// that is idle — no invocation, nothing in flight, utilisations 0 where
// prev's newest step had them (null where not), the batch's hour_sin —
// with the same latest start. The feature service leaves a row out only
// when it equals this.
func setIdleRow(r, prev *OperationalRow, hourSin float64, d int) {
	r.App, r.Func, r.LastStartUS = prev.App, prev.Func, prev.LastStartUS
	fillOlder(r, prev, SeqLen-1, d)
	last := SeqLen - 1
	r.HourSin[last] = hourSin
	r.MemoryUtil[last] = Value{Valid: prev.MemoryUtil[last].Valid}
	r.CPUUtil[last] = Value{Valid: prev.CPUUtil[last].Valid}
	r.QueueDepth[last] = Value{Valid: prev.QueueDepth[last].Valid}
}

// IdleNewest reports whether a newest step with these values — request
// rate, mean and peak concurrency, number of idle times, memory, CPU and
// queue values — is the idle step Fill rebuilds for a function whose last
// row's NewestValid is valid. The feature service leaves a function's row
// out when its newest step passes this, the row would carry that step only
// and its latest start is the last row's.
func IdleNewest(rate, concMean, concPeak float64, idleTimes int, mem, cpu, que Value, valid [3]bool) bool {
	return rate == 0 && concMean == 0 && concPeak == 0 && idleTimes == 0 &&
		mem == Value{Valid: valid[0]} && cpu == Value{Valid: valid[1]} && que == Value{Valid: valid[2]}
}

// NewestValid returns the validity of the memory, CPU and queue values of
// r's newest step, what IdleNewest compares.
func NewestValid(r *OperationalRow) [3]bool {
	last := SeqLen - 1
	return [3]bool{r.MemoryUtil[last].Valid, r.CPUUtil[last].Valid, r.QueueDepth[last].Valid}
}

// fillOlder writes the older steps [0, older) of r from prev, the same
// function's whole row d ticks earlier: step j of r is step j+d of prev.
func fillOlder(r, prev *OperationalRow, older, d int) {
	for j := range older {
		src := j + d
		if src >= SeqLen {
			break // older than prev knows: left zero
		}
		r.RequestRate[j] = prev.RequestRate[src]
		r.MemoryUtil[j] = prev.MemoryUtil[src]
		r.CPUUtil[j] = prev.CPUUtil[src]
		r.QueueDepth[j] = prev.QueueDepth[src]
		r.HourSin[j] = prev.HourSin[src]
		r.ConcurrencyMean[j] = prev.ConcurrencyMean[src]
		r.ConcurrencyPeak[j] = prev.ConcurrencyPeak[src]
	}
}
