// Package kv is the storage layer of a QuorumDB node: one pebble database per
// process holding every replica's user data and Raft state, the key layout that
// keeps each range's data contiguous, the MVCC engine (locks, data versions and
// write records in Percolator style) and the range commands that the Raft layer
// applies deterministically on every replica.
//
// kv knows nothing about SQL, Raft or the network. Everything in it that runs
// on apply is a pure function of the state it reads and the command it is
// given: the same command on the same state produces the same writes and the
// same result on every replica.
//
// Key spaces (first byte of the pebble key):
//
//	0x01 'r' <rangeID BE8> <suffix>          range-local state (raft log, hard state, applied index, descriptor)
//	0x10 <escaped user key>                  lock family: user key -> Lock
//	0x11 <escaped user key> <^start_ts BE8>  data family: the value written at prewrite
//	0x12 <escaped user key> <^commit_ts BE8> write family: WriteRecord {start_ts, kind}
//
// User keys (what ranges partition and MVCC versions) are arbitrary bytes:
// system keys start with 's', table keys with 't' followed by the table ID and
// index ID as fixed-width big-endian integers.
package kv
