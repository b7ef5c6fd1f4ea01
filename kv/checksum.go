package kv

import (
	"encoding/binary"
	"fmt"
	"hash/crc64"

	"github.com/cockroachdb/pebble/v2"
)

// ChecksumRange returns a checksum of every pebble key and value in the MVCC
// spans of desc (locks, data versions, write records), in key order. Two
// replicas that applied the same commands return the same value; it does not
// cover the range-local Raft state, which differs between replicas.
func ChecksumRange(r Reader, desc *RangeDescriptor) (uint64, error) {
	h := crc64.New(crc64.MakeTable(crc64.ECMA)) // the ECMA table is built once by the library
	var lenBuf [2 * binary.MaxVarintLen64]byte
	for _, span := range MVCCSpans(desc.StartKey, desc.EndKey) {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: span[0], UpperBound: span[1]})
		if err != nil {
			return 0, fmt.Errorf("kv: checksum r%d: %w", desc.RangeID, err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			k, v := it.Key(), it.Value()
			// Length-prefix both so ("ab","c") and ("a","bc") differ.
			n := binary.PutUvarint(lenBuf[:], uint64(len(k)))
			n += binary.PutUvarint(lenBuf[n:], uint64(len(v)))
			_, _ = h.Write(lenBuf[:n])
			_, _ = h.Write(k)
			_, _ = h.Write(v)
		}
		err = it.Error()
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("kv: checksum r%d: %w", desc.RangeID, err)
		}
	}
	return h.Sum64(), nil
}
