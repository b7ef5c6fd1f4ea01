package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/quorumdb/quorumdb/kv"
)

// KV is what the catalog needs from a transaction: point reads and writes
// and a bounded scan of user keys. The SQL layer implements it with its
// transaction, so every catalog change commits (or aborts) atomically with
// the statement, and reads take part in serializable validation.
type KV interface {
	// Get returns the value of key and whether it exists.
	Get(ctx context.Context, key []byte) ([]byte, bool, error)
	// Put writes value under key.
	Put(ctx context.Context, key, value []byte) error
	// Delete deletes key.
	Delete(ctx context.Context, key []byte) error
	// Scan returns up to limit (0 = no limit) visible pairs of [start, end)
	// in key order.
	Scan(ctx context.Context, start, end []byte, limit int) ([]kv.KeyValue, error)
}

// Catalog reads and writes descriptors through one transaction. It holds no
// state of its own: make one per transaction with New.
type Catalog struct {
	txn KV
}

// New returns a catalog over txn.
func New(txn KV) *Catalog { return &Catalog{txn: txn} }

// CreateDatabase stores db (its ID comes from the ID allocator).
func (c *Catalog) CreateDatabase(ctx context.Context, db *DatabaseDescriptor) error {
	if db.Version == 0 {
		db.Version = 1
	}
	if err := db.Validate(); err != nil {
		return err
	}
	_, exists, err := c.txn.Get(ctx, DatabaseNameKey(db.Name))
	if err != nil {
		return fmt.Errorf("catalog: create database %s: %w", db.Name, err)
	}
	if exists {
		return fmt.Errorf("%w: %s", ErrDatabaseExists, db.Name)
	}
	b, err := db.Marshal()
	if err != nil {
		return err
	}
	if err := c.txn.Put(ctx, DatabaseNameKey(db.Name), be4(db.ID)); err != nil {
		return fmt.Errorf("catalog: create database %s: %w", db.Name, err)
	}
	if err := c.txn.Put(ctx, DatabaseDescriptorKey(db.ID), b); err != nil {
		return fmt.Errorf("catalog: create database %s: %w", db.Name, err)
	}
	return nil
}

// GetDatabase returns the database named name.
func (c *Catalog) GetDatabase(ctx context.Context, name string) (*DatabaseDescriptor, error) {
	v, ok, err := c.txn.Get(ctx, DatabaseNameKey(name))
	if err != nil {
		return nil, fmt.Errorf("catalog: get database %s: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrDatabaseNotFound, name)
	}
	id, err := decodeID(v)
	if err != nil {
		return nil, err
	}
	return c.GetDatabaseByID(ctx, id)
}

// GetDatabaseByID returns the database with ID id.
func (c *Catalog) GetDatabaseByID(ctx context.Context, id uint32) (*DatabaseDescriptor, error) {
	v, ok, err := c.txn.Get(ctx, DatabaseDescriptorKey(id))
	if err != nil {
		return nil, fmt.Errorf("catalog: get database %d: %w", id, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: ID %d", ErrDatabaseNotFound, id)
	}
	return UnmarshalDatabaseDescriptor(v)
}

// ListDatabases returns every database, ordered by lowercased name.
func (c *Catalog) ListDatabases(ctx context.Context) ([]*DatabaseDescriptor, error) {
	span := DatabaseNamesSpan()
	kvs, err := c.txn.Scan(ctx, span.Key, span.EndKey, 0)
	if err != nil {
		return nil, fmt.Errorf("catalog: list databases: %w", err)
	}
	out := make([]*DatabaseDescriptor, 0, len(kvs))
	for _, e := range kvs {
		id, err := decodeID(e.Value)
		if err != nil {
			return nil, err
		}
		db, err := c.GetDatabaseByID(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, db)
	}
	return out, nil
}

// DropDatabase removes the database named name, which must have no tables
// (the SQL layer drops them first, so their data spans get deleted).
func (c *Catalog) DropDatabase(ctx context.Context, name string) (*DatabaseDescriptor, error) {
	db, err := c.GetDatabase(ctx, name)
	if err != nil {
		return nil, err
	}
	span := TableNamesSpan(db.ID)
	tables, err := c.txn.Scan(ctx, span.Key, span.EndKey, 1)
	if err != nil {
		return nil, fmt.Errorf("catalog: drop database %s: %w", name, err)
	}
	if len(tables) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrDatabaseNotEmpty, name)
	}
	if err := c.txn.Delete(ctx, DatabaseNameKey(db.Name)); err != nil {
		return nil, fmt.Errorf("catalog: drop database %s: %w", name, err)
	}
	if err := c.txn.Delete(ctx, DatabaseDescriptorKey(db.ID)); err != nil {
		return nil, fmt.Errorf("catalog: drop database %s: %w", name, err)
	}
	return db, nil
}

// CreateTable stores a new table (Version 1) in its database, with the
// reverse entries of its resolved foreign keys.
func (c *Catalog) CreateTable(ctx context.Context, t *TableDescriptor) error {
	if t.Version == 0 {
		t.Version = 1
	}
	if err := t.Validate(); err != nil {
		return err
	}
	db, err := c.GetDatabaseByID(ctx, t.DatabaseID)
	if err != nil {
		return err
	}
	if !strings.EqualFold(db.Name, t.Database) {
		return fmt.Errorf("%w: table %s names database %s but ID %d is %s", ErrInvalidDescriptor, t.Name, t.Database, t.DatabaseID, db.Name)
	}
	if _, exists, err := c.txn.Get(ctx, TableNameKey(t.DatabaseID, t.Name)); err != nil {
		return fmt.Errorf("catalog: create table %s: %w", t.Name, err)
	} else if exists {
		return fmt.Errorf("%w: %s.%s", ErrTableExists, t.Database, t.Name)
	}
	if _, exists, err := c.txn.Get(ctx, TableDescriptorKey(t.ID)); err != nil {
		return fmt.Errorf("catalog: create table %s: %w", t.Name, err)
	} else if exists {
		return fmt.Errorf("%w: table ID %d already used", ErrInvalidDescriptor, t.ID)
	}
	if err := c.resolveForeignKeyParents(ctx, t); err != nil {
		return err
	}
	if err := c.putTable(ctx, t); err != nil {
		return err
	}
	if err := c.txn.Put(ctx, TableNameKey(t.DatabaseID, t.Name), be4(t.ID)); err != nil {
		return fmt.Errorf("catalog: create table %s: %w", t.Name, err)
	}
	return c.syncForeignKeyRefs(ctx, nil, t)
}

func (c *Catalog) putTable(ctx context.Context, t *TableDescriptor) error {
	b, err := t.Marshal()
	if err != nil {
		return err
	}
	if err := c.txn.Put(ctx, TableDescriptorKey(t.ID), b); err != nil {
		return fmt.Errorf("catalog: write table %s: %w", t.Name, err)
	}
	return nil
}

// resolveForeignKeyParents fills ParentTableID of foreign keys that lack it
// when their parent table exists (by name; a self reference is the table
// itself). A parent that does not exist yet (FOREIGN_KEY_CHECKS=0) stays 0.
func (c *Catalog) resolveForeignKeyParents(ctx context.Context, t *TableDescriptor) error {
	for i := range t.ForeignKeys {
		fk := &t.ForeignKeys[i]
		if fk.ParentTableID != 0 {
			continue
		}
		parentDB := fk.ParentDatabase
		if parentDB == "" {
			parentDB = t.Database
		}
		if strings.EqualFold(parentDB, t.Database) && strings.EqualFold(fk.ParentTable, t.Name) {
			fk.ParentTableID = t.ID
			continue
		}
		db, err := c.GetDatabase(ctx, parentDB)
		if errors.Is(err, ErrDatabaseNotFound) {
			continue
		} else if err != nil {
			return err
		}
		v, ok, err := c.txn.Get(ctx, TableNameKey(db.ID, fk.ParentTable))
		if err != nil {
			return fmt.Errorf("catalog: foreign key %s parent %s: %w", fk.Name, fk.ParentTable, err)
		}
		if !ok {
			continue
		}
		if fk.ParentTableID, err = decodeID(v); err != nil {
			return err
		}
	}
	return nil
}

// syncForeignKeyRefs replaces the reverse FK entries of old by those of
// new (either may be nil).
func (c *Catalog) syncForeignKeyRefs(ctx context.Context, old, new *TableDescriptor) error {
	refs := func(t *TableDescriptor) map[string]bool {
		m := map[string]bool{}
		if t == nil {
			return m
		}
		for _, fk := range t.ForeignKeys {
			if fk.ParentTableID != 0 {
				m[string(ForeignKeyRefKey(fk.ParentTableID, t.ID, fk.Name))] = true
			}
		}
		return m
	}
	before, after := refs(old), refs(new)
	for k := range before {
		if !after[k] {
			if err := c.txn.Delete(ctx, []byte(k)); err != nil {
				return fmt.Errorf("catalog: delete foreign key reference: %w", err)
			}
		}
	}
	for k := range after {
		if !before[k] {
			if err := c.txn.Put(ctx, []byte(k), nil); err != nil {
				return fmt.Errorf("catalog: write foreign key reference: %w", err)
			}
		}
	}
	return nil
}

// GetTableByID returns the table with ID id.
func (c *Catalog) GetTableByID(ctx context.Context, id uint32) (*TableDescriptor, error) {
	v, ok, err := c.txn.Get(ctx, TableDescriptorKey(id))
	if err != nil {
		return nil, fmt.Errorf("catalog: get table %d: %w", id, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: ID %d", ErrTableNotFound, id)
	}
	return UnmarshalTableDescriptor(v)
}

// GetTableByName returns the table named name in database dbID.
func (c *Catalog) GetTableByName(ctx context.Context, dbID uint32, name string) (*TableDescriptor, error) {
	v, ok, err := c.txn.Get(ctx, TableNameKey(dbID, name))
	if err != nil {
		return nil, fmt.Errorf("catalog: get table %s: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTableNotFound, name)
	}
	id, err := decodeID(v)
	if err != nil {
		return nil, err
	}
	return c.GetTableByID(ctx, id)
}

// ListTableIDs returns the IDs of the tables of database dbID, ordered by
// lowercased name (cheap: no descriptor is read).
func (c *Catalog) ListTableIDs(ctx context.Context, dbID uint32) ([]uint32, error) {
	span := TableNamesSpan(dbID)
	kvs, err := c.txn.Scan(ctx, span.Key, span.EndKey, 0)
	if err != nil {
		return nil, fmt.Errorf("catalog: list tables of database %d: %w", dbID, err)
	}
	ids := make([]uint32, 0, len(kvs))
	for _, e := range kvs {
		id, err := decodeID(e.Value)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// ListTables returns the descriptors of database dbID's tables, ordered by
// lowercased name.
func (c *Catalog) ListTables(ctx context.Context, dbID uint32) ([]*TableDescriptor, error) {
	ids, err := c.ListTableIDs(ctx, dbID)
	if err != nil {
		return nil, err
	}
	out := make([]*TableDescriptor, 0, len(ids))
	for _, id := range ids {
		t, err := c.GetTableByID(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// UpdateTable writes a changed descriptor. t.Version must be the stored
// version (t was read in this transaction, or the change is refused with
// ErrVersionMismatch); on success t.Version is the new stored version.
// Renames go through RenameTable.
func (c *Catalog) UpdateTable(ctx context.Context, t *TableDescriptor) error {
	old, err := c.GetTableByID(ctx, t.ID)
	if err != nil {
		return err
	}
	if old.Version != t.Version {
		return fmt.Errorf("%w: table %s is at version %d, update based on %d", ErrVersionMismatch, old.Name, old.Version, t.Version)
	}
	if old.Name != t.Name || old.DatabaseID != t.DatabaseID || old.Database != t.Database {
		return fmt.Errorf("%w: UpdateTable cannot rename %s.%s (use RenameTable)", ErrInvalidDescriptor, old.Database, old.Name)
	}
	if err := t.Validate(); err != nil {
		return err
	}
	if err := c.resolveForeignKeyParents(ctx, t); err != nil {
		return err
	}
	t.Version++
	if err := c.putTable(ctx, t); err != nil {
		t.Version--
		return err
	}
	return c.syncForeignKeyRefs(ctx, old, t)
}

// RenameTable renames table id to newName in database newDB (which may be
// its current one) and bumps its version. Foreign keys of other tables name
// their parent by name: the SQL layer updates them (ReferencingForeignKeys
// lists them).
func (c *Catalog) RenameTable(ctx context.Context, id uint32, newDB *DatabaseDescriptor, newName string) (*TableDescriptor, error) {
	t, err := c.GetTableByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, exists, err := c.txn.Get(ctx, TableNameKey(newDB.ID, newName)); err != nil {
		return nil, fmt.Errorf("catalog: rename table %s: %w", t.Name, err)
	} else if exists && !(newDB.ID == t.DatabaseID && strings.EqualFold(newName, t.Name)) {
		return nil, fmt.Errorf("%w: %s.%s", ErrTableExists, newDB.Name, newName)
	}
	if err := c.txn.Delete(ctx, TableNameKey(t.DatabaseID, t.Name)); err != nil {
		return nil, fmt.Errorf("catalog: rename table %s: %w", t.Name, err)
	}
	for i := range t.ForeignKeys {
		if strings.EqualFold(t.ForeignKeys[i].Table, t.Name) {
			t.ForeignKeys[i].Table = newName
			t.ForeignKeys[i].Database = newDB.Name
		}
		// A self-referencing foreign key follows the table.
		if t.ForeignKeys[i].ParentTableID == t.ID {
			t.ForeignKeys[i].ParentTable = newName
			t.ForeignKeys[i].ParentDatabase = newDB.Name
		}
	}
	t.Name, t.DatabaseID, t.Database = newName, newDB.ID, newDB.Name
	t.Version++
	if err := c.putTable(ctx, t); err != nil {
		return nil, err
	}
	if err := c.txn.Put(ctx, TableNameKey(newDB.ID, newName), be4(t.ID)); err != nil {
		return nil, fmt.Errorf("catalog: rename table %s: %w", t.Name, err)
	}
	return t, nil
}

// ForeignKeyRef is one foreign key of a child table that references a
// parent table.
type ForeignKeyRef struct {
	Child      *TableDescriptor
	ForeignKey ForeignKeyDescriptor
}

// ReferencingForeignKeys returns the foreign keys of other tables (and of
// the table itself, when self-referencing) whose parent is parentID, ordered
// by child table ID then name.
func (c *Catalog) ReferencingForeignKeys(ctx context.Context, parentID uint32) ([]ForeignKeyRef, error) {
	span := ForeignKeyRefsSpan(parentID)
	kvs, err := c.txn.Scan(ctx, span.Key, span.EndKey, 0)
	if err != nil {
		return nil, fmt.Errorf("catalog: foreign keys referencing table %d: %w", parentID, err)
	}
	var out []ForeignKeyRef
	children := map[uint32]*TableDescriptor{}
	for _, e := range kvs {
		childID, name, err := decodeForeignKeyRefKey(e.Key)
		if err != nil {
			return nil, err
		}
		child := children[childID]
		if child == nil {
			if child, err = c.GetTableByID(ctx, childID); err != nil {
				return nil, fmt.Errorf("catalog: foreign key %s references table %d: %w", name, parentID, err)
			}
			children[childID] = child
		}
		for _, fk := range child.ForeignKeys {
			if strings.ToLower(fk.Name) == name && fk.ParentTableID == parentID {
				out = append(out, ForeignKeyRef{Child: child, ForeignKey: fk})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Child.ID < out[j].Child.ID })
	return out, nil
}

// DropTable removes table id: its name, its descriptor and the reverse
// entries of its own foreign keys. A table referenced by another table's
// foreign key is refused with ErrReferencedTable unless force is set
// (FOREIGN_KEY_CHECKS=0), in which case those references are removed from
// the reverse map (the children keep the constraint by name, unresolved).
// The caller deletes the table's data span (kv.TableSpan).
func (c *Catalog) DropTable(ctx context.Context, id uint32, force bool) (*TableDescriptor, error) {
	t, err := c.GetTableByID(ctx, id)
	if err != nil {
		return nil, err
	}
	refs, err := c.ReferencingForeignKeys(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		if r.Child.ID == id {
			continue // self reference
		}
		if !force {
			return nil, fmt.Errorf("%w: %s.%s is referenced by %s on %s", ErrReferencedTable, t.Database, t.Name, r.ForeignKey.Name, r.Child.Name)
		}
		if err := c.txn.Delete(ctx, ForeignKeyRefKey(id, r.Child.ID, r.ForeignKey.Name)); err != nil {
			return nil, fmt.Errorf("catalog: drop table %s: %w", t.Name, err)
		}
	}
	if err := c.syncForeignKeyRefs(ctx, t, nil); err != nil {
		return nil, err
	}
	if err := c.txn.Delete(ctx, TableNameKey(t.DatabaseID, t.Name)); err != nil {
		return nil, fmt.Errorf("catalog: drop table %s: %w", t.Name, err)
	}
	if err := c.txn.Delete(ctx, TableDescriptorKey(id)); err != nil {
		return nil, fmt.Errorf("catalog: drop table %s: %w", t.Name, err)
	}
	return t, nil
}
