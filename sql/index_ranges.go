package qsql

import (
	"bytes"
	"fmt"
	"reflect"
	"time"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/shopspring/decimal"

	"github.com/quorumdb/quorumdb/catalog"
	"github.com/quorumdb/quorumdb/kv"
)

// rangesToSpans turns the engine's index ranges into KV spans of the index
// whose keys start with prefix and whose key columns have colTypes. The
// spans always cover every matching key; precise reports whether they cover
// nothing else (then the engine's filter on the index columns is redundant).
// Ranges arrive sorted (reversed for reverse lookups), and so do the spans.
func rangesToSpans(ctx *gms.Context, prefix []byte, colTypes []gms.Type, ranges gms.MySQLRangeCollection) (spans []kv.Span, precise bool, err error) {
	precise = true
	for _, r := range ranges {
		sp, ok, exact, err := rangeToSpan(ctx, prefix, colTypes, r)
		if err != nil {
			return nil, false, err
		}
		precise = precise && exact
		if ok {
			spans = append(spans, sp)
		}
	}
	return spans, precise, nil
}

// rangeToSpan converts one range (one column expression per leading index
// column). ok is false for a provably empty range.
func rangeToSpan(ctx *gms.Context, prefix []byte, colTypes []gms.Type, r gms.MySQLRange) (span kv.Span, ok bool, exact bool, err error) {
	exact = true
	if len(r) > len(colTypes) {
		// A range over the extended index (implicit primary key columns
		// appended): narrow on the declared columns only.
		r = r[:len(colTypes)]
		exact = false
	}
	key := append([]byte(nil), prefix...)
	for i, ce := range r {
		typ := colTypes[i]
		lo, hi := ce.LowerBound, ce.UpperBound
		// NULL point: IS NULL.
		if _, isBN := lo.(gms.BelowNull); isBN {
			if _, isAN := hi.(gms.AboveNull); isAN {
				key, err = catalog.EncodeKey(key, typ, nil)
				if err != nil {
					return kv.Span{}, false, false, err
				}
				continue
			}
		}
		// Value point: col = v.
		if b, isB := lo.(gms.Below); isB {
			if a, isA := hi.(gms.Above); isA {
				if cmp, cerr := typ.Compare(ctx, b.Key, a.Key); cerr == nil && cmp == 0 {
					v, vok := convertKeyValue(ctx, typ, b.Key)
					if !vok {
						// Cannot pin the value down in the key: scan
						// everything under the columns fixed so far.
						sp := catalog.PrefixSpan(key)
						return sp, true, false, nil
					}
					key, err = catalog.EncodeKey(key, typ, v)
					if err != nil {
						return kv.Span{}, false, false, err
					}
					continue
				}
			}
		}
		// A true range on this column: later columns cannot narrow the span.
		if i < len(r)-1 {
			exact = exact && allFull(r[i+1:])
		}
		low, lowInc := key, true
		high, highInc := key, true
		switch c := lo.(type) {
		case gms.BelowNull:
		case gms.AboveNull:
			low, err = catalog.EncodeKey(cloneBytes(key), typ, nil)
			lowInc = false
		case gms.Below:
			if v, vok := convertKeyValue(ctx, typ, c.Key); vok {
				low, err = catalog.EncodeKey(cloneBytes(key), typ, v)
			} else {
				exact = false
			}
		case gms.Above:
			if v, vok := convertKeyValue(ctx, typ, c.Key); vok {
				low, err = catalog.EncodeKey(cloneBytes(key), typ, v)
				lowInc = false
			} else {
				exact = false
			}
		case gms.AboveAll:
			return kv.Span{}, false, exact, nil
		default:
			return kv.Span{}, false, false, fmt.Errorf("qsql: unknown lower range cut %T", lo)
		}
		if err != nil {
			return kv.Span{}, false, false, err
		}
		switch c := hi.(type) {
		case gms.AboveAll:
		case gms.BelowNull:
			return kv.Span{}, false, exact, nil
		case gms.AboveNull:
			high, err = catalog.EncodeKey(cloneBytes(key), typ, nil)
		case gms.Above:
			if v, vok := convertKeyValue(ctx, typ, c.Key); vok {
				high, err = catalog.EncodeKey(cloneBytes(key), typ, v)
			} else {
				exact = false
			}
		case gms.Below:
			if v, vok := convertKeyValue(ctx, typ, c.Key); vok {
				high, err = catalog.EncodeKey(cloneBytes(key), typ, v)
				highInc = false
			} else {
				exact = false
			}
		default:
			return kv.Span{}, false, false, fmt.Errorf("qsql: unknown upper range cut %T", hi)
		}
		if err != nil {
			return kv.Span{}, false, false, err
		}
		sp := catalog.SpanBetween(low, lowInc, high, highInc)
		if sp.EndKey != nil && bytes.Compare(sp.Key, sp.EndKey) >= 0 {
			return kv.Span{}, false, exact, nil
		}
		return sp, true, exact, nil
	}
	return catalog.PrefixSpan(key), true, exact, nil
}

func allFull(r gms.MySQLRange) bool {
	for _, ce := range r {
		if _, ok := ce.LowerBound.(gms.BelowNull); !ok {
			return false
		}
		if _, ok := ce.UpperBound.(gms.AboveAll); !ok {
			return false
		}
	}
	return true
}

func cloneBytes(b []byte) []byte { return append([]byte(nil), b...) }

// convertKeyValue converts a range bound to the column's type for encoding.
// ok is false when the conversion could move the bound (rounding, out of
// range, a lossy cross-type comparison): the caller then leaves that side of
// the span open, which keeps the span a superset of the matching keys.
func convertKeyValue(ctx *gms.Context, typ gms.Type, v any) (any, bool) {
	if v == nil {
		return nil, false
	}
	conv, inRange, err := typ.Convert(ctx, v)
	if err != nil || inRange != gms.InRange || conv == nil {
		return nil, false
	}
	if reflect.TypeOf(conv) == reflect.TypeOf(v) {
		// Same Go type: strings of another collation or a decimal of another
		// scale could still change; check they compare equal.
		switch conv.(type) {
		case decimal.Decimal:
			return conv, conv.(decimal.Decimal).Equal(v.(decimal.Decimal))
		}
		return conv, true
	}
	switch {
	case isInteger(v) && isInteger(conv):
		return conv, true
	case types.IsText(typ) || types.IsBinaryType(typ):
		switch v.(type) {
		case string, []byte:
			return conv, true
		}
	case types.IsTime(typ):
		switch v.(type) {
		case string, time.Time:
			return conv, true
		}
	case types.IsDecimal(typ):
		if d, ok := conv.(decimal.Decimal); ok {
			switch x := v.(type) {
			case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
				return conv, true
			case float64:
				return conv, d.Equal(decimal.NewFromFloat(x))
			case float32:
				return conv, d.Equal(decimal.NewFromFloat32(x))
			}
		}
	case types.IsFloat(typ):
		if isInteger(v) {
			return conv, true
		}
	}
	return nil, false
}

func isInteger(v any) bool {
	switch v.(type) {
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return true
	}
	return false
}
