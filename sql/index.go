package qsql

import (
	"fmt"

	gms "github.com/dolthub/go-mysql-server/sql"

	"github.com/quorumdb/quorumdb/kv"
)

// primaryIndexName is the engine's name of a primary key index.
const primaryIndexName = "PRIMARY"

// index is the engine's view of one of our indexes (primary or secondary).
// Scans come back in key order, which equals the engine's comparison order
// (the catalog codec's invariant), so it is an OrderedIndex.
type index struct {
	info *tableInfo
	idx  *indexInfo // nil: the primary index
}

var (
	_ gms.Index         = (*index)(nil)
	_ gms.ExtendedIndex = (*index)(nil)
	_ gms.OrderedIndex  = (*index)(nil)
)

func (x *index) ID() string {
	if x.idx == nil {
		return primaryIndexName
	}
	return x.idx.name
}
func (x *index) Database() string { return x.info.dbName }
func (x *index) Table() string    { return x.info.name }

func (x *index) cols() []int {
	if x.idx == nil {
		return x.info.pkOrd
	}
	return x.idx.cols
}

func (x *index) colExpr(c int) string {
	return lowerName(x.info.name) + "." + lowerName(x.info.schema.Schema[c].Name)
}

func (x *index) Expressions() []string {
	cols := x.cols()
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = x.colExpr(c)
	}
	return out
}

func (x *index) extendedCols() []int {
	cols := append([]int(nil), x.cols()...)
	if x.idx == nil {
		return cols
	}
	seen := make(map[int]bool, len(cols))
	for _, c := range cols {
		seen[c] = true
	}
	for _, c := range x.info.pkOrd {
		if !seen[c] {
			cols = append(cols, c)
		}
	}
	return cols
}

func (x *index) ExtendedExpressions() []string {
	cols := x.extendedCols()
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = x.colExpr(c)
	}
	return out
}

func (x *index) columnTypes(cols []int) []gms.ColumnExpressionType {
	out := make([]gms.ColumnExpressionType, len(cols))
	for i, c := range cols {
		out[i] = gms.ColumnExpressionType{Expression: x.colExpr(c), Type: x.info.schema.Schema[c].Type}
	}
	return out
}

func (x *index) ColumnExpressionTypes() []gms.ColumnExpressionType {
	return x.columnTypes(x.cols())
}

func (x *index) ExtendedColumnExpressionTypes() []gms.ColumnExpressionType {
	return x.columnTypes(x.extendedCols())
}

func (x *index) IsUnique() bool        { return x.idx == nil || x.idx.unique }
func (x *index) IsSpatial() bool       { return false }
func (x *index) IsFullText() bool      { return false }
func (x *index) IsVector() bool        { return false }
func (x *index) IsGenerated() bool     { return false }
func (x *index) IndexType() string     { return "BTREE" }
func (x *index) Order() gms.IndexOrder { return gms.IndexOrderAsc }
func (x *index) Reversible() bool      { return true }

func (x *index) Comment() string {
	if x.idx == nil {
		return ""
	}
	return x.idx.comment
}

func (x *index) PrefixLengths() []uint16 {
	if x.idx == nil {
		return nil
	}
	return x.idx.prefixLens
}

func (x *index) CanSupport(*gms.Context, ...gms.Range) bool { return true }

func (x *index) CanSupportOrderBy(gms.Expression) bool { return false }

// keyTypes and prefix describe the index's key for range conversion.
func (x *index) keyTypes() []gms.Type {
	if x.idx == nil {
		return x.info.keyTypes
	}
	return x.info.indexKeyTypes(x.idx)
}

func (x *index) keyPrefix() []byte {
	if x.idx == nil {
		return x.info.primaryPrefix
	}
	return x.idx.prefix
}

// GetIndexes lists the primary key (when declared) and secondary indexes.
func (t *Table) GetIndexes(*gms.Context) ([]gms.Index, error) {
	out := make([]gms.Index, 0, len(t.info.indexes)+1)
	if t.info.hasPrimaryKey() {
		out = append(out, &index{info: t.info})
	}
	for _, idx := range t.info.indexes {
		out = append(out, &index{info: t.info, idx: idx})
	}
	return out, nil
}

// PreciseMatch is false: the engine keeps its filters above index lookups.
// Our spans are exact for most ranges, but a bound that cannot be pinned in
// the key (lossy type conversion, prefix lengths) makes them wider, and
// the filter re-check is what keeps results exact then.
func (t *Table) PreciseMatch() bool { return false }

// IndexedAccess returns the table narrowed to the lookup.
func (t *Table) IndexedAccess(_ *gms.Context, lookup gms.IndexLookup) gms.IndexedTable {
	nt := *t
	nt.lookup = &lookup
	return &nt
}

// LookupPartitions turns the lookup's ranges into spans of the index.
func (t *Table) LookupPartitions(ctx *gms.Context, lookup gms.IndexLookup) (gms.PartitionIter, error) {
	x, ok := lookup.Index.(*index)
	if !ok {
		return nil, fmt.Errorf("qsql: lookup on foreign index %T", lookup.Index)
	}
	if lookup.IsEmptyRange {
		return gms.PartitionsToPartitionIter(), nil
	}
	ranges, ok := lookup.Ranges.(gms.MySQLRangeCollection)
	if !ok {
		return nil, fmt.Errorf("qsql: unsupported range collection %T", lookup.Ranges)
	}
	spans, _, err := rangesToSpans(ctx, x.keyPrefix(), x.keyTypes(), ranges)
	if err != nil {
		return nil, err
	}
	if len(spans) == 0 {
		return gms.PartitionsToPartitionIter(), nil
	}
	return gms.PartitionsToPartitionIter(&scanPartition{index: x.idx, spans: spans, reverse: lookup.IsReverse}), nil
}

var _ = kv.Span{}
