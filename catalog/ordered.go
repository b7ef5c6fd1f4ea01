package catalog

import (
	"fmt"
	"math"
	"math/bits"
)

// Order-preserving primitives. Every encoding here is prefix-free (no
// encoding is a proper prefix of another), so a concatenation of encodings
// compares column by column, and "every key whose first columns are these
// values" is a contiguous span.

// Ordered integers: one prefix byte that says the sign and the number n of
// significant bytes, then n bytes. Non-negative values use 0x80+n and the
// big-endian bytes; negative values v use 0x7f-n and the complemented bytes
// of ^v (= -v-1), so that more negative values sort first. The encoding does
// not depend on the column's width: INT and BIGINT keys of the same value
// are equal, and int and uint values of either sign compare correctly.
const (
	orderedIntZero    = 0x80 // prefix of 0; 0x80+n for n payload bytes
	orderedIntNegBase = 0x7f // prefix of -1; 0x7f-n for n payload bytes
)

func byteLen(u uint64) int { return (bits.Len64(u) + 7) / 8 }

func appendOrderedUint(dst []byte, u uint64) []byte {
	n := byteLen(u)
	dst = append(dst, byte(orderedIntZero+n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(u>>(8*i)))
	}
	return dst
}

func appendOrderedInt(dst []byte, v int64) []byte {
	if v >= 0 {
		return appendOrderedUint(dst, uint64(v))
	}
	u := uint64(^v)
	n := byteLen(u)
	dst = append(dst, byte(orderedIntNegBase-n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, ^byte(u>>(8*i)))
	}
	return dst
}

// decodeOrderedNumber returns the value as (negative, magnitude-or-complement):
// for non-negative values u is the value; for negative values u is ^v.
func decodeOrderedNumber(b []byte) (neg bool, u uint64, rest []byte, err error) {
	if len(b) == 0 {
		return false, 0, nil, fmt.Errorf("%w: empty integer", ErrCorruptKey)
	}
	p := b[0]
	var n int
	switch {
	case p >= orderedIntZero && p <= orderedIntZero+8:
		n = int(p - orderedIntZero)
	case p >= orderedIntNegBase-8 && p <= orderedIntNegBase:
		n = int(orderedIntNegBase - p)
		neg = true
	default:
		return false, 0, nil, fmt.Errorf("%w: integer prefix %#x", ErrCorruptKey, p)
	}
	if len(b) < 1+n {
		return false, 0, nil, fmt.Errorf("%w: integer truncated", ErrCorruptKey)
	}
	for _, c := range b[1 : 1+n] {
		if neg {
			c = ^c
		}
		u = u<<8 | uint64(c)
	}
	if n > 0 && byteLen(u) != n {
		return false, 0, nil, fmt.Errorf("%w: non-minimal integer", ErrCorruptKey)
	}
	return neg, u, b[1+n:], nil
}

func decodeOrderedInt(b []byte) (int64, []byte, error) {
	neg, u, rest, err := decodeOrderedNumber(b)
	if err != nil {
		return 0, nil, err
	}
	if u > math.MaxInt64 {
		return 0, nil, fmt.Errorf("%w: integer overflows int64", ErrCorruptKey)
	}
	if neg {
		return ^int64(u), rest, nil
	}
	return int64(u), rest, nil
}

func decodeOrderedUint(b []byte) (uint64, []byte, error) {
	neg, u, rest, err := decodeOrderedNumber(b)
	if err != nil {
		return 0, nil, err
	}
	if neg {
		return 0, nil, fmt.Errorf("%w: negative value for an unsigned type", ErrCorruptKey)
	}
	return u, rest, nil
}

// Ordered floats: the IEEE bits with the sign bit flipped for non-negative
// numbers and every bit flipped for negative ones, big-endian. -0 is written
// as +0 (they compare equal in SQL, so their keys must be equal).
func appendOrderedFloat(dst []byte, f float64) []byte {
	if f == 0 {
		f = 0 // turns -0 into +0
	}
	u := math.Float64bits(f)
	if u&(1<<63) == 0 {
		u ^= 1 << 63
	} else {
		u = ^u
	}
	return append(dst, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32),
		byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

func decodeOrderedFloat(b []byte) (float64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("%w: float truncated", ErrCorruptKey)
	}
	var u uint64
	for _, c := range b[:8] {
		u = u<<8 | uint64(c)
	}
	if u&(1<<63) != 0 {
		u ^= 1 << 63
	} else {
		u = ^u
	}
	return math.Float64frombits(u), b[8:], nil
}

// Escaped bytes: 0x00 is written 0x00 0xff and the string ends with
// 0x00 0x01, so the encoding is prefix-free and preserves byte order
// (a shorter string sorts before any extension of it).
const (
	escapeByte     = 0x00
	escapedZero    = 0xff
	escapeTerminal = 0x01
)

func appendEscaped(dst []byte, s []byte) []byte {
	for {
		i := indexZero(s)
		if i < 0 {
			dst = append(dst, s...)
			break
		}
		dst = append(dst, s[:i+1]...)
		dst = append(dst, escapedZero)
		s = s[i+1:]
	}
	return append(dst, escapeByte, escapeTerminal)
}

func appendEscapedString(dst []byte, s string) []byte {
	for {
		i := indexZeroString(s)
		if i < 0 {
			dst = append(dst, s...)
			break
		}
		dst = append(dst, s[:i+1]...)
		dst = append(dst, escapedZero)
		s = s[i+1:]
	}
	return append(dst, escapeByte, escapeTerminal)
}

func indexZero(s []byte) int {
	for i, c := range s {
		if c == 0 {
			return i
		}
	}
	return -1
}

func indexZeroString(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// decodeEscaped returns the unescaped bytes (appended to dst when want is
// true) and the rest after the terminator.
func decodeEscaped(b []byte, dst []byte, want bool) ([]byte, []byte, error) {
	for {
		i := indexZero(b)
		if i < 0 || i+1 >= len(b) {
			return nil, nil, fmt.Errorf("%w: unterminated string", ErrCorruptKey)
		}
		if want {
			dst = append(dst, b[:i]...)
		}
		switch b[i+1] {
		case escapeTerminal:
			return dst, b[i+2:], nil
		case escapedZero:
			if want {
				dst = append(dst, 0)
			}
			b = b[i+2:]
		default:
			return nil, nil, fmt.Errorf("%w: bad escape %#x", ErrCorruptKey, b[i+1])
		}
	}
}
