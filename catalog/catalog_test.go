package catalog

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/expression"
	"github.com/dolthub/go-mysql-server/sql/planbuilder"
	"github.com/dolthub/go-mysql-server/sql/types"

	"github.com/quorumdb/quorumdb/kv"
)

// memKV is a test fixture: a plain sorted in-memory implementation of the
// catalog's KV storage interface (the interface is pure storage; the SQL
// layer implements it with a real transaction).
type memKV struct{ m map[string][]byte }

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (s *memKV) Get(_ context.Context, key []byte) ([]byte, bool, error) {
	v, ok := s.m[string(key)]
	return v, ok, nil
}

func (s *memKV) Put(_ context.Context, key, value []byte) error {
	s.m[string(key)] = append([]byte{}, value...)
	return nil
}

func (s *memKV) Delete(_ context.Context, key []byte) error {
	delete(s.m, string(key))
	return nil
}

func (s *memKV) Scan(_ context.Context, start, end []byte, limit int) ([]kv.KeyValue, error) {
	var keys []string
	for k := range s.m {
		if bytes.Compare([]byte(k), start) >= 0 && (end == nil || bytes.Compare([]byte(k), end) < 0) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]kv.KeyValue, len(keys))
	for i, k := range keys {
		out[i] = kv.KeyValue{Key: []byte(k), Value: s.m[k]}
	}
	return out, nil
}

// TestTypeStringRoundTrip: every supported type survives being stored as
// its SQL text and re-parsed with planbuilder.ParseColumnTypeString: the
// re-parsed type prints stably, has the same collation (a
// type printed without COLLATE re-parses as Collation_Unspecified, which
// go-mysql-server treats as the default utf8mb4_0900_bin), converts values
// the same way and gives them the same keys and row bytes.
func TestTypeStringRoundTrip(t *testing.T) {
	normalize := func(c sql.CollationID) sql.CollationID {
		if c == sql.Collation_Unspecified {
			return sql.Collation_Default
		}
		return c
	}
	for i, tt := range rowTestTypes {
		typ := parseType(t, tt.sql)
		back, err := planbuilder.ParseColumnTypeString(typ.String())
		if err != nil {
			t.Fatalf("%s: re-parse %q: %v", tt.sql, typ.String(), err)
		}
		again, err := planbuilder.ParseColumnTypeString(back.String())
		// ENUM and SET alternate between printing the default character set
		// and not; both texts are the same type.
		if err != nil || (again.String() != back.String() && again.String() != typ.String()) {
			t.Errorf("%s: %q re-parses as %q (%v)", tt.sql, back.String(), again, err)
		}
		if wc, ok := typ.(sql.TypeWithCollation); ok && normalize(wc.Collation()) != normalize(back.(sql.TypeWithCollation).Collation()) {
			t.Errorf("%s: collation %s became %s", tt.sql, wc.Collation(), back.(sql.TypeWithCollation).Collation())
		}
		r := rand.New(rand.NewPCG(11, uint64(i)))
		for _, v := range genValues(t, r, typ, tt.gen, 30, false) {
			bv, _, err := back.Convert(context.Background(), v)
			if err != nil || !sameValue(bv, v) {
				t.Fatalf("%s: re-parsed type converts %#v to %#v (%v)", tt.sql, v, bv, err)
			}
			if KeyIsDecodable(typ) != KeyIsDecodable(back) {
				t.Fatalf("%s: decodability changed", tt.sql)
			}
			k1, err1 := EncodeKey(nil, typ, v)
			k2, err2 := EncodeKey(nil, back, v)
			if !bytes.Equal(k1, k2) || (err1 == nil) != (err2 == nil) {
				t.Fatalf("%s: key of %#v changed after re-parse: %x (%v) vs %x (%v)", tt.sql, v, k1, err1, k2, err2)
			}
		}
	}
}

func literalDefault(t *testing.T, v any, typ sql.Type) *sql.ColumnDefaultValue {
	t.Helper()
	d, err := sql.NewColumnDefaultValue(expression.NewLiteral(v, typ), typ, true, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func customersSchema(t *testing.T) sql.PrimaryKeySchema {
	name := types.MustCreateString(sqltypes_VarChar(), 50, sql.Collation_utf8mb4_0900_ai_ci)
	return sql.NewPrimaryKeySchema(sql.Schema{
		{Name: "id", Type: types.Int64, AutoIncrement: true, PrimaryKey: true, Extra: "auto_increment"},
		{Name: "name", Type: name, Nullable: false, Comment: "customer's name"},
		{Name: "balance", Type: types.MustCreateColumnDecimalType(12, 2), Nullable: true, Default: literalDefault(t, "0.00", types.MustCreateColumnDecimalType(12, 2))},
		{Name: "doc", Type: types.JSON, Nullable: true},
	})
}

func testDB() *DatabaseDescriptor { return &DatabaseDescriptor{ID: 7, Name: "Shop"} }

func TestTableDescriptorGMSRoundTrip(t *testing.T) {
	schema := customersSchema(t)
	td, err := NewTableDescriptor(testDB(), 100, "Customers", schema, sql.Collation_utf8mb4_0900_bin, "the customers")
	if err != nil {
		t.Fatal(err)
	}
	td.ForeignKeys = append(td.ForeignKeys, ForeignKeyFromGMS(sql.ForeignKeyConstraint{
		Name: "fk_self", Database: "Shop", Table: "Customers", Columns: []string{"id"},
		ParentDatabase: "Shop", ParentTable: "Customers", ParentColumns: []string{"id"},
		OnUpdate: sql.ForeignKeyReferentialAction_Cascade, OnDelete: sql.ForeignKeyReferentialAction_SetNull, IsResolved: true,
	}))
	td.Checks = append(td.Checks, CheckFromGMS(sql.CheckDefinition{Name: "chk_balance", CheckExpression: "(`balance` >= 0)", Enforced: true}))
	if _, err := td.AddIndex(sql.IndexDef{Name: "by_name", Columns: []sql.IndexColumn{{Name: "name"}}, Constraint: sql.IndexConstraint_Unique}); err != nil {
		t.Fatal(err)
	}
	b, err := td.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalTableDescriptor(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, td) {
		t.Fatalf("unmarshal:\n%+v\nwant\n%+v", back, td)
	}
	pks, err := back.PrimaryKeySchema()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pks.PkOrdinals, []int{0}) || len(pks.Schema) != 4 {
		t.Fatalf("schema %v ordinals %v", pks.Schema, pks.PkOrdinals)
	}
	for i, col := range pks.Schema {
		orig := schema.Schema[i]
		if col.Name != orig.Name || !col.Type.Equals(orig.Type) || col.Type.String() != orig.Type.String() ||
			col.Nullable != orig.Nullable || col.AutoIncrement != orig.AutoIncrement || col.Comment != orig.Comment ||
			col.PrimaryKey != orig.PrimaryKey || col.Source != "Customers" || col.DatabaseSource != "Shop" {
			t.Errorf("column %d: %+v, want %+v", i, col, orig)
		}
		if (col.Default == nil) != (orig.Default == nil) {
			t.Errorf("column %s default %v, want %v", col.Name, col.Default, orig.Default)
		} else if col.Default != nil && col.Default.Expr.String() != orig.Default.String() {
			t.Errorf("column %s default text %q, want %q", col.Name, col.Default.Expr.String(), orig.Default.String())
		}
	}
	fk := back.ForeignKeys[0].ToGMS()
	if fk.OnDelete != sql.ForeignKeyReferentialAction_SetNull || fk.ParentTable != "Customers" || !fk.IsResolved {
		t.Errorf("foreign key %+v", fk)
	}
	if ck := back.Checks[0].ToGMS(); ck != (sql.CheckDefinition{Name: "chk_balance", CheckExpression: "(`balance` >= 0)", Enforced: true}) {
		t.Errorf("check %+v", ck)
	}
	if ix := back.IndexByName("BY_NAME"); ix == nil || ix.ID != 2 || !ix.Unique || !reflect.DeepEqual(ix.ColumnIDs, []uint32{2}) {
		t.Errorf("index %+v", ix)
	}
}

func TestTableDescriptorValidate(t *testing.T) {
	base, err := NewTableDescriptor(testDB(), 100, "t", customersSchema(t), sql.Collation_Unspecified, "")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(d *TableDescriptor){
		"no name":            func(d *TableDescriptor) { d.Name = "" },
		"duplicate column":   func(d *TableDescriptor) { d.Columns[1].Name = "ID" },
		"column ID too high": func(d *TableDescriptor) { d.Columns[1].ID = d.NextColumnID },
		"bad type":           func(d *TableDescriptor) { d.Columns[1].Type = "varchar(" },
		"pk unknown column":  func(d *TableDescriptor) { d.PrimaryIndex.ColumnIDs = []uint32{99} },
		"primary index ID":   func(d *TableDescriptor) { d.PrimaryIndex.ID = 2 },
		"index dup name": func(d *TableDescriptor) {
			d.Indexes = []IndexDescriptor{{ID: 2, Name: "primary", ColumnIDs: []uint32{2}}}
			d.NextIndexID = 3
		},
		"index no columns": func(d *TableDescriptor) {
			d.Indexes = []IndexDescriptor{{ID: 2, Name: "x"}}
			d.NextIndexID = 3
		},
		"fk unknown column": func(d *TableDescriptor) {
			d.ForeignKeys = []ForeignKeyDescriptor{{Name: "f", Columns: []string{"nope"}, ParentColumns: []string{"id"}}}
		},
		"check without expr": func(d *TableDescriptor) { d.Checks = []CheckDescriptor{{Name: "c"}} },
		"bad collation":      func(d *TableDescriptor) { d.Collation = "klingon_ci" },
	}
	for name, mutate := range cases {
		d := base.Clone()
		mutate(d)
		if err := d.Validate(); !errors.Is(err, ErrInvalidDescriptor) {
			t.Errorf("%s: %v, want ErrInvalidDescriptor", name, err)
		}
		if _, err := d.Marshal(); !errors.Is(err, ErrInvalidDescriptor) {
			t.Errorf("%s: Marshal %v, want ErrInvalidDescriptor", name, err)
		}
	}
	if _, err := UnmarshalTableDescriptor([]byte(`{"format":1,`)); !errors.Is(err, ErrInvalidDescriptor) {
		t.Errorf("truncated JSON: %v", err)
	}
	if _, err := UnmarshalTableDescriptor([]byte(`{"format":9}`)); !errors.Is(err, ErrInvalidDescriptor) {
		t.Errorf("unknown format: %v", err)
	}
}

func TestTableDescriptorAlter(t *testing.T) {
	d, err := NewTableDescriptor(testDB(), 100, "t", customersSchema(t), sql.Collation_Unspecified, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.AddColumn(&sql.Column{Name: "email", Type: types.Text, Nullable: true}, &sql.ColumnOrder{AfterColumn: "name"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != 5 || d.Columns[2].Name != "email" || d.NextColumnID != 6 {
		t.Fatalf("add column: %+v, columns %v", c, d.Columns)
	}
	if _, err := d.AddColumn(&sql.Column{Name: "EMAIL", Type: types.Text}, nil); !errors.Is(err, ErrInvalidDescriptor) {
		t.Fatalf("duplicate add: %v", err)
	}
	if _, err := d.AddIndex(sql.IndexDef{Name: "by_email", Columns: []sql.IndexColumn{{Name: "email", Length: 10}, {Name: "name"}}}); err != nil {
		t.Fatal(err)
	}
	if err := d.ModifyColumn("email", &sql.Column{Name: "mail", Type: types.LongText, Nullable: false}, &sql.ColumnOrder{First: true}); err != nil {
		t.Fatal(err)
	}
	if d.Columns[0].Name != "mail" || d.Columns[0].ID != 5 || d.Columns[0].Type != "longtext" {
		t.Fatalf("modify: %+v", d.Columns)
	}
	dropped, err := d.DropColumn("mail")
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 1 || dropped[0].Name != "by_email" || len(d.Indexes) != 0 {
		t.Fatalf("drop column dropped indexes %v, left %v", dropped, d.Indexes)
	}
	if _, err := d.DropColumn("id"); !errors.Is(err, ErrInvalidDescriptor) {
		t.Fatalf("drop pk column: %v", err)
	}
	// IDs are never reused.
	c, err = d.AddColumn(&sql.Column{Name: "mail", Type: types.Text, Nullable: true}, nil)
	if err != nil || c.ID != 6 {
		t.Fatalf("re-add: %+v %v", c, err)
	}
	if ix, err := d.DropIndex("nope"); err == nil {
		t.Fatalf("drop unknown index: %+v", ix)
	}
}

func TestCatalogLifecycle(t *testing.T) {
	ctx := context.Background()
	store := newMemKV()
	cat := New(store)
	shop := &DatabaseDescriptor{ID: 1, Name: "Shop"}
	if err := cat.CreateDatabase(ctx, shop); err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateDatabase(ctx, &DatabaseDescriptor{ID: 2, Name: "shop"}); !errors.Is(err, ErrDatabaseExists) {
		t.Fatalf("duplicate database: %v", err)
	}
	other := &DatabaseDescriptor{ID: 3, Name: "archive", Collation: "utf8mb4_0900_ai_ci"}
	if err := cat.CreateDatabase(ctx, other); err != nil {
		t.Fatal(err)
	}
	dbs, err := cat.ListDatabases(ctx)
	if err != nil || len(dbs) != 2 || dbs[0].Name != "archive" || dbs[1].Name != "Shop" || dbs[1].Version != 1 {
		t.Fatalf("list databases: %+v %v", dbs, err)
	}
	if db, err := cat.GetDatabase(ctx, "SHOP"); err != nil || db.ID != 1 {
		t.Fatalf("get database case-insensitively: %+v %v", db, err)
	}

	customers, err := NewTableDescriptor(shop, 10, "customers", customersSchema(t), sql.Collation_Unspecified, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateTable(ctx, customers); err != nil {
		t.Fatal(err)
	}
	orders, err := NewTableDescriptor(shop, 11, "orders", sql.NewPrimaryKeySchema(sql.Schema{
		{Name: "id", Type: types.Int64, PrimaryKey: true},
		{Name: "customer_id", Type: types.Int64, Nullable: true},
	}), sql.Collation_Unspecified, "")
	if err != nil {
		t.Fatal(err)
	}
	fk := ForeignKeyFromGMS(sql.ForeignKeyConstraint{Name: "fk_customer", Database: "Shop", Table: "orders",
		Columns: []string{"customer_id"}, ParentDatabase: "Shop", ParentTable: "customers", ParentColumns: []string{"id"},
		OnUpdate: sql.ForeignKeyReferentialAction_Restrict, OnDelete: sql.ForeignKeyReferentialAction_Cascade, IsResolved: true})
	orders.ForeignKeys = []ForeignKeyDescriptor{fk} // ParentTableID resolved by name on create
	if err := cat.CreateTable(ctx, orders); err != nil {
		t.Fatal(err)
	}
	dupe := orders.Clone()
	dupe.ID = 12
	dupe.Name = "ORDERS"
	if err := cat.CreateTable(ctx, dupe); !errors.Is(err, ErrTableExists) {
		t.Fatalf("duplicate table: %v", err)
	}
	wrongDB := orders.Clone()
	wrongDB.ID, wrongDB.Name, wrongDB.DatabaseID = 13, "x", 99
	if err := cat.CreateTable(ctx, wrongDB); !errors.Is(err, ErrDatabaseNotFound) {
		t.Fatalf("table in missing database: %v", err)
	}

	got, err := cat.GetTableByName(ctx, shop.ID, "Orders")
	if err != nil || got.ID != 11 || got.Version != 1 || got.ForeignKeys[0].ParentTableID != 10 {
		t.Fatalf("get table: %+v %v", got, err)
	}
	if _, err := cat.GetTableByName(ctx, other.ID, "orders"); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("table in other database: %v", err)
	}
	refs, err := cat.ReferencingForeignKeys(ctx, customers.ID)
	if err != nil || len(refs) != 1 || refs[0].Child.ID != 11 || refs[0].ForeignKey.Name != "fk_customer" {
		t.Fatalf("referencing foreign keys: %+v %v", refs, err)
	}
	tables, err := cat.ListTables(ctx, shop.ID)
	if err != nil || len(tables) != 2 || tables[0].Name != "customers" || tables[1].Name != "orders" {
		t.Fatalf("list tables: %v %v", tables, err)
	}

	// Dropping a referenced parent is refused; a database with tables too.
	if _, err := cat.DropTable(ctx, customers.ID, false); !errors.Is(err, ErrReferencedTable) {
		t.Fatalf("drop referenced table: %v", err)
	}
	if _, err := cat.DropDatabase(ctx, "shop"); !errors.Is(err, ErrDatabaseNotEmpty) {
		t.Fatalf("drop non-empty database: %v", err)
	}

	// UpdateTable: optimistic version check, FK reverse map follows.
	stale := got.Clone()
	got.ForeignKeys = nil
	if _, err := got.AddIndex(sql.IndexDef{Name: "by_customer", Columns: []sql.IndexColumn{{Name: "customer_id"}}}); err != nil {
		t.Fatal(err)
	}
	if err := cat.UpdateTable(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 {
		t.Fatalf("version after update %d", got.Version)
	}
	if err := cat.UpdateTable(ctx, stale); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("stale update: %v", err)
	}
	if refs, err := cat.ReferencingForeignKeys(ctx, customers.ID); err != nil || len(refs) != 0 {
		t.Fatalf("references after dropping the FK: %+v %v", refs, err)
	}
	renamedByUpdate := got.Clone()
	renamedByUpdate.Name = "x"
	if err := cat.UpdateTable(ctx, renamedByUpdate); !errors.Is(err, ErrInvalidDescriptor) {
		t.Fatalf("rename through UpdateTable: %v", err)
	}

	// Rename across databases.
	if _, err := cat.RenameTable(ctx, orders.ID, other, "customers"); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.RenameTable(ctx, customers.ID, other, "Customers"); !errors.Is(err, ErrTableExists) {
		t.Fatalf("rename onto existing: %v", err)
	}
	moved, err := cat.GetTableByName(ctx, other.ID, "customers")
	if err != nil || moved.ID != orders.ID || moved.Database != "archive" || moved.Version != 3 {
		t.Fatalf("renamed table: %+v %v", moved, err)
	}
	if _, err := cat.GetTableByName(ctx, shop.ID, "orders"); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("old name still resolves: %v", err)
	}

	// Drop everything; the catalog span ends up empty.
	for _, id := range []uint32{customers.ID, orders.ID} {
		if _, err := cat.DropTable(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"shop", "ARCHIVE"} {
		if _, err := cat.DropDatabase(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	span := CatalogSpan()
	if left, _ := store.Scan(ctx, span.Key, span.EndKey, 0); len(left) != 0 {
		t.Fatalf("catalog keys left after dropping everything: %d", len(left))
	}
}

func TestForeignKeyParentResolvedLater(t *testing.T) {
	ctx := context.Background()
	cat := New(newMemKV())
	db := &DatabaseDescriptor{ID: 1, Name: "d"}
	if err := cat.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	// The child comes first (FOREIGN_KEY_CHECKS=0): its parent is unknown.
	child, _ := NewTableDescriptor(db, 11, "c", sql.NewPrimaryKeySchema(sql.Schema{{Name: "id", Type: types.Int32, PrimaryKey: true}, {Name: "pid", Type: types.Int32, Nullable: true}}), 0, "")
	child.ForeignKeys = []ForeignKeyDescriptor{{Name: "fk", Database: "d", Table: "c", Columns: []string{"pid"},
		ParentDatabase: "d", ParentTable: "p", ParentColumns: []string{"id"}}}
	if err := cat.CreateTable(ctx, child); err != nil {
		t.Fatal(err)
	}
	if child.ForeignKeys[0].ParentTableID != 0 {
		t.Fatalf("parent resolved before it exists: %d", child.ForeignKeys[0].ParentTableID)
	}
	parent, _ := NewTableDescriptor(db, 10, "P", sql.NewPrimaryKeySchema(sql.Schema{{Name: "id", Type: types.Int32, PrimaryKey: true}}), 0, "")
	if err := cat.CreateTable(ctx, parent); err != nil {
		t.Fatal(err)
	}
	// Any later update of the child resolves it and records the reference.
	child.ForeignKeys[0].IsResolved = true
	if err := cat.UpdateTable(ctx, child); err != nil {
		t.Fatal(err)
	}
	refs, err := cat.ReferencingForeignKeys(ctx, 10)
	if err != nil || len(refs) != 1 || refs[0].Child.ID != 11 || refs[0].ForeignKey.ParentTableID != 10 {
		t.Fatalf("references: %+v %v", refs, err)
	}
}

func TestDropTableForceRemovesReferences(t *testing.T) {
	ctx := context.Background()
	cat := New(newMemKV())
	db := &DatabaseDescriptor{ID: 1, Name: "d"}
	if err := cat.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	parent, _ := NewTableDescriptor(db, 10, "p", sql.NewPrimaryKeySchema(sql.Schema{{Name: "id", Type: types.Int32, PrimaryKey: true}}), 0, "")
	child, _ := NewTableDescriptor(db, 11, "c", sql.NewPrimaryKeySchema(sql.Schema{{Name: "id", Type: types.Int32, PrimaryKey: true}, {Name: "pid", Type: types.Int32, Nullable: true}}), 0, "")
	child.ForeignKeys = []ForeignKeyDescriptor{{Name: "fk", Database: "d", Table: "c", Columns: []string{"pid"},
		ParentDatabase: "d", ParentTable: "p", ParentColumns: []string{"id"}, IsResolved: true, ParentTableID: 10}}
	// A self-referencing key does not block dropping the table itself.
	parent.ForeignKeys = []ForeignKeyDescriptor{{Name: "self", Database: "d", Table: "p", Columns: []string{"id"},
		ParentDatabase: "d", ParentTable: "p", ParentColumns: []string{"id"}, IsResolved: true, ParentTableID: 10}}
	for _, td := range []*TableDescriptor{parent, child} {
		if err := cat.CreateTable(ctx, td); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cat.DropTable(ctx, 10, true); err != nil {
		t.Fatal(err)
	}
	if refs, err := cat.ReferencingForeignKeys(ctx, 10); err != nil || len(refs) != 0 {
		t.Fatalf("references after forced drop: %+v %v", refs, err)
	}
	if _, err := cat.DropTable(ctx, 11, false); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.GetTableByID(ctx, 10); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("dropped table still found: %v", err)
	}
}

func TestSystemKeysAreDisjoint(t *testing.T) {
	keys := [][]byte{
		DatabaseNameKey("a"), DatabaseNameKey("ab"), DatabaseDescriptorKey(1), TableNameKey(1, "a"),
		TableNameKey(1, "ab"), TableNameKey(2, "a"), TableDescriptorKey(1), ForeignKeyRefKey(1, 2, "f"),
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if k[0] != kv.SystemPrefix || seen[string(k)] {
			t.Fatalf("key %q not a fresh system key", k)
		}
		seen[string(k)] = true
	}
	if s := TableNamesSpan(1); !(bytes.Compare(TableNameKey(1, "zzz"), s.EndKey) < 0 && bytes.Compare(TableNameKey(2, ""), s.EndKey) >= 0) {
		t.Fatal("TableNamesSpan(1) does not cover exactly database 1")
	}
	if !strings.HasPrefix(string(TableNameKey(1, "MiXeD")), string(TableNamesSpan(1).Key)) || !bytes.Equal(TableNameKey(1, "MiXeD"), TableNameKey(1, "mixed")) {
		t.Fatal("table name keys are not case-insensitive")
	}
}

func TestTableCache(t *testing.T) {
	ctx := context.Background()
	cat := New(newMemKV())
	db := &DatabaseDescriptor{ID: 1, Name: "d"}
	if err := cat.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	td, err := NewTableDescriptor(db, 10, "t", sql.NewPrimaryKeySchema(sql.Schema{{Name: "id", Type: types.Int32, PrimaryKey: true}}), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateTable(ctx, td); err != nil {
		t.Fatal(err)
	}
	cache := NewTableCache(2)
	a, err := cat.ResolveTableByName(ctx, cache, db.ID, "T")
	if err != nil {
		t.Fatal(err)
	}
	b, err := cat.ResolveTableByID(ctx, cache, 10)
	if err != nil || a != b {
		t.Fatalf("same descriptor resolved twice: %p %p %v", a, b, err)
	}
	changed := td.Clone()
	if _, err := changed.AddColumn(&sql.Column{Name: "v", Type: types.Text, Nullable: true}, nil); err != nil {
		t.Fatal(err)
	}
	if err := cat.UpdateTable(ctx, changed); err != nil {
		t.Fatal(err)
	}
	c, err := cat.ResolveTableByID(ctx, cache, 10)
	if err != nil || c == a || len(c.Types()) != 2 || c.Desc.Version != 2 {
		t.Fatalf("changed descriptor served from cache: %+v %v", c, err)
	}
	if _, err := cat.ResolveTableByID(ctx, cache, 99); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("missing table: %v", err)
	}
	if _, err := cache.Resolve([]byte(`{"format":1,"id":1}`)); !errors.Is(err, ErrInvalidDescriptor) {
		t.Fatalf("invalid descriptor: %v", err)
	}
}
