package catalog

import (
	"bytes"
	"errors"
	"reflect"
	"sort"
	"testing"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/sqltypes"

	"github.com/quorumdb/quorumdb/kv"
)

// accountsTable: PRIMARY KEY (region, id), a non-unique index on owner and
// a unique index on (email) in a case-insensitive collation.
func accountsTable(t *testing.T) *Table {
	t.Helper()
	ci := types.MustCreateString(sqltypes.VarChar, 100, sql.Collation_utf8mb4_0900_ai_ci)
	schema := sql.NewPrimaryKeySchema(sql.Schema{
		{Name: "id", Type: types.Int64, PrimaryKey: true},
		{Name: "region", Type: types.MustCreateString(sqltypes.VarChar, 10, sql.Collation_utf8mb4_0900_bin), PrimaryKey: true},
		{Name: "owner", Type: types.Text, Nullable: true},
		{Name: "email", Type: ci, Nullable: true},
		{Name: "balance", Type: types.MustCreateColumnDecimalType(12, 2)},
	}, 1, 0)
	d, err := NewTableDescriptor(&DatabaseDescriptor{ID: 1, Name: "bank"}, 42, "accounts", schema, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddIndex(sql.IndexDef{Name: "by_owner", Columns: []sql.IndexColumn{{Name: "owner", Length: 3}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddIndex(sql.IndexDef{Name: "by_email", Columns: []sql.IndexColumn{{Name: "email"}}, Constraint: sql.IndexConstraint_Unique}); err != nil {
		t.Fatal(err)
	}
	tbl, err := d.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestPrimaryKey(t *testing.T) {
	tbl := accountsTable(t)
	row := sql.Row{int64(7), "eu", "ann", "Ann@x", mustDecimal(t, "10.00")}
	k, err := PrimaryKey(tbl, row)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(k, kv.TableKeyPrefix(42, PrimaryIndexID)) {
		t.Fatalf("key %x lacks the table prefix", k)
	}
	vals, err := DecodePrimaryKey(tbl, k)
	if err != nil || !reflect.DeepEqual(vals, []any{"eu", int64(7)}) {
		t.Fatalf("decode: %#v %v", vals, err)
	}
	// Keys sort by (region, id).
	rows := []sql.Row{
		{int64(9), "us", nil, nil, mustDecimal(t, "0")},
		{int64(1), "us", nil, nil, mustDecimal(t, "0")},
		{int64(100), "eu", nil, nil, mustDecimal(t, "0")},
		{int64(-3), "eu", nil, nil, mustDecimal(t, "0")},
	}
	var keys [][]byte
	for _, r := range rows {
		k, err := PrimaryKey(tbl, r)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
	var order []int64
	for _, k := range keys {
		v, _ := DecodePrimaryKey(tbl, k)
		order = append(order, v[1].(int64))
	}
	if !reflect.DeepEqual(order, []int64{-3, 100, 1, 9}) {
		t.Fatalf("primary key order %v", order)
	}
	if _, err := PrimaryKey(tbl, sql.Row{nil, "eu", nil, nil, nil}); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("NULL primary key: %v", err)
	}
	if _, err := PrimaryKey(tbl, sql.Row{int64(1)}); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("short row: %v", err)
	}
}

func mustDecimal(t *testing.T, s string) any {
	t.Helper()
	v, _, err := types.MustCreateColumnDecimalType(12, 2).Convert(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSecondaryIndexKey(t *testing.T) {
	tbl := accountsTable(t)
	ix := tbl.Desc.IndexByName("by_owner")
	a := sql.Row{int64(1), "eu", "annabel", nil, mustDecimal(t, "1")}
	b := sql.Row{int64(2), "eu", "anna", nil, mustDecimal(t, "1")}
	ka, err := SecondaryIndexKey(tbl, ix, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := SecondaryIndexKey(tbl, ix, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Both owners share the 3-character prefix "ann": the entries differ
	// only by primary key and sort by it.
	if bytes.Compare(ka, kb) >= 0 {
		t.Fatalf("entries not ordered by primary key: %x %x", ka, kb)
	}
	lookup, err := IndexKeyPrefix(tbl, ix.ID, []any{"ann"})
	if err != nil {
		t.Fatal(err)
	}
	span := PrefixSpan(lookup)
	for _, k := range [][]byte{ka, kb} {
		if bytes.Compare(k, span.Key) < 0 || bytes.Compare(k, span.EndKey) >= 0 {
			t.Fatalf("entry %x outside lookup span %x-%x", k, span.Key, span.EndKey)
		}
	}
	pk, err := PrimaryKeyFromIndexEntry(tbl, ix, ka, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := PrimaryKey(tbl, a)
	if !bytes.Equal(pk, want) {
		t.Fatalf("primary key from entry %x, want %x", pk, want)
	}
	if _, err := SecondaryIndexKey(tbl, &tbl.Desc.PrimaryIndex, a, nil); !errors.Is(err, ErrInvalidDescriptor) {
		t.Fatalf("primary index as secondary: %v", err)
	}
}

func TestUniqueIndexKey(t *testing.T) {
	tbl := accountsTable(t)
	ix := tbl.Desc.IndexByName("by_email")
	entry := func(r sql.Row) ([]byte, []byte) {
		k, v, err := UniqueIndexKey(tbl, ix, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k, v
	}
	k1, v1 := entry(sql.Row{int64(1), "eu", nil, "Ann@X.org", mustDecimal(t, "1")})
	k2, _ := entry(sql.Row{int64(2), "us", nil, "ann@x.org", mustDecimal(t, "1")})
	if !bytes.Equal(k1, k2) {
		t.Fatal("emails equal under utf8mb4_0900_ai_ci must conflict")
	}
	k3, _ := entry(sql.Row{int64(3), "us", nil, "bob@x.org", mustDecimal(t, "1")})
	if bytes.Equal(k1, k3) {
		t.Fatal("different emails conflict")
	}
	n1, _ := entry(sql.Row{int64(4), "us", nil, nil, mustDecimal(t, "1")})
	n2, _ := entry(sql.Row{int64(5), "us", nil, nil, mustDecimal(t, "1")})
	if bytes.Equal(n1, n2) {
		t.Fatal("rows with NULL in a unique column must not conflict")
	}
	pk, err := PrimaryKeyFromIndexEntry(tbl, ix, k1, v1)
	if err != nil {
		t.Fatal(err)
	}
	if vals, err := DecodePrimaryKey(tbl, pk); err != nil || !reflect.DeepEqual(vals, []any{"eu", int64(1)}) {
		t.Fatalf("primary key from unique entry: %#v %v", vals, err)
	}
	// The weight-string column cannot be decoded from an index key.
	rest := k1[len(tbl.IndexPrefix(ix.ID)):]
	if _, _, err := DecodeKey(rest, tbl.Types()[3]); !errors.Is(err, ErrKeyNotDecodable) {
		t.Fatalf("decoding a _ci key: %v", err)
	}
}

func TestKeylessTable(t *testing.T) {
	d, err := NewTableDescriptor(&DatabaseDescriptor{ID: 1, Name: "d"}, 5, "log",
		sql.NewPrimaryKeySchema(sql.Schema{{Name: "msg", Type: types.Text, Nullable: true}}), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if !d.IsKeyless() {
		t.Fatal("table without primary key is not keyless")
	}
	if _, err := d.AddIndex(sql.IndexDef{Name: "by_msg", Columns: []sql.IndexColumn{{Name: "msg"}}}); err != nil {
		t.Fatal(err)
	}
	tbl, err := d.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	row := sql.Row{"hello"}
	if _, err := PrimaryKey(tbl, row); !errors.Is(err, ErrInvalidDescriptor) {
		t.Fatalf("PrimaryKey of keyless table: %v", err)
	}
	k1, k2 := PrimaryKeyForRowID(tbl, 1), PrimaryKeyForRowID(tbl, 256)
	if bytes.Compare(k1, k2) >= 0 {
		t.Fatal("row IDs do not sort")
	}
	ik, err := SecondaryIndexKey(tbl, &tbl.Desc.Indexes[0], row, k2)
	if err != nil {
		t.Fatal(err)
	}
	if pk, err := PrimaryKeyFromIndexEntry(tbl, &tbl.Desc.Indexes[0], ik, nil); err != nil || !bytes.Equal(pk, k2) {
		t.Fatalf("primary key from keyless index entry: %x %v", pk, err)
	}
	if _, err := SecondaryIndexKey(tbl, &tbl.Desc.Indexes[0], row, []byte("t-not-this-table")); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("foreign primary key accepted: %v", err)
	}
}

func TestResolveRejectsJSONKeys(t *testing.T) {
	d, err := NewTableDescriptor(&DatabaseDescriptor{ID: 1, Name: "d"}, 5, "docs",
		sql.NewPrimaryKeySchema(sql.Schema{{Name: "id", Type: types.Int32, PrimaryKey: true}, {Name: "doc", Type: types.JSON, Nullable: true}}), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddIndex(sql.IndexDef{Name: "by_doc", Columns: []sql.IndexColumn{{Name: "doc"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Resolve(); !errors.Is(err, ErrNotKeyType) {
		t.Fatalf("JSON index column: %v, want ErrNotKeyType", err)
	}
}
