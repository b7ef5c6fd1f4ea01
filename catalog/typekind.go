package catalog

import (
	"fmt"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/sqltypes"
)

// kind is the codec family of a SQL type: it fixes the Go type a value has
// after typ.Convert and how the key and row codecs write it.
type kind uint8

const (
	kindInt8 kind = iota + 1
	kindInt16
	kindInt32 // INT and MEDIUMINT
	kindInt64
	kindUint8
	kindUint16
	kindUint32 // INT UNSIGNED and MEDIUMINT UNSIGNED
	kindUint64
	kindFloat32
	kindFloat64
	kindDecimal
	kindString // CHAR, VARCHAR, TEXT: Go string
	kindBytes  // BINARY, VARBINARY, BLOB: Go []byte
	kindDatetime
	kindTime // types.Timespan
	kindYear // int16
	kindEnum // uint16
	kindSet  // uint64
	kindBit  // uint64
	kindJSON // types.JSONDocument (row values only)
)

// kindOf classifies typ. It looks at the wire type, which every GMS type
// reports, so extended or system types with an unexpected wire type are
// refused rather than guessed.
func kindOf(typ sql.Type) (kind, error) {
	if typ == nil {
		return 0, fmt.Errorf("%w: nil type", ErrUnsupportedType)
	}
	switch typ.Type() {
	case sqltypes.Int8:
		return kindInt8, nil
	case sqltypes.Int16:
		return kindInt16, nil
	case sqltypes.Int24, sqltypes.Int32:
		return kindInt32, nil
	case sqltypes.Int64:
		return kindInt64, nil
	case sqltypes.Uint8:
		return kindUint8, nil
	case sqltypes.Uint16:
		return kindUint16, nil
	case sqltypes.Uint24, sqltypes.Uint32:
		return kindUint32, nil
	case sqltypes.Uint64:
		return kindUint64, nil
	case sqltypes.Float32:
		return kindFloat32, nil
	case sqltypes.Float64:
		return kindFloat64, nil
	case sqltypes.Decimal:
		if _, ok := typ.(sql.DecimalType); !ok {
			return 0, fmt.Errorf("%w: %s is not a sql.DecimalType", ErrUnsupportedType, typ)
		}
		return kindDecimal, nil
	case sqltypes.Char, sqltypes.VarChar, sqltypes.Text:
		if _, ok := typ.(sql.StringType); !ok {
			return 0, fmt.Errorf("%w: %s is not a sql.StringType", ErrUnsupportedType, typ)
		}
		return kindString, nil
	case sqltypes.Binary, sqltypes.VarBinary, sqltypes.Blob:
		if _, ok := typ.(sql.StringType); !ok {
			return 0, fmt.Errorf("%w: %s is not a sql.StringType", ErrUnsupportedType, typ)
		}
		return kindBytes, nil
	case sqltypes.Date, sqltypes.Datetime, sqltypes.Timestamp:
		return kindDatetime, nil
	case sqltypes.Time:
		return kindTime, nil
	case sqltypes.Year:
		return kindYear, nil
	case sqltypes.Enum:
		return kindEnum, nil
	case sqltypes.Set:
		return kindSet, nil
	case sqltypes.Bit:
		return kindBit, nil
	case sqltypes.TypeJSON:
		return kindJSON, nil
	default:
		return 0, fmt.Errorf("%w: %s", ErrUnsupportedType, typ)
	}
}
