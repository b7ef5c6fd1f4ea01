package qsql

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync/atomic"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"

	"github.com/quorumdb/quorumdb/catalog"
	"github.com/quorumdb/quorumdb/kv"
)

// tableInfo is the SQL layer's view of one version of a table descriptor:
// the engine schema, the row codec and the index layout. It is immutable
// once built and shared by every Table of that version.
//
// Storage layout (all keys start with kv.TableKeyPrefix(tableID, indexID)
// followed by catalog.EncodeKey columns):
//   - primary index: key = prefix(primary) + pk columns, value = the whole
//     row (catalog.RowCodec, by column ID). A table without a primary key
//     uses a hidden one: sha256(row)[:16], the writing transaction's start
//     timestamp and a per-transaction counter, so identical rows coexist and
//     a row is found again by hashing it;
//   - secondary index: key = prefix(index) + index columns + pk suffix,
//     value = pk suffix (the primary key without its prefix);
//   - unique index: key = prefix(index) + index columns, value = pk suffix;
//     when an index column is NULL the pk suffix is appended to the key as
//     for a non-unique index (NULLs never collide, as in MySQL).
type tableInfo struct {
	desc      *catalog.TableDescriptor
	dbName    string
	name      string
	id        uint32
	version   uint64
	schema    gms.PrimaryKeySchema
	colIDs    []uint32
	codec     *catalog.RowCodec
	pkOrd     []int
	primaryID uint32
	indexes   []*indexInfo
	checks    []gms.CheckDefinition
	// declaredFKs are this table's foreign keys; referencedFKs those of
	// other tables that point at it.
	declaredFKs   []gms.ForeignKeyConstraint
	referencedFKs []gms.ForeignKeyConstraint
	autoIncCol    int
	collation     gms.CollationID
	comment       string

	primaryPrefix []byte
	keyTypes      []gms.Type // pk column types
}

type indexInfo struct {
	id         uint32
	name       string
	unique     bool
	cols       []int
	prefixLens []uint16
	comment    string
	prefix     []byte
}

func (ti *tableInfo) hasPrimaryKey() bool { return len(ti.pkOrd) > 0 }

func (ti *tableInfo) pkOrdinals() []int { return ti.pkOrd }

func (ti *tableInfo) primarySpan() ([]byte, []byte) {
	return ti.primaryPrefix, catalog.KeyPrefixEnd(ti.primaryPrefix)
}

func (ti *tableInfo) indexByName(name string) *indexInfo {
	for _, idx := range ti.indexes {
		if lowerName(idx.name) == lowerName(name) {
			return idx
		}
	}
	return nil
}

func (ti *tableInfo) checkRowShape(row gms.Row) error {
	if len(row) != len(ti.schema.Schema) {
		return fmt.Errorf("qsql: row of %d values for table %s of %d columns", len(row), ti.name, len(ti.schema.Schema))
	}
	return nil
}

// finishLayout derives the key prefixes and codec from the descriptor data.
func (ti *tableInfo) finishLayout() error {
	ti.primaryPrefix = kv.TableKeyPrefix(ti.id, ti.primaryID)
	ti.keyTypes = ti.keyTypes[:0]
	for _, o := range ti.pkOrd {
		ti.keyTypes = append(ti.keyTypes, ti.schema.Schema[o].Type)
	}
	for _, idx := range ti.indexes {
		idx.prefix = kv.TableKeyPrefix(ti.id, idx.id)
	}
	cols := make([]catalog.RowColumn, len(ti.schema.Schema))
	for i, c := range ti.schema.Schema {
		cols[i] = catalog.RowColumn{ID: ti.colIDs[i], Type: c.Type}
	}
	codec, err := catalog.NewRowCodec(cols)
	if err != nil {
		return fmt.Errorf("qsql: row codec of %s: %w", ti.name, err)
	}
	ti.codec = codec
	ti.autoIncCol = -1
	for i, c := range ti.schema.Schema {
		if c.AutoIncrement {
			ti.autoIncCol = i
		}
	}
	return nil
}

func (ti *tableInfo) encodeRow(row gms.Row) ([]byte, error) {
	b, err := ti.codec.Encode(nil, row)
	if err != nil {
		return nil, fmt.Errorf("qsql: encode row of %s: %w", ti.name, err)
	}
	return b, nil
}

func (ti *tableInfo) decodeRow(key, value []byte) (gms.Row, error) {
	row, err := ti.codec.Decode(value, nil)
	if err != nil {
		return nil, fmt.Errorf("qsql: decode row %x of %s: %w", key, ti.name, err)
	}
	return row, nil
}

// encodeCols appends the key encoding of row's columns cols.
func (ti *tableInfo) encodeCols(dst []byte, row gms.Row, cols []int) ([]byte, bool, error) {
	hasNull := false
	var err error
	for _, c := range cols {
		v := row[c]
		if v == nil {
			hasNull = true
		}
		dst, err = catalog.EncodeKey(dst, ti.schema.Schema[c].Type, v)
		if err != nil {
			return nil, false, fmt.Errorf("qsql: key column %s of %s: %w", ti.schema.Schema[c].Name, ti.name, err)
		}
	}
	return dst, hasNull, nil
}

// primaryKey is the row's key in the primary index (tables with a primary key).
func (ti *tableInfo) primaryKey(row gms.Row) ([]byte, error) {
	k, _, err := ti.encodeCols(cloneBytes(ti.primaryPrefix), row, ti.pkOrd)
	return k, err
}

// hiddenRowIDs counts hidden keys per process; with the transaction's start
// timestamp (unique per transaction cluster-wide) it makes keys of
// identical keyless rows distinct.
type hiddenRowIDs struct{ n atomic.Uint64 }

// newPrimaryKey is the key a new row is written under.
func (ti *tableInfo) newPrimaryKey(ctx *gms.Context, kvt KVTxn, row gms.Row) ([]byte, error) {
	if ti.hasPrimaryKey() {
		return ti.primaryKey(row)
	}
	k, err := ti.keylessPrefix(row)
	if err != nil {
		return nil, err
	}
	sess, ok := ctx.Session.(*Session)
	if !ok {
		return nil, fmt.Errorf("qsql: session of type %T", ctx.Session)
	}
	if kvt.StartTS() == 0 {
		// The start timestamp is taken on the first read; the hidden key
		// needs it now.
		if _, _, err := kvt.Get(ctx, k); err != nil {
			return nil, convertTxnError("start transaction", err)
		}
	}
	k, err = catalog.EncodeKey(k, types.Uint64, kvt.StartTS())
	if err != nil {
		return nil, err
	}
	return catalog.EncodeKey(k, types.Uint64, sess.srv.rowIDs.n.Add(1))
}

func (ti *tableInfo) keylessPrefix(row gms.Row) ([]byte, error) {
	val, err := ti.encodeRow(row)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(val)
	return catalog.EncodeKey(cloneBytes(ti.primaryPrefix), types.LongBlob, h[:16])
}

// locateRow finds the primary key of a stored row equal to row.
func (ti *tableInfo) locateRow(ctx context.Context, w stmtWriter, row gms.Row) ([]byte, bool, error) {
	if ti.hasPrimaryKey() {
		pk, err := ti.primaryKey(row)
		if err != nil {
			return nil, false, err
		}
		_, found, err := w.get(ctx, pk)
		if err != nil {
			return nil, false, err
		}
		return pk, found, nil
	}
	p, err := ti.keylessPrefix(row)
	if err != nil {
		return nil, false, err
	}
	want, err := ti.encodeRow(row)
	if err != nil {
		return nil, false, err
	}
	kvs, err := w.scan(ctx, p, catalog.KeyPrefixEnd(p))
	if err != nil {
		return nil, false, err
	}
	for _, e := range kvs {
		if string(e.Value) == string(want) {
			return e.Key, true, nil
		}
	}
	return nil, false, nil
}

// indexEntry is the key and value of row's entry in idx.
func (ti *tableInfo) indexEntry(idx *indexInfo, row gms.Row, pk []byte) ([]byte, []byte, error) {
	suffix := pk[len(ti.primaryPrefix):]
	k, hasNull, err := ti.encodeCols(cloneBytes(idx.prefix), row, idx.cols)
	if err != nil {
		return nil, nil, err
	}
	if !idx.unique || hasNull {
		k = append(k, suffix...)
	}
	return k, cloneBytes(suffix), nil
}

// uniqueProbeKey is the key under which another row with row's values in
// idx would be found; ok is false when a value is NULL (no conflict).
func (ti *tableInfo) uniqueProbeKey(idx *indexInfo, row gms.Row) ([]byte, bool, error) {
	k, hasNull, err := ti.encodeCols(cloneBytes(idx.prefix), row, idx.cols)
	if err != nil {
		return nil, false, err
	}
	return k, !hasNull, nil
}

// primaryKeyFromIndexEntry turns an index entry into the row's primary key.
func (ti *tableInfo) primaryKeyFromIndexEntry(idx *indexInfo, key, value []byte) ([]byte, error) {
	if len(value) == 0 {
		return nil, fmt.Errorf("qsql: empty entry %x in index %s of %s", key, idx.name, ti.name)
	}
	pk := make([]byte, 0, len(ti.primaryPrefix)+len(value))
	pk = append(pk, ti.primaryPrefix...)
	return append(pk, value...), nil
}

// indexKeyTypes is the type of each key column of idx.
func (ti *tableInfo) indexKeyTypes(idx *indexInfo) []gms.Type {
	ts := make([]gms.Type, len(idx.cols))
	for i, c := range idx.cols {
		ts[i] = ti.schema.Schema[c].Type
	}
	return ts
}
