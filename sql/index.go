package qsql

import (
	"bytes"
	"fmt"
	"sort"

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
	return x.info.name + "." + x.info.schema.Schema[c].Name
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

// GetIndexes lists the primary key (when declared), then the secondary
// indexes by name (the order SHOW CREATE TABLE prints).
func (t *Table) GetIndexes(*gms.Context) ([]gms.Index, error) {
	out := make([]gms.Index, 0, len(t.info.indexes)+1)
	if t.info.hasPrimaryKey() {
		out = append(out, &index{info: t.info})
	}
	sec := make([]*indexInfo, len(t.info.indexes))
	copy(sec, t.info.indexes)
	sort.Slice(sec, func(i, j int) bool { return lowerName(sec[i].name) < lowerName(sec[j].name) })
	for _, idx := range sec {
		out = append(out, &index{info: t.info, idx: idx})
	}
	return out, nil
}

// rangeFilter re-checks rows against the lookup's ranges.
type rangeFilter struct {
	ranges gms.MySQLRangeCollection
	cols   []int // table column of each range column
	info   *tableInfo
}

func (f *rangeFilter) match(ctx *gms.Context, row gms.Row) (bool, error) {
	for _, r := range f.ranges {
		ok, err := f.matchRange(ctx, r, row)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// matchRange evaluates one range with NULL ordered before every value.
func (f *rangeFilter) matchRange(ctx *gms.Context, r gms.MySQLRange, row gms.Row) (bool, error) {
	for i, ce := range r {
		if i >= len(f.cols) {
			break
		}
		v := row[f.cols[i]]
		// Compare in the range's own type, as the engine built it (a
		// fractional bound on an integer column is compared as a decimal,
		// not rounded into the column type).
		typ := ce.Typ
		if typ == nil {
			typ = f.info.schema.Schema[f.cols[i]].Type
		}
		switch c := ce.LowerBound.(type) {
		case gms.BelowNull:
		case gms.AboveNull:
			if v == nil {
				return false, nil
			}
		case gms.Below:
			if v == nil {
				return false, nil
			}
			cmp, err := typ.Compare(ctx, v, c.Key)
			if err != nil || cmp < 0 {
				return false, err
			}
		case gms.Above:
			if v == nil {
				return false, nil
			}
			cmp, err := typ.Compare(ctx, v, c.Key)
			if err != nil || cmp <= 0 {
				return false, err
			}
		case gms.AboveAll:
			return false, nil
		}
		switch c := ce.UpperBound.(type) {
		case gms.AboveAll, gms.AboveNull:
			if _, isAN := c.(gms.AboveNull); isAN && v != nil {
				return false, nil
			}
		case gms.BelowNull:
			return false, nil
		case gms.Below:
			if v != nil {
				cmp, err := typ.Compare(ctx, v, c.Key)
				if err != nil || cmp >= 0 {
					return false, err
				}
			}
		case gms.Above:
			if v != nil {
				cmp, err := typ.Compare(ctx, v, c.Key)
				if err != nil || cmp > 0 {
					return false, err
				}
			}
		}
	}
	return true, nil
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
	spans, precise, err := rangesToSpans(ctx, x.keyPrefix(), x.keyTypes(), ranges)
	if err != nil {
		return nil, err
	}
	if len(spans) == 0 {
		return gms.PartitionsToPartitionIter(), nil
	}
	p := &scanPartition{index: x.idx, spans: spans, reverse: lookup.IsReverse}
	if !precise {
		// The spans are wider than the ranges: re-check every row, so
		// lookups are exact (the foreign key checks rely on it), and merge
		// spans that now overlap so no row comes back twice.
		p.filter = &rangeFilter{ranges: ranges, cols: x.extendedCols(), info: x.info}
		p.spans = mergeSpans(spans, lookup.IsReverse)
	}
	return gms.PartitionsToPartitionIter(p), nil
}

// mergeSpans returns the union of spans as disjoint spans in key order
// (descending when reverse).
func mergeSpans(spans []kv.Span, reverse bool) []kv.Span {
	sorted := append([]kv.Span(nil), spans...)
	sort.Slice(sorted, func(i, j int) bool { return bytes.Compare(sorted[i].Key, sorted[j].Key) < 0 })
	var out []kv.Span
	for _, sp := range sorted {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.EndKey == nil || bytes.Compare(sp.Key, last.EndKey) <= 0 {
				if last.EndKey != nil && (sp.EndKey == nil || bytes.Compare(sp.EndKey, last.EndKey) > 0) {
					last.EndKey = sp.EndKey
				}
				continue
			}
		}
		out = append(out, sp)
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}
