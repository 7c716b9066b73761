package rowcache

// Cursor caches, for one stream of batches, the values of the previous
// batch's rows by position. A batch is read with Next, then Get and Put
// for each row in turn; Put records the row's value for the next batch.
// The zero Cursor is ready to use; it is not safe for concurrent use.
type Cursor[K comparable, V any] struct {
	prevK, curK []K
	prevV, curV []V
	j           int
}

// Next starts a batch: the rows put since the last Next become the
// previous batch's.
func (c *Cursor[K, V]) Next() {
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
func (c *Cursor[K, V]) Get(k K) (v V, ok bool) {
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
func (c *Cursor[K, V]) Put(k K, v V) {
	c.curK = append(c.curK, k)
	c.curV = append(c.curV, v)
}
