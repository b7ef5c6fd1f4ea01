package catalog

import (
	"fmt"
	"math/big"

	"github.com/shopspring/decimal"
)

// Ordered decimals (arbitrary precision). A non-zero value is written as
// sign × 0.d1d2…dn × 10^E with d1 ≠ 0 and dn ≠ 0 (so equal values have equal
// encodings whatever their scale): a sign byte, E as an ordered integer, the
// digits two per byte as 1+(10·d_i+d_{i+1}) (1…100, a missing last digit is
// 0), then a 0x00 terminator. Negative values write -E and complement the
// digit bytes and the terminator (0xff), so larger magnitudes sort first.
const (
	decimalNegative = 0x02
	decimalZero     = 0x03
	decimalPositive = 0x04
)

func appendOrderedDecimal(dst []byte, d decimal.Decimal) []byte {
	if d.Sign() == 0 {
		return append(dst, decimalZero)
	}
	coef := d.Coefficient()
	neg := coef.Sign() < 0
	digits := coef.Abs(coef).Text(10)
	exp := int64(d.Exponent())
	j := len(digits)
	for j > 1 && digits[j-1] == '0' {
		j--
	}
	exp += int64(len(digits) - j)
	digits = digits[:j]
	e := exp + int64(len(digits))
	var flip byte
	if neg {
		dst = append(dst, decimalNegative)
		dst = appendOrderedInt(dst, -e)
		flip = 0xff
	} else {
		dst = append(dst, decimalPositive)
		dst = appendOrderedInt(dst, e)
	}
	for i := 0; i < len(digits); i += 2 {
		pair := (digits[i] - '0') * 10
		if i+1 < len(digits) {
			pair += digits[i+1] - '0'
		}
		dst = append(dst, (pair+1)^flip)
	}
	return append(dst, flip)
}

// decodeOrderedDecimal returns the value with the smallest exponent that
// holds it exactly or -scale, whichever is smaller (so a DECIMAL(p,s)
// column gets back exponent -s, as typ.Convert produces).
func decodeOrderedDecimal(b []byte, scale int32, want bool) (decimal.Decimal, []byte, error) {
	if len(b) == 0 {
		return decimal.Decimal{}, nil, fmt.Errorf("%w: empty decimal", ErrCorruptKey)
	}
	var flip byte
	switch b[0] {
	case decimalZero:
		return decimal.New(0, -scale), b[1:], nil
	case decimalPositive:
	case decimalNegative:
		flip = 0xff
	default:
		return decimal.Decimal{}, nil, fmt.Errorf("%w: decimal sign byte %#x", ErrCorruptKey, b[0])
	}
	e, rest, err := decodeOrderedInt(b[1:])
	if err != nil {
		return decimal.Decimal{}, nil, err
	}
	if flip != 0 {
		e = -e
	}
	var digits []byte
	for i := 0; ; i++ {
		if i >= len(rest) {
			return decimal.Decimal{}, nil, fmt.Errorf("%w: unterminated decimal", ErrCorruptKey)
		}
		c := rest[i] ^ flip
		if c == 0 {
			rest = rest[i+1:]
			break
		}
		if c > 100 {
			return decimal.Decimal{}, nil, fmt.Errorf("%w: decimal digit byte %#x", ErrCorruptKey, rest[i])
		}
		if want {
			digits = append(digits, '0'+(c-1)/10, '0'+(c-1)%10)
		}
	}
	if !want {
		return decimal.Decimal{}, rest, nil
	}
	coef, ok := new(big.Int).SetString(string(digits), 10)
	if !ok || len(digits) == 0 {
		return decimal.Decimal{}, nil, fmt.Errorf("%w: decimal without digits", ErrCorruptKey)
	}
	if flip != 0 {
		coef.Neg(coef)
	}
	exp := e - int64(len(digits))
	if exp < -1<<31 || exp > 1<<31-1 {
		return decimal.Decimal{}, nil, fmt.Errorf("%w: decimal exponent out of range", ErrCorruptKey)
	}
	d := decimal.NewFromBigInt(coef, int32(exp))
	return rescaleDecimal(d, scale), rest, nil
}

// rescaleDecimal returns d with exponent -scale when that loses nothing.
func rescaleDecimal(d decimal.Decimal, scale int32) decimal.Decimal {
	if d.Exponent() == -scale {
		return d
	}
	r := d.Round(scale)
	if r.Cmp(d) != 0 {
		return d
	}
	return r
}
