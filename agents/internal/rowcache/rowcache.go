package rowcache

// Table maps keys to values that live as long as the table, and finds a
// batch row's value by the row's position in its shard's previous batch
// before it hashes the key. A batch of shard's rows is read with Batch,
// then Row for each row in turn. The zero Table is ready to use; it is
// not safe for concurrent use.
type Table[K comparable, V any] struct {
	m       map[K]*V
	cursors map[int]*cursor[K, *V]
	cur     *cursor[K, *V]
}

// Batch starts a batch of shard's rows.
func (t *Table[K, V]) Batch(shard int) {
	if t.m == nil {
		t.m, t.cursors = map[K]*V{}, map[int]*cursor[K, *V]{}
	}
	t.cur = t.cursors[shard]
	if t.cur == nil {
		t.cur = &cursor[K, *V]{}
		t.cursors[shard] = t.cur
	}
	t.cur.Next()
}

// Row returns the value of k, the key of the batch's next row, made with
// newV when k has none yet (created reports that). Every row of the batch
// is looked up once, in order.
func (t *Table[K, V]) Row(k K, newV func() *V) (v *V, created bool) {
	v, ok := t.cur.Get(k)
	if !ok {
		if v = t.m[k]; v == nil {
			v, created = newV(), true
			t.m[k] = v
		}
	}
	t.cur.Put(k, v)
	return v, created
}

// Lookup returns k's value, nil when k has none, outside any batch.
func (t *Table[K, V]) Lookup(k K) *V { return t.m[k] }

// cursor caches, for one shard's stream of batches, the values of the
// previous batch's rows by position. A batch is read with Next, then Get
// and Put for each row in turn; Put records the row's value for the next
// batch. The zero cursor is ready to use.
type cursor[K comparable, V any] struct {
	prevK, curK []K
	prevV, curV []V
	j           int
}

// Next starts a batch: the rows put since the last Next become the
// previous batch's.
func (c *cursor[K, V]) Next() {
	c.prevK, c.curK = c.curK, c.prevK[:0]
	c.prevV, c.curV = c.curV, c.prevV[:0]
	clear(c.curV[:cap(c.curV)]) // the values a slot held two batches ago
	c.j = 0
}

// lookahead is how many of the previous batch's rows Get skips to find a
// key: functions that left the batch since.
const lookahead = 2

// Get returns the value put for k in the previous batch when k is the key
// of the last hit, at the cursor or a few rows after it (rows that left are
// skipped), and moves the cursor past it; ok is false otherwise, and the
// cursor stays.
func (c *cursor[K, V]) Get(k K) (v V, ok bool) {
	if c.j > 0 && c.prevK[c.j-1] == k {
		return c.prevV[c.j-1], true // rows sharing a key (an app's functions)
	}
	for d := range lookahead + 1 {
		i := c.j + d
		if i >= len(c.prevK) {
			break
		}
		if c.prevK[i] == k {
			c.j = i + 1
			return c.prevV[i], true
		}
	}
	return v, false
}

// Put records v as k's value for the next batch, in row order.
func (c *cursor[K, V]) Put(k K, v V) {
	c.curK = append(c.curK, k)
	c.curV = append(c.curV, v)
}
