package raftgroup

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/quorumdb/quorumdb/kv"
)

// mvccDataFamily is the first byte of the MVCC data-version keys
// (<0x11> <escaped user key> <^start_ts BE8>, kv/keys.go and
// kv/mvcc_keys.go). kv does not export a decoder of these keys; the split
// key search below needs the user key of each version, so it reads the
// documented layout here (TestAdminMeasureRangeFindsUserKeyBoundary checks
// it against keys written by kv).
const mvccDataFamily byte = 0x11

// measureRange returns the logical size of desc's MVCC data (key and value
// bytes of its locks, data versions and write records) and, when that size
// is at least splitAbove (> 0), the user key at the middle of its data
// versions by bytes. Both passes read one pebble snapshot.
func measureRange(engine *kv.Engine, desc *kv.RangeDescriptor, splitAbove uint64) (total uint64, splitKey []byte, err error) {
	snap := engine.NewSnapshot()
	defer snap.Close()
	var dataSpan [2][]byte
	var dataBytes uint64
	for _, sp := range kv.MVCCSpans(desc.StartKey, desc.EndKey) {
		n, err := spanBytes(snap, sp)
		if err != nil {
			return 0, nil, fmt.Errorf("raftgroup: measure r%d: %w", desc.RangeID, err)
		}
		total += n
		if len(sp[0]) > 0 && sp[0][0] == mvccDataFamily {
			dataSpan, dataBytes = sp, n
		}
	}
	if splitAbove == 0 || total < splitAbove || dataSpan[0] == nil {
		return total, nil, nil
	}
	splitKey, err = middleUserKey(snap, dataSpan, dataBytes, desc.StartKey)
	if err != nil {
		return 0, nil, fmt.Errorf("raftgroup: split key of r%d: %w", desc.RangeID, err)
	}
	return total, splitKey, nil
}

func spanBytes(r pebble.Reader, sp [2][]byte) (uint64, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: sp[0], UpperBound: sp[1]})
	if err != nil {
		return 0, err
	}
	var n uint64
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return 0, err
		}
		n += uint64(len(it.Key()) + len(v))
	}
	if err := it.Error(); err != nil {
		_ = it.Close()
		return 0, err
	}
	return n, it.Close()
}

// middleUserKey walks the data versions and returns the first user key that
// starts at or past half of dataBytes; when the last key straddles the
// middle, the last user key. Only a key strictly above start qualifies
// (splitting there would leave the left side empty); nil when the span
// holds a single user key.
func middleUserKey(r pebble.Reader, sp [2][]byte, dataBytes uint64, start []byte) ([]byte, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: sp[0], UpperBound: sp[1]})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	half := dataBytes / 2
	var (
		seen    uint64
		buf     []byte // decoded user key of the current entry
		current []byte // user key of the versions being walked
		last    []byte // last user key above start
		started bool
	)
	for valid := it.First(); valid; valid = it.Next() {
		buf, err = mvccAppendUserKey(buf[:0], it.Key())
		if err != nil {
			return nil, err
		}
		if !started || !bytes.Equal(buf, current) {
			started = true
			current = append(current[:0], buf...)
			if bytes.Compare(current, start) > 0 {
				if seen >= half {
					return bytes.Clone(current), nil
				}
				last = append(last[:0], current...)
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, err
		}
		seen += uint64(len(it.Key()) + len(v))
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if last == nil {
		return nil, nil
	}
	return bytes.Clone(last), nil
}

// mvccUserKey decodes the user key of a versioned MVCC key: after the
// family byte, the user key escaped (0x00 → 0x00 0xff) and terminated by
// 0x00 0x01.
func mvccUserKey(key []byte) ([]byte, error) {
	return mvccAppendUserKey(make([]byte, 0, len(key)), key)
}

// mvccAppendUserKey appends the user key of key to dst.
func mvccAppendUserKey(dst, key []byte) ([]byte, error) {
	if len(key) < 3 {
		return nil, fmt.Errorf("MVCC key %x too short", key)
	}
	b := key[1:]
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != 0x00 {
			dst = append(dst, c)
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch b[i+1] {
		case 0xff:
			dst = append(dst, 0x00)
			i++
		case 0x01:
			return dst, nil
		default:
			return nil, fmt.Errorf("MVCC key %x: bad escape", key)
		}
	}
	return nil, fmt.Errorf("MVCC key %x: unterminated user key", key)
}
