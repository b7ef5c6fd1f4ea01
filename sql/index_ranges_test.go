package qsql

import (
	"bytes"
	"fmt"
	"testing"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"

	"github.com/quorumdb/quorumdb/catalog"
	"github.com/quorumdb/quorumdb/kv"
)

func enc(t *testing.T, prefix []byte, typ gms.Type, vals ...any) []byte {
	t.Helper()
	k := append([]byte(nil), prefix...)
	for _, v := range vals {
		var err error
		k, err = catalog.EncodeKey(k, typ, v)
		if err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func TestRangesToSpans(t *testing.T) {
	ctx := gms.NewEmptyContext()
	prefix := kv.TableKeyPrefix(100, 2)
	i32, txt := types.Int32, types.Text
	two := []gms.Type{i32, txt}
	col := func(lo, hi gms.MySQLRangeCut) gms.MySQLRangeColumnExpr {
		return gms.MySQLRangeColumnExpr{LowerBound: lo, UpperBound: hi, Typ: i32}
	}
	cases := []struct {
		name    string
		r       gms.MySQLRange
		want    kv.Span
		empty   bool
		precise bool
	}{
		{"point", gms.MySQLRange{col(gms.Below{Key: int32(5)}, gms.Above{Key: int32(5)})},
			catalog.PrefixSpan(enc(t, prefix, i32, int32(5))), false, true},
		{"point converts int8 literal", gms.MySQLRange{col(gms.Below{Key: int8(5)}, gms.Above{Key: int8(5)})},
			catalog.PrefixSpan(enc(t, prefix, i32, int32(5))), false, true},
		{"is null", gms.MySQLRange{col(gms.BelowNull{}, gms.AboveNull{})},
			catalog.PrefixSpan(enc(t, prefix, i32, nil)), false, true},
		{"open range", gms.MySQLRange{col(gms.Above{Key: int32(1)}, gms.Below{Key: int32(9)})},
			kv.Span{Key: catalog.KeyPrefixEnd(enc(t, prefix, i32, int32(1))), EndKey: enc(t, prefix, i32, int32(9))}, false, true},
		{"not null", gms.MySQLRange{col(gms.AboveNull{}, gms.AboveAll{})},
			kv.Span{Key: catalog.KeyPrefixEnd(enc(t, prefix, i32, nil)), EndKey: catalog.KeyPrefixEnd(prefix)}, false, true},
		{"prefix then range", gms.MySQLRange{
			col(gms.Below{Key: int32(3)}, gms.Above{Key: int32(3)}),
			{LowerBound: gms.Below{Key: "b"}, UpperBound: gms.AboveAll{}, Typ: txt}},
			kv.Span{Key: enc(t, enc(t, prefix, i32, int32(3)), txt, "b"), EndKey: catalog.KeyPrefixEnd(enc(t, prefix, i32, int32(3)))}, false, true},
		{"range then more columns is imprecise", gms.MySQLRange{
			col(gms.Above{Key: int32(3)}, gms.AboveAll{}),
			{LowerBound: gms.Below{Key: "b"}, UpperBound: gms.Above{Key: "b"}, Typ: txt}},
			kv.Span{Key: catalog.KeyPrefixEnd(enc(t, prefix, i32, int32(3))), EndKey: catalog.KeyPrefixEnd(prefix)}, false, false},
		{"fractional bound on an int column is left open", gms.MySQLRange{col(gms.Above{Key: 1.5}, gms.AboveAll{})},
			kv.Span{Key: prefix, EndKey: catalog.KeyPrefixEnd(prefix)}, false, false},
		{"empty", gms.MySQLRange{col(gms.AboveAll{}, gms.AboveAll{})}, kv.Span{}, true, true},
	}
	for _, tc := range cases {
		spans, precise, err := rangesToSpans(ctx, prefix, two, gms.MySQLRangeCollection{tc.r})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.empty {
			if len(spans) != 0 {
				t.Errorf("%s: want no span, got %v", tc.name, spans)
			}
			continue
		}
		if len(spans) != 1 || !bytes.Equal(spans[0].Key, tc.want.Key) || !bytes.Equal(spans[0].EndKey, tc.want.EndKey) {
			t.Errorf("%s: got %x, want [%x, %x)", tc.name, spans, tc.want.Key, tc.want.EndKey)
		}
		if precise != tc.precise {
			t.Errorf("%s: precise %v, want %v", tc.name, precise, tc.precise)
		}
	}
}

func TestMergeSpans(t *testing.T) {
	s := func(a, b string) kv.Span { return kv.Span{Key: []byte(a), EndKey: []byte(b)} }
	got := mergeSpans([]kv.Span{s("c", "e"), s("a", "b"), s("d", "f"), s("b", "c")}, false)
	if len(got) != 1 || string(got[0].Key) != "a" || string(got[0].EndKey) != "f" {
		t.Fatalf("merge: %q", got)
	}
	got = mergeSpans([]kv.Span{s("a", "b"), s("x", "z")}, true)
	if len(got) != 2 || string(got[0].Key) != "x" || string(got[1].Key) != "a" {
		t.Fatalf("reverse order: %q", got)
	}
}

// TestFractionalBoundOverWire: a fractional bound on an indexed integer
// column returns exactly the matching rows.
func TestFractionalBoundOverWire(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	mustExec(t, db, "CREATE DATABASE fb", "USE fb", "CREATE TABLE t (id INT PRIMARY KEY, v INT, KEY v_idx (v))",
		"INSERT INTO t VALUES (1, 1), (2, 2), (3, 3)")
	for q, want := range map[string]string{
		"SELECT id FROM t WHERE v > 1.5 ORDER BY id":             "[[2] [3]]",
		"SELECT id FROM t WHERE v < 2.5 ORDER BY id":             "[[1] [2]]",
		"SELECT id FROM t WHERE id >= 1.5 AND id <= 2.5":         "[[2]]",
		"SELECT id FROM t WHERE v = 2.0":                         "[[2]]",
		"SELECT id FROM t WHERE v BETWEEN 1.1 AND 3 ORDER BY id": "[[2] [3]]",
	} {
		if got := fmt.Sprint(queryStrings(t, db, q)); got != want {
			t.Errorf("%s: got %s, want %s", q, got, want)
		}
	}
}
