package catalog

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"

	"github.com/quorumdb/quorumdb/kv"
)

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

// compareNullFirst is the index order: typ.Compare for values, NULL before
// every value. (typ.Compare itself puts NULL last in v0.20.0; MySQL indexes
// and go-mysql-server's range cuts, BelowNull/AboveNull, put it first.)
func compareNullFirst(t *testing.T, typ sql.Type, a, b any) int {
	t.Helper()
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	c, err := typ.Compare(context.Background(), a, b)
	if err != nil {
		t.Fatalf("compare %#v %#v: %v", a, b, err)
	}
	return c
}

// TestKeyOrderMatchesCompare: for every key type, the byte order of the
// encodings of random values equals typ.Compare, NULL first, and equal
// values have equal keys.
func TestKeyOrderMatchesCompare(t *testing.T) {
	for i, tt := range keyTestTypes {
		t.Run(tt.sql, func(t *testing.T) {
			typ := parseType(t, tt.sql)
			r := rand.New(rand.NewPCG(42, uint64(i)))
			vals := genValues(t, r, typ, tt.gen, 150, true)
			keys := make([][]byte, len(vals))
			for j, v := range vals {
				k, err := EncodeKey(nil, typ, v)
				if err != nil {
					t.Fatalf("encode %#v: %v", v, err)
				}
				keys[j] = k
			}
			for a := range vals {
				for b := range vals {
					want := compareNullFirst(t, typ, vals[a], vals[b])
					if got := bytes.Compare(keys[a], keys[b]); sign(got) != sign(want) {
						t.Fatalf("order of %#v vs %#v: keys %d, Compare %d (%x vs %x)",
							vals[a], vals[b], got, want, keys[a], keys[b])
					}
				}
			}
		})
	}
}

// TestKeyRoundTrip: DecodeKey returns exactly the value typ.Convert
// produced (same Go type, same value), SkipKey consumes exactly one column,
// and weight-string columns refuse to decode with ErrKeyNotDecodable.
func TestKeyRoundTrip(t *testing.T) {
	for i, tt := range keyTestTypes {
		t.Run(tt.sql, func(t *testing.T) {
			typ := parseType(t, tt.sql)
			r := rand.New(rand.NewPCG(7, uint64(i)))
			trailer := []byte{0x42, 0x00, 0xff}
			for _, v := range genValues(t, r, typ, tt.gen, 300, true) {
				k, err := EncodeKey(nil, typ, v)
				if err != nil {
					t.Fatalf("encode %#v: %v", v, err)
				}
				k = append(k, trailer...)
				rest, err := SkipKey(k, typ)
				if err != nil || !bytes.Equal(rest, trailer) {
					t.Fatalf("skip %#v: rest %x err %v", v, rest, err)
				}
				got, rest, err := DecodeKey(k, typ)
				if !KeyIsDecodable(typ) {
					if !errors.Is(err, ErrKeyNotDecodable) {
						t.Fatalf("decode of weight key: err %v, want ErrKeyNotDecodable", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("decode %#v: %v", v, err)
				}
				if !bytes.Equal(rest, trailer) {
					t.Fatalf("decode %#v: rest %x", v, rest)
				}
				want := v
				if f, ok := v.(float64); ok && f == 0 {
					want = 0.0 // -0 is keyed as +0
				}
				if f, ok := v.(float32); ok && f == 0 {
					want = float32(0)
				}
				if !sameValue(got, want) {
					t.Fatalf("round trip: got %#v (%T), want %#v (%T)", got, got, want, want)
				}
			}
		})
	}
}

// TestCompositeKeyOrder: keys of two columns (every key type, then a
// string) sort like the lexicographic comparison of the tuples; a short
// first value followed by a second column never interleaves with a longer
// first value.
func TestCompositeKeyOrder(t *testing.T) {
	second := parseType(t, "VARCHAR(10) COLLATE utf8mb4_0900_ai_ci")
	for i, tt := range keyTestTypes {
		t.Run(tt.sql, func(t *testing.T) {
			typ := parseType(t, tt.sql)
			r := rand.New(rand.NewPCG(99, uint64(i)))
			firsts := genValues(t, r, typ, tt.gen, 60, true)
			seconds := genValues(t, r, second, stringGen(3), 60, true)
			type tuple struct {
				a, b any
				key  []byte
			}
			tuples := make([]tuple, len(firsts))
			for j := range firsts {
				k, err := EncodeKey(nil, typ, firsts[j])
				if err == nil {
					k, err = EncodeKey(k, second, seconds[j])
				}
				if err != nil {
					t.Fatal(err)
				}
				tuples[j] = tuple{firsts[j], seconds[j], k}
			}
			cmpTuple := func(x, y tuple) int {
				if c := compareNullFirst(t, typ, x.a, y.a); c != 0 {
					return c
				}
				return compareNullFirst(t, second, x.b, y.b)
			}
			for _, x := range tuples {
				for _, y := range tuples {
					if sign(bytes.Compare(x.key, y.key)) != sign(cmpTuple(x, y)) {
						t.Fatalf("(%#v,%#v) vs (%#v,%#v): key order %d, tuple order %d",
							x.a, x.b, y.a, y.b, bytes.Compare(x.key, y.key), cmpTuple(x, y))
					}
				}
			}
		})
	}
}

func TestKeyPrefixSpans(t *testing.T) {
	typ := parseType(t, "INT")
	second := parseType(t, "VARCHAR(10)")
	prefix := []byte{'t', 0, 0, 0, 1, 0, 0, 0, 2}
	var keys [][]byte
	for _, a := range []any{nil, int32(-5), int32(0), int32(7), int32(1000)} {
		for _, b := range []any{nil, "", "a", "a\x00", "ab", "b"} {
			k, err := EncodeKey(append([]byte(nil), prefix...), typ, a)
			if err == nil {
				k, err = EncodeKey(k, second, b)
			}
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
	}
	sorted := sort.SliceIsSorted(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 })
	if !sorted {
		t.Fatal("keys built in tuple order are not sorted")
	}
	count := func(s kv.Span) int {
		n := 0
		for _, k := range keys {
			if bytes.Compare(k, s.Key) >= 0 && (s.EndKey == nil || bytes.Compare(k, s.EndKey) < 0) {
				n++
			}
		}
		return n
	}
	enc := func(vs ...any) []byte {
		k := append([]byte(nil), prefix...)
		var err error
		k, err = EncodeKey(k, typ, vs[0])
		if err == nil && len(vs) > 1 {
			k, err = EncodeKey(k, second, vs[1])
		}
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	cases := []struct {
		name string
		span kv.Span
		want int
	}{
		{"a = 7", PrefixSpan(enc(int32(7))), 6},
		{"a IS NULL", PrefixSpan(enc(nil)), 6},
		{"a = 7 AND b = 'a'", PrefixSpan(enc(int32(7), "a")), 1},
		{"0 <= a < 1000", SpanBetween(enc(int32(0)), true, enc(int32(1000)), false), 12},
		{"0 < a <= 1000", SpanBetween(enc(int32(0)), false, enc(int32(1000)), true), 12},
		{"a > NULL (not null) up to 7", SpanBetween(enc(nil), false, enc(int32(7)), true), 18},
		{"whole index", PrefixSpan(prefix), 30},
		{"a = 0, b > 'a'", SpanBetween(enc(int32(0), "a"), false, enc(int32(0)), true), 3},
	}
	for _, c := range cases {
		if got := count(c.span); got != c.want {
			t.Errorf("%s: %d keys in span, want %d", c.name, got, c.want)
		}
	}
}

func TestKeyErrors(t *testing.T) {
	if _, err := EncodeKey(nil, types.JSON, types.MustJSON(`{"a":1}`)); !errors.Is(err, ErrNotKeyType) {
		t.Errorf("JSON key: %v, want ErrNotKeyType", err)
	}
	if _, err := EncodeKey(nil, types.JSON, nil); !errors.Is(err, ErrNotKeyType) {
		t.Errorf("NULL JSON key: %v, want ErrNotKeyType", err)
	}
	if _, err := EncodeKey(nil, types.Float64, math.NaN()); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("NaN: %v, want ErrInvalidValue", err)
	}
	if _, err := EncodeKey(nil, types.Int8, "300"); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("out of range conversion: %v, want ErrInvalidValue", err)
	}
	if _, err := EncodeKey(nil, types.Text, "\xff\xfe"); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("invalid UTF-8: %v, want ErrInvalidValue", err)
	}
	if _, err := EncodeKey(nil, types.PointType{}, nil); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("geometry: %v, want ErrUnsupportedType", err)
	}
	k, _ := EncodeKey(nil, types.Int64, int64(1)<<40)
	if _, _, err := DecodeKey(k, types.Int8); !errors.Is(err, ErrCorruptKey) {
		t.Errorf("int64 key decoded as TINYINT: %v, want ErrCorruptKey", err)
	}
	for _, bad := range [][]byte{{}, {0x07}, {keyValue}, {keyValue, 0x90}, {keyValue, 0x82, 0x01}} {
		if _, _, err := DecodeKey(bad, types.Int64); !errors.Is(err, ErrCorruptKey) {
			t.Errorf("decode %x: %v, want ErrCorruptKey", bad, err)
		}
	}
	if _, _, err := DecodeKey([]byte{keyValue, 'a', 0x00, 0x07}, types.Text); !errors.Is(err, ErrCorruptKey) {
		t.Errorf("bad escape: %v, want ErrCorruptKey", err)
	}
	// Integer keys do not depend on the Go width: a bound outside the
	// column's range still orders correctly.
	k1, _ := EncodeKey(nil, types.Int8, int8(127))
	k2, _ := EncodeKey(nil, types.Int8, int64(300))
	k3, _ := EncodeKey(nil, types.Int64, int64(127))
	if bytes.Compare(k1, k2) >= 0 || !bytes.Equal(k1, k3) {
		t.Errorf("width independence: %x %x %x", k1, k2, k3)
	}
	var _ sql.Type = types.PointType{}
}
