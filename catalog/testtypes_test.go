package catalog

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/planbuilder"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/sqltypes"
	"github.com/dolthub/vitess/go/vt/proto/query"
	"github.com/shopspring/decimal"
)

// testType is one column type of the property tests: its SQL text (parsed
// with planbuilder.ParseColumnTypeString, as the catalog stores types) and a
// generator of raw inputs that typ.Convert turns into engine values.
type testType struct {
	sql string
	gen func(r *rand.Rand) any
}

func intGen(lo, hi int64) func(r *rand.Rand) any {
	return func(r *rand.Rand) any {
		switch r.IntN(6) {
		case 0:
			return lo
		case 1:
			return hi
		case 2:
			return int64(r.IntN(5) - 2)
		}
		if hi-lo <= 0 || hi-lo > math.MaxInt64/2 {
			return int64(r.Uint64())
		}
		return lo + r.Int64N(hi-lo+1)
	}
}

func uintGen(hi uint64) func(r *rand.Rand) any {
	return func(r *rand.Rand) any {
		switch r.IntN(5) {
		case 0:
			return uint64(0)
		case 1:
			return hi
		case 2:
			return uint64(r.IntN(3))
		}
		if hi == math.MaxUint64 {
			return r.Uint64()
		}
		return r.Uint64N(hi + 1)
	}
}

func floatGen(r *rand.Rand) any {
	switch r.IntN(8) {
	case 0:
		return 0.0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return math.SmallestNonzeroFloat64 * float64(r.IntN(3)-1)
	case 3:
		return float64(r.IntN(200) - 100)
	case 4:
		return (r.Float64() - 0.5) * 1e30
	case 5:
		return (r.Float64() - 0.5) * 1e-30
	}
	return (r.Float64() - 0.5) * 2000
}

func decimalGen(precision, scale int) func(r *rand.Rand) any {
	return func(r *rand.Rand) any {
		if r.IntN(8) == 0 {
			return "0"
		}
		intDigits := precision - scale
		var sb strings.Builder
		if r.IntN(2) == 0 {
			sb.WriteByte('-')
		}
		n := r.IntN(intDigits + 1)
		if n == 0 {
			sb.WriteByte('0')
		}
		for i := 0; i < n; i++ {
			sb.WriteByte(byte('0' + r.IntN(10)))
		}
		if scale > 0 {
			sb.WriteByte('.')
			m := r.IntN(scale + 1)
			for i := 0; i < m; i++ {
				d := r.IntN(10)
				if r.IntN(3) == 0 {
					d = 0 // trailing and inner zeros are the interesting cases
				}
				sb.WriteByte(byte('0' + d))
			}
			if m == 0 {
				sb.WriteByte('0')
			}
		}
		return sb.String()
	}
}

// Runes that stress collations: case pairs, accents, ß/ss, space, NUL,
// characters outside the BMP and a byte sequence near 0xff.
var stringAlphabet = []string{"a", "A", "b", "B", "z", "Z", "ä", "Ä", "é", "e", "E", "ß", "s", " ", "\x00", "😀", "𝔸", "ÿ", "0", "~", "\u00a0"}

func stringGen(maxLen int) func(r *rand.Rand) any {
	return func(r *rand.Rand) any {
		n := r.IntN(maxLen + 1)
		var sb strings.Builder
		for i := 0; i < n; i++ {
			sb.WriteString(stringAlphabet[r.IntN(len(stringAlphabet))])
		}
		return sb.String()
	}
}

func bytesGen(maxLen int) func(r *rand.Rand) any {
	return func(r *rand.Rand) any {
		n := r.IntN(maxLen + 1)
		b := make([]byte, n)
		for i := range b {
			switch r.IntN(4) {
			case 0:
				b[i] = 0
			case 1:
				b[i] = 0xff
			default:
				b[i] = byte(r.IntN(256))
			}
		}
		return b
	}
}

func datetimeGen(minYear, maxYear int, withFraction bool) func(r *rand.Rand) any {
	lo := time.Date(minYear, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(maxYear, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	return func(r *rand.Rand) any {
		sec := lo + r.Int64N(hi-lo)
		nsec := int64(0)
		if withFraction {
			nsec = r.Int64N(1e9)
		}
		if r.IntN(6) == 0 {
			sec = lo + r.Int64N(3)*86400 // a few values on the same days
		}
		return time.Unix(sec, nsec).UTC()
	}
}

func timeGen(r *rand.Rand) any {
	const maxMicros = (838*3600 + 59*60 + 59) * 1_000_000
	if r.IntN(6) == 0 {
		return types.Timespan(r.IntN(5) - 2)
	}
	return types.Timespan(r.Int64N(2*maxMicros+1) - maxMicros)
}

func yearGen(r *rand.Rand) any {
	if r.IntN(10) == 0 {
		return int64(0)
	}
	return int64(1901 + r.IntN(255))
}

func enumGen(n int) func(r *rand.Rand) any {
	return func(r *rand.Rand) any { return r.IntN(n + 1) }
}

func setGen(n int) func(r *rand.Rand) any {
	return func(r *rand.Rand) any { return r.Uint64N(1 << n) }
}

// keyTestTypes covers every key type of the codec.
var keyTestTypes = []testType{
	{"TINYINT", intGen(math.MinInt8, math.MaxInt8)},
	{"BOOLEAN", intGen(math.MinInt8, math.MaxInt8)},
	{"SMALLINT", intGen(math.MinInt16, math.MaxInt16)},
	{"MEDIUMINT", intGen(-1<<23, 1<<23-1)},
	{"INT", intGen(math.MinInt32, math.MaxInt32)},
	{"BIGINT", intGen(math.MinInt64, math.MaxInt64)},
	{"TINYINT UNSIGNED", uintGen(math.MaxUint8)},
	{"SMALLINT UNSIGNED", uintGen(math.MaxUint16)},
	{"MEDIUMINT UNSIGNED", uintGen(1<<24 - 1)},
	{"INT UNSIGNED", uintGen(math.MaxUint32)},
	{"BIGINT UNSIGNED", uintGen(math.MaxUint64)},
	{"FLOAT", floatGen},
	{"DOUBLE", floatGen},
	{"DECIMAL(10,2)", decimalGen(10, 2)},
	{"DECIMAL(5,0)", decimalGen(5, 0)},
	{"DECIMAL(65,30)", decimalGen(65, 30)},
	{"DECIMAL(30,29)", decimalGen(30, 29)},
	{"VARCHAR(20)", stringGen(6)},
	{"VARCHAR(20) COLLATE utf8mb4_0900_bin", stringGen(6)},
	{"VARCHAR(20) COLLATE utf8mb4_0900_ai_ci", stringGen(6)},
	{"VARCHAR(20) COLLATE utf8mb4_general_ci", stringGen(6)},
	{"VARCHAR(20) COLLATE utf8mb4_bin", stringGen(6)},
	{"VARCHAR(20) CHARACTER SET latin1", stringGen(6)},
	{"CHAR(10) COLLATE utf8mb4_0900_ai_ci", stringGen(4)},
	{"CHAR(10)", stringGen(4)},
	{"TEXT", stringGen(8)},
	{"TEXT COLLATE utf8mb4_general_ci", stringGen(8)},
	{"BINARY(8)", bytesGen(8)},
	{"VARBINARY(16)", bytesGen(8)},
	{"BLOB", bytesGen(8)},
	{"DATE", datetimeGen(1000, 9999, false)},
	{"DATETIME", datetimeGen(1000, 9999, true)},
	{"DATETIME(6)", datetimeGen(1000, 9999, true)},
	{"TIMESTAMP", datetimeGen(1971, 2037, true)},
	{"TIMESTAMP(3)", datetimeGen(1971, 2037, true)},
	{"TIME", timeGen},
	{"TIME(6)", timeGen},
	{"YEAR", yearGen},
	{"ENUM('b','a','c','A B','')", enumGen(5)},
	{"SET('x','y','z','w')", setGen(4)},
	{"BIT(1)", uintGen(1)},
	{"BIT(10)", uintGen(1<<10 - 1)},
	{"BIT(64)", uintGen(math.MaxUint64)},
}

func parseType(t testing.TB, s string) sql.Type {
	t.Helper()
	typ, err := planbuilder.ParseColumnTypeString(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return typ
}

// genValues returns n engine values of typ (about one in ten NULL), each
// the output of typ.Convert on a random input.
func genValues(t testing.TB, r *rand.Rand, typ sql.Type, gen func(*rand.Rand) any, n int, withNull bool) []any {
	t.Helper()
	vals := make([]any, 0, n)
	for len(vals) < n {
		if withNull && r.IntN(10) == 0 {
			vals = append(vals, nil)
			continue
		}
		raw := gen(r)
		v, inRange, err := typ.Convert(context.Background(), raw)
		if err != nil || inRange != sql.InRange || v == nil {
			continue // the generator may step outside the type's domain
		}
		vals = append(vals, v)
	}
	return vals
}

// sameValue is exact equality of engine values: same Go type and value;
// decimals must also have the same exponent, times the same location.
func sameValue(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if fmt.Sprintf("%T", a) != fmt.Sprintf("%T", b) {
		return false
	}
	switch x := a.(type) {
	case decimal.Decimal:
		y := b.(decimal.Decimal)
		return x.Exponent() == y.Exponent() && x.Cmp(y) == 0
	case time.Time:
		y := b.(time.Time)
		return x.Equal(y) && x.Location() == y.Location()
	case []byte:
		return string(x) == string(b.([]byte))
	case types.JSONDocument:
		xs, err1 := x.JSONString()
		ys, err2 := b.(types.JSONDocument).JSONString()
		return err1 == nil && err2 == nil && xs == ys
	case float64:
		y := b.(float64)
		return x == y && math.Signbit(x) == math.Signbit(y)
	case float32:
		y := b.(float32)
		return x == y && math.Signbit(float64(x)) == math.Signbit(float64(y))
	}
	return a == b
}

func sqltypes_VarChar() query.Type { return sqltypes.VarChar }
