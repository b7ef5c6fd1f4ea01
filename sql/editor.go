package qsql

import (
	"context"
	"fmt"
	"strings"

	gms "github.com/dolthub/go-mysql-server/sql"

	"github.com/quorumdb/quorumdb/txn"
)

// editor applies one statement's row changes to one table inside the
// session's transaction. Statement atomicity: the first editor of a
// statement takes a savepoint of the transaction; DiscardChanges rolls back
// to it, so a failing statement leaves nothing behind, even in an explicit
// transaction. Writes go straight into the transaction's write buffer, so
// later reads in the same statement (foreign key checks, cascades, unique
// checks) see them.
type editor struct {
	t *Table
}

var _ gms.TableEditor = (*editor)(nil)
var _ gms.ForeignKeyEditor = (*editor)(nil)

func (t *Table) newEditor() *editor { return &editor{t: t} }

func (t *Table) Inserter(*gms.Context) gms.RowInserter { return t.newEditor() }
func (t *Table) Updater(*gms.Context) gms.RowUpdater   { return t.newEditor() }
func (t *Table) Deleter(*gms.Context) gms.RowDeleter   { return t.newEditor() }
func (t *Table) Replacer(*gms.Context) gms.RowReplacer { return t.newEditor() }

// GetForeignKeyEditor is the editor the engine uses for referential actions.
func (t *Table) GetForeignKeyEditor(*gms.Context) gms.ForeignKeyEditor { return t.newEditor() }

// IndexAddressable, for the foreign key machinery.
func (e *editor) IndexedAccess(ctx *gms.Context, lookup gms.IndexLookup) gms.IndexedTable {
	nt := *e.t
	nt.ownWrites = true
	return nt.IndexedAccess(ctx, lookup)
}
func (e *editor) GetIndexes(ctx *gms.Context) ([]gms.Index, error) { return e.t.GetIndexes(ctx) }
func (e *editor) PreciseMatch() bool                               { return e.t.PreciseMatch() }

// StatementBegin takes the statement savepoint (once per statement, shared
// by every table's editor).
func (e *editor) StatementBegin(ctx *gms.Context) {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return
	}
	tx.beginStatement(ctx.Pid(), kvt)
}

// DiscardChanges undoes the statement's writes.
func (e *editor) DiscardChanges(ctx *gms.Context, _ error) error {
	tx, ok := ctx.GetTransaction().(*Transaction)
	if !ok || tx == nil || tx.kvt == nil || !tx.stmtActive {
		return nil
	}
	tx.stmtActive = false
	tx.overlay = nil
	if err := tx.kvt.RollbackTo(tx.stmtSavepoint); err != nil {
		return convertTxnError("discard statement changes", err)
	}
	return nil
}

// StatementComplete ends the statement.
func (e *editor) StatementComplete(ctx *gms.Context) error {
	tx, ok := ctx.GetTransaction().(*Transaction)
	if !ok || tx == nil {
		return nil
	}
	return tx.completeStatement(ctx)
}

// completeStatement flushes the statement's writes into the transaction.
func (t *Transaction) completeStatement(ctx context.Context) error {
	t.stmtActive = false
	ov := t.overlay
	t.overlay = nil
	if ov == nil || t.kvt == nil {
		return nil
	}
	return ov.flush(ctx, t.kvt)
}

// writer is the editors' path to the transaction (through the statement
// overlay while a statement runs).
func (t *Transaction) writer(kvt KVTxn) stmtWriter {
	if t.stmtActive {
		return stmtWriter{kvt: kvt, ov: t.overlay}
	}
	return stmtWriter{kvt: kvt}
}

func (e *editor) Close(*gms.Context) error { return nil }

func (t *Transaction) beginStatement(pid uint64, kvt KVTxn) {
	if t.stmtActive && t.stmtPid == pid {
		return
	}
	t.stmtActive = true
	t.stmtPid = pid
	t.stmtSavepoint = kvt.Savepoint()
	t.overlay = newOverlay()
}

type statementState struct {
	stmtActive    bool
	stmtPid       uint64
	stmtSavepoint txn.Savepoint
	overlay       *stmtOverlay
}

// Insert writes a new row; a primary or unique key collision returns
// sql.NewUniqueKeyErr with the existing row (REPLACE and ON DUPLICATE KEY
// UPDATE read it).
func (e *editor) Insert(ctx *gms.Context, row gms.Row) error {
	_, kvt, err := e.t.writeTxn(ctx)
	if err != nil {
		return err
	}
	w := writerFor(ctx, kvt)
	info := e.t.info
	if err := info.checkRowShape(row); err != nil {
		return err
	}
	pk, err := info.newPrimaryKey(ctx, kvt, row)
	if err != nil {
		return err
	}
	if info.hasPrimaryKey() {
		existing, found, err := e.getRow(ctx, w, pk)
		if err != nil {
			return err
		}
		if found {
			return gms.NewUniqueKeyErr(info.keyString(row, info.pkOrdinals()), true, existing)
		}
	}
	if err := e.checkUnique(ctx, w, row, nil); err != nil {
		return err
	}
	return e.writeRow(ctx, w, pk, row)
}

// writeRow puts the row and all its index entries.
func (e *editor) writeRow(ctx *gms.Context, w stmtWriter, pk []byte, row gms.Row) error {
	info := e.t.info
	val, err := info.encodeRow(row)
	if err != nil {
		return err
	}
	if err := w.put(ctx, pk, val); err != nil {
		return err
	}
	for _, idx := range info.indexes {
		k, v, err := info.indexEntry(idx, row, pk)
		if err != nil {
			return err
		}
		if err := w.put(ctx, k, v); err != nil {
			return err
		}
	}
	return nil
}

// deleteRow removes the row at pk and its index entries.
func (e *editor) deleteRow(ctx *gms.Context, w stmtWriter, pk []byte, row gms.Row) error {
	info := e.t.info
	if err := w.del(ctx, pk); err != nil {
		return err
	}
	for _, idx := range info.indexes {
		k, _, err := info.indexEntry(idx, row, pk)
		if err != nil {
			return err
		}
		if err := w.del(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

func (e *editor) getRow(ctx *gms.Context, w stmtWriter, pk []byte) (gms.Row, bool, error) {
	v, found, err := w.get(ctx, pk)
	if err != nil {
		return nil, false, err
	}
	if !found {
		return nil, false, nil
	}
	row, err := e.t.info.decodeRow(pk, v)
	return row, err == nil, err
}

// checkUnique looks for another row holding row's values in a unique index.
// self is the primary key of the row being updated (its own entry is no
// conflict).
func (e *editor) checkUnique(ctx *gms.Context, w stmtWriter, row gms.Row, self []byte) error {
	info := e.t.info
	for _, idx := range info.indexes {
		if !idx.unique {
			continue
		}
		probe, ok, err := info.uniqueProbeKey(idx, row)
		if err != nil {
			return err
		}
		if !ok { // a NULL in the key: never a conflict
			continue
		}
		v, found, err := w.get(ctx, probe)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		otherPK, err := info.primaryKeyFromIndexEntry(idx, probe, v)
		if err != nil {
			return err
		}
		if self != nil && string(otherPK) == string(self) {
			continue
		}
		existing, found, err := e.getRow(ctx, w, otherPK)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("qsql: unique index %s of %s names a missing row", idx.name, info.name)
		}
		return gms.NewUniqueKeyErr(fmt.Sprintf("%s for key '%s'", info.keyString(row, idx.cols), idx.name), false, existing)
	}
	return nil
}

// Delete removes the row.
func (e *editor) Delete(ctx *gms.Context, row gms.Row) error {
	_, kvt, err := e.t.writeTxn(ctx)
	if err != nil {
		return err
	}
	w := writerFor(ctx, kvt)
	info := e.t.info
	if err := info.checkRowShape(row); err != nil {
		return err
	}
	pk, found, err := info.locateRow(ctx, w, row)
	if err != nil {
		return err
	}
	if !found {
		return nil
	}
	return e.deleteRow(ctx, w, pk, row)
}

// Update replaces old by new, moving index entries whose keys changed.
func (e *editor) Update(ctx *gms.Context, old, new gms.Row) error {
	_, kvt, err := e.t.writeTxn(ctx)
	if err != nil {
		return err
	}
	info := e.t.info
	if err := info.checkRowShape(old); err != nil {
		return err
	}
	if err := info.checkRowShape(new); err != nil {
		return err
	}
	w := writerFor(ctx, kvt)
	if tx, ok := ctx.GetTransaction().(*Transaction); ok && tx != nil {
		if f := tx.addColumnFill; f != nil && f.tableID == info.id && f.pid == ctx.Pid() {
			// The engine's own default fill after ADD COLUMN: already done.
			for i, id := range info.colIDs {
				if id == f.colID {
					new = new.Copy()
					new[i] = old[i]
				}
			}
		}
	}
	oldPK, found, err := info.locateRow(ctx, w, old)
	if err != nil {
		return err
	}
	if !found {
		return nil
	}
	newPK := oldPK
	if info.hasPrimaryKey() {
		newPK, err = info.primaryKey(new)
		if err != nil {
			return err
		}
		if string(newPK) != string(oldPK) {
			existing, found, err := e.getRow(ctx, w, newPK)
			if err != nil {
				return err
			}
			if found {
				return gms.NewUniqueKeyErr(info.keyString(new, info.pkOrdinals()), true, existing)
			}
		}
	} else {
		newPK, err = info.newPrimaryKey(ctx, kvt, new)
		if err != nil {
			return err
		}
	}
	if err := e.checkUnique(ctx, w, new, oldPK); err != nil {
		return err
	}
	if err := e.deleteRow(ctx, w, oldPK, old); err != nil {
		return err
	}
	return e.writeRow(ctx, w, newPK, new)
}

// Truncate deletes every row (and index entry) and restarts AUTO_INCREMENT.
func (t *Table) Truncate(ctx *gms.Context) (int, error) {
	_, kvt, err := t.writeTxn(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	start, end := t.info.primarySpan()
	it := kvt.NewIterator(ctx, start, end, false, t.db.srv.cfg.ScanBatchSize)
	defer it.Close()
	for {
		e, ok, err := it.Next(ctx)
		if err != nil {
			return n, convertTxnError("truncate "+t.info.name, err)
		}
		if !ok {
			break
		}
		row, err := t.info.decodeRow(e.Key, e.Value)
		if err != nil {
			return n, err
		}
		if err := t.newEditor().deleteRow(ctx, stmtWriter{kvt: kvt}, e.Key, row); err != nil {
			return n, err
		}
		n++
	}
	if t.info.autoIncCol >= 0 {
		if err := t.db.srv.autoInc.set(ctx, kvt, t.info.id, 1); err != nil {
			return n, err
		}
	}
	return n, nil
}

// writerFor is the editors' writer of the session's transaction.
func writerFor(ctx *gms.Context, kvt KVTxn) stmtWriter {
	if tx, ok := ctx.GetTransaction().(*Transaction); ok && tx != nil {
		return tx.writer(kvt)
	}
	return stmtWriter{kvt: kvt}
}

// keyString renders key values the way MySQL's duplicate-key message does.
func (ti *tableInfo) keyString(row gms.Row, cols []int) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprint(row[c])
		if row[c] == nil {
			parts[i] = "NULL"
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}
