package txn

import (
	"bytes"
	"math/rand/v2"

	"github.com/quorumdb/quorumdb/kv"
)

// writeBuffer holds a transaction's buffered writes ordered by key, so reads
// can merge them into scans (read-your-own-writes), with an undo log for
// savepoints. It is a skiplist: ordered inserts and seeks in O(log n), which
// keeps a statement that inserts many rows and scans between inserts (foreign
// key and uniqueness checks) from going quadratic.
type writeBuffer struct {
	head   *bufNode
	levels int
	rng    *rand.Rand
	len    int
	// bytes counts keys and values of the live entries.
	bytes int64
	// undo records, per change, what the key held before it; a savepoint is
	// a position in it.
	undo []undoRecord
}

const maxBufLevels = 24

type bufEntry struct {
	op    kv.MutationOp
	value []byte
}

type bufNode struct {
	key   []byte
	entry bufEntry
	next  [maxBufLevels]*bufNode
}

type undoRecord struct {
	key     []byte
	existed bool
	prev    bufEntry
}

func newWriteBuffer(seed uint64) *writeBuffer {
	return &writeBuffer{head: &bufNode{}, levels: 1, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

func entrySize(key []byte, e bufEntry) int64 { return int64(len(key) + len(e.value) + 16) }

// findPrev fills prev[i] with the last node at level i whose key is < key.
func (b *writeBuffer) findPrev(key []byte, prev *[maxBufLevels]*bufNode) *bufNode {
	x := b.head
	for i := b.levels - 1; i >= 0; i-- {
		for x.next[i] != nil && bytes.Compare(x.next[i].key, key) < 0 {
			x = x.next[i]
		}
		if prev != nil {
			prev[i] = x
		}
	}
	return x
}

func (b *writeBuffer) get(key []byte) (bufEntry, bool) {
	x := b.findPrev(key, nil).next[0]
	if x != nil && bytes.Equal(x.key, key) {
		return x.entry, true
	}
	return bufEntry{}, false
}

// set writes e for key, recording the undo information.
func (b *writeBuffer) set(key []byte, e bufEntry) {
	var prev [maxBufLevels]*bufNode
	x := b.findPrev(key, &prev).next[0]
	if x != nil && bytes.Equal(x.key, key) {
		b.undo = append(b.undo, undoRecord{key: x.key, existed: true, prev: x.entry})
		b.bytes += entrySize(key, e) - entrySize(key, x.entry)
		x.entry = e
		return
	}
	k := append([]byte(nil), key...)
	b.undo = append(b.undo, undoRecord{key: k})
	b.insert(k, e, &prev)
}

func (b *writeBuffer) insert(key []byte, e bufEntry, prev *[maxBufLevels]*bufNode) {
	lvl := 1
	for lvl < maxBufLevels && b.rng.Uint32()&3 == 0 {
		lvl++
	}
	for i := b.levels; i < lvl; i++ {
		prev[i] = b.head
	}
	if lvl > b.levels {
		b.levels = lvl
	}
	n := &bufNode{key: key, entry: e}
	for i := 0; i < lvl; i++ {
		n.next[i] = prev[i].next[i]
		prev[i].next[i] = n
	}
	b.len++
	b.bytes += entrySize(key, e)
}

func (b *writeBuffer) remove(key []byte) {
	var prev [maxBufLevels]*bufNode
	x := b.findPrev(key, &prev).next[0]
	if x == nil || !bytes.Equal(x.key, key) {
		return
	}
	for i := 0; i < b.levels; i++ {
		if prev[i].next[i] == x {
			prev[i].next[i] = x.next[i]
		}
	}
	b.len--
	b.bytes -= entrySize(key, x.entry)
}

// rollbackTo undoes every change recorded after position pos of the undo log.
func (b *writeBuffer) rollbackTo(pos int) {
	for i := len(b.undo) - 1; i >= pos; i-- {
		u := b.undo[i]
		if !u.existed {
			b.remove(u.key)
			continue
		}
		var prev [maxBufLevels]*bufNode
		x := b.findPrev(u.key, &prev).next[0]
		if x != nil && bytes.Equal(x.key, u.key) {
			b.bytes += entrySize(u.key, u.prev) - entrySize(u.key, x.entry)
			x.entry = u.prev
		} else {
			b.insert(u.key, u.prev, &prev)
		}
	}
	b.undo = b.undo[:pos]
}

// seekGE returns the first node with key >= key (nil key: the first node).
func (b *writeBuffer) seekGE(key []byte) *bufNode {
	return b.findPrev(key, nil).next[0]
}

// seekLT returns the last node with key < key (nil key: the last node).
func (b *writeBuffer) seekLT(key []byte) *bufNode {
	if key == nil {
		x := b.head
		for i := b.levels - 1; i >= 0; i-- {
			for x.next[i] != nil {
				x = x.next[i]
			}
		}
		if x == b.head {
			return nil
		}
		return x
	}
	x := b.findPrev(key, nil)
	if x == b.head {
		return nil
	}
	return x
}

// mutations returns the buffered writes in key order.
func (b *writeBuffer) mutations() []kv.Mutation {
	out := make([]kv.Mutation, 0, b.len)
	for x := b.head.next[0]; x != nil; x = x.next[0] {
		out = append(out, kv.Mutation{Op: x.entry.op, Key: x.key, Value: x.entry.value})
	}
	return out
}
