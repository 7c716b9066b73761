package schemas

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
	// applied as they came (without history) and not kept.
	Stale int64
}

type seqKey struct{ app, fn string }

// seqShard holds the whole rows of one shard's latest batch.
type seqShard struct {
	tick      int64
	rows      map[seqKey]*OperationalRow
	spare     map[seqKey]*OperationalRow
	freeRows  []*OperationalRow
	hasTicked bool
}

// Fill completes the operational rows of b in place: on return every row
// holds its whole sequence (Steps 0). Batches of other layers are left as
// they are.
func (s *Sequences) Fill(b *StateBatch) {
	if b.Header.Layer != Operational {
		return
	}
	if s.shards == nil {
		s.shards = map[int]*seqShard{}
	}
	sh := s.shards[b.Header.Shard]
	if sh == nil {
		sh = &seqShard{rows: map[seqKey]*OperationalRow{}, spare: map[seqKey]*OperationalRow{}}
		s.shards[b.Header.Shard] = sh
	}
	k := b.Header.Tick
	d := k - sh.tick
	switch {
	case sh.hasTicked && d <= 0:
		s.Stale++
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
	next := sh.spare
	for i := range b.Operational {
		r := &b.Operational[i]
		key := seqKey{r.App, r.Func}
		if n := r.steps(); n < SeqLen {
			prev := sh.rows[key]
			if prev == nil || int64(SeqLen-n-1)+d >= SeqLen {
				s.Partial++
			}
			if prev != nil {
				fillOlder(r, prev, SeqLen-n, int(min(d, SeqLen)))
			}
			r.Steps = 0
		}
		kept := sh.rows[key]
		if kept != nil {
			delete(sh.rows, key)
		} else if n := len(sh.freeRows); n > 0 {
			kept, sh.freeRows = sh.freeRows[n-1], sh.freeRows[:n-1]
		} else {
			kept = &OperationalRow{}
		}
		*kept = *r
		kept.IdleTimesS = nil // only the sequences are kept
		next[key] = kept
	}
	// Functions missing from this batch left the active set: a function
	// that returns is sent whole again.
	for key, r := range sh.rows {
		sh.freeRows = append(sh.freeRows, r)
		delete(sh.rows, key)
	}
	sh.spare, sh.rows = sh.rows, next
	sh.tick, sh.hasTicked = k, true
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
