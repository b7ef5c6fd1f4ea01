package qsql

import (
	"time"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
)

// PeekNextAutoIncrementValue is the value the next automatic insert on this
// node would get (SHOW CREATE TABLE, information_schema).
func (t *Table) PeekNextAutoIncrementValue(ctx *gms.Context) (uint64, error) {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
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
	_, kvt, err := writeTxn(ctx)
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

// RowCount estimates the table's rows for the planner (never exact: the
// engine would answer COUNT(*) from an exact count, and this one is cached
// per node, not read in the transaction). The count is taken by scanning
// the primary index, at most rowCountLimit keys, and cached for rowCountTTL.
func (t *Table) RowCount(ctx *gms.Context) (uint64, bool, error) {
	srv := t.db.srv
	if v, ok := srv.rowCounts.Load(t.info.id); ok {
		e := v.(rowCountEntry)
		if time.Since(e.at) < rowCountTTL {
			return e.n, false, nil
		}
	}
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return 0, false, err
	}
	defer release()
	start, end := t.info.primarySpan()
	it := kvt.NewIterator(ctx, start, end, false, 1024)
	defer it.Close()
	var n uint64
	for n < rowCountLimit {
		_, ok, err := it.Next(ctx)
		if err != nil {
			return 0, false, convertTxnError("count rows of "+t.info.name, err)
		}
		if !ok {
			break
		}
		n++
	}
	srv.rowCounts.Store(t.info.id, rowCountEntry{n: n, at: time.Now()})
	return n, false, nil
}

// DataLength estimates the table's size (rows × 64 bytes per column).
func (t *Table) DataLength(ctx *gms.Context) (uint64, error) {
	n, _, err := t.RowCount(ctx)
	if err != nil {
		return 0, err
	}
	return n * 64 * uint64(len(t.info.schema.Schema)), nil
}
