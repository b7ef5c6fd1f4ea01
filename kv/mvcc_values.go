package kv

import (
	"encoding/binary"
	"fmt"
)

// Value encodings of the lock and write families. The data family's value is
// the user value itself, with no header.
//
//	lock:   <kind byte> <start_ts uvarint> <ttl uvarint> <min_commit_ts uvarint> <primary bytes…>
//	write:  <kind byte | 0x80 if an overlapped rollback> <start_ts uvarint>
//
// Lock kinds are the MutationOp values (put 1, delete 2, lock 3); write kinds
// add rollback (4). The primary key runs to the end of the lock value, so it
// needs no length.

// mvccLock is a decoded lock-family value.
type mvccLock struct {
	primary     []byte
	startTS     Timestamp
	ttl         uint64
	kind        MutationOp
	minCommitTS Timestamp
}

func (l *mvccLock) encode() []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(l.primary))
	b = append(b, byte(l.kind))
	b = binary.AppendUvarint(b, l.startTS)
	b = binary.AppendUvarint(b, l.ttl)
	b = binary.AppendUvarint(b, l.minCommitTS)
	return append(b, l.primary...)
}

// decodeLock decodes a lock value; the primary aliases b.
func decodeLock(b []byte) (mvccLock, error) {
	d := decoder{b: b}
	l := mvccLock{kind: MutationOp(d.byte()), startTS: d.uvarint(), ttl: d.uvarint(), minCommitTS: d.uvarint()}
	if d.err != nil {
		return mvccLock{}, fmt.Errorf("kv: corrupt lock value %x: %w", b, d.err)
	}
	if l.kind < OpPut || l.kind > OpLock {
		return mvccLock{}, fmt.Errorf("kv: corrupt lock value %x: kind %d", b, l.kind)
	}
	l.primary = d.b
	return l, nil
}

// writeKind is what a write record says happened at its timestamp.
type writeKind uint8

const (
	writePut                = writeKind(OpPut)
	writeDelete             = writeKind(OpDelete)
	writeLock               = writeKind(OpLock)
	writeRollback writeKind = 4

	overlappedRollbackFlag byte = 0x80
)

// writeRecord is a decoded write-family value. A rollback marker of the
// transaction T sits at T's start_ts with kind rollback. When another
// transaction's commit record already occupies that timestamp (a commit_ts
// chosen by a 1PC leader can equal T's start_ts), the commit record is kept
// and overlappedRollback is set on it instead: it then also says "T is rolled
// back on this key" (TiKV's has_overlapped_rollback). A commit landing on an
// existing marker replaces it the same way.
type writeRecord struct {
	startTS            Timestamp
	kind               writeKind
	overlappedRollback bool
}

func (w writeRecord) encode() []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64)
	k := byte(w.kind)
	if w.overlappedRollback {
		k |= overlappedRollbackFlag
	}
	b = append(b, k)
	return binary.AppendUvarint(b, w.startTS)
}

func decodeWriteRecord(b []byte) (writeRecord, error) {
	d := decoder{b: b}
	k := d.byte()
	w := writeRecord{kind: writeKind(k &^ overlappedRollbackFlag), overlappedRollback: k&overlappedRollbackFlag != 0, startTS: d.uvarint()}
	if err := d.finish(); err != nil {
		return writeRecord{}, fmt.Errorf("kv: corrupt write record %x: %w", b, err)
	}
	if w.kind < writePut || w.kind > writeRollback || (w.overlappedRollback && w.kind == writeRollback) {
		return writeRecord{}, fmt.Errorf("kv: corrupt write record %x: kind byte %#x", b, k)
	}
	return w, nil
}

// rollsBack reports whether a record at commitTS marks the transaction
// startTS as rolled back on its key.
func (w writeRecord) rollsBack(commitTS, startTS Timestamp) bool {
	if commitTS != startTS {
		return false
	}
	return (w.kind == writeRollback && w.startTS == startTS) || w.overlappedRollback
}

// isCommit reports whether the record is a commit (not a rollback marker).
func (w writeRecord) isCommit() bool { return w.kind != writeRollback }

func (k writeKind) String() string {
	switch k {
	case writePut:
		return "put"
	case writeDelete:
		return "delete"
	case writeLock:
		return "lock"
	case writeRollback:
		return "rollback"
	}
	return fmt.Sprintf("writeKind(%d)", uint8(k))
}
