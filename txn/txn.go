package txn

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

type txnState uint8

const (
	txnOpen txnState = iota
	txnCommitting
	txnCommitted
	txnRolledBack
	txnFailed
)

func (s txnState) String() string {
	switch s {
	case txnOpen:
		return "open"
	case txnCommitting:
		return "committing"
	case txnCommitted:
		return "committed"
	case txnRolledBack:
		return "rolled back"
	default:
		return "finished after a failed commit"
	}
}

// Txn is one transaction: reads at its start timestamp merged with its own
// buffered writes, writes buffered until Commit. Its methods may be called
// from several goroutines, but a transaction is meant to be driven by one
// session at a time.
type Txn struct {
	db       *DB
	opts     TxnOptions
	readOnly bool

	// tsMu serialises taking the start timestamp (lazily, on first use).
	tsMu sync.Mutex

	mu        sync.Mutex
	state     txnState
	startTS   kv.Timestamp
	startWall time.Time // local time when startTS was taken (lock TTLs count from it)
	commitTS  kv.Timestamp
	buf       *writeBuffer
	// reads are the recorded point reads and scanned spans, validated at
	// commit. Iterators grow their span in place (readIdx).
	reads []kv.Span
}

// Savepoint marks a position in a transaction's writes; RollbackTo undoes
// what was written after it.
type Savepoint struct {
	txn *Txn
	pos int
}

// GetResult is one answer of BatchGet.
type GetResult struct {
	Value []byte
	Found bool
}

// StartTS returns the snapshot timestamp (0 until the first read or commit).
func (t *Txn) StartTS() kv.Timestamp {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.startTS
}

// CommitTS returns the commit timestamp once committed (the start timestamp
// for a transaction that wrote nothing), else 0.
func (t *Txn) CommitTS() kv.Timestamp {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.commitTS
}

// followerReads reports whether the transaction's reads may be served by
// the nearest replica: an AS OF snapshot reads the past, which any replica
// serves once that timestamp is closed there.
func (t *Txn) followerReads() bool { return t.opts.AsOf != 0 }

// ReadOnly reports whether the transaction can write.
func (t *Txn) ReadOnly() bool { return t.readOnly }

func (t *Txn) checkOpenLocked() error {
	if t.state != txnOpen {
		return &TxnClosedError{StartTS: t.startTS, State: t.state.String()}
	}
	return nil
}

// ensureStartTS takes the start timestamp if the transaction has none yet.
func (t *Txn) ensureStartTS(ctx context.Context) (kv.Timestamp, error) {
	t.tsMu.Lock()
	defer t.tsMu.Unlock()
	t.mu.Lock()
	ts := t.startTS
	t.mu.Unlock()
	if ts != 0 {
		return ts, nil
	}
	ts, err := t.db.now(ctx)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	t.startTS = ts
	t.startWall = time.Now()
	t.mu.Unlock()
	t.db.register(t, ts)
	return ts, nil
}

func checkKey(key []byte) error {
	if len(key) == 0 {
		return &InvalidArgumentError{Reason: "empty key"}
	}
	if bytes.Compare(key, kv.KeyMax) >= 0 {
		return &InvalidArgumentError{Reason: fmt.Sprintf("key %q is in the reserved space at or above 0xff 0xff", key)}
	}
	return nil
}

// write buffers one mutation.
func (t *Txn) write(key []byte, e bufEntry) error {
	if t.readOnly {
		return &ReadOnlyTxnError{}
	}
	if err := checkKey(key); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkOpenLocked(); err != nil {
		return err
	}
	if t.buf == nil {
		t.buf = newWriteBuffer(1) // skiplist levels: any fixed seed will do
	}
	if e.op == kv.OpLock {
		if _, ok := t.buf.get(key); ok {
			return nil // already locked or written: a write conflicts as well as a lock
		}
	}
	pos := len(t.buf.undo)
	t.buf.set(key, e)
	if t.buf.bytes > t.db.cfg.MaxTxnBytes {
		size := t.buf.bytes
		t.buf.rollbackTo(pos)
		return &TxnTooLargeError{Bytes: size, Limit: t.db.cfg.MaxTxnBytes}
	}
	return nil
}

// Put buffers a write of value to key.
func (t *Txn) Put(ctx context.Context, key, value []byte) error {
	v := make([]byte, len(value))
	copy(v, value)
	return t.write(key, bufEntry{op: kv.OpPut, value: v})
}

// Delete buffers a deletion of key.
func (t *Txn) Delete(ctx context.Context, key []byte) error {
	return t.write(key, bufEntry{op: kv.OpDelete})
}

// Lock makes key take part in write-conflict detection at commit without
// writing it (SELECT … FOR UPDATE): the commit fails if another transaction
// committed a write to key after this one's snapshot.
func (t *Txn) Lock(ctx context.Context, key []byte) error {
	return t.write(key, bufEntry{op: kv.OpLock})
}

// Savepoint returns the current position in the transaction's writes.
func (t *Txn) Savepoint() Savepoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	pos := 0
	if t.buf != nil {
		pos = len(t.buf.undo)
	}
	return Savepoint{txn: t, pos: pos}
}

// RollbackTo undoes the writes buffered after sp. Reads made since stay
// recorded: they were observed, so they are still validated.
func (t *Txn) RollbackTo(sp Savepoint) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkOpenLocked(); err != nil {
		return err
	}
	if sp.txn != t {
		return &InvalidArgumentError{Reason: "savepoint of another transaction"}
	}
	undoLen := 0
	if t.buf != nil {
		undoLen = len(t.buf.undo)
	}
	if sp.pos > undoLen {
		return &InvalidArgumentError{Reason: "savepoint no longer exists (released by an earlier rollback)"}
	}
	if t.buf != nil {
		t.buf.rollbackTo(sp.pos)
	}
	return nil
}

// recordRead appends a read span and returns its index, or -1 when the
// transaction does not validate reads (read-only).
func (t *Txn) recordRead(sp kv.Span) int {
	if t.readOnly {
		return -1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reads = append(t.reads, sp)
	return len(t.reads) - 1
}
