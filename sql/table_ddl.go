package qsql

import (
	"errors"
	"fmt"
	"sort"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"

	"github.com/quorumdb/quorumdb/catalog"
)

// alter changes the table's descriptor inside the session's transaction:
// it reads the stored descriptor afresh (the engine may call several DDL
// methods on one Table object within a statement), applies change, writes
// it back (version checked by the catalog) and makes this Table see the new
// version.
func (t *Table) alter(ctx *gms.Context, change func(d *catalog.TableDescriptor) error) (old, updated *tableInfo, err error) {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return nil, nil, err
	}
	tx.invalidateSchema()
	store := t.db.srv.store
	cur, err := store.loadTableInfo(ctx, kvt, t.info.id)
	if err != nil {
		return nil, nil, err
	}
	d := cur.desc.Clone()
	if err := change(d); err != nil {
		return nil, nil, err
	}
	if err := store.updateTable(ctx, kvt, cur.desc, d); err != nil {
		return nil, nil, err
	}
	nu, err := store.loadTableInfo(ctx, kvt, t.info.id)
	if err != nil {
		return nil, nil, err
	}
	t.info = nu
	return cur, nu, nil
}

// descError turns a catalog validation error into the engine's error.
func descError(err error, fallback error) error {
	if errors.Is(err, catalog.ErrInvalidDescriptor) && fallback != nil {
		return fallback
	}
	return err
}

// CreateIndex adds a secondary index and backfills it from the rows.
func (t *Table) CreateIndex(ctx *gms.Context, def gms.IndexDef) error {
	if def.IsFullText() || def.IsSpatial() || def.IsVector() {
		return gms.ErrUnsupportedFeature.New("FULLTEXT, SPATIAL and VECTOR indexes")
	}
	if def.IsPrimary() {
		cols := make([]gms.IndexColumn, len(def.Columns))
		copy(cols, def.Columns)
		return t.CreatePrimaryKey(ctx, cols)
	}
	if def.Name == "" {
		def.Name = t.freeIndexName(def)
	}
	if t.info.indexByName(def.Name) != nil || sameName(def.Name, primaryIndexName) {
		return gms.ErrDuplicateKey.New(def.Name)
	}
	var added *catalog.IndexDescriptor
	_, nu, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		for _, c := range def.Columns {
			if col, _ := d.ColumnByName(c.Name); col == nil {
				return gms.ErrKeyColumnDoesNotExist.New(c.Name)
			}
		}
		ix, err := d.AddIndex(def)
		if err != nil {
			return descError(err, gms.ErrDuplicateKey.New(def.Name))
		}
		cp := *ix
		added = &cp
		return nil
	})
	if err != nil {
		return err
	}
	var idx *indexInfo
	for _, x := range nu.indexes {
		if x.id == added.ID {
			idx = x
		}
	}
	if idx == nil {
		return fmt.Errorf("qsql: index %s missing after creation", def.Name)
	}
	return t.backfillIndex(ctx, nu, idx)
}

// freeIndexName names an unnamed index after its first column, as MySQL.
func (t *Table) freeIndexName(def gms.IndexDef) string {
	base := "idx"
	if len(def.Columns) > 0 {
		base = def.Columns[0].Name
	}
	name := base
	for i := 2; t.info.indexByName(name) != nil || sameName(name, primaryIndexName); i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	return name
}

// backfillIndex writes idx's entries for every row, enforcing uniqueness.
func (t *Table) backfillIndex(ctx *gms.Context, info *tableInfo, idx *indexInfo) error {
	_, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	return t.forEachRow(ctx, kvt, info, "backfill index "+idx.name, func(pk []byte, row gms.Row) error {
		if idx.unique {
			probe, ok, err := info.uniqueProbeKey(idx, row)
			if err != nil {
				return err
			}
			if ok {
				v, found, err := kvt.Get(ctx, probe)
				if err != nil {
					return convertTxnError("backfill index "+idx.name, err)
				}
				if found {
					otherPK, _ := info.primaryKeyFromIndexEntry(idx, probe, v)
					if string(otherPK) != string(pk) {
						return gms.NewUniqueKeyErr(info.keyString(row, idx.cols), false, row)
					}
				}
			}
		}
		k, v, err := info.indexEntry(idx, row, pk)
		if err != nil {
			return err
		}
		if err := kvt.Put(ctx, k, v); err != nil {
			return convertTxnError("backfill index "+idx.name, err)
		}
		return nil
	})
}

// forEachRow decodes every row of info's table in kvt, in key order, and
// calls fn with its primary key and values; what names the scan in errors.
func (t *Table) forEachRow(ctx *gms.Context, kvt KVTxn, info *tableInfo, what string, fn func(pk []byte, row gms.Row) error) error {
	start, end := info.primarySpan()
	it := kvt.NewIterator(ctx, start, end, false, t.db.srv.cfg.ScanBatchSize)
	defer it.Close()
	for {
		e, ok, err := it.Next(ctx)
		if err != nil {
			return convertTxnError(what, err)
		}
		if !ok {
			return nil
		}
		row, err := info.decodeRow(e.Key, e.Value)
		if err != nil {
			return err
		}
		if err := fn(e.Key, row); err != nil {
			return err
		}
	}
}

// readRows returns every row of info's table in kvt, in key order.
func (t *Table) readRows(ctx *gms.Context, kvt KVTxn, info *tableInfo, what string) ([]gms.Row, error) {
	var rows []gms.Row
	err := t.forEachRow(ctx, kvt, info, what, func(_ []byte, row gms.Row) error {
		rows = append(rows, row)
		return nil
	})
	return rows, err
}

// DropIndex removes a secondary index and its entries.
func (t *Table) DropIndex(ctx *gms.Context, name string) error {
	if sameName(name, primaryIndexName) {
		return t.DropPrimaryKey(ctx)
	}
	old := t.info.indexByName(name)
	if old == nil {
		return gms.ErrIndexNotFound.New(name)
	}
	cur, _, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		_, err := d.DropIndex(name)
		return descError(err, gms.ErrIndexNotFound.New(name))
	})
	if err != nil {
		return err
	}
	_, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	if idx := cur.indexByName(name); idx != nil {
		return deletePrefix(ctx, kvt, idx.prefix)
	}
	return nil
}

// RenameIndex renames a secondary index (its keys do not change).
func (t *Table) RenameIndex(ctx *gms.Context, from, to string) error {
	if t.info.indexByName(to) != nil {
		return gms.ErrDuplicateKey.New(to)
	}
	_, _, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		ix := d.IndexByName(from)
		if ix == nil || ix.ID == catalog.PrimaryIndexID {
			return gms.ErrIndexNotFound.New(from)
		}
		ix.Name = to
		return d.Validate()
	})
	return err
}

// GetChecks lists the CHECK constraints (the engine evaluates them).
func (t *Table) GetChecks(*gms.Context) ([]gms.CheckDefinition, error) {
	return append([]gms.CheckDefinition(nil), t.info.checks...), nil
}

// CreateCheck stores a CHECK constraint.
func (t *Table) CreateCheck(ctx *gms.Context, check *gms.CheckDefinition) error {
	_, _, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		c := *check
		if c.Name == "" {
			c.Name = freeCheckName(d)
		}
		for _, ex := range d.Checks {
			if sameName(ex.Name, c.Name) {
				return gms.ErrForeignKeyDuplicateName.New(c.Name)
			}
		}
		d.Checks = append(d.Checks, catalog.CheckFromGMS(c))
		return d.Validate()
	})
	return err
}

// freeCheckName names an unnamed check as MySQL does: <table>_chk_<n>.
func freeCheckName(d *catalog.TableDescriptor) string {
	for i := 1; ; i++ {
		name := fmt.Sprintf("%s_chk_%d", d.Name, i)
		taken := false
		for _, c := range d.Checks {
			taken = taken || sameName(c.Name, name)
		}
		if !taken {
			return name
		}
	}
}

// DropCheck removes a CHECK constraint.
func (t *Table) DropCheck(ctx *gms.Context, name string) error {
	_, _, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		for i, c := range d.Checks {
			if sameName(c.Name, name) {
				d.Checks = append(d.Checks[:i], d.Checks[i+1:]...)
				return nil
			}
		}
		return gms.ErrUnknownConstraint.New(name)
	})
	return err
}

// AddColumn adds a column. Existing rows read it as NULL until the engine
// fills defaults in (it updates every row through Updater when the column
// has a default or is NOT NULL).
func (t *Table) AddColumn(ctx *gms.Context, column *gms.Column, order *gms.ColumnOrder) error {
	if t.info.schema.Schema.IndexOfColName(column.Name) >= 0 {
		return gms.ErrColumnExists.New(column.Name)
	}
	if column.PrimaryKey {
		return gms.ErrUnsupportedFeature.New("adding a primary key column")
	}
	cur, nu, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		_, err := d.AddColumn(column, order)
		return descError(err, nil)
	})
	if err != nil {
		return err
	}
	if column.Default == nil && column.Nullable && cur.hasPrimaryKey() {
		return nil
	}
	return t.fillAddedColumn(ctx, cur, nu, column)
}

// fillAddedColumn writes the new column's default into every existing row.
//
// go-mysql-server v0.20.0 then runs its own fill (UpdateRowsWithDefaults)
// for backends that do not rewrite tables, evaluating the default
// expression, which it bound to the pre-ALTER column positions, over rows
// in the new layout: with FIRST/AFTER that reads the wrong columns. So the
// fill is done here over the old rows (where the binding is right), and the
// engine's follow-up updates of that column in the same statement are
// ignored (Transaction.addColumnFill).
func (t *Table) fillAddedColumn(ctx *gms.Context, cur, nu *tableInfo, column *gms.Column) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	if tx.stmtActive {
		return fmt.Errorf("qsql: ADD COLUMN inside a running DML statement")
	}
	newPos := nu.schema.Schema.IndexOfColName(column.Name)
	rows, err := t.readRows(ctx, kvt, cur, "fill "+column.Name)
	if err != nil {
		return err
	}
	value := func(old gms.Row) (any, error) {
		var v any
		var err error
		switch {
		case column.Default != nil:
			if v, err = column.Default.Eval(ctx, old); err != nil {
				return nil, err
			}
		case !column.Nullable:
			v = column.Type.Zero()
		}
		if v != nil {
			if v, _, err = column.Type.Convert(ctx, v); err != nil {
				return nil, err
			}
		}
		return v, nil
	}
	fill := &columnFill{tableID: nu.id, colID: nu.colIDs[newPos], pid: ctx.Pid()}
	if !cur.hasPrimaryKey() {
		tx.addColumnFill = fill
		// A keyless table's hidden keys hash the row's encoding, which the
		// new column changes: rewrite every row under a new key.
		return t.rewriteRows(ctx, cur, nu, func(old gms.Row) (gms.Row, error) {
			v, err := value(old)
			if err != nil {
				return nil, err
			}
			row := projectByIDs(cur, nu, old)
			row[newPos] = v
			return row, nil
		})
	}
	ed := (&Table{db: t.db, info: nu}).newEditor()
	for _, old := range rows {
		v, err := value(old)
		if err != nil {
			return err
		}
		before := projectByIDs(cur, nu, old)
		after := before.Copy()
		after[newPos] = v
		if err := ed.Update(ctx, before, after); err != nil {
			return err
		}
	}
	tx.addColumnFill = fill
	return nil
}

// columnFill marks a column an ALTER TABLE … ADD COLUMN statement already
// filled (see fillAddedColumn).
type columnFill struct {
	tableID uint32
	colID   uint32
	pid     uint64
}

// DropColumn drops a column; indexes over it are dropped with it (as the
// catalog defines), their entries deleted.
func (t *Table) DropColumn(ctx *gms.Context, name string) error {
	if t.info.schema.Schema.IndexOfColName(name) < 0 {
		return gms.ErrTableColumnNotFound.New(t.info.name, name)
	}
	var dropped []catalog.IndexDescriptor
	cur, nu, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		var err error
		dropped, err = d.DropColumn(name)
		return descError(err, nil)
	})
	if err != nil {
		return err
	}
	_, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	for _, ix := range dropped {
		if idx := cur.indexByName(ix.Name); idx != nil {
			if err := deletePrefix(ctx, kvt, idx.prefix); err != nil {
				return err
			}
		}
	}
	// Rewrite rows so the dropped column's bytes go away.
	return t.rewriteRows(ctx, cur, nu, func(row gms.Row) (gms.Row, error) {
		return projectByIDs(cur, nu, row), nil
	})
}

// ModifyColumn changes a column's name, type, default or position. Rows
// are rewritten (values converted to the new type) and indexes rebuilt.
func (t *Table) ModifyColumn(ctx *gms.Context, name string, column *gms.Column, order *gms.ColumnOrder) error {
	pos := t.info.schema.Schema.IndexOfColName(name)
	if pos < 0 {
		return gms.ErrTableColumnNotFound.New(t.info.name, name)
	}
	oldType := t.info.schema.Schema[pos].Type
	wasAutoInc := t.info.schema.Schema[pos].AutoIncrement
	cur, nu, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		c := *column
		c.PrimaryKey = t.info.schema.Schema[pos].PrimaryKey
		if c.PrimaryKey {
			c.Nullable = false
		}
		return descError(d.ModifyColumn(name, &c, order), nil)
	})
	if err != nil {
		return err
	}
	newPos := nu.schema.Schema.IndexOfColName(column.Name)
	if column.AutoIncrement && !wasAutoInc {
		// As MySQL: the sequence continues after the column's largest value.
		if err := t.restartAutoIncrementAfterMax(ctx, nu, newPos); err != nil {
			return err
		}
	}
	if oldType.Equals(column.Type) && sameColumnOrder(cur, nu) {
		return nil
	}
	return t.rewriteRows(ctx, cur, nu, func(row gms.Row) (gms.Row, error) {
		out := projectByIDs(cur, nu, row)
		if out[newPos] != nil {
			v, inRange, err := column.Type.Convert(ctx, out[newPos])
			if err != nil {
				return nil, err
			}
			if inRange != gms.InRange {
				return nil, gms.ErrValueOutOfRange.New(out[newPos], column.Type)
			}
			out[newPos] = v
		} else if !column.Nullable {
			return nil, gms.ErrInsertIntoNonNullableProvidedNull.New(column.Name)
		}
		return out, nil
	})
}

func sameColumnOrder(a, b *tableInfo) bool {
	if len(a.colIDs) != len(b.colIDs) {
		return false
	}
	for i := range a.colIDs {
		if a.colIDs[i] != b.colIDs[i] {
			return false
		}
	}
	return true
}

// projectByIDs maps a row of version from onto the columns of version to
// (by column ID; new columns NULL).
func projectByIDs(from, to *tableInfo, row gms.Row) gms.Row {
	pos := make(map[uint32]int, len(from.colIDs))
	for i, id := range from.colIDs {
		pos[id] = i
	}
	out := make(gms.Row, len(to.colIDs))
	for i, id := range to.colIDs {
		if p, ok := pos[id]; ok {
			out[i] = row[p]
		}
	}
	return out
}

// CreatePrimaryKey sets the primary key of a table (rows get new keys).
func (t *Table) CreatePrimaryKey(ctx *gms.Context, columns []gms.IndexColumn) error {
	if t.info.hasPrimaryKey() {
		return gms.ErrMultiplePrimaryKeysDefined.New()
	}
	cur, nu, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		names := make([]string, len(columns))
		for i, c := range columns {
			names[i] = c.Name
		}
		ids, err := columnIDsByName(d, names)
		if err != nil {
			return err
		}
		d.PrimaryIndex.ColumnIDs = ids
		for _, id := range ids {
			c, _ := d.ColumnByID(id)
			c.Nullable = false
		}
		return d.Validate()
	})
	if err != nil {
		return err
	}
	return t.rewriteRows(ctx, cur, nu, func(row gms.Row) (gms.Row, error) {
		out := projectByIDs(cur, nu, row)
		for _, o := range nu.pkOrd {
			if out[o] == nil {
				return nil, gms.ErrInsertIntoNonNullableProvidedNull.New(nu.schema.Schema[o].Name)
			}
		}
		return out, nil
	})
}

// DropPrimaryKey makes the table keyless (rows get hidden keys).
func (t *Table) DropPrimaryKey(ctx *gms.Context) error {
	if !t.info.hasPrimaryKey() {
		return gms.ErrCantDropFieldOrKey.New(primaryIndexName)
	}
	cur, nu, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		d.PrimaryIndex.ColumnIDs = nil
		return d.Validate()
	})
	if err != nil {
		return err
	}
	return t.rewriteRows(ctx, cur, nu, func(row gms.Row) (gms.Row, error) {
		return projectByIDs(cur, nu, row), nil
	})
}

func columnIDsByName(d *catalog.TableDescriptor, names []string) ([]uint32, error) {
	out := make([]uint32, len(names))
	for i, n := range names {
		c, _ := d.ColumnByName(n)
		if c == nil {
			return nil, gms.ErrKeyColumnDoesNotExist.New(n)
		}
		out[i] = c.ID
	}
	return out, nil
}

// rewriteRows rewrites every row of the table from version cur to version
// nu: all rows are read first (the transaction buffers the rewrite anyway),
// then every key of the table is deleted and the transformed rows written
// with their index entries, enforcing primary and unique keys.
func (t *Table) rewriteRows(ctx *gms.Context, cur, nu *tableInfo, transform func(gms.Row) (gms.Row, error)) error {
	_, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	rows, err := t.readRows(ctx, kvt, cur, "rewrite "+cur.name)
	if err != nil {
		return err
	}
	if err := deleteSpanKeys(ctx, kvt, cur); err != nil {
		return err
	}
	nt := &Table{db: t.db, info: nu}
	ed := nt.newEditor()
	for _, row := range rows {
		out, err := transform(row)
		if err != nil {
			return err
		}
		if err := ed.Insert(ctx, out); err != nil {
			return err
		}
	}
	return nil
}

// GetDeclaredForeignKeys lists this table's foreign keys, as stored now in
// the transaction (the engine drops foreign keys and then asks again within
// one statement, e.g. DROP TABLE of several related tables).
func (t *Table) GetDeclaredForeignKeys(ctx *gms.Context) ([]gms.ForeignKeyConstraint, error) {
	info, err := t.freshInfo(ctx)
	if err != nil {
		return nil, err
	}
	fks := cloneFKs(info.declaredFKs)
	sort.Slice(fks, func(i, j int) bool { return fks[i].Name < fks[j].Name })
	return fks, nil
}

// GetReferencedForeignKeys lists other tables' foreign keys onto this one.
func (t *Table) GetReferencedForeignKeys(ctx *gms.Context) ([]gms.ForeignKeyConstraint, error) {
	info, err := t.freshInfo(ctx)
	if err != nil {
		return nil, err
	}
	return cloneFKs(info.referencedFKs), nil
}

// freshInfo re-reads the table's descriptor when the transaction changed
// the schema since this Table was resolved.
func (t *Table) freshInfo(ctx *gms.Context) (*tableInfo, error) {
	tx, ok := ctx.GetTransaction().(*Transaction)
	if !ok || tx == nil || tx.finished || tx.kvt == nil || !tx.schemaChanged {
		return t.info, nil
	}
	info, err := t.db.srv.store.loadTableInfo(ctx, tx.kvt, t.info.id)
	if err != nil {
		return t.info, nil // dropped meanwhile: answer from what we had
	}
	return info, nil
}

func cloneFKs(in []gms.ForeignKeyConstraint) []gms.ForeignKeyConstraint {
	out := make([]gms.ForeignKeyConstraint, len(in))
	for i, fk := range in {
		fk.Columns = append([]string(nil), fk.Columns...)
		fk.ParentColumns = append([]string(nil), fk.ParentColumns...)
		out[i] = fk
	}
	return out
}

// AddForeignKey stores a foreign key (the engine validated it and checked
// existing rows).
func (t *Table) AddForeignKey(ctx *gms.Context, fk gms.ForeignKeyConstraint) error {
	for _, ex := range t.info.declaredFKs {
		if sameName(ex.Name, fk.Name) {
			return gms.ErrForeignKeyDuplicateName.New(fk.Name)
		}
	}
	_, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	// Constraint names are unique within a database, as in MySQL.
	tables, err := cat(kvt).ListTables(ctx, t.db.desc.id)
	if err != nil {
		return convertTxnError("add foreign key", err)
	}
	for _, other := range tables {
		for _, ex := range other.ForeignKeys {
			if sameName(ex.Name, fk.Name) {
				return gms.ErrForeignKeyDuplicateName.New(fk.Name)
			}
		}
	}
	parentID, err := t.db.srv.store.parentTableID(ctx, kvt, fk)
	if err != nil {
		return err
	}
	_, _, err = t.alter(ctx, func(d *catalog.TableDescriptor) error {
		fd := catalog.ForeignKeyFromGMS(fk)
		fd.ParentTableID = parentID
		d.ForeignKeys = append(d.ForeignKeys, fd)
		return d.Validate()
	})
	return err
}

// DropForeignKey removes a foreign key of this table.
func (t *Table) DropForeignKey(ctx *gms.Context, name string) error {
	_, _, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		for i, fk := range d.ForeignKeys {
			if sameName(fk.Name, name) {
				d.ForeignKeys = append(d.ForeignKeys[:i], d.ForeignKeys[i+1:]...)
				return nil
			}
		}
		return gms.ErrForeignKeyNotFound.New(name, t.info.name)
	})
	return err
}

// UpdateForeignKey replaces a foreign key's definition (renames, resolution).
func (t *Table) UpdateForeignKey(ctx *gms.Context, name string, fk gms.ForeignKeyConstraint) error {
	_, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	parentID, err := t.db.srv.store.parentTableID(ctx, kvt, fk)
	if err != nil {
		return err
	}
	_, _, err = t.alter(ctx, func(d *catalog.TableDescriptor) error {
		for i, ex := range d.ForeignKeys {
			if sameName(ex.Name, name) {
				fd := catalog.ForeignKeyFromGMS(fk)
				fd.ParentTableID = parentID
				// The engine renames a column in the foreign key before it
				// renames the column itself; ModifyColumn renames the
				// foreign key's column then, so keep the old name here.
				for j, c := range fd.Columns {
					if col, _ := d.ColumnByName(c); col == nil && j < len(ex.Columns) {
						fd.Columns[j] = ex.Columns[j]
					}
				}
				d.ForeignKeys[i] = fd
				return d.Validate()
			}
		}
		return gms.ErrForeignKeyNotFound.New(name, t.info.name)
	})
	return err
}

// CreateIndexForForeignKey creates the index a new foreign key needs.
func (t *Table) CreateIndexForForeignKey(ctx *gms.Context, def gms.IndexDef) error {
	return t.CreateIndex(ctx, def)
}

// restartAutoIncrementAfterMax sets the table's sequence past the largest
// value of column col.
func (t *Table) restartAutoIncrementAfterMax(ctx *gms.Context, info *tableInfo, col int) error {
	_, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	var maxV uint64
	err = t.forEachRow(ctx, kvt, info, "scan "+info.name, func(_ []byte, row gms.Row) error {
		if row[col] == nil {
			return nil
		}
		v, _, err := types.Uint64.Convert(ctx, row[col])
		if err != nil {
			return nil // not a number: it does not move the sequence
		}
		if u := v.(uint64); u > maxV {
			maxV = u
		}
		return nil
	})
	if err != nil {
		return err
	}
	return t.db.srv.autoInc.set(ctx, kvt, info.id, maxV+1)
}

var _ gms.CollationAlterableTable = (*Table)(nil)

// ModifyDefaultCollation changes the collation new columns get (ALTER
// TABLE … COLLATE); existing columns keep theirs.
func (t *Table) ModifyDefaultCollation(ctx *gms.Context, collation gms.CollationID) error {
	_, _, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		d.Collation = collation.Name()
		return d.Validate()
	})
	return err
}

// ModifyStoredCollation converts every character column to collation
// (ALTER TABLE … CONVERT TO CHARACTER SET): rows and index keys are
// rewritten, since key encodings depend on the collation.
func (t *Table) ModifyStoredCollation(ctx *gms.Context, collation gms.CollationID) error {
	cur, nu, err := t.alter(ctx, func(d *catalog.TableDescriptor) error {
		d.Collation = collation.Name()
		for i := range d.Columns {
			col, err := d.Columns[i].ToGMS(d.Database, d.Name, false)
			if err != nil {
				return err
			}
			tc, ok := col.Type.(gms.TypeWithCollation)
			if !ok || !types.IsText(col.Type) {
				continue
			}
			nt, err := tc.WithNewCollation(collation)
			if err != nil {
				return err
			}
			col.Type = nt
			id := d.Columns[i].ID
			d.Columns[i] = catalog.ColumnFromGMS(id, col)
		}
		return d.Validate()
	})
	if err != nil {
		return err
	}
	return t.rewriteRows(ctx, cur, nu, func(row gms.Row) (gms.Row, error) {
		return projectByIDs(cur, nu, row), nil
	})
}
