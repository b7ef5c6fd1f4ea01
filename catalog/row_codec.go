package catalog

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/shopspring/decimal"
)

// Row value format (version 1):
//
//	0x01                       format version
//	uvarint watermark          the highest column ID the writer knew
//	entries…                   one per non-NULL column:
//	  uvarint tag              columnID<<3 | wire type
//	  payload                  by wire type
//
// Wire types (as in protocol buffers): 0 varint, 1 fixed 8 bytes, 2 uvarint
// length + bytes, 5 fixed 4 bytes. Every entry can be skipped without knowing
// the column's type, so a dropped column's bytes are ignored. A column with
// no entry is NULL when its ID is at most the watermark (the writer knew it)
// and "missing" otherwise: it was added after the row was written, and the
// caller's MissingColumn decides its value (usually its default). Column IDs
// are never reused, so an ID above the watermark is always a newer column.
const rowFormatVersion = 1

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// RowColumn is one column as the row codec sees it: the stable column ID
// from the descriptor and the column's type.
type RowColumn struct {
	ID   uint32
	Type sql.Type
}

// MissingColumn returns the value of the codec's column at position i for a
// row written before the column existed (typically the column's default,
// evaluated by the SQL layer). A nil MissingColumn means NULL.
type MissingColumn func(i int) (any, error)

// RowCodec encodes and decodes full rows of one table version. It is
// immutable and safe for concurrent use; build one per descriptor version.
type RowCodec struct {
	cols      []RowColumn
	kinds     []kind
	pos       map[uint32]int
	watermark uint32
}

// NewRowCodec returns a codec for rows whose i-th value belongs to cols[i].
// Column IDs must be non-zero and distinct.
func NewRowCodec(cols []RowColumn) (*RowCodec, error) {
	c := &RowCodec{
		cols:  slices.Clone(cols),
		kinds: make([]kind, len(cols)),
		pos:   make(map[uint32]int, len(cols)),
	}
	for i, col := range cols {
		if col.ID == 0 {
			return nil, fmt.Errorf("%w: column %d has ID 0", ErrInvalidDescriptor, i)
		}
		if _, dup := c.pos[col.ID]; dup {
			return nil, fmt.Errorf("%w: duplicate column ID %d", ErrInvalidDescriptor, col.ID)
		}
		k, err := kindOf(col.Type)
		if err != nil {
			return nil, fmt.Errorf("column ID %d: %w", col.ID, err)
		}
		c.kinds[i] = k
		c.pos[col.ID] = i
		c.watermark = max(c.watermark, col.ID)
	}
	return c, nil
}

// Columns returns the codec's columns (do not modify).
func (c *RowCodec) Columns() []RowColumn { return c.cols }

// Encode appends the encoding of row to dst. row[i] is the value of
// Columns()[i]: nil for NULL, otherwise what the column type's Convert
// produces (other Go types are converted; out-of-range values are an error).
func (c *RowCodec) Encode(dst []byte, row sql.Row) ([]byte, error) {
	if len(row) != len(c.cols) {
		return nil, fmt.Errorf("%w: row has %d values, schema %d columns", ErrInvalidValue, len(row), len(c.cols))
	}
	dst = append(dst, rowFormatVersion)
	dst = binary.AppendUvarint(dst, uint64(c.watermark))
	for i, v := range row {
		if v == nil {
			continue
		}
		var err error
		dst, err = appendRowValue(dst, c.cols[i], c.kinds[i], v)
		if err != nil {
			return nil, fmt.Errorf("column ID %d: %w", c.cols[i].ID, err)
		}
	}
	return dst, nil
}

func appendTag(dst []byte, id uint32, wire int) []byte {
	return binary.AppendUvarint(dst, uint64(id)<<3|uint64(wire))
}

func appendRowValue(dst []byte, col RowColumn, k kind, v any) ([]byte, error) {
	v, err := convertValue(col.Type, k, v)
	if err != nil {
		return nil, err
	}
	switch k {
	case kindInt8:
		return binary.AppendVarint(appendTag(dst, col.ID, wireVarint), int64(v.(int8))), nil
	case kindInt16, kindYear:
		return binary.AppendVarint(appendTag(dst, col.ID, wireVarint), int64(v.(int16))), nil
	case kindInt32:
		return binary.AppendVarint(appendTag(dst, col.ID, wireVarint), int64(v.(int32))), nil
	case kindInt64:
		return binary.AppendVarint(appendTag(dst, col.ID, wireVarint), v.(int64)), nil
	case kindTime:
		return binary.AppendVarint(appendTag(dst, col.ID, wireVarint), int64(v.(types.Timespan))), nil
	case kindUint8:
		return binary.AppendUvarint(appendTag(dst, col.ID, wireVarint), uint64(v.(uint8))), nil
	case kindUint16, kindEnum:
		return binary.AppendUvarint(appendTag(dst, col.ID, wireVarint), uint64(v.(uint16))), nil
	case kindUint32:
		return binary.AppendUvarint(appendTag(dst, col.ID, wireVarint), uint64(v.(uint32))), nil
	case kindUint64, kindSet, kindBit:
		return binary.AppendUvarint(appendTag(dst, col.ID, wireVarint), v.(uint64)), nil
	case kindFloat32:
		return binary.LittleEndian.AppendUint32(appendTag(dst, col.ID, wireFixed32), math.Float32bits(v.(float32))), nil
	case kindFloat64:
		return binary.LittleEndian.AppendUint64(appendTag(dst, col.ID, wireFixed64), math.Float64bits(v.(float64))), nil
	case kindDecimal:
		var tmp [64]byte // most decimals fit: no allocation for the payload
		return appendLengthPrefixed(appendTag(dst, col.ID, wireBytes), appendDecimalValue(tmp[:0], v.(decimal.Decimal))), nil
	case kindString:
		s := v.(string)
		dst = binary.AppendUvarint(appendTag(dst, col.ID, wireBytes), uint64(len(s)))
		return append(dst, s...), nil
	case kindBytes:
		return appendLengthPrefixed(appendTag(dst, col.ID, wireBytes), v.([]byte)), nil
	case kindDatetime:
		t := v.(time.Time)
		var tmp [2 * binary.MaxVarintLen64]byte
		payload := binary.AppendVarint(tmp[:0], t.Unix())
		payload = binary.AppendUvarint(payload, uint64(t.Nanosecond()))
		return appendLengthPrefixed(appendTag(dst, col.ID, wireBytes), payload), nil
	case kindJSON:
		doc, err := v.(sql.JSONWrapper).ToInterface()
		if err != nil {
			return nil, fmt.Errorf("%w: JSON value: %v", ErrInvalidValue, err)
		}
		text, err := appendJSON(nil, doc)
		if err != nil {
			return nil, err
		}
		return appendLengthPrefixed(appendTag(dst, col.ID, wireBytes), text), nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedType, col.Type)
}

func appendLengthPrefixed(dst, payload []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	return append(dst, payload...)
}

// appendDecimalValue writes the exact decimal: zigzag exponent, a sign byte,
// the big-endian magnitude of the coefficient.
func appendDecimalValue(dst []byte, d decimal.Decimal) []byte {
	coef := d.Coefficient()
	dst = binary.AppendVarint(dst, int64(d.Exponent()))
	sign := byte(0)
	if coef.Sign() < 0 {
		sign = 1
		coef.Neg(coef)
	}
	dst = append(dst, sign)
	start := len(dst)
	for range (coef.BitLen() + 7) / 8 {
		dst = append(dst, 0)
	}
	coef.FillBytes(dst[start:])
	return dst
}

// Decode decodes a row encoded by a codec of the same table (any version).
// Values come back as the Go types typ.Convert produces (see DecodeKey for
// the list); JSON comes back as types.JSONDocument whose Val is what
// encoding/json yields for the stored text (numbers are float64), which is
// what JSON Convert produces for a string.
func (c *RowCodec) Decode(b []byte, missing MissingColumn) (sql.Row, error) {
	row := make(sql.Row, len(c.cols))
	if err := c.DecodeInto(row, b, missing); err != nil {
		return nil, err
	}
	return row, nil
}

// DecodeInto is Decode into a caller-provided row of len(Columns()).
func (c *RowCodec) DecodeInto(row sql.Row, b []byte, missing MissingColumn) error {
	if len(row) != len(c.cols) {
		return fmt.Errorf("%w: row has %d slots, schema %d columns", ErrInvalidValue, len(row), len(c.cols))
	}
	if len(b) == 0 || b[0] != rowFormatVersion {
		return fmt.Errorf("%w: unknown format version", ErrCorruptRow)
	}
	b = b[1:]
	wm, n := binary.Uvarint(b)
	if n <= 0 || wm > math.MaxUint32 {
		return fmt.Errorf("%w: bad watermark", ErrCorruptRow)
	}
	b = b[n:]
	var seen uint64 // bit i: column i had an entry (first 64 columns)
	var seenMore map[int]bool
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 || tag>>3 > math.MaxUint32 {
			return fmt.Errorf("%w: bad tag", ErrCorruptRow)
		}
		b = b[n:]
		id, wire := uint32(tag>>3), int(tag&7)
		var payload []byte
		var u uint64
		switch wire {
		case wireVarint:
			u, n = binary.Uvarint(b)
			if n <= 0 {
				return fmt.Errorf("%w: bad varint of column ID %d", ErrCorruptRow, id)
			}
			b = b[n:]
		case wireFixed64:
			if len(b) < 8 {
				return fmt.Errorf("%w: short fixed64 of column ID %d", ErrCorruptRow, id)
			}
			u, b = binary.LittleEndian.Uint64(b), b[8:]
		case wireFixed32:
			if len(b) < 4 {
				return fmt.Errorf("%w: short fixed32 of column ID %d", ErrCorruptRow, id)
			}
			u, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case wireBytes:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("%w: bad length of column ID %d", ErrCorruptRow, id)
			}
			payload, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return fmt.Errorf("%w: wire type %d of column ID %d", ErrCorruptRow, wire, id)
		}
		i, ok := c.pos[id]
		if !ok {
			continue // a dropped column
		}
		v, err := decodeRowValue(c.kinds[i], c.cols[i].Type, wire, u, payload)
		if err != nil {
			return fmt.Errorf("column ID %d: %w", id, err)
		}
		row[i] = v
		if i < 64 {
			seen |= 1 << i
		} else {
			if seenMore == nil {
				seenMore = map[int]bool{}
			}
			seenMore[i] = true
		}
	}
	for i, col := range c.cols {
		if (i < 64 && seen&(1<<i) != 0) || seenMore[i] {
			continue
		}
		row[i] = nil
		if uint64(col.ID) > wm && missing != nil {
			v, err := missing(i)
			if err != nil {
				return fmt.Errorf("value of column ID %d added after the row was written: %w", col.ID, err)
			}
			row[i] = v
		}
	}
	return nil
}

func decodeRowValue(k kind, typ sql.Type, wire int, u uint64, payload []byte) (any, error) {
	want := wireBytes
	switch k {
	case kindInt8, kindInt16, kindInt32, kindInt64, kindYear, kindTime,
		kindUint8, kindUint16, kindUint32, kindUint64, kindEnum, kindSet, kindBit:
		want = wireVarint
	case kindFloat32:
		want = wireFixed32
	case kindFloat64:
		want = wireFixed64
	}
	if wire != want {
		return nil, fmt.Errorf("%w: wire type %d for %s", ErrCorruptRow, wire, typ)
	}
	switch k {
	case kindInt8, kindInt16, kindInt32, kindInt64, kindYear, kindTime:
		i := int64(u>>1) ^ -int64(u&1) // zigzag, as binary.AppendVarint writes it
		v, err := signedAs(k, i)
		if err != nil {
			return nil, fmt.Errorf("%w: %d for %s", ErrCorruptRow, i, typ)
		}
		return v, nil
	case kindUint8, kindUint16, kindUint32, kindUint64, kindEnum, kindSet, kindBit:
		v, err := unsignedAs(k, u)
		if err != nil {
			return nil, fmt.Errorf("%w: %d for %s", ErrCorruptRow, u, typ)
		}
		return v, nil
	case kindFloat32:
		return math.Float32frombits(uint32(u)), nil
	case kindFloat64:
		return math.Float64frombits(u), nil
	case kindDecimal:
		exp, n := binary.Varint(payload)
		if n <= 0 || len(payload) < n+1 || payload[n] > 1 || exp < math.MinInt32 || exp > math.MaxInt32 {
			return nil, fmt.Errorf("%w: decimal", ErrCorruptRow)
		}
		coef := new(big.Int).SetBytes(payload[n+1:])
		if payload[n] == 1 {
			coef.Neg(coef)
		}
		return decimal.NewFromBigInt(coef, int32(exp)), nil
	case kindString:
		return string(payload), nil
	case kindBytes:
		return append([]byte{}, payload...), nil
	case kindDatetime:
		sec, n := binary.Varint(payload)
		if n <= 0 {
			return nil, fmt.Errorf("%w: datetime seconds", ErrCorruptRow)
		}
		nsec, m := binary.Uvarint(payload[n:])
		if m <= 0 || nsec >= 1e9 || n+m != len(payload) {
			return nil, fmt.Errorf("%w: datetime nanoseconds", ErrCorruptRow)
		}
		return time.Unix(sec, int64(nsec)).UTC(), nil
	case kindJSON:
		var doc any
		if err := json.Unmarshal(payload, &doc); err != nil {
			return nil, fmt.Errorf("%w: JSON: %v", ErrCorruptRow, err)
		}
		return types.JSONDocument{Val: doc}, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedType, typ)
}

// appendJSON writes v as JSON text that encoding/json parses back to the
// same document: object keys sorted, decimals as plain numbers (unlike
// decimal.Decimal's own MarshalJSON, which quotes them).
func appendJSON(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return appendJSONString(dst, x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%w: JSON number %v", ErrInvalidValue, x)
		}
		return strconv.AppendFloat(dst, x, 'g', -1, 64), nil
	case float32:
		return appendJSON(dst, float64(x))
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case decimal.Decimal:
		return append(dst, x.String()...), nil
	case json.Number:
		return append(dst, x...), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSON(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSONString(dst, k); err != nil {
				return nil, err
			}
			dst = append(dst, ':')
			if dst, err = appendJSON(dst, x[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case sql.JSONWrapper:
		inner, err := x.ToInterface()
		if err != nil {
			return nil, fmt.Errorf("%w: JSON value: %v", ErrInvalidValue, err)
		}
		return appendJSON(dst, inner)
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("%w: JSON value %T: %v", ErrInvalidValue, x, err)
		}
		return append(dst, b...), nil
	}
}

func appendJSONString(dst []byte, s string) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("%w: JSON string: %v", ErrInvalidValue, err)
	}
	return append(dst, b...), nil
}
