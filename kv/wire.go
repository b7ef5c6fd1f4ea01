package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Small helpers shared by the request codec, the error codec and the MVCC
// value encodings. Every integer is a uvarint; a byte string is
// uvarint(len+1) followed by its bytes, with 0 standing for nil, so nil and
// empty survive a round trip unchanged.

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s))+1)
	return append(dst, s...)
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// errTruncated is wrapped into every decode error caused by missing bytes.
var errTruncated = errors.New("truncated input")

// decoder reads what the append helpers wrote. The first failure sticks in
// err and every later read returns zero values, so callers check err once.
// Byte strings alias the input.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint: %w", errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("missing byte: %w", errTruncated)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bool() bool {
	switch c := d.byte(); c {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("bad bool %d", c)
		return false
	}
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.b)) {
		d.fail("byte string of %d bytes with %d left: %w", n, len(d.b), errTruncated)
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) int() int {
	v := d.uvarint()
	if v > 1<<62 {
		d.fail("integer %d out of range", v)
		return 0
	}
	return int(v)
}

// count reads a slice length and rejects one that the remaining input cannot
// hold (every element takes at least minElemSize bytes), so a corrupt length
// never triggers a huge allocation.
func (d *decoder) count(minElemSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minElemSize) {
		d.fail("count %d exceeds remaining %d bytes: %w", n, len(d.b), errTruncated)
		return 0
	}
	return int(n)
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}
