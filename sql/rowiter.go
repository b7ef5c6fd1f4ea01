package qsql

import (
	"context"
	"fmt"
	"io"

	gms "github.com/dolthub/go-mysql-server/sql"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// readTxn returns the transaction a read runs in: the session's (begun on
// first use) or, when the engine runs without one (COM_STMT_PREPARE binds
// before any transaction exists in v0.20.0), a one-off read-only
// transaction that release rolls back.
func readTxn(ctx *gms.Context) (KVTxn, func(), error) {
	if tx, ok := ctx.GetTransaction().(*Transaction); ok && tx != nil && !tx.finished {
		k, err := tx.kv(ctx)
		return k, func() {}, err
	}
	sess, ok := ctx.Session.(*Session)
	if !ok {
		return nil, nil, fmt.Errorf("qsql: session of type %T", ctx.Session)
	}
	k, err := sess.srv.db.Begin(ctx, txn.TxnOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, convertTxnError("begin read", err)
	}
	return k, func() { _ = k.Rollback(ctx) }, nil
}

// writeTxn returns the session's transaction for a write.
func writeTxn(ctx *gms.Context) (*Transaction, KVTxn, error) {
	tx, ok := ctx.GetTransaction().(*Transaction)
	if !ok || tx == nil || tx.finished {
		return nil, nil, ErrNoTransaction
	}
	if tx.readOnly {
		return nil, nil, gms.ErrReadOnlyTransaction.New()
	}
	k, err := tx.kv(ctx)
	return tx, k, err
}

// rowIter reads the spans of a partition in order. For the primary index
// each KV pair is a row; for a secondary index each entry names a primary
// key, and the rows are fetched with one BatchGet per batch of entries.
type rowIter struct {
	t       *Table
	p       *scanPartition
	w       stmtWriter // with an overlay: the statement's writes are seen
	release func()
	batch   int

	span    int
	base    *txn.Iterator
	it      kvIterator
	pending []gms.Row
	done    bool
}

type mergeAdapter struct{ m *mergeIter }

func (a mergeAdapter) Next(ctx context.Context) (kv.KeyValue, bool, error) { return a.m.next(ctx) }

// open starts reading span sp.
func (r *rowIter) open(ctx context.Context, sp kv.Span) {
	r.base = r.w.kvt.NewIterator(ctx, sp.Key, sp.EndKey, r.p.reverse, r.batch)
	r.it = r.base
	if r.w.ov != nil {
		keys := r.w.ov.span(sp.Key, sp.EndKey, r.p.reverse)
		if len(keys) > 0 {
			r.it = mergeAdapter{&mergeIter{base: r.base, ov: r.w.ov, ovKeys: keys, reverse: r.p.reverse}}
		}
	}
}

func (r *rowIter) closeSpan() {
	if r.base != nil {
		r.base.Close()
	}
	r.base, r.it = nil, nil
}

func (r *rowIter) Next(ctx *gms.Context) (gms.Row, error) {
	for {
		if len(r.pending) > 0 {
			row := r.pending[0]
			r.pending = r.pending[1:]
			if r.p.filter != nil {
				ok, err := r.p.filter.match(ctx, row)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
			}
			return r.t.project(row), nil
		}
		if r.done {
			return nil, io.EOF
		}
		if err := r.fill(ctx); err != nil {
			return nil, err
		}
	}
}

// fill loads the next batch of rows into pending.
func (r *rowIter) fill(ctx *gms.Context) error {
	var entries []kv.KeyValue
	for len(entries) < r.batch {
		if r.it == nil {
			if r.span >= len(r.p.spans) {
				r.done = true
				break
			}
			sp := r.p.spans[r.span]
			r.span++
			r.open(ctx, sp)
		}
		e, ok, err := r.it.Next(ctx)
		if err != nil {
			return convertTxnError("scan "+r.t.info.name, err)
		}
		if !ok {
			r.closeSpan()
			continue
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil
	}
	info := r.t.info
	if r.p.index == nil {
		for _, e := range entries {
			row, err := info.decodeRow(e.Key, e.Value)
			if err != nil {
				return err
			}
			r.pending = append(r.pending, row)
		}
		return nil
	}
	keys := make([][]byte, len(entries))
	for i, e := range entries {
		pk, err := info.primaryKeyFromIndexEntry(r.p.index, e.Key, e.Value)
		if err != nil {
			return err
		}
		keys[i] = pk
	}
	res, err := r.w.batchGet(ctx, keys)
	if err != nil {
		return err
	}
	for i, g := range res {
		if !g.Found {
			return fmt.Errorf("qsql: index %s of %s names a missing row %x", r.p.index.name, info.name, keys[i])
		}
		row, err := info.decodeRow(keys[i], g.Value)
		if err != nil {
			return err
		}
		r.pending = append(r.pending, row)
	}
	return nil
}

func (r *rowIter) Close(*gms.Context) error {
	r.closeSpan()
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return nil
}
