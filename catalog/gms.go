package catalog

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/planbuilder"
)

// Conversions between descriptors and go-mysql-server's schema types.

func defaultText(d *sql.ColumnDefaultValue) *string {
	if d == nil {
		return nil
	}
	s := d.String()
	return &s
}

func defaultValue(s *string) *sql.ColumnDefaultValue {
	if s == nil {
		return nil
	}
	return sql.NewUnresolvedColumnDefaultValue(*s)
}

// ColumnFromGMS describes col as column id.
func ColumnFromGMS(id uint32, col *sql.Column) ColumnDescriptor {
	return ColumnDescriptor{
		ID:            id,
		Name:          col.Name,
		Type:          col.Type.String(),
		Nullable:      col.Nullable,
		Default:       defaultText(col.Default),
		Generated:     defaultText(col.Generated),
		Virtual:       col.Virtual,
		OnUpdate:      defaultText(col.OnUpdate),
		AutoIncrement: col.AutoIncrement,
		Comment:       col.Comment,
		Extra:         col.Extra,
	}
}

// ToGMS returns the column as go-mysql-server sees it, with its type parsed
// and its default expressions unresolved (the engine resolves them).
func (c *ColumnDescriptor) ToGMS(database, table string, primaryKey bool) (*sql.Column, error) {
	typ, err := planbuilder.ParseColumnTypeString(c.Type)
	if err != nil {
		return nil, fmt.Errorf("%w: column %s type %q: %v", ErrInvalidDescriptor, c.Name, c.Type, err)
	}
	return &sql.Column{
		Name:           c.Name,
		Type:           typ,
		Default:        defaultValue(c.Default),
		AutoIncrement:  c.AutoIncrement,
		Nullable:       c.Nullable,
		Source:         table,
		DatabaseSource: database,
		PrimaryKey:     primaryKey,
		Comment:        c.Comment,
		Extra:          c.Extra,
		Generated:      defaultValue(c.Generated),
		Virtual:        c.Virtual,
		OnUpdate:       defaultValue(c.OnUpdate),
	}, nil
}

// NewTableDescriptor describes a table being created (CREATE TABLE): columns
// get IDs 1…n in schema order, the primary index is built from
// schema.PkOrdinals, Version is 1. Indexes, foreign keys and checks are added
// afterwards (AddIndex, ForeignKeys, Checks).
func NewTableDescriptor(db *DatabaseDescriptor, id uint32, name string, schema sql.PrimaryKeySchema, collation sql.CollationID, comment string) (*TableDescriptor, error) {
	t := &TableDescriptor{
		Format:       descriptorFormat,
		ID:           id,
		DatabaseID:   db.ID,
		Database:     db.Name,
		Name:         name,
		Comment:      comment,
		PrimaryIndex: IndexDescriptor{ID: PrimaryIndexID, Name: PrimaryIndexName, Unique: true},
		NextIndexID:  PrimaryIndexID + 1,
		Version:      1,
	}
	if collation != sql.Collation_Unspecified {
		t.Collation = collation.Name()
	}
	for i, col := range schema.Schema {
		t.Columns = append(t.Columns, ColumnFromGMS(uint32(i+1), col))
	}
	t.NextColumnID = uint32(len(t.Columns) + 1)
	for _, ord := range schema.PkOrdinals {
		if ord < 0 || ord >= len(t.Columns) {
			return nil, fmt.Errorf("%w: primary key ordinal %d of %d columns", ErrInvalidDescriptor, ord, len(t.Columns))
		}
		t.PrimaryIndex.ColumnIDs = append(t.PrimaryIndex.ColumnIDs, t.Columns[ord].ID)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// PrimaryKeySchema returns the table's schema as go-mysql-server wants it.
func (t *TableDescriptor) PrimaryKeySchema() (sql.PrimaryKeySchema, error) {
	pkPos := make(map[uint32]bool, len(t.PrimaryIndex.ColumnIDs))
	for _, id := range t.PrimaryIndex.ColumnIDs {
		pkPos[id] = true
	}
	schema := make(sql.Schema, len(t.Columns))
	for i := range t.Columns {
		col, err := t.Columns[i].ToGMS(t.Database, t.Name, pkPos[t.Columns[i].ID])
		if err != nil {
			return sql.PrimaryKeySchema{}, err
		}
		schema[i] = col
	}
	ords := make([]int, 0, len(t.PrimaryIndex.ColumnIDs))
	for _, id := range t.PrimaryIndex.ColumnIDs {
		_, pos := t.ColumnByID(id)
		if pos < 0 {
			return sql.PrimaryKeySchema{}, fmt.Errorf("%w: primary key column ID %d", ErrInvalidDescriptor, id)
		}
		ords = append(ords, pos)
	}
	return sql.PrimaryKeySchema{Schema: schema, PkOrdinals: ords}, nil
}

// ForeignKeyFromGMS stores the fields of fk (ParentTableID is set by the
// caller once the parent is known).
func ForeignKeyFromGMS(fk sql.ForeignKeyConstraint) ForeignKeyDescriptor {
	return ForeignKeyDescriptor{
		Name:           fk.Name,
		Database:       fk.Database,
		Table:          fk.Table,
		Columns:        slices.Clone(fk.Columns),
		ParentDatabase: fk.ParentDatabase,
		ParentTable:    fk.ParentTable,
		ParentColumns:  slices.Clone(fk.ParentColumns),
		OnUpdate:       string(fk.OnUpdate),
		OnDelete:       string(fk.OnDelete),
		IsResolved:     fk.IsResolved,
	}
}

// ToGMS returns the foreign key as go-mysql-server's constraint.
func (f *ForeignKeyDescriptor) ToGMS() sql.ForeignKeyConstraint {
	return sql.ForeignKeyConstraint{
		Name:           f.Name,
		Database:       f.Database,
		Table:          f.Table,
		Columns:        slices.Clone(f.Columns),
		ParentDatabase: f.ParentDatabase,
		ParentTable:    f.ParentTable,
		ParentColumns:  slices.Clone(f.ParentColumns),
		OnUpdate:       sql.ForeignKeyReferentialAction(f.OnUpdate),
		OnDelete:       sql.ForeignKeyReferentialAction(f.OnDelete),
		IsResolved:     f.IsResolved,
	}
}

// CheckFromGMS stores a check definition.
func CheckFromGMS(c sql.CheckDefinition) CheckDescriptor {
	return CheckDescriptor{Name: c.Name, Expr: c.CheckExpression, Enforced: c.Enforced}
}

// ToGMS returns the check as go-mysql-server's definition.
func (c *CheckDescriptor) ToGMS() sql.CheckDefinition {
	return sql.CheckDefinition{Name: c.Name, CheckExpression: c.Expr, Enforced: c.Enforced}
}

// AddIndex adds a secondary index described by def (column names resolved to
// IDs) with the next index ID, and returns it. The caller backfills it.
func (t *TableDescriptor) AddIndex(def sql.IndexDef) (*IndexDescriptor, error) {
	if strings.EqualFold(def.Name, PrimaryIndexName) || def.Name == "" {
		return nil, fmt.Errorf("%w: index name %q", ErrInvalidDescriptor, def.Name)
	}
	if t.IndexByName(def.Name) != nil {
		return nil, fmt.Errorf("%w: index %q exists", ErrInvalidDescriptor, def.Name)
	}
	ix := IndexDescriptor{
		ID:      t.NextIndexID,
		Name:    def.Name,
		Unique:  def.IsUnique(),
		Comment: def.Comment,
	}
	hasPrefix := false
	for _, c := range def.Columns {
		col, _ := t.ColumnByName(c.Name)
		if col == nil {
			return nil, fmt.Errorf("%w: index %q column %q unknown", ErrInvalidDescriptor, def.Name, c.Name)
		}
		ix.ColumnIDs = append(ix.ColumnIDs, col.ID)
		ix.PrefixLengths = append(ix.PrefixLengths, c.Length)
		hasPrefix = hasPrefix || c.Length != 0
	}
	if !hasPrefix {
		ix.PrefixLengths = nil
	}
	t.Indexes = append(t.Indexes, ix)
	t.NextIndexID++
	if err := t.Validate(); err != nil {
		t.Indexes = t.Indexes[:len(t.Indexes)-1]
		t.NextIndexID--
		return nil, err
	}
	return &t.Indexes[len(t.Indexes)-1], nil
}

// DropIndex removes the secondary index named name and returns it (the
// caller deletes its key span).
func (t *TableDescriptor) DropIndex(name string) (IndexDescriptor, error) {
	for i, ix := range t.Indexes {
		if strings.EqualFold(ix.Name, name) {
			t.Indexes = slices.Delete(t.Indexes, i, i+1)
			return ix, nil
		}
	}
	return IndexDescriptor{}, fmt.Errorf("%w: index %q not found on %s", ErrInvalidDescriptor, name, t.Name)
}

// AddColumn appends col (or places it per order) with the next column ID.
// Existing rows read it through the RowCodec's MissingColumn function.
func (t *TableDescriptor) AddColumn(col *sql.Column, order *sql.ColumnOrder) (*ColumnDescriptor, error) {
	if c, _ := t.ColumnByName(col.Name); c != nil {
		return nil, fmt.Errorf("%w: column %q exists", ErrInvalidDescriptor, col.Name)
	}
	cd := ColumnFromGMS(t.NextColumnID, col)
	pos, err := t.orderPosition(order, len(t.Columns))
	if err != nil {
		return nil, err
	}
	t.Columns = slices.Insert(t.Columns, pos, cd)
	t.NextColumnID++
	if col.PrimaryKey {
		t.PrimaryIndex.ColumnIDs = append(t.PrimaryIndex.ColumnIDs, cd.ID)
	}
	c, _ := t.ColumnByID(cd.ID)
	return c, t.Validate()
}

func (t *TableDescriptor) orderPosition(order *sql.ColumnOrder, dflt int) (int, error) {
	switch {
	case order == nil:
		return dflt, nil
	case order.First:
		return 0, nil
	case order.AfterColumn != "":
		_, i := t.ColumnByName(order.AfterColumn)
		if i < 0 {
			return 0, fmt.Errorf("%w: column %q unknown", ErrInvalidDescriptor, order.AfterColumn)
		}
		return i + 1, nil
	}
	return dflt, nil
}

// DropColumn removes the column named name. It is removed from secondary
// indexes, and an index left without columns is dropped; the dropped
// indexes are returned so the caller deletes their spans. Dropping a
// primary key column is refused (the table's rows would need new keys: the
// SQL layer rebuilds the table for that).
func (t *TableDescriptor) DropColumn(name string) (dropped []IndexDescriptor, err error) {
	col, pos := t.ColumnByName(name)
	if col == nil {
		return nil, fmt.Errorf("%w: column %q not found", ErrInvalidDescriptor, name)
	}
	id := col.ID
	if slices.Contains(t.PrimaryIndex.ColumnIDs, id) {
		return nil, fmt.Errorf("%w: column %q is part of the primary key", ErrInvalidDescriptor, name)
	}
	if len(t.Columns) == 1 {
		return nil, fmt.Errorf("%w: cannot drop the only column", ErrInvalidDescriptor)
	}
	t.Columns = slices.Delete(t.Columns, pos, pos+1)
	kept := t.Indexes[:0]
	for _, ix := range t.Indexes {
		if i := slices.Index(ix.ColumnIDs, id); i >= 0 {
			dropped = append(dropped, ix)
			continue
		}
		kept = append(kept, ix)
	}
	t.Indexes = kept
	return dropped, t.Validate()
}

// ModifyColumn replaces the column named name by col (keeping its ID, so
// existing row values stay attached; a change of the value's Go type needs
// the rows rewritten, which the SQL layer does) and moves it per order.
func (t *TableDescriptor) ModifyColumn(name string, col *sql.Column, order *sql.ColumnOrder) error {
	old, pos := t.ColumnByName(name)
	if old == nil {
		return fmt.Errorf("%w: column %q not found", ErrInvalidDescriptor, name)
	}
	if other, _ := t.ColumnByName(col.Name); other != nil && other.ID != old.ID {
		return fmt.Errorf("%w: column %q exists", ErrInvalidDescriptor, col.Name)
	}
	cd := ColumnFromGMS(old.ID, col)
	oldName := old.Name
	t.Columns = slices.Delete(t.Columns, pos, pos+1)
	newPos, err := t.orderPosition(order, pos)
	if err != nil {
		t.Columns = slices.Insert(t.Columns, pos, cd)
		return err
	}
	t.Columns = slices.Insert(t.Columns, newPos, cd)
	if !strings.EqualFold(oldName, col.Name) {
		for i := range t.ForeignKeys {
			for j, c := range t.ForeignKeys[i].Columns {
				if strings.EqualFold(c, oldName) {
					t.ForeignKeys[i].Columns[j] = col.Name
				}
			}
		}
	}
	return t.Validate()
}
