// Package catalog owns QuorumDB's schema and the byte formats of SQL data:
//
//   - the order-preserving key codec (EncodeKey, DecodeKey, SkipKey,
//     KeyPrefixEnd, PrefixSpan, SpanBetween) that turns index and primary key
//     columns into the <encoded columns…> part of a table key
//     kv.TableKeyPrefix(tableID, indexID) + columns;
//   - the row value codec (RowCodec), which stores a row once under its
//     primary key, tagged by column ID so that ADD/DROP COLUMN never rewrites
//     rows;
//   - descriptors of databases and tables (columns, primary key, secondary and
//     unique indexes, foreign keys, CHECK constraints), their conversion to and
//     from go-mysql-server types, and their storage under system keys through
//     a transaction the caller passes in (the KV interface);
//   - the data-path view of a table (Table: parsed types, row codec, index
//     column positions; TableCache resolves each descriptor once) and the row
//     key helpers (PrimaryKey, SecondaryIndexKey, UniqueIndexKey,
//     IndexKeyPrefix, PrimaryKeyFromIndexEntry, DecodePrimaryKey).
//
// Not here: ID allocation (cluster/ hands out table, index and database IDs;
// callers pass them in), publishing the schema version in etcd and watching
// it (the SQL layer does, after its DDL transaction commits), deleting a
// dropped table's data span (the caller, through its transaction), and
// evaluating defaults, generated columns and CHECK expressions (go-mysql-server).
//
// It must not know about Raft, ranges, the network or the transaction
// protocol: every read and write goes through the small KV interface defined
// here, which the SQL layer implements with its transaction.
//
// Invariants (each has a property or unit test):
//
//   - For every key type, bytes.Compare of two encodings has the sign of
//     typ.Compare of the values, NULL first (the order of MySQL indexes and of
//     go-mysql-server's range cuts; typ.Compare itself puts NULL last). Equal
//     values have equal encodings; string keys in a collation are the
//     collation's weight string, so 'a' and 'A' collide under _ci collations.
//   - Column encodings are prefix-free: a composite key compares column by
//     column and [p, KeyPrefixEnd(p)) holds exactly the keys whose leading
//     columns are p.
//   - DecodeKey(EncodeKey(v)) and RowCodec.Decode(RowCodec.Encode(row)) give
//     back the exact Go values typ.Convert produces (-0.0 keys decode as +0.0;
//     weight-string keys do not decode: the value is in the row).
//   - A row decodes by column ID: a column added after the row was written
//     takes the value the caller's MissingColumn function supplies, a dropped
//     column's bytes are skipped.
//   - Descriptors change only through UpdateTable, which bumps Version and
//     refuses a stale descriptor (optimistic check inside the caller's
//     transaction).
package catalog
