package qsql

import (
	"encoding/binary"
	"strings"

	"github.com/quorumdb/quorumdb/kv"
)

// System keys the SQL layer owns, next to the catalog's ("s cat …"):
//
//	s sql 'i' <kind>                   → next database/table ID (BE4)
//	s sql 'a' <tableID BE4>            → next unreserved AUTO_INCREMENT value (BE8)
//	s sql 'u'                          → users and grants (go-mysql-server's mysql db blob)
//	s sql <kind> <dbID BE4> <lower(name)> → named schema object (JSON):
//	                                         'v' view, 'g' trigger, 'p' procedure
//
// They are built with kv.SystemKey from fixed-width or final components, so
// no two can be confused. (Candidates to move into catalog/ with the rest of
// the schema keys.)
var sqlRoot = []byte("sql")

const (
	tagIDCounter = 'i'
	tagSequence  = 'a'
	tagGrants    = 'u'
	tagView      = 'v'
	tagTrigger   = 'g'
	tagProcedure = 'p'

	idKindDatabase = 'd'
	idKindTable    = 't'
)

func idCounterKey(kind byte) []byte {
	return kv.SystemKey(sqlRoot, []byte{tagIDCounter, kind})
}

func sequenceKey(tableID uint32) []byte {
	return kv.SystemKey(sqlRoot, []byte{tagSequence}, binary.BigEndian.AppendUint32(nil, tableID))
}

func objectKey(tag byte, dbID uint32, name string) []byte {
	return kv.SystemKey(sqlRoot, []byte{tag}, binary.BigEndian.AppendUint32(nil, dbID), []byte(strings.ToLower(name)))
}

func objectsSpan(tag byte, dbID uint32) kv.Span {
	p := kv.SystemKey(sqlRoot, []byte{tag}, binary.BigEndian.AppendUint32(nil, dbID))
	return kv.Span{Key: p, EndKey: kv.PrefixEnd(p)}
}

func grantsKey() []byte { return kv.SystemKey(sqlRoot, []byte{tagGrants}) }
