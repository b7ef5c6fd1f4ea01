package qsql

import (
	"sort"
	"strings"

	gms "github.com/dolthub/go-mysql-server/sql"
)

// Database is one database of the catalog.
type Database struct {
	srv  *Server
	desc dbDesc
}

var (
	_ gms.Database         = (*Database)(nil)
	_ gms.TableCreator     = (*Database)(nil)
	_ gms.TableDropper     = (*Database)(nil)
	_ gms.TableRenamer     = (*Database)(nil)
	_ gms.ViewDatabase     = (*Database)(nil)
	_ gms.CollatedDatabase = (*Database)(nil)
)

func (d *Database) Name() string { return d.desc.name }

// GetTableInsensitive returns the table (case-insensitive name).
func (d *Database) GetTableInsensitive(ctx *gms.Context, name string) (gms.Table, bool, error) {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return nil, false, err
	}
	defer release()
	info, found, err := d.srv.store.getTable(ctx, kvt, schemaCacheOf(ctx), d.desc, name)
	if err != nil || !found {
		return nil, false, err
	}
	return &Table{db: d, info: info}, true, nil
}

// GetTableNames lists the tables, sorted.
func (d *Database) GetTableNames(ctx *gms.Context) ([]string, error) {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	names, err := d.srv.store.listTables(ctx, kvt, d.desc)
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool { return strings.ToLower(names[i]) < strings.ToLower(names[j]) })
	return names, nil
}

// CreateTable stores a new table descriptor (indexes, foreign keys and
// checks of the statement arrive afterwards through the table's methods).
func (d *Database) CreateTable(ctx *gms.Context, name string, schema gms.PrimaryKeySchema, collation gms.CollationID, comment string) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	if collation == gms.Collation_Unspecified {
		collation = d.desc.collation
	}
	return d.srv.store.createTable(ctx, kvt, d.desc, name, schema, collation, comment)
}

// DropTable drops the table and deletes its rows. With FOREIGN_KEY_CHECKS=0
// a referenced table may be dropped (its children keep their constraints,
// unresolved).
func (d *Database) DropTable(ctx *gms.Context, name string) error {
	return d.dropTable(ctx, name, !foreignKeyChecks(ctx))
}

func foreignKeyChecks(ctx *gms.Context) bool {
	v, err := ctx.GetSessionVariable(ctx, "foreign_key_checks")
	if err != nil {
		return true
	}
	return truthy(v)
}

func (d *Database) dropTable(ctx *gms.Context, name string, force bool) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	info, found, err := d.srv.store.getTable(ctx, kvt, nil, d.desc, name)
	if err != nil {
		return err
	}
	if !found {
		return gms.ErrTableNotFound.New(name)
	}
	if err := deleteSpanKeys(ctx, kvt, info); err != nil {
		return err
	}
	if err := d.srv.store.dropTable(ctx, kvt, d.desc, info, force); err != nil {
		return err
	}
	d.srv.autoInc.forget(info.id)
	return nil
}

// RenameTable renames a table within the database.
func (d *Database) RenameTable(ctx *gms.Context, oldName, newName string) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	return d.srv.store.renameTable(ctx, kvt, d.desc, oldName, newName)
}

// GetCollation is the database's default collation.
func (d *Database) GetCollation(*gms.Context) gms.CollationID { return d.desc.collation }

// SetCollation changes the database's default collation.
func (d *Database) SetCollation(ctx *gms.Context, collation gms.CollationID) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	return d.srv.store.setDatabaseCollation(ctx, kvt, d.desc, collation)
}

// CreateView stores a view definition.
func (d *Database) CreateView(ctx *gms.Context, name string, selectStatement, createViewStmt string) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	_, found, err := d.srv.store.getView(ctx, kvt, d.desc, name)
	if err != nil {
		return err
	}
	if found {
		return gms.ErrExistingView.New(d.Name(), name)
	}
	def := gms.ViewDefinition{Name: name, TextDefinition: selectStatement, CreateViewStatement: createViewStmt}
	if mode, ok := ctx.GetSessionVariable(ctx, "sql_mode"); ok == nil {
		if s, isStr := mode.(string); isStr {
			def.SqlMode = s
		}
	}
	return d.srv.store.putView(ctx, kvt, d.desc, def)
}

// DropView removes a view.
func (d *Database) DropView(ctx *gms.Context, name string) error {
	tx, kvt, err := writeTxn(ctx)
	if err != nil {
		return err
	}
	tx.invalidateSchema()
	_, found, err := d.srv.store.getView(ctx, kvt, d.desc, name)
	if err != nil {
		return err
	}
	if !found {
		return gms.ErrViewDoesNotExist.New(d.Name(), name)
	}
	return d.srv.store.deleteView(ctx, kvt, d.desc, name)
}

// GetViewDefinition returns a view.
func (d *Database) GetViewDefinition(ctx *gms.Context, name string) (gms.ViewDefinition, bool, error) {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return gms.ViewDefinition{}, false, err
	}
	defer release()
	return d.srv.store.lookupView(ctx, kvt, schemaCacheOf(ctx), d.desc, name)
}

// AllViews lists the views.
func (d *Database) AllViews(ctx *gms.Context) ([]gms.ViewDefinition, error) {
	kvt, release, err := readTxn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return d.srv.store.listViews(ctx, kvt, d.desc)
}
