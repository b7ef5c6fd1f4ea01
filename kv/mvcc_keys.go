package kv

import (
	"encoding/binary"
	"fmt"
)

// MVCC pebble keys are <family byte> <escaped user key> [<^ts BE8>]. The
// escaping (0x00 -> 0x00 0xff, terminated by 0x00 0x01) keeps the byte order
// of user keys and makes every escaped key a non-prefix of every other, so
// the versions of one user key are contiguous and sorted newest first (the
// timestamp is stored bitwise inverted).

const (
	escapeByte    byte = 0x00
	escapedZero   byte = 0xff
	escapedTerm   byte = 0x01
	timestampSize      = 8
)

// appendEscaped appends the escaped form of userKey and its terminator.
func appendEscaped(dst, userKey []byte) []byte {
	for _, c := range userKey {
		if c == escapeByte {
			dst = append(dst, escapeByte, escapedZero)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, escapeByte, escapedTerm)
}

// decodeEscaped reads an escaped user key from the front of b and returns it
// and the remaining bytes.
func decodeEscaped(b []byte) (userKey, rest []byte, err error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != escapeByte {
			out = append(out, c)
			continue
		}
		if i+1 >= len(b) {
			return nil, nil, fmt.Errorf("kv: truncated escaped key %x", b)
		}
		switch b[i+1] {
		case escapedZero:
			out = append(out, escapeByte)
			i++
		case escapedTerm:
			return out, b[i+2:], nil
		default:
			return nil, nil, fmt.Errorf("kv: bad escape in key %x", b)
		}
	}
	return nil, nil, fmt.Errorf("kv: unterminated escaped key %x", b)
}

// familyPrefixKey returns <family> <escaped userKey> with no timestamp: the
// lock key, or the prefix of every version of userKey in a versioned family.
func familyPrefixKey(family byte, userKey []byte) []byte {
	k := make([]byte, 0, len(userKey)+3+timestampSize)
	k = append(k, family)
	return appendEscaped(k, userKey)
}

// versionedKey returns <family> <escaped userKey> <^ts BE8>.
func versionedKey(family byte, userKey []byte, ts Timestamp) []byte {
	return binary.BigEndian.AppendUint64(familyPrefixKey(family, userKey), ^ts)
}

// familySpanBound returns the first pebble key of family for user keys >=
// userKey; for KeyMax, the end of the family's whole span.
func familySpanBound(family byte, userKey []byte) []byte {
	if len(userKey) >= 2 && userKey[0] == 0xff && userKey[1] == 0xff {
		return []byte{family + 1}
	}
	return familyPrefixKey(family, userKey)
}

// MVCCSpans returns the pebble key spans holding the MVCC data (locks, data
// versions, write records) of the user keys in [start, end). A range's
// snapshot copies exactly these spans plus its range-local span.
func MVCCSpans(start, end []byte) [][2][]byte {
	spans := make([][2][]byte, 0, 3)
	for _, f := range []byte{lockFamily, dataFamily, writeFamily} {
		spans = append(spans, [2][]byte{familySpanBound(f, start), familySpanBound(f, end)})
	}
	return spans
}
