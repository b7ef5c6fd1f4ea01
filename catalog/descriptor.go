package catalog

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/planbuilder"
)

// PrimaryIndexID is the index ID of every table's primary index: a table's
// rows live under kv.TableKeyPrefix(tableID, PrimaryIndexID).
const PrimaryIndexID uint32 = 1

// PrimaryIndexName is the name go-mysql-server gives the primary key.
const PrimaryIndexName = "PRIMARY"

// descriptorFormat is written into every marshalled descriptor so a later
// format can be told apart.
const descriptorFormat = 1

// DatabaseDescriptor is one database (schema).
type DatabaseDescriptor struct {
	Format    int    `json:"format"`
	ID        uint32 `json:"id"`
	Name      string `json:"name"`
	Collation string `json:"collation,omitempty"` // default collation name; "" = server default
	Version   uint64 `json:"version"`
}

// ColumnDescriptor is one column. Type is the column type's SQL text
// (sql.Type.String()), parsed back with planbuilder.ParseColumnTypeString;
// Default, Generated and OnUpdate are ColumnDefaultValue.String() texts, to
// be wrapped with sql.NewUnresolvedColumnDefaultValue (nil = none).
type ColumnDescriptor struct {
	ID            uint32  `json:"id"`
	Name          string  `json:"name"`
	Type          string  `json:"type"`
	Nullable      bool    `json:"nullable,omitempty"`
	Default       *string `json:"default,omitempty"`
	Generated     *string `json:"generated,omitempty"`
	Virtual       bool    `json:"virtual,omitempty"`
	OnUpdate      *string `json:"on_update,omitempty"`
	AutoIncrement bool    `json:"auto_increment,omitempty"`
	Comment       string  `json:"comment,omitempty"`
	Extra         string  `json:"extra,omitempty"`
}

// IndexDescriptor is the primary index or a secondary index. ColumnIDs are
// the indexed columns in key order; PrefixLengths (same length, 0 = whole
// value) are MySQL index prefix lengths, kept for SHOW CREATE TABLE.
type IndexDescriptor struct {
	ID            uint32   `json:"id"`
	Name          string   `json:"name"`
	ColumnIDs     []uint32 `json:"column_ids"`
	PrefixLengths []int64  `json:"prefix_lengths,omitempty"`
	Unique        bool     `json:"unique,omitempty"`
	Comment       string   `json:"comment,omitempty"`
}

// ForeignKeyDescriptor holds the fields of sql.ForeignKeyConstraint, plus
// the parent table's ID once resolved (0 while the parent does not exist,
// as with FOREIGN_KEY_CHECKS=0).
type ForeignKeyDescriptor struct {
	Name           string   `json:"name"`
	Database       string   `json:"database"`
	Table          string   `json:"table"`
	Columns        []string `json:"columns"`
	ParentDatabase string   `json:"parent_database"`
	ParentTable    string   `json:"parent_table"`
	ParentColumns  []string `json:"parent_columns"`
	OnUpdate       string   `json:"on_update"`
	OnDelete       string   `json:"on_delete"`
	IsResolved     bool     `json:"is_resolved"`
	ParentTableID  uint32   `json:"parent_table_id,omitempty"`
}

// CheckDescriptor is a CHECK constraint; go-mysql-server evaluates Expr.
type CheckDescriptor struct {
	Name     string `json:"name"`
	Expr     string `json:"expr"`
	Enforced bool   `json:"enforced"`
}

// TableDescriptor is one table's schema. Columns are in schema order; IDs
// (column and index) are never reused, so row values and index keys written
// under an older version stay readable.
type TableDescriptor struct {
	Format       int                    `json:"format"`
	ID           uint32                 `json:"id"`
	DatabaseID   uint32                 `json:"database_id"`
	Database     string                 `json:"database"`
	Name         string                 `json:"name"`
	Columns      []ColumnDescriptor     `json:"columns"`
	PrimaryIndex IndexDescriptor        `json:"primary_index"`
	Indexes      []IndexDescriptor      `json:"indexes,omitempty"`
	ForeignKeys  []ForeignKeyDescriptor `json:"foreign_keys,omitempty"`
	Checks       []CheckDescriptor      `json:"checks,omitempty"`
	Collation    string                 `json:"collation,omitempty"`
	Comment      string                 `json:"comment,omitempty"`
	NextColumnID uint32                 `json:"next_column_id"`
	NextIndexID  uint32                 `json:"next_index_id"`
	// AutoIncrement is the base of the table's AUTO_INCREMENT: the next value
	// no node has been handed yet (nodes take blocks above it).
	AutoIncrement uint64 `json:"auto_increment,omitempty"`
	// Version counts committed changes of this descriptor (1 at creation).
	Version uint64 `json:"version"`
}

// Marshal returns the descriptor's stored form.
func (d *DatabaseDescriptor) Marshal() ([]byte, error) {
	d.Format = descriptorFormat
	return json.Marshal(d)
}

// UnmarshalDatabaseDescriptor parses a stored database descriptor.
func UnmarshalDatabaseDescriptor(b []byte) (*DatabaseDescriptor, error) {
	var d DatabaseDescriptor
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: database descriptor: %v", ErrInvalidDescriptor, err)
	}
	if d.Format != descriptorFormat {
		return nil, fmt.Errorf("%w: database descriptor format %d", ErrInvalidDescriptor, d.Format)
	}
	return &d, d.Validate()
}

// Validate checks the database descriptor.
func (d *DatabaseDescriptor) Validate() error {
	if d.ID == 0 || d.Name == "" {
		return fmt.Errorf("%w: database needs an ID and a name (%d %q)", ErrInvalidDescriptor, d.ID, d.Name)
	}
	if d.Collation != "" {
		if _, err := sql.ParseCollation("", d.Collation, false); err != nil {
			return fmt.Errorf("%w: database %s: %v", ErrInvalidDescriptor, d.Name, err)
		}
	}
	return nil
}

// Marshal returns the descriptor's stored form, after validating it.
func (t *TableDescriptor) Marshal() ([]byte, error) {
	t.Format = descriptorFormat
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// UnmarshalTableDescriptor parses and validates a stored table descriptor.
func UnmarshalTableDescriptor(b []byte) (*TableDescriptor, error) {
	var t TableDescriptor
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: table descriptor: %v", ErrInvalidDescriptor, err)
	}
	if t.Format != descriptorFormat {
		return nil, fmt.Errorf("%w: table descriptor format %d", ErrInvalidDescriptor, t.Format)
	}
	// Stored descriptors were fully validated when written; reading checks
	// the structure only (parsing every column type is a SQL parse per
	// column: Resolve does it once per version).
	if err := t.validate(false); err != nil {
		return nil, err
	}
	return &t, nil
}

// Clone returns a deep copy (descriptors are changed on a copy, then
// written with UpdateTable).
func (t *TableDescriptor) Clone() *TableDescriptor {
	b, err := json.Marshal(t)
	if err != nil {
		panic(fmt.Sprintf("catalog: marshalling a table descriptor cannot fail: %v", err))
	}
	var c TableDescriptor
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("catalog: a marshalled table descriptor must unmarshal: %v", err))
	}
	return &c
}

// Validate checks the table descriptor's internal consistency: names and
// IDs present and unique, IDs below the Next counters, types parseable,
// index columns existing.
func (t *TableDescriptor) Validate() error { return t.validate(true) }

func (t *TableDescriptor) validate(parseTypes bool) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: table %s.%s: %s", ErrInvalidDescriptor, t.Database, t.Name, fmt.Sprintf(format, args...))
	}
	if t.ID == 0 || t.DatabaseID == 0 || t.Name == "" || t.Database == "" {
		return bad("needs an ID, a database ID, a name and a database name")
	}
	if len(t.Columns) == 0 {
		return bad("no columns")
	}
	names := map[string]bool{}
	ids := map[uint32]bool{}
	for _, c := range t.Columns {
		if c.ID == 0 || c.ID >= t.NextColumnID {
			return bad("column %q ID %d outside [1, %d)", c.Name, c.ID, t.NextColumnID)
		}
		if c.Name == "" || names[strings.ToLower(c.Name)] || ids[c.ID] {
			return bad("column %q (ID %d) missing or duplicate", c.Name, c.ID)
		}
		names[strings.ToLower(c.Name)] = true
		ids[c.ID] = true
		if c.Type == "" {
			return bad("column %q has no type", c.Name)
		}
		if parseTypes {
			if _, err := planbuilder.ParseColumnTypeString(c.Type); err != nil {
				return bad("column %q type %q: %v", c.Name, c.Type, err)
			}
		}
	}
	if t.PrimaryIndex.ID != PrimaryIndexID || !strings.EqualFold(t.PrimaryIndex.Name, PrimaryIndexName) {
		return bad("primary index must be ID %d named %s", PrimaryIndexID, PrimaryIndexName)
	}
	indexNames := map[string]bool{}
	indexIDs := map[uint32]bool{}
	for _, ix := range append([]IndexDescriptor{t.PrimaryIndex}, t.Indexes...) {
		if ix.ID == 0 || ix.ID >= t.NextIndexID || indexIDs[ix.ID] {
			return bad("index %q ID %d missing, duplicate or not below %d", ix.Name, ix.ID, t.NextIndexID)
		}
		if ix.Name == "" || indexNames[strings.ToLower(ix.Name)] {
			return bad("index %q name missing or duplicate", ix.Name)
		}
		indexIDs[ix.ID] = true
		indexNames[strings.ToLower(ix.Name)] = true
		if ix.ID != PrimaryIndexID && len(ix.ColumnIDs) == 0 {
			return bad("index %q has no columns", ix.Name)
		}
		if len(ix.PrefixLengths) != 0 && len(ix.PrefixLengths) != len(ix.ColumnIDs) {
			return bad("index %q has %d prefix lengths for %d columns", ix.Name, len(ix.PrefixLengths), len(ix.ColumnIDs))
		}
		seen := map[uint32]bool{}
		for _, id := range ix.ColumnIDs {
			if !ids[id] || seen[id] {
				return bad("index %q column ID %d unknown or repeated", ix.Name, id)
			}
			seen[id] = true
		}
	}
	fkNames := map[string]bool{}
	for _, fk := range t.ForeignKeys {
		if fk.Name == "" || fkNames[strings.ToLower(fk.Name)] {
			return bad("foreign key %q name missing or duplicate", fk.Name)
		}
		fkNames[strings.ToLower(fk.Name)] = true
		if len(fk.Columns) == 0 || len(fk.Columns) != len(fk.ParentColumns) {
			return bad("foreign key %q has %d columns for %d parent columns", fk.Name, len(fk.Columns), len(fk.ParentColumns))
		}
		for _, c := range fk.Columns {
			if !names[strings.ToLower(c)] {
				return bad("foreign key %q column %q unknown", fk.Name, c)
			}
		}
	}
	checkNames := map[string]bool{}
	for _, ck := range t.Checks {
		if ck.Name == "" || checkNames[strings.ToLower(ck.Name)] || ck.Expr == "" {
			return bad("check %q name or expression missing, or name duplicate", ck.Name)
		}
		checkNames[strings.ToLower(ck.Name)] = true
	}
	if t.Collation != "" {
		if _, err := sql.ParseCollation("", t.Collation, false); err != nil {
			return bad("collation: %v", err)
		}
	}
	return nil
}

// ColumnByName returns the column named name (case-insensitive) and its
// position, or -1.
func (t *TableDescriptor) ColumnByName(name string) (*ColumnDescriptor, int) {
	for i := range t.Columns {
		if strings.EqualFold(t.Columns[i].Name, name) {
			return &t.Columns[i], i
		}
	}
	return nil, -1
}

// ColumnByID returns the column with ID id and its position, or -1.
func (t *TableDescriptor) ColumnByID(id uint32) (*ColumnDescriptor, int) {
	for i := range t.Columns {
		if t.Columns[i].ID == id {
			return &t.Columns[i], i
		}
	}
	return nil, -1
}

// IndexByName returns the index named name (case-insensitive; "PRIMARY" is
// the primary index), or nil.
func (t *TableDescriptor) IndexByName(name string) *IndexDescriptor {
	if strings.EqualFold(name, PrimaryIndexName) {
		return &t.PrimaryIndex
	}
	for i := range t.Indexes {
		if strings.EqualFold(t.Indexes[i].Name, name) {
			return &t.Indexes[i]
		}
	}
	return nil
}

// IsKeyless reports whether the table was created without a primary key
// (the SQL layer then keys rows by a hidden row ID).
func (t *TableDescriptor) IsKeyless() bool { return len(t.PrimaryIndex.ColumnIDs) == 0 }
