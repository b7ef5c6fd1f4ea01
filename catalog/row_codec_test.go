package catalog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/shopspring/decimal"
)

func jsonGen(r *rand.Rand) any {
	docs := []string{
		`{"a": 1, "b": [true, false, null], "c": {"d": "x\"y\\u0000z"}}`,
		`[1.5, -2, 1e300, 12345678901234567890, "é😀", {}]`,
		`"just a string <&>"`,
		`3.14159`,
		`null`,
		`{"k": {"nested": [[], [1, [2, [3]]]]}, "": 0}`,
	}
	if r.IntN(4) == 0 {
		return fmt.Sprintf(`{"n": %d, "f": %v, "s": "v%d"}`, r.Int64(), r.NormFloat64(), r.IntN(100))
	}
	return docs[r.IntN(len(docs))]
}

// rowTestTypes is every key type plus JSON (a row-only type).
var rowTestTypes = append(append([]testType(nil), keyTestTypes...), testType{"JSON", jsonGen})

// TestConvertGoTypes pins the Go type go-mysql-server v0.20.0's Convert
// yields per SQL type, the type both codecs decode to.
func TestConvertGoTypes(t *testing.T) {
	want := map[string]any{
		"TINYINT": int8(0), "BOOLEAN": int8(0), "SMALLINT": int16(0), "MEDIUMINT": int32(0), "INT": int32(0),
		"BIGINT": int64(0), "TINYINT UNSIGNED": uint8(0), "SMALLINT UNSIGNED": uint16(0),
		"MEDIUMINT UNSIGNED": uint32(0), "INT UNSIGNED": uint32(0), "BIGINT UNSIGNED": uint64(0),
		"FLOAT": float32(0), "DOUBLE": float64(0), "DECIMAL(10,2)": decimal.Decimal{},
		"VARCHAR(20)": "", "TEXT": "", "CHAR(10)": "", "BINARY(8)": []byte{}, "VARBINARY(16)": []byte{},
		"BLOB": []byte{}, "DATE": time.Time{}, "DATETIME(6)": time.Time{}, "TIMESTAMP": time.Time{},
		"TIME": types.Timespan(0), "YEAR": int16(0), "ENUM('b','a','c','A B','')": uint16(0),
		"SET('x','y','z','w')": uint64(0), "BIT(10)": uint64(0), "JSON": types.JSONDocument{},
	}
	for _, tt := range rowTestTypes {
		w, ok := want[tt.sql]
		if !ok {
			continue
		}
		typ := parseType(t, tt.sql)
		r := rand.New(rand.NewPCG(1, 2))
		v := genValues(t, r, typ, tt.gen, 1, false)[0]
		if reflect.TypeOf(v) != reflect.TypeOf(w) {
			t.Errorf("%s: Convert yields %T, codec documents %T", tt.sql, v, w)
		}
		k, err := kindOf(typ)
		if err != nil || !hasKindGoType(k, v) {
			t.Errorf("%s: kind %v does not accept %T (%v)", tt.sql, k, v, err)
		}
	}
}

func rowCodecFor(t testing.TB, tts []testType, firstID uint32) (*RowCodec, []sql.Type) {
	t.Helper()
	cols := make([]RowColumn, len(tts))
	typs := make([]sql.Type, len(tts))
	for i, tt := range tts {
		typs[i] = parseType(t, tt.sql)
		cols[i] = RowColumn{ID: firstID + uint32(i)*3, Type: typs[i]}
	}
	c, err := NewRowCodec(cols)
	if err != nil {
		t.Fatal(err)
	}
	return c, typs
}

// TestRowRoundTrip: rows of every type (random values, random NULLs)
// decode to exactly the values encoded, Go types included.
func TestRowRoundTrip(t *testing.T) {
	c, typs := rowCodecFor(t, rowTestTypes, 1)
	r := rand.New(rand.NewPCG(5, 5))
	for n := 0; n < 300; n++ {
		row := make(sql.Row, len(typs))
		for i, tt := range rowTestTypes {
			row[i] = genValues(t, r, typs[i], tt.gen, 1, true)[0]
		}
		b, err := c.Encode(nil, row)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		got, err := c.Decode(b, nil)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		for i := range row {
			if !sameValue(got[i], row[i]) {
				t.Fatalf("%s: got %#v (%T), want %#v (%T)", rowTestTypes[i].sql, got[i], got[i], row[i], row[i])
			}
		}
	}
}

// TestRowSchemaEvolution: ADD and DROP COLUMN without rewriting rows.
func TestRowSchemaEvolution(t *testing.T) {
	intT, textT := types.Int32, types.LongText
	v1, err := NewRowCodec([]RowColumn{{1, intT}, {2, textT}, {3, intT}})
	if err != nil {
		t.Fatal(err)
	}
	// Column 2 dropped, column 4 added (IDs are never reused).
	v2, err := NewRowCodec([]RowColumn{{1, intT}, {3, intT}, {4, textT}})
	if err != nil {
		t.Fatal(err)
	}
	defaults := func(i int) (any, error) {
		if i == 2 {
			return "default", nil
		}
		return nil, fmt.Errorf("no default for column %d", i)
	}
	old, err := v1.Encode(nil, sql.Row{int32(7), "dropped", nil})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v2.Decode(old, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if want := (sql.Row{int32(7), nil, "default"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("old row through new schema: %#v, want %#v", got, want)
	}
	// A NULL written by the new schema stays NULL: the writer knew column 4.
	fresh, err := v2.Encode(nil, sql.Row{int32(8), int32(9), nil})
	if err != nil {
		t.Fatal(err)
	}
	got, err = v2.Decode(fresh, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if want := (sql.Row{int32(8), int32(9), nil}); !reflect.DeepEqual(got, want) {
		t.Fatalf("new row: %#v, want %#v", got, want)
	}
	// Without a MissingColumn function a new column reads NULL.
	got, err = v2.Decode(old, nil)
	if err != nil || got[2] != nil {
		t.Fatalf("nil MissingColumn: %#v, %v", got, err)
	}
	// The caller's error surfaces.
	v3, _ := NewRowCodec([]RowColumn{{1, intT}, {5, intT}})
	if _, err := v3.Decode(old, defaults); err == nil {
		t.Fatal("MissingColumn error was swallowed")
	}
	// The old schema reads a new row: column 4 is unknown and skipped,
	// column 2 (dropped later) was not written, so NULL.
	got, err = v1.Decode(fresh, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (sql.Row{int32(8), nil, int32(9)}); !reflect.DeepEqual(got, want) {
		t.Fatalf("new row through old schema: %#v, want %#v", got, want)
	}
}

func TestRowConversionAndErrors(t *testing.T) {
	c, err := NewRowCodec([]RowColumn{{1, types.Int8}, {2, types.MustCreateColumnDecimalType(10, 2)}, {3, types.JSON}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Encode(nil, sql.Row{int64(5), "1.5", `{"a":[1,2]}`})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != int8(5) || got[1].(decimal.Decimal).String() != "1.5" || got[1].(decimal.Decimal).Exponent() != -2 {
		t.Fatalf("converted row: %#v", got)
	}
	if s := got[2].(types.JSONDocument).String(); s != `{"a": [1, 2]}` {
		t.Fatalf("JSON: %s", s)
	}
	if _, err := c.Encode(nil, sql.Row{int64(500), nil, nil}); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("out of range: %v, want ErrInvalidValue", err)
	}
	if _, err := c.Encode(nil, sql.Row{nil, nil, `{not json`}); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("bad JSON: %v, want ErrInvalidValue", err)
	}
	if _, err := c.Encode(nil, sql.Row{nil}); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("short row: %v, want ErrInvalidValue", err)
	}
	if _, err := NewRowCodec([]RowColumn{{1, types.Int8}, {1, types.Int8}}); !errors.Is(err, ErrInvalidDescriptor) {
		t.Fatalf("duplicate IDs: %v", err)
	}
	if _, err := NewRowCodec([]RowColumn{{0, types.Int8}}); !errors.Is(err, ErrInvalidDescriptor) {
		t.Fatalf("ID 0: %v", err)
	}
}

// TestRowDecodeGarbage: truncated and random inputs give an error, never a
// panic.
func TestRowDecodeGarbage(t *testing.T) {
	c, typs := rowCodecFor(t, rowTestTypes, 1)
	r := rand.New(rand.NewPCG(3, 3))
	row := make(sql.Row, len(typs))
	for i, tt := range rowTestTypes {
		row[i] = genValues(t, r, typs[i], tt.gen, 1, false)[0]
	}
	b, err := c.Encode(nil, row)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n++ {
		got, err := c.Decode(b[:n], nil)
		if err != nil {
			continue
		}
		// A prefix that ends exactly between entries is a valid row whose
		// last columns read NULL; every value it does hold is the original.
		for i := range got {
			if got[i] != nil && !sameValue(got[i], row[i]) {
				t.Fatalf("prefix %d: column %d decoded %#v, want %#v", n, i, got[i], row[i])
			}
		}
	}
	for n := 0; n < 2000; n++ {
		junk := make([]byte, r.IntN(40))
		for i := range junk {
			junk[i] = byte(r.IntN(256))
		}
		if r.IntN(2) == 0 && len(junk) > 0 {
			junk[0] = rowFormatVersion
		}
		_, _ = c.Decode(junk, nil)
		for _, typ := range typs[:len(keyTestTypes)] {
			_, _, _ = DecodeKey(junk, typ)
			_, _ = SkipKey(junk, typ)
		}
	}
	if _, err := c.Decode(nil, nil); !errors.Is(err, ErrCorruptRow) {
		t.Fatalf("empty: %v", err)
	}
}
