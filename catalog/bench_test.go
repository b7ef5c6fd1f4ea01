package catalog

import (
	"testing"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/sqltypes"
)

// benchTable is a typical OLTP row: BIGINT key, two strings (one in a
// case-insensitive collation with a unique index), a DECIMAL, a DATETIME,
// an ENUM and a nullable TEXT.
func benchTable(b *testing.B) (*Table, sql.Row) {
	b.Helper()
	schema := sql.NewPrimaryKeySchema(sql.Schema{
		{Name: "id", Type: types.Int64, PrimaryKey: true},
		{Name: "name", Type: types.MustCreateString(sqltypes.VarChar, 100, sql.Collation_utf8mb4_0900_bin)},
		{Name: "email", Type: types.MustCreateString(sqltypes.VarChar, 100, sql.Collation_utf8mb4_0900_ai_ci)},
		{Name: "balance", Type: types.MustCreateColumnDecimalType(12, 2)},
		{Name: "created", Type: types.DatetimeMaxPrecision},
		{Name: "status", Type: types.MustCreateEnumType([]string{"active", "closed"}, sql.Collation_Default)},
		{Name: "note", Type: types.Text, Nullable: true},
	})
	d, err := NewTableDescriptor(&DatabaseDescriptor{ID: 1, Name: "d"}, 9, "accounts", schema, 0, "")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d.AddIndex(sql.IndexDef{Name: "by_email", Columns: []sql.IndexColumn{{Name: "email"}}, Constraint: sql.IndexConstraint_Unique}); err != nil {
		b.Fatal(err)
	}
	tbl, err := d.Resolve()
	if err != nil {
		b.Fatal(err)
	}
	bal, _, err := types.MustCreateColumnDecimalType(12, 2).Convert(b.Context(), "1234.56")
	if err != nil {
		b.Fatal(err)
	}
	row := sql.Row{int64(123456789), "Ann Example", "ann.example@example.org", bal,
		time.Date(2026, 11, 26, 17, 0, 0, 123456000, time.UTC), uint16(1), nil}
	return tbl, row
}

func BenchmarkEncodeRow(b *testing.B) {
	tbl, row := benchTable(b)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = tbl.Row.Encode(buf[:0], row); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "bytes/row")
}

func BenchmarkDecodeRow(b *testing.B) {
	tbl, row := benchTable(b)
	enc, err := tbl.Row.Encode(nil, row)
	if err != nil {
		b.Fatal(err)
	}
	dst := make(sql.Row, len(row))
	b.ReportAllocs()
	for b.Loop() {
		if err := tbl.Row.DecodeInto(dst, enc, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrimaryKey(b *testing.B) {
	tbl, row := benchTable(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PrimaryKey(tbl, row); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePrimaryKey(b *testing.B) {
	tbl, row := benchTable(b)
	k, err := PrimaryKey(tbl, row)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodePrimaryKey(tbl, k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUniqueIndexKeyCaseInsensitive(b *testing.B) {
	tbl, row := benchTable(b)
	ix := tbl.Desc.IndexByName("by_email")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := UniqueIndexKey(tbl, ix, row, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeKeyDecimal(b *testing.B) {
	typ := types.MustCreateColumnDecimalType(12, 2)
	v, _, _ := typ.Convert(b.Context(), "-98765.43")
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = EncodeKey(buf[:0], typ, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeKeyString(b *testing.B) {
	typ := types.MustCreateString(sqltypes.VarChar, 100, sql.Collation_utf8mb4_0900_bin)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = EncodeKey(buf[:0], typ, "ann.example@example.org"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalTableDescriptor(b *testing.B) {
	tbl, _ := benchTable(b)
	raw, err := tbl.Desc.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalTableDescriptor(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveTable(b *testing.B) {
	tbl, _ := benchTable(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tbl.Desc.Resolve(); err != nil {
			b.Fatal(err)
		}
	}
}
