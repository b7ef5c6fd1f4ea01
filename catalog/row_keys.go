package catalog

import (
	"fmt"
	"unicode/utf8"

	"github.com/dolthub/go-mysql-server/sql"

	"github.com/quorumdb/quorumdb/kv"
)

// Table is a descriptor resolved for the data path: parsed column types,
// the row codec and the column positions of every index. It is immutable;
// the SQL layer builds one per descriptor version (Resolve) and caches it.
type Table struct {
	Desc   *TableDescriptor
	Schema sql.PrimaryKeySchema
	// Row encodes and decodes full rows, columns in schema order.
	Row *RowCodec

	types     []sql.Type
	pkPos     []int
	indexPos  map[uint32][]int
	pkPrefix  []byte
	indexByID map[uint32]*IndexDescriptor
}

// Resolve parses the descriptor's types and prepares its codecs.
func (t *TableDescriptor) Resolve() (*Table, error) {
	if err := t.validate(false); err != nil {
		return nil, err
	}
	schema, err := t.PrimaryKeySchema() // parses every type
	if err != nil {
		return nil, err
	}
	rt := &Table{
		Desc:      t,
		Schema:    schema,
		types:     make([]sql.Type, len(schema.Schema)),
		pkPos:     schema.PkOrdinals,
		indexPos:  map[uint32][]int{},
		indexByID: map[uint32]*IndexDescriptor{},
		pkPrefix:  kv.TableKeyPrefix(t.ID, PrimaryIndexID),
	}
	cols := make([]RowColumn, len(t.Columns))
	for i, col := range schema.Schema {
		rt.types[i] = col.Type
		cols[i] = RowColumn{ID: t.Columns[i].ID, Type: col.Type}
	}
	if rt.Row, err = NewRowCodec(cols); err != nil {
		return nil, fmt.Errorf("table %s: %w", t.Name, err)
	}
	for _, pos := range rt.pkPos {
		if !KeyIsDecodable(rt.types[pos]) {
			// Allowed (the row holds the value), but the type must be a key type.
			if k, err := kindOf(rt.types[pos]); err != nil || k == kindJSON {
				return nil, fmt.Errorf("%w: primary key column %s of type %s", ErrNotKeyType, schema.Schema[pos].Name, rt.types[pos])
			}
		}
	}
	for i := range t.Indexes {
		ix := &t.Indexes[i]
		pos := make([]int, len(ix.ColumnIDs))
		for j, id := range ix.ColumnIDs {
			_, p := t.ColumnByID(id)
			if k, err := kindOf(rt.types[p]); err != nil || k == kindJSON {
				return nil, fmt.Errorf("%w: index %s column %s of type %s", ErrNotKeyType, ix.Name, t.Columns[p].Name, rt.types[p])
			}
			pos[j] = p
		}
		rt.indexPos[ix.ID] = pos
		rt.indexByID[ix.ID] = ix
	}
	rt.indexByID[PrimaryIndexID] = &t.PrimaryIndex
	rt.indexPos[PrimaryIndexID] = rt.pkPos
	return rt, nil
}

// Types returns the column types in schema order (do not modify).
func (t *Table) Types() []sql.Type { return t.types }

// Index returns the index with ID id (PrimaryIndexID for the primary), or nil.
func (t *Table) Index(id uint32) *IndexDescriptor { return t.indexByID[id] }

// IndexPrefix returns kv.TableKeyPrefix(table, index): the span of the
// index is PrefixSpan(IndexPrefix(id)).
func (t *Table) IndexPrefix(indexID uint32) []byte { return kv.TableKeyPrefix(t.Desc.ID, indexID) }

// appendColumns encodes row[pos…] (index prefix lengths applied when given).
func (t *Table) appendColumns(dst []byte, row sql.Row, pos []int, prefixLengths []int64) ([]byte, error) {
	for j, p := range pos {
		v := row[p]
		if j < len(prefixLengths) && prefixLengths[j] > 0 {
			v = truncatePrefix(v, prefixLengths[j])
		}
		var err error
		if dst, err = EncodeKey(dst, t.types[p], v); err != nil {
			return nil, fmt.Errorf("table %s column %s: %w", t.Desc.Name, t.Schema.Schema[p].Name, err)
		}
	}
	return dst, nil
}

// truncatePrefix applies an index prefix length: n characters of a string,
// n bytes of a binary string.
func truncatePrefix(v any, n int64) any {
	switch x := v.(type) {
	case string:
		i, count := 0, int64(0)
		for i < len(x) && count < n {
			_, size := utf8.DecodeRuneInString(x[i:])
			i += size
			count++
		}
		return x[:i]
	case []byte:
		if int64(len(x)) > n {
			return x[:n]
		}
	}
	return v
}

func (t *Table) checkRow(row sql.Row) error {
	if len(row) != len(t.types) {
		return fmt.Errorf("%w: row has %d values, table %s has %d columns", ErrInvalidValue, len(row), t.Desc.Name, len(t.types))
	}
	return nil
}

// PrimaryKey returns the row's key under the primary index:
// kv.TableKeyPrefix(table, PrimaryIndexID) + the primary key columns.
// A keyless table has no primary key columns: use PrimaryKeyForRowID.
func PrimaryKey(t *Table, row sql.Row) ([]byte, error) {
	if err := t.checkRow(row); err != nil {
		return nil, err
	}
	if len(t.pkPos) == 0 {
		return nil, fmt.Errorf("%w: table %s has no primary key (use PrimaryKeyForRowID)", ErrInvalidDescriptor, t.Desc.Name)
	}
	for _, p := range t.pkPos {
		if row[p] == nil {
			return nil, fmt.Errorf("%w: NULL in primary key column %s", ErrInvalidValue, t.Schema.Schema[p].Name)
		}
	}
	return t.appendColumns(append(make([]byte, 0, 32), t.pkPrefix...), row, t.pkPos, t.Desc.PrimaryIndex.PrefixLengths)
}

// PrimaryKeyForRowID is the primary key of a keyless table's row, keyed by
// a hidden row ID the SQL layer allocates.
func PrimaryKeyForRowID(t *Table, rowID uint64) []byte {
	k := append(make([]byte, 0, 20), t.pkPrefix...)
	return appendOrderedUint(append(k, keyValue), rowID)
}

// primaryKeySuffix returns the encoded primary key columns of row (the part
// of PrimaryKey after the index prefix).
func primaryKeySuffix(t *Table, row sql.Row) ([]byte, error) {
	pk, err := PrimaryKey(t, row)
	if err != nil {
		return nil, err
	}
	return pk[len(t.pkPrefix):], nil
}

// SecondaryIndexKey returns the key of row in a non-unique secondary index:
// kv.TableKeyPrefix(table, index) + index columns + primary key columns. Its
// value is empty. For a keyless table pass the row's PrimaryKeyForRowID as
// pk; otherwise pk is nil and the key is computed from the row.
func SecondaryIndexKey(t *Table, ix *IndexDescriptor, row sql.Row, pk []byte) ([]byte, error) {
	pos, err := t.indexPositions(ix)
	if err != nil {
		return nil, err
	}
	if err := t.checkRow(row); err != nil {
		return nil, err
	}
	suffix, err := t.pkSuffixOrGiven(row, pk)
	if err != nil {
		return nil, err
	}
	k, err := t.appendColumns(append(make([]byte, 0, 48), t.IndexPrefix(ix.ID)...), row, pos, ix.PrefixLengths)
	if err != nil {
		return nil, err
	}
	return append(k, suffix...), nil
}

// UniqueIndexKey returns the entry of row in a unique index: the key is
// kv.TableKeyPrefix(table, index) + index columns and the value is the
// encoded primary key columns (PrimaryKeyFromIndexEntry turns it back into
// the row's key). Two rows conflict exactly when their keys are equal. A row
// with NULL in any indexed column never conflicts (SQL NULLs are distinct),
// so its key also carries the primary key columns. pk is as in
// SecondaryIndexKey.
func UniqueIndexKey(t *Table, ix *IndexDescriptor, row sql.Row, pk []byte) (key, value []byte, err error) {
	pos, err := t.indexPositions(ix)
	if err != nil {
		return nil, nil, err
	}
	if err := t.checkRow(row); err != nil {
		return nil, nil, err
	}
	suffix, err := t.pkSuffixOrGiven(row, pk)
	if err != nil {
		return nil, nil, err
	}
	key, err = t.appendColumns(append(make([]byte, 0, 48), t.IndexPrefix(ix.ID)...), row, pos, ix.PrefixLengths)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range pos {
		if row[p] == nil {
			key = append(key, suffix...)
			break
		}
	}
	return key, suffix, nil
}

func (t *Table) pkSuffixOrGiven(row sql.Row, pk []byte) ([]byte, error) {
	if pk != nil {
		if len(pk) < len(t.pkPrefix) || string(pk[:len(t.pkPrefix)]) != string(t.pkPrefix) {
			return nil, fmt.Errorf("%w: primary key %x is not in table %s", ErrInvalidValue, pk, t.Desc.Name)
		}
		return pk[len(t.pkPrefix):], nil
	}
	return primaryKeySuffix(t, row)
}

func (t *Table) indexPositions(ix *IndexDescriptor) ([]int, error) {
	pos, ok := t.indexPos[ix.ID]
	if !ok || ix.ID == PrimaryIndexID {
		return nil, fmt.Errorf("%w: index %s (ID %d) is not a secondary index of table %s", ErrInvalidDescriptor, ix.Name, ix.ID, t.Desc.Name)
	}
	return pos, nil
}

// IndexKeyPrefix encodes the leading values of an index (vals[i] for the
// index's i-th column, len(vals) ≤ number of columns) after the index
// prefix: PrefixSpan of it holds exactly the entries whose leading columns
// equal vals (point and prefix lookups; SpanBetween for ranges).
func IndexKeyPrefix(t *Table, indexID uint32, vals []any) ([]byte, error) {
	pos, ok := t.indexPos[indexID]
	if !ok {
		return nil, fmt.Errorf("%w: no index ID %d in table %s", ErrInvalidDescriptor, indexID, t.Desc.Name)
	}
	if len(vals) > len(pos) {
		return nil, fmt.Errorf("%w: %d values for an index of %d columns", ErrInvalidValue, len(vals), len(pos))
	}
	k := append(make([]byte, 0, 32), t.IndexPrefix(indexID)...)
	for j, v := range vals {
		var err error
		if k, err = EncodeKey(k, t.types[pos[j]], v); err != nil {
			return nil, fmt.Errorf("table %s column %s: %w", t.Desc.Name, t.Schema.Schema[pos[j]].Name, err)
		}
	}
	return k, nil
}

// PrimaryKeyFromIndexEntry returns the primary key of the row an index
// entry points at: for a unique index the value, for a non-unique index the
// columns after the indexed ones.
func PrimaryKeyFromIndexEntry(t *Table, ix *IndexDescriptor, key, value []byte) ([]byte, error) {
	pos, err := t.indexPositions(ix)
	if err != nil {
		return nil, err
	}
	if ix.Unique {
		return append(append(make([]byte, 0, len(t.pkPrefix)+len(value)), t.pkPrefix...), value...), nil
	}
	prefix := t.IndexPrefix(ix.ID)
	if len(key) < len(prefix) || string(key[:len(prefix)]) != string(prefix) {
		return nil, fmt.Errorf("%w: key %x is not in index %s", ErrCorruptKey, key, ix.Name)
	}
	rest := key[len(prefix):]
	for _, p := range pos {
		if rest, err = SkipKey(rest, t.types[p]); err != nil {
			return nil, fmt.Errorf("index %s: %w", ix.Name, err)
		}
	}
	return append(append(make([]byte, 0, len(t.pkPrefix)+len(rest)), t.pkPrefix...), rest...), nil
}

// DecodePrimaryKey returns the primary key values of a key built by
// PrimaryKey, in primary key column order. If a column's key is a
// collation weight string the result is ErrKeyNotDecodable (read the row).
func DecodePrimaryKey(t *Table, key []byte) ([]any, error) {
	if len(key) < len(t.pkPrefix) || string(key[:len(t.pkPrefix)]) != string(t.pkPrefix) {
		return nil, fmt.Errorf("%w: key %x is not in table %s", ErrCorruptKey, key, t.Desc.Name)
	}
	rest := key[len(t.pkPrefix):]
	vals := make([]any, len(t.pkPos))
	for j, p := range t.pkPos {
		v, r, err := DecodeKey(rest, t.types[p])
		if err != nil {
			return nil, fmt.Errorf("table %s column %s: %w", t.Desc.Name, t.Schema.Schema[p].Name, err)
		}
		vals[j], rest = v, r
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes in primary key of %s", ErrCorruptKey, len(rest), t.Desc.Name)
	}
	return vals, nil
}
