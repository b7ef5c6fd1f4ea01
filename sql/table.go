package qsql

import (
	"fmt"
	"strings"

	gms "github.com/dolthub/go-mysql-server/sql"

	"github.com/quorumdb/quorumdb/kv"
)

// Table is one table as seen by one statement: the schema read from the
// catalog in the statement's transaction, plus an optional projection and
// index lookup. Row data is always read and written through the session's
// current transaction.
type Table struct {
	db   *Database
	info *tableInfo
	// projection: indexes into info.schema of the columns returned, nil
	// for all.
	projection []int
	projNames  []string
	projSchema gms.Schema
	// lookup narrows reads to index spans (IndexedAccess).
	lookup *gms.IndexLookup
	// ownWrites: reads see the running statement's writes (tables reached
	// through the foreign key editor); plain scans do not (stmtOverlay).
	ownWrites bool
	// asOf: the table is read AS OF a past timestamp (asof.go): scans
	// read in that snapshot, writes are refused.
	asOf *asOfRead
}

var (
	_ gms.Table                    = (*Table)(nil)
	_ gms.ProjectedTable           = (*Table)(nil)
	_ gms.PrimaryKeyTable          = (*Table)(nil)
	_ gms.CommentedTable           = (*Table)(nil)
	_ gms.IndexAddressableTable    = (*Table)(nil)
	_ gms.IndexedTable             = (*Table)(nil)
	_ gms.InsertableTable          = (*Table)(nil)
	_ gms.UpdatableTable           = (*Table)(nil)
	_ gms.DeletableTable           = (*Table)(nil)
	_ gms.ReplaceableTable         = (*Table)(nil)
	_ gms.TruncateableTable        = (*Table)(nil)
	_ gms.AutoIncrementTable       = (*Table)(nil)
	_ gms.CheckTable               = (*Table)(nil)
	_ gms.CheckAlterableTable      = (*Table)(nil)
	_ gms.ForeignKeyTable          = (*Table)(nil)
	_ gms.IndexAlterableTable      = (*Table)(nil)
	_ gms.AlterableTable           = (*Table)(nil)
	_ gms.StatisticsTable          = (*Table)(nil)
	_ gms.PrimaryKeyAlterableTable = (*Table)(nil)
)

func (t *Table) Name() string { return t.info.name }

// IsTemporary reports false: QuorumDB has no temporary tables. Implemented
// because go-mysql-server's READ ONLY transaction check calls IsTemporary on
// every written table through a nil interface when a table lacks it (a write
// in a READ ONLY transaction dropped the connection; it now gets 1792).
func (t *Table) IsTemporary() bool          { return false }
func (t *Table) String() string             { return t.info.name }
func (t *Table) Comment() string            { return t.info.comment }
func (t *Table) Collation() gms.CollationID { return t.info.collation }

// Schema is the projected schema when a projection is set.
func (t *Table) Schema() gms.Schema {
	if t.projSchema != nil {
		return t.projSchema
	}
	return t.info.schema.Schema
}

// PrimaryKeySchema is the full schema with its primary key ordinals.
func (t *Table) PrimaryKeySchema() gms.PrimaryKeySchema { return t.info.schema }

// WithProjections returns the table returning only the named columns.
func (t *Table) WithProjections(colNames []string) gms.Table {
	if len(colNames) == 0 {
		nt := *t
		nt.projection, nt.projNames, nt.projSchema = nil, nil, nil
		return &nt
	}
	idx := make([]int, 0, len(colNames))
	sch := make(gms.Schema, 0, len(colNames))
	for _, n := range colNames {
		i := t.info.schema.Schema.IndexOfColName(n)
		if i < 0 {
			// Unknown name: keep reading everything (the engine will
			// complain about the column itself).
			return t
		}
		idx = append(idx, i)
		sch = append(sch, t.info.schema.Schema[i])
	}
	nt := *t
	nt.projection, nt.projNames, nt.projSchema = idx, colNames, sch
	return &nt
}

// Projections names the projected columns.
func (t *Table) Projections() []string { return t.projNames }

func (t *Table) project(row gms.Row) gms.Row {
	if t.projection == nil {
		return row
	}
	out := make(gms.Row, len(t.projection))
	for i, c := range t.projection {
		out[i] = row[c]
	}
	return out
}

// scanPartition is the unit the engine iterates: a list of spans of one
// index, read in order.
type scanPartition struct {
	index   *indexInfo // nil: the primary index
	spans   []kv.Span
	reverse bool
	filter  *rangeFilter // re-check of rows when the spans are wider
}

func (p *scanPartition) Key() []byte { return []byte("scan") }

// Partitions returns one partition: the whole primary index (or the lookup).
func (t *Table) Partitions(ctx *gms.Context) (gms.PartitionIter, error) {
	if t.lookup != nil {
		return t.LookupPartitions(ctx, *t.lookup)
	}
	start, end := t.info.primarySpan()
	return gms.PartitionsToPartitionIter(&scanPartition{spans: []kv.Span{{Key: start, EndKey: end}}}), nil
}

// PartitionRows streams the partition's rows, fetched in batches.
func (t *Table) PartitionRows(ctx *gms.Context, part gms.Partition) (gms.RowIter, error) {
	p, ok := part.(*scanPartition)
	if !ok {
		return nil, fmt.Errorf("qsql: foreign partition %T", part)
	}
	kvt, release, err := t.scanTxn(ctx)
	if err != nil {
		return nil, err
	}
	w := stmtWriter{kvt: kvt}
	if t.ownWrites && t.asOf == nil {
		w = writerFor(ctx, kvt)
	}
	return &rowIter{t: t, p: p, w: w, release: release, batch: t.db.srv.cfg.ScanBatchSize}, nil
}

func lowerName(s string) string { return strings.ToLower(s) }
