package catalog

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/sqltypes"
	"github.com/shopspring/decimal"

	"github.com/quorumdb/quorumdb/kv"
)

// Column marker bytes of the key codec: every encoded column starts with one.
// NULL sorts before every value.
const (
	keyNull  byte = 0x00
	keyValue byte = 0x01
)

// EncodeKey appends the order-preserving encoding of v, a value of column
// type typ, to dst. The byte order of encodings equals typ.Compare order with
// NULL first, and every encoding is prefix-free, so the encodings of several
// columns can be concatenated into a composite key that compares column by
// column.
//
// v should be what typ.Convert produces (see DecodeKey). Integer columns also
// accept any Go integer and float columns any Go float, encoded by their
// mathematical value (the integer encoding does not depend on the width, so a
// range bound outside the column's range still orders correctly); any other
// Go type is first passed through typ.Convert and must be in range.
//
// Strings in a collation other than utf8mb4_0900_bin and binary are written
// as the collation's weight string (what Compare compares), which cannot be
// decoded back: DecodeKey returns ErrKeyNotDecodable for them and the
// original value must be read from the row.
func EncodeKey(dst []byte, typ sql.Type, v any) ([]byte, error) {
	k, err := kindOf(typ)
	if err != nil {
		return nil, err
	}
	if v == nil {
		if k == kindJSON {
			return nil, fmt.Errorf("%w: %s", ErrNotKeyType, typ)
		}
		return append(dst, keyNull), nil
	}
	return appendKeyValue(append(dst, keyValue), typ, k, v)
}

func appendKeyValue(dst []byte, typ sql.Type, k kind, v any) ([]byte, error) {
	switch k {
	case kindInt8, kindInt16, kindInt32, kindInt64, kindUint8, kindUint16, kindUint32, kindUint64,
		kindYear, kindEnum, kindSet, kindBit:
		if neg, u, ok := integerValue(v); ok && isIntegerKind(k) {
			if neg {
				return appendOrderedInt(dst, int64(u)), nil
			}
			return appendOrderedUint(dst, u), nil
		}
		cv, err := convertValue(typ, k, v)
		if err != nil {
			return nil, err
		}
		neg, u, _ := integerValue(cv)
		if neg {
			return appendOrderedInt(dst, int64(u)), nil
		}
		return appendOrderedUint(dst, u), nil
	case kindTime:
		cv, err := convertValue(typ, k, v)
		if err != nil {
			return nil, err
		}
		return appendOrderedInt(dst, int64(cv.(types.Timespan))), nil
	case kindFloat32, kindFloat64:
		switch f := v.(type) {
		case float64:
			return appendKeyFloat(dst, typ, f)
		case float32:
			return appendKeyFloat(dst, typ, float64(f))
		}
		cv, err := convertValue(typ, k, v)
		if err != nil {
			return nil, err
		}
		if k == kindFloat32 {
			return appendKeyFloat(dst, typ, float64(cv.(float32)))
		}
		return appendKeyFloat(dst, typ, cv.(float64))
	case kindDecimal:
		cv, err := convertValue(typ, k, v)
		if err != nil {
			return nil, err
		}
		return appendOrderedDecimal(dst, cv.(decimal.Decimal)), nil
	case kindString:
		cv, err := convertValue(typ, k, v)
		if err != nil {
			return nil, err
		}
		return appendKeyString(dst, typ, cv.(string))
	case kindBytes:
		cv, err := convertValue(typ, k, v)
		if err != nil {
			return nil, err
		}
		return appendEscaped(dst, cv.([]byte)), nil
	case kindDatetime:
		cv, err := convertValue(typ, k, v)
		if err != nil {
			return nil, err
		}
		t := cv.(time.Time)
		if typ.Type() == sqltypes.Date {
			t = t.Truncate(24 * time.Hour) // as datetimeType.Compare does
		}
		dst = appendOrderedInt(dst, t.Unix())
		return appendOrderedUint(dst, uint64(t.Nanosecond())), nil
	case kindJSON:
		return nil, fmt.Errorf("%w: %s", ErrNotKeyType, typ)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedType, typ)
}

func isIntegerKind(k kind) bool {
	switch k {
	case kindInt8, kindInt16, kindInt32, kindInt64, kindUint8, kindUint16, kindUint32, kindUint64:
		return true
	}
	return false
}

// integerValue returns a Go integer as (negative, u): u is the value when
// non-negative, the int64 bits when negative.
func integerValue(v any) (neg bool, u uint64, ok bool) {
	var s int64
	switch x := v.(type) {
	case int8:
		s = int64(x)
	case int16:
		s = int64(x)
	case int32:
		s = int64(x)
	case int64:
		s = x
	case int:
		s = int64(x)
	case uint8:
		return false, uint64(x), true
	case uint16:
		return false, uint64(x), true
	case uint32:
		return false, uint64(x), true
	case uint64:
		return false, x, true
	case uint:
		return false, uint64(x), true
	default:
		return false, 0, false
	}
	if s < 0 {
		return true, uint64(s), true
	}
	return false, uint64(s), true
}

func appendKeyFloat(dst []byte, typ sql.Type, f float64) ([]byte, error) {
	if f != f {
		return nil, fmt.Errorf("%w: NaN for %s", ErrInvalidValue, typ)
	}
	return appendOrderedFloat(dst, f), nil
}

// collationIsCodepointOrder reports whether a collation's weights order
// strings exactly as their bytes do, so the key can hold the bytes
// themselves. For utf8mb4_0900_bin the weight is the code point, and UTF-8
// byte order is code point order. Collation_Unspecified is what a type
// parsed without a COLLATE clause carries (e.g. re-parsing "varchar(20)",
// which is how a utf8mb4_0900_bin column prints itself); go-mysql-server
// treats it as the default collation, utf8mb4_0900_bin.
func collationIsCodepointOrder(c sql.CollationID) bool {
	switch c {
	case sql.Collation_utf8mb4_0900_bin, sql.Collation_binary, sql.Collation_Unspecified:
		return true
	}
	return false
}

// KeyIsDecodable reports whether DecodeKey can return the value of a key
// column of type typ (false for strings in a collation whose key is a weight
// string, and for types that cannot be keys).
func KeyIsDecodable(typ sql.Type) bool {
	k, err := kindOf(typ)
	if err != nil || k == kindJSON {
		return false
	}
	if k == kindString {
		return collationIsCodepointOrder(typ.(sql.StringType).Collation())
	}
	return true
}

// appendKeyString writes either the escaped UTF-8 bytes (code point order
// collations) or the weight string: the collation weight of every rune as an
// ordered integer, then a 0x00 terminator. Weights are compared rune by rune
// and a shorter string sorts first, exactly as StringType.Compare does in
// go-mysql-server v0.20.0 (which applies no PAD SPACE).
func appendKeyString(dst []byte, typ sql.Type, s string) ([]byte, error) {
	st := typ.(sql.StringType)
	coll := st.Collation()
	switch coll.CharacterSet() {
	case sql.CharacterSet_utf8mb4, sql.CharacterSet_utf8mb3, sql.CharacterSet_Unspecified:
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("%w: invalid UTF-8 for %s", ErrInvalidValue, typ)
		}
	}
	if collationIsCodepointOrder(coll) {
		return appendEscapedString(dst, s), nil
	}
	weight := coll.Sorter()
	if weight == nil {
		return nil, fmt.Errorf("%w: collation %s has no sort order in go-mysql-server", ErrUnsupportedType, coll)
	}
	enc := coll.CharacterSet().Encoder()
	for len(s) > 0 {
		r, n := enc.NextRune(s)
		if n == 0 {
			return nil, fmt.Errorf("%w: malformed string for %s", ErrInvalidValue, typ)
		}
		dst = appendOrderedInt(dst, int64(weight(r)))
		s = s[n:]
	}
	return append(dst, 0x00), nil
}

// convertValue returns v as the Go type typ.Convert produces for kind k,
// converting only when needed; an out-of-range conversion is an error (a key
// must never silently change value).
func convertValue(typ sql.Type, k kind, v any) (any, error) {
	if hasKindGoType(k, v) {
		return v, nil
	}
	cv, inRange, err := typ.Convert(context.Background(), v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (%T) as %s: %v", ErrInvalidValue, v, v, typ, err)
	}
	if inRange != sql.InRange {
		return nil, fmt.Errorf("%w: %v (%T) out of range for %s", ErrInvalidValue, v, v, typ)
	}
	if cv == nil {
		return nil, fmt.Errorf("%w: %v (%T) converts to NULL for %s", ErrInvalidValue, v, v, typ)
	}
	if !hasKindGoType(k, cv) {
		return nil, fmt.Errorf("%w: %s converted %T to unexpected %T", ErrUnsupportedType, typ, v, cv)
	}
	return cv, nil
}

// hasKindGoType reports whether v already has the Go type Convert yields for k.
func hasKindGoType(k kind, v any) bool {
	switch k {
	case kindInt8:
		_, ok := v.(int8)
		return ok
	case kindInt16, kindYear:
		_, ok := v.(int16)
		return ok
	case kindInt32:
		_, ok := v.(int32)
		return ok
	case kindInt64:
		_, ok := v.(int64)
		return ok
	case kindUint8:
		_, ok := v.(uint8)
		return ok
	case kindUint16, kindEnum:
		_, ok := v.(uint16)
		return ok
	case kindUint32:
		_, ok := v.(uint32)
		return ok
	case kindUint64, kindSet, kindBit:
		_, ok := v.(uint64)
		return ok
	case kindFloat32:
		_, ok := v.(float32)
		return ok
	case kindFloat64:
		_, ok := v.(float64)
		return ok
	case kindDecimal:
		_, ok := v.(decimal.Decimal)
		return ok
	case kindString:
		_, ok := v.(string)
		return ok
	case kindBytes:
		_, ok := v.([]byte)
		return ok
	case kindDatetime:
		_, ok := v.(time.Time)
		return ok
	case kindTime:
		_, ok := v.(types.Timespan)
		return ok
	case kindJSON:
		_, ok := v.(sql.JSONWrapper)
		return ok
	}
	return false
}

// DecodeKey decodes one column of type typ from the front of b and returns
// the value (nil for NULL) as the Go type typ.Convert produces:
//
//	TINYINT int8, SMALLINT int16, MEDIUMINT/INT int32, BIGINT int64,
//	TINYINT…BIGINT UNSIGNED uint8/uint16/uint32/uint32/uint64,
//	FLOAT float32, DOUBLE float64, DECIMAL(p,s) decimal.Decimal (exponent -s),
//	CHAR/VARCHAR/TEXT string, BINARY/VARBINARY/BLOB []byte,
//	DATE/DATETIME/TIMESTAMP time.Time (UTC), TIME types.Timespan, YEAR int16,
//	ENUM uint16 (the 1-based index), SET uint64, BIT uint64.
//
// A -0 float comes back as +0. A string column whose key is a collation
// weight string returns ErrKeyNotDecodable (use SkipKey).
func DecodeKey(b []byte, typ sql.Type) (v any, rest []byte, err error) {
	k, err := kindOf(typ)
	if err != nil {
		return nil, nil, err
	}
	if k == kindString && !KeyIsDecodable(typ) {
		return nil, nil, fmt.Errorf("%w: %s", ErrKeyNotDecodable, typ)
	}
	return decodeKey(b, typ, k, true)
}

// SkipKey steps over one encoded column of type typ and returns the rest.
func SkipKey(b []byte, typ sql.Type) (rest []byte, err error) {
	k, err := kindOf(typ)
	if err != nil {
		return nil, err
	}
	_, rest, err = decodeKey(b, typ, k, false)
	return rest, err
}

func decodeKey(b []byte, typ sql.Type, k kind, want bool) (any, []byte, error) {
	if k == kindJSON {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotKeyType, typ)
	}
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: missing column of type %s", ErrCorruptKey, typ)
	}
	switch b[0] {
	case keyNull:
		return nil, b[1:], nil
	case keyValue:
	default:
		return nil, nil, fmt.Errorf("%w: marker %#x for %s", ErrCorruptKey, b[0], typ)
	}
	b = b[1:]
	switch k {
	case kindInt8, kindInt16, kindInt32, kindInt64, kindYear, kindTime:
		i, rest, err := decodeOrderedInt(b)
		if err != nil {
			return nil, nil, err
		}
		v, err := signedAs(k, i)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v for %s", err, i, typ)
		}
		return v, rest, nil
	case kindUint8, kindUint16, kindUint32, kindUint64, kindEnum, kindSet, kindBit:
		u, rest, err := decodeOrderedUint(b)
		if err != nil {
			return nil, nil, err
		}
		v, err := unsignedAs(k, u)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v for %s", err, u, typ)
		}
		return v, rest, nil
	case kindFloat32, kindFloat64:
		f, rest, err := decodeOrderedFloat(b)
		if err != nil {
			return nil, nil, err
		}
		if k == kindFloat32 {
			return float32(f), rest, nil
		}
		return f, rest, nil
	case kindDecimal:
		d, rest, err := decodeOrderedDecimal(b, int32(typ.(sql.DecimalType).Scale()), want)
		if err != nil {
			return nil, nil, err
		}
		return d, rest, nil
	case kindString:
		coll := typ.(sql.StringType).Collation()
		if collationIsCodepointOrder(coll) {
			s, rest, err := decodeEscaped(b, nil, want)
			if err != nil {
				return nil, nil, err
			}
			return string(s), rest, nil
		}
		for i := 0; ; {
			if i >= len(b) {
				return nil, nil, fmt.Errorf("%w: unterminated weight string", ErrCorruptKey)
			}
			if b[i] == 0x00 {
				return nil, b[i+1:], nil
			}
			_, _, rest, err := decodeOrderedNumber(b[i:])
			if err != nil {
				return nil, nil, err
			}
			i = len(b) - len(rest)
		}
	case kindBytes:
		s, rest, err := decodeEscaped(b, nil, want)
		if err != nil {
			return nil, nil, err
		}
		if s == nil {
			s = []byte{}
		}
		return s, rest, nil
	case kindDatetime:
		sec, rest, err := decodeOrderedInt(b)
		if err != nil {
			return nil, nil, err
		}
		nsec, rest, err := decodeOrderedUint(rest)
		if err != nil {
			return nil, nil, err
		}
		if nsec >= 1e9 {
			return nil, nil, fmt.Errorf("%w: nanoseconds %d", ErrCorruptKey, nsec)
		}
		return time.Unix(sec, int64(nsec)).UTC(), rest, nil
	}
	return nil, nil, fmt.Errorf("%w: %s", ErrUnsupportedType, typ)
}

var errOutOfRange = fmt.Errorf("%w: value out of the type's range", ErrCorruptKey)

func signedAs(k kind, i int64) (any, error) {
	switch k {
	case kindInt8:
		if i < -1<<7 || i >= 1<<7 {
			return nil, errOutOfRange
		}
		return int8(i), nil
	case kindInt16, kindYear:
		if i < -1<<15 || i >= 1<<15 {
			return nil, errOutOfRange
		}
		return int16(i), nil
	case kindInt32:
		if i < -1<<31 || i >= 1<<31 {
			return nil, errOutOfRange
		}
		return int32(i), nil
	case kindTime:
		return types.Timespan(i), nil
	}
	return i, nil
}

func unsignedAs(k kind, u uint64) (any, error) {
	switch k {
	case kindUint8:
		if u >= 1<<8 {
			return nil, errOutOfRange
		}
		return uint8(u), nil
	case kindUint16, kindEnum:
		if u >= 1<<16 {
			return nil, errOutOfRange
		}
		return uint16(u), nil
	case kindUint32:
		if u >= 1<<32 {
			return nil, errOutOfRange
		}
		return uint32(u), nil
	}
	return u, nil
}

// KeyPrefixEnd returns the end of the span of every key that starts with
// prefix: because column encodings are prefix-free, [prefix,
// KeyPrefixEnd(prefix)) holds exactly the keys whose leading columns equal
// the encoded ones.
func KeyPrefixEnd(prefix []byte) []byte { return kv.PrefixEnd(prefix) }

// PrefixSpan returns [prefix, KeyPrefixEnd(prefix)).
func PrefixSpan(prefix []byte) kv.Span {
	return kv.Span{Key: prefix, EndKey: KeyPrefixEnd(prefix)}
}

// SpanBetween turns two (possibly partial) encoded keys into the span of
// keys between them. An inclusive bound covers every key that extends it
// (the rest of the columns are free); an exclusive one excludes them. With
// low = prefix+enc(a) and high = prefix+enc(b) on the first column, the span
// is the index range a <(=) col1 <(=) b. Use NULL's encoding (EncodeKey of
// nil) with lowInclusive false for "above NULL".
func SpanBetween(low []byte, lowInclusive bool, high []byte, highInclusive bool) kv.Span {
	start := low
	if !lowInclusive {
		start = KeyPrefixEnd(low)
	}
	end := high
	if highInclusive {
		end = KeyPrefixEnd(high)
	}
	return kv.Span{Key: start, EndKey: end}
}
