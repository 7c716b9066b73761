package cloud

import (
	"cmp"
	"fmt"
	"slices"
)

// Placement is where a function runs: provider, metro and memory tier.
type Placement struct {
	// Provider is the cloud provider.
	Provider Provider
	// Metro is the metro of the provider's region.
	Metro Metro
	// Tier is the memory tier.
	Tier Tier
}

// String returns e.g. "aws/us-east/1024MB".
func (p Placement) String() string {
	return fmt.Sprintf("%s/%s/%dMB", p.Provider, p.Metro, p.Tier.MB())
}

// Valid reports whether every field names a known value.
func (p Placement) Valid() bool {
	return int(p.Provider) < NumProviders && int(p.Metro) < NumMetros && int(p.Tier) < NumTiers
}

// instance is one execution environment of a pool. It is busy in
// [busyFrom, freeAt) and idle (warm) from freeAt until it expires.
type instance struct {
	freeAt   int64
	busyFrom int64
}

// Pool is the set of instances of one function at one Placement. Instances
// start cold; an idle instance stays warm for the provider's free keep-alive
// after its last execution ends, and pre-warmed instances are held for their
// tick. A Pool only moves forward in trace time. Changing region or tier
// means another Pool, which starts empty (cold).
//
// The zero Pool is not usable; create one with NewPool. A Pool is not safe
// for concurrent use; Clone it for counterfactual evaluation.
type Pool struct {
	placement Placement
	now       int64
	inst      []instance // sorted by freeAt, then busyFrom
	pcPaid    []int64    // AWS provisioned-concurrency units: paid until (µs)
}

// NewPool returns an empty (cold) pool for placement pl at trace time
// startUS.
func NewPool(pl Placement, startUS int64) *Pool {
	return &Pool{placement: pl, now: startUS}
}

// Placement returns the pool's placement.
func (p *Pool) Placement() Placement { return p.placement }

// Now returns the pool's trace time in microseconds: the end of the last
// interval evaluated on it.
func (p *Pool) Now() int64 { return p.now }

// Len returns the number of instances (busy or warm) the pool holds.
func (p *Pool) Len() int { return len(p.inst) }

// Idle returns the number of warm instances that are idle at the pool's
// current time.
func (p *Pool) Idle() int { return p.idleAt(p.now) }

// Clone returns an independent copy of the pool. It copies two small slices,
// so cloning every pool of an interval for every alternative is cheap.
func (p *Pool) Clone() *Pool {
	return &Pool{placement: p.placement, now: p.now, inst: slices.Clone(p.inst), pcPaid: slices.Clone(p.pcPaid)}
}

// PoolArena clones pools into chunks of memory it shares between them: a
// caller that snapshots many pools which live about as long as each other
// (the twin keeps every active function's pool at the start of every tick
// until the tick is scored) makes a few allocations where Clone makes three
// a pool. A clone's memory is kept while any clone of its chunk is
// reachable. The zero PoolArena is ready to use; it is not safe for
// concurrent use, though its clones may be read on other goroutines.
type PoolArena struct {
	pools []Pool
	inst  []instance
	paid  []int64
}

// poolArenaChunk is the number of pools, instances and paid units a chunk
// of a PoolArena holds (a pool with more instances gets a chunk of its own
// size).
const poolArenaChunk = 1024

// Clone returns an independent copy of p, as Pool.Clone does, whose memory
// comes from the arena. The copy must not outlive what the arena's user
// means it to: it keeps its chunk alive.
func (a *PoolArena) Clone(p *Pool) *Pool {
	if len(a.pools) == cap(a.pools) {
		a.pools = make([]Pool, 0, poolArenaChunk)
	}
	a.pools = append(a.pools, Pool{placement: p.placement, now: p.now, inst: arenaCopy(&a.inst, p.inst), pcPaid: arenaCopy(&a.paid, p.pcPaid)})
	return &a.pools[len(a.pools)-1]
}

// arenaCopy copies src to the spare room of *chunk (a new chunk when it has
// too little) and returns the copy, capped at its length so that appending
// to it never writes into the chunk.
func arenaCopy[T any](chunk *[]T, src []T) []T {
	if src == nil {
		return nil
	}
	if cap(*chunk)-len(*chunk) < len(src) {
		*chunk = make([]T, 0, max(poolArenaChunk, len(src)))
	}
	n := len(*chunk)
	*chunk = append(*chunk, src...)
	return (*chunk)[n:len(*chunk):len(*chunk)]
}

// CopyTo makes dst an independent copy of the pool, reusing dst's arrays:
// a caller evaluating alternatives one after another from the same pool
// copies it into one scratch pool instead of cloning it for each.
func (p *Pool) CopyTo(dst *Pool) {
	dst.placement, dst.now = p.placement, p.now
	dst.inst = append(dst.inst[:0], p.inst...)
	dst.pcPaid = append(dst.pcPaid[:0], p.pcPaid...)
}

// idleAt returns the number of instances idle at t (freeAt ≤ t): they form
// a prefix of p.inst.
func (p *Pool) idleAt(t int64) int {
	n, _ := slices.BinarySearchFunc(p.inst, t+1, func(in instance, x int64) int { return cmp.Compare(in.freeAt, x) })
	return n
}

// expire removes, oldest first, the idle instances whose keep-alive
// (keepUS after their last execution ended) has run out by t, keeping at
// least hold instances in the pool.
func (p *Pool) expire(t, keepUS int64, hold int) {
	r := 0
	for r < len(p.inst) && p.inst[r].freeAt+keepUS <= t {
		r++
	}
	r = min(r, max(len(p.inst)-hold, 0))
	if r > 0 {
		p.inst = slices.Delete(p.inst, 0, r)
	}
}

// closeAt ends an evaluation at t: the idle instances whose keep-alive
// has run out by then expire, and t becomes the pool's time.
func (p *Pool) closeAt(t, keepUS int64) {
	p.expire(t, keepUS, 0)
	p.now = t
}

// insert adds an instance in sorted position.
func (p *Pool) insert(in instance) { p.insertN(in, 1) }

// insertN adds n copies of an instance in sorted position, with one search
// and one move of the instances after it (the same pool as n inserts).
func (p *Pool) insertN(in instance, n int) {
	if n <= 0 {
		return
	}
	i, _ := slices.BinarySearchFunc(p.inst, in, compareInstances)
	p.inst = slices.Grow(p.inst, n)
	tail := len(p.inst)
	p.inst = p.inst[:tail+n]
	copy(p.inst[i+n:], p.inst[i:tail])
	for k := i; k < i+n; k++ {
		p.inst[k] = in
	}
}

// PoolKey identifies a pool: one function at one placement.
type PoolKey struct {
	// App and Func identify the function.
	App, Func string
	// Placement is where it runs.
	Placement Placement
}

// PoolSet holds the pools of many functions and placements. It is not safe
// for concurrent use.
type PoolSet struct {
	pools map[PoolKey]*Pool
}

// NewPoolSet returns an empty set.
func NewPoolSet() *PoolSet { return &PoolSet{pools: make(map[PoolKey]*Pool)} }

// Get returns the pool for k, creating an empty (cold) one at trace time
// startUS when there is none.
func (s *PoolSet) Get(k PoolKey, startUS int64) *Pool {
	if p, ok := s.pools[k]; ok {
		return p
	}
	p := NewPool(k.Placement, startUS)
	s.pools[k] = p
	return p
}

// Len returns the number of pools.
func (s *PoolSet) Len() int { return len(s.pools) }

// Clone returns a deep, independent copy of the set.
func (s *PoolSet) Clone() *PoolSet {
	c := &PoolSet{pools: make(map[PoolKey]*Pool, len(s.pools))}
	for k, p := range s.pools {
		c.pools[k] = p.Clone()
	}
	return c
}

// Drop removes the pools that hold no instance and whose time is at or
// before nowUS, so a long replay does not accumulate dead pools.
func (s *PoolSet) Drop(nowUS int64) {
	for k, p := range s.pools {
		if len(p.inst) == 0 && p.now <= nowUS && !slices.ContainsFunc(p.pcPaid, func(t int64) bool { return t > nowUS }) {
			delete(s.pools, k)
		}
	}
}
