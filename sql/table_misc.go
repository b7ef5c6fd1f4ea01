package qsql

import (
	"context"
	"time"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"

	"github.com/quorumdb/quorumdb/txn"
)

// PeekNextAutoIncrementValue is the value the next automatic insert on this
// node would get (SHOW CREATE TABLE, information_schema).
//
// The sequence is read in its own read-only snapshot, not in the session's
// transaction, so showing a table does not conflict with inserts.
func (t *Table) PeekNextAutoIncrementValue(ctx *gms.Context) (uint64, error) {
	kvt, err := t.db.srv.db.Begin(ctx, txn.TxnOptions{ReadOnly: true})
	if err != nil {
		return 0, convertTxnError("read AUTO_INCREMENT", err)
	}
	defer func() { _ = kvt.Rollback(ctx) }()
	return t.db.srv.autoInc.peek(ctx, kvt, t.info.id)
}

// GetNextAutoIncrementValue is called by the engine for each inserted row:
// with a nil insertVal it hands out (and consumes) a new value; with an
// explicit value it records it so automatic values skip past it.
func (t *Table) GetNextAutoIncrementValue(ctx *gms.Context, insertVal interface{}) (uint64, error) {
	alloc := t.db.srv.autoInc
	if insertVal == nil {
		return alloc.next(ctx, t.info.id)
	}
	v, _, err := types.Uint64.Convert(ctx, insertVal)
	if err != nil {
		return 0, err
	}
	u, _ := v.(uint64)
	if err := alloc.observe(ctx, t.info.id, u); err != nil {
		return 0, err
	}
	return u, nil
}

// AutoIncrementSetter is used by ALTER TABLE … AUTO_INCREMENT = n.
func (t *Table) AutoIncrementSetter(*gms.Context) gms.AutoIncrementSetter {
	return &autoIncSetter{t: t}
}

type autoIncSetter struct{ t *Table }

func (s *autoIncSetter) SetAutoIncrementValue(ctx *gms.Context, v uint64) error {
	_, kvt, err := s.t.writeTxn(ctx)
	if err != nil {
		return err
	}
	return s.t.db.srv.autoInc.set(ctx, kvt, s.t.info.id, v)
}

// AcquireAutoIncrementLock: values come from per-node blocks under the
// allocator's mutex, so no table lock is needed.
func (s *autoIncSetter) AcquireAutoIncrementLock(*gms.Context) (func(), error) {
	return func() {}, nil
}

func (s *autoIncSetter) Close(*gms.Context) error { return nil }

// rowCountTTL is how long a node trusts a table's counted rows for
// planning; rowCountLimit caps one count (bigger tables are "at least").
const (
	rowCountTTL   = 30 * time.Second
	rowCountLimit = 100000
)

type rowCountEntry struct {
	n  uint64
	at time.Time
}

// RowCount estimates the table's rows for the planner. It is never exact
// (the engine would answer COUNT(*) from an exact count) and never read in
// the session's transaction: a scan there would make every statement
// conflict with every concurrent writer of the table. The count comes from
// a separate read-only snapshot of the primary index (at most
// rowCountLimit keys) and is cached per node for rowCountTTL. It never
// fails: the engine's costing cannot handle an error here, so a failed
// count gives the last estimate.
func (t *Table) RowCount(ctx *gms.Context) (uint64, bool, error) {
	srv := t.db.srv
	var last uint64
	if v, ok := srv.rowCounts.Load(t.info.id); ok {
		e := v.(rowCountEntry)
		if time.Since(e.at) < rowCountTTL {
			return e.n, false, nil
		}
		last = e.n
	}
	n, err := t.countRows(ctx)
	if err != nil {
		srv.log.Debug("row count estimate failed", "table", t.info.name, "err", err)
		return last, false, nil
	}
	srv.rowCounts.Store(t.info.id, rowCountEntry{n: n, at: time.Now()})
	return n, false, nil
}

func (t *Table) countRows(ctx context.Context) (uint64, error) {
	kvt, err := t.db.srv.db.Begin(ctx, txn.TxnOptions{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer func() { _ = kvt.Rollback(ctx) }()
	start, end := t.info.primarySpan()
	it := kvt.NewIterator(ctx, start, end, false, 1024)
	defer it.Close()
	var n uint64
	for n < rowCountLimit {
		_, ok, err := it.Next(ctx)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		n++
	}
	return n, nil
}

// DataLength estimates the table's size (rows × 64 bytes per column).
func (t *Table) DataLength(ctx *gms.Context) (uint64, error) {
	n, _, err := t.RowCount(ctx)
	if err != nil {
		return 0, err
	}
	return n * 64 * uint64(len(t.info.schema.Schema)), nil
}
