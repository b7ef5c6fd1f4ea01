package catalog

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/quorumdb/quorumdb/kv"
)

// System key layout of the catalog, all under kv.SystemKey("cat"):
//
//	s cat 'd' <lower(db name)>                       → database ID (BE4)
//	s cat 'D' <dbID BE4>                             → DatabaseDescriptor
//	s cat 't' <dbID BE4> <lower(table name)>         → table ID (BE4)
//	s cat 'T' <tableID BE4>                          → TableDescriptor
//	s cat 'f' <parentID BE4> <childID BE4> <lower(fk name)> → empty (reverse FK map)
//
// Names are the last component of their keys, so no two keys can be
// confused; IDs are fixed width, so "every table of a database" and "every
// child of a parent table" are prefix spans. Names are lowercased in keys
// (MySQL with lower_case_table_names=1 semantics, as go-mysql-server
// resolves names case-insensitively); descriptors keep the original case.
var catalogRoot = []byte("cat")

const (
	tagDatabaseName = 'd'
	tagDatabaseDesc = 'D'
	tagTableName    = 't'
	tagTableDesc    = 'T'
	tagForeignKey   = 'f'
)

func be4(id uint32) []byte { return binary.BigEndian.AppendUint32(nil, id) }

// CatalogSpan returns the span of every catalog key.
func CatalogSpan() kv.Span {
	p := kv.SystemKey(catalogRoot)
	return kv.Span{Key: p, EndKey: kv.PrefixEnd(p)}
}

// DatabaseNameKey maps a database name to its ID.
func DatabaseNameKey(name string) []byte {
	return kv.SystemKey(catalogRoot, []byte{tagDatabaseName}, []byte(strings.ToLower(name)))
}

// DatabaseNamesSpan covers every DatabaseNameKey.
func DatabaseNamesSpan() kv.Span {
	return PrefixSpan(kv.SystemKey(catalogRoot, []byte{tagDatabaseName}))
}

// DatabaseDescriptorKey holds the DatabaseDescriptor of dbID.
func DatabaseDescriptorKey(dbID uint32) []byte {
	return kv.SystemKey(catalogRoot, []byte{tagDatabaseDesc}, be4(dbID))
}

// TableNameKey maps (database, table name) to the table ID.
func TableNameKey(dbID uint32, name string) []byte {
	return kv.SystemKey(catalogRoot, []byte{tagTableName}, be4(dbID), []byte(strings.ToLower(name)))
}

// TableNamesSpan covers every TableNameKey of database dbID.
func TableNamesSpan(dbID uint32) kv.Span {
	return PrefixSpan(kv.SystemKey(catalogRoot, []byte{tagTableName}, be4(dbID)))
}

// TableDescriptorKey holds the TableDescriptor of tableID.
func TableDescriptorKey(tableID uint32) []byte {
	return kv.SystemKey(catalogRoot, []byte{tagTableDesc}, be4(tableID))
}

// ForeignKeyRefKey records that child's foreign key fkName references
// parent.
func ForeignKeyRefKey(parentID, childID uint32, fkName string) []byte {
	return kv.SystemKey(catalogRoot, []byte{tagForeignKey}, be4(parentID), be4(childID), []byte(strings.ToLower(fkName)))
}

// ForeignKeyRefsSpan covers every ForeignKeyRefKey of parent.
func ForeignKeyRefsSpan(parentID uint32) kv.Span {
	return PrefixSpan(kv.SystemKey(catalogRoot, []byte{tagForeignKey}, be4(parentID)))
}

// decodeForeignKeyRefKey returns the child table ID and the lowercased FK name.
func decodeForeignKeyRefKey(key []byte) (childID uint32, fkName string, err error) {
	prefix := kv.SystemKey(catalogRoot, []byte{tagForeignKey})
	if len(key) < len(prefix)+8 || string(key[:len(prefix)]) != string(prefix) {
		return 0, "", fmt.Errorf("%w: foreign key reference key %x", ErrInvalidDescriptor, key)
	}
	rest := key[len(prefix)+4:]
	return binary.BigEndian.Uint32(rest), string(rest[4:]), nil
}

func decodeID(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: ID value of %d bytes", ErrInvalidDescriptor, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}
