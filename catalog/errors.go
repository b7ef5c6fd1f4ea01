package catalog

import "errors"

// Errors of the key and row codecs. They are returned wrapped with context
// (which column, which type); match them with errors.Is.
var (
	// ErrNotKeyType: the type cannot be part of a key (JSON, geometry, …).
	ErrNotKeyType = errors.New("catalog: type cannot be used in a key")
	// ErrUnsupportedType: the type (or its collation) is not supported by the codecs.
	ErrUnsupportedType = errors.New("catalog: unsupported type")
	// ErrInvalidValue: a value cannot be encoded as the column's type.
	ErrInvalidValue = errors.New("catalog: invalid value for type")
	// ErrCorruptKey: bytes that are not a valid key encoding for the type.
	ErrCorruptKey = errors.New("catalog: corrupt key encoding")
	// ErrCorruptRow: bytes that are not a valid row value encoding.
	ErrCorruptRow = errors.New("catalog: corrupt row encoding")
	// ErrKeyNotDecodable: the key holds a collation weight string (case- or
	// accent-insensitive collation); the original value lives in the row
	// value. Use SkipKey to step over such a column.
	ErrKeyNotDecodable = errors.New("catalog: key column holds a collation sort key, not the value")
)

// Errors of descriptors and of the catalog stored in KV.
var (
	// ErrInvalidDescriptor: a descriptor fails validation.
	ErrInvalidDescriptor = errors.New("catalog: invalid descriptor")
	// ErrDatabaseExists: CreateDatabase of a name already taken.
	ErrDatabaseExists = errors.New("catalog: database exists")
	// ErrDatabaseNotFound: no database of that name or ID.
	ErrDatabaseNotFound = errors.New("catalog: database not found")
	// ErrDatabaseNotEmpty: DropDatabase of a database that still has tables
	// (the SQL layer drops the tables first).
	ErrDatabaseNotEmpty = errors.New("catalog: database not empty")
	// ErrTableExists: CreateTable/RenameTable onto a name already taken.
	ErrTableExists = errors.New("catalog: table exists")
	// ErrTableNotFound: no table of that name or ID.
	ErrTableNotFound = errors.New("catalog: table not found")
	// ErrVersionMismatch: UpdateTable of a descriptor that is not the stored
	// version (someone else changed the table in between).
	ErrVersionMismatch = errors.New("catalog: descriptor version mismatch")
	// ErrReferencedTable: DropTable of a table that other tables' foreign
	// keys reference.
	ErrReferencedTable = errors.New("catalog: table is referenced by a foreign key")
)
