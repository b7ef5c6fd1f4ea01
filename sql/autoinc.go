package qsql

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/quorumdb/quorumdb/txn"
)

// autoIncrementAllocator hands out AUTO_INCREMENT values that are unique
// across the cluster. Each table has a sequence key in the KV store holding
// the next unreserved value. A node reserves a block of
// Config.AutoIncrementBlock values at a time in its own small transaction
// (independent of the user's: like MySQL, a rolled-back insert does not
// return its value) and hands them out in order from memory.
//
// Semantics (documented in doc.go): values are unique cluster-wide and
// increase within one node; values handed out by different nodes interleave
// by block, and a node restart skips the rest of its block. An explicit
// value v moves the sequence past v so later automatic values never reuse
// it on this node; another node's already reserved block may still contain
// v, in which case that node's insert fails with a duplicate key (1062)
// rather than overwriting anything.
type autoIncrementAllocator struct {
	srv    *Server
	mu     sync.Mutex
	blocks map[uint32]*autoIncBlock
}

type autoIncBlock struct{ next, end uint64 }

func newAutoIncrementAllocator(s *Server) *autoIncrementAllocator {
	return &autoIncrementAllocator{srv: s, blocks: make(map[uint32]*autoIncBlock)}
}

func decodeSeq(v []byte, found bool) (uint64, error) {
	if !found {
		return 1, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("qsql: corrupt sequence value of %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func encodeSeq(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// next returns the next value for the table and consumes it.
func (a *autoIncrementAllocator) next(ctx context.Context, tableID uint32) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.blocks[tableID]
	if b == nil || b.next >= b.end {
		nb, err := a.reserve(ctx, tableID, 0)
		if err != nil {
			return 0, err
		}
		b = nb
		a.blocks[tableID] = b
	}
	v := b.next
	b.next++
	return v, nil
}

// reserve takes a block from the table's sequence, starting at least at floor.
func (a *autoIncrementAllocator) reserve(ctx context.Context, tableID uint32, floor uint64) (*autoIncBlock, error) {
	key := sequenceKey(tableID)
	size := a.srv.cfg.AutoIncrementBlock
	var blk autoIncBlock
	err := a.srv.db.Run(ctx, txn.TxnOptions{}, func(ctx context.Context, t *txn.Txn) error {
		raw, found, err := t.Get(ctx, key)
		if err != nil {
			return err
		}
		cur, err := decodeSeq(raw, found)
		if err != nil {
			return err
		}
		if cur < floor {
			cur = floor
		}
		if cur+size < cur {
			return fmt.Errorf("qsql: AUTO_INCREMENT sequence of table %d exhausted", tableID)
		}
		blk = autoIncBlock{next: cur, end: cur + size}
		return t.Put(ctx, key, encodeSeq(blk.end))
	})
	if err != nil {
		return nil, convertTxnError("reserve AUTO_INCREMENT block", err)
	}
	return &blk, nil
}

// observe records an explicitly inserted value so automatic values skip it.
func (a *autoIncrementAllocator) observe(ctx context.Context, tableID uint32, v uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.blocks[tableID]
	if b != nil && v < b.next {
		return nil
	}
	if b != nil && v < b.end {
		b.next = v + 1
		return nil
	}
	if v+1 == 0 {
		return nil
	}
	// Past our block: move the shared sequence beyond v and start a block there.
	nb, err := a.reserve(ctx, tableID, v+1)
	if err != nil {
		return err
	}
	a.blocks[tableID] = nb
	return nil
}

// peek returns the value next() would return, without consuming it.
func (a *autoIncrementAllocator) peek(ctx context.Context, kvt KVTxn, tableID uint32) (uint64, error) {
	a.mu.Lock()
	b := a.blocks[tableID]
	if b != nil && b.next < b.end {
		v := b.next
		a.mu.Unlock()
		return v, nil
	}
	a.mu.Unlock()
	raw, found, err := kvt.Get(ctx, sequenceKey(tableID))
	if err != nil {
		return 0, convertTxnError("read AUTO_INCREMENT sequence", err)
	}
	return decodeSeq(raw, found)
}

// set restarts the sequence at v (ALTER TABLE … AUTO_INCREMENT = v, TRUNCATE)
// inside the caller's transaction, and forgets this node's block.
func (a *autoIncrementAllocator) set(ctx context.Context, kvt KVTxn, tableID uint32, v uint64) error {
	a.mu.Lock()
	delete(a.blocks, tableID)
	a.mu.Unlock()
	if err := kvt.Put(ctx, sequenceKey(tableID), encodeSeq(v)); err != nil {
		return convertTxnError("set AUTO_INCREMENT", err)
	}
	return nil
}

// forget drops the node's block of a dropped table.
func (a *autoIncrementAllocator) forget(tableID uint32) {
	a.mu.Lock()
	delete(a.blocks, tableID)
	a.mu.Unlock()
}
