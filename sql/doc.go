// Package qsql is QuorumDB's SQL layer: a go-mysql-server (v0.20.0) backend
// over the distributed transactional KV store, and the MySQL-protocol server
// of a node. The directory is sql/; the package is named qsql so that
// go-mysql-server's own sql package can be imported beside it (as gms).
//
// # How a node starts it
//
//	srv, err := qsql.NewServer(ctx, qsql.Config{Listener: ln, DB: txnDB, NodeID: id})
//	go srv.Serve()   // blocks until Close
//	...
//	srv.Close()
//
// # What it owns
//
//   - Provider / Database / Table: the engine's catalog, read from the KV store
//     through the session's transaction with catalog/ (descriptors, key and
//     row codecs); every DDL is a transactional change of descriptors, so it
//     is visible on every node to the next transaction. Resolved schema
//     objects are cached per node by schema generation (schemacache.go): a
//     transaction reads the generation key once and reuses what the node
//     read at that generation, instead of re-reading the descriptors.
//   - Session / Transaction (sql.TransactionSession): one KV transaction per
//     engine transaction, begun lazily on first use; savepoints map to
//     txn.Savepoint; statement atomicity through a per-statement savepoint.
//   - Editors (insert, update, delete, replace, truncate) with primary and
//     unique key enforcement (sql.NewUniqueKeyErr), secondary index
//     maintenance, AUTO_INCREMENT, and the foreign key editor the engine uses
//     to enforce referential actions (reads see the statement's own writes).
//   - Index access: sql.MySQLRangeCollection → KV spans (index_ranges.go).
//   - ALTER TABLE (columns, indexes with backfill, primary key, checks,
//     foreign keys), views, triggers and stored procedures (stored as JSON).
//   - Stale reads (asof.go, asof_parse.go): SELECT … FROM t AS OF <datetime
//     or hybrid timestamp> through sql.VersionedDatabase; the table's
//     definition and rows are read in a read-only txn.TxnOptions{AsOf}
//     snapshot, one per timestamp per statement; writes through such a
//     table are refused (1036).
//   - The wire boundary (handler.go, errmap.go): MySQL error codes instead of
//     the engine's 1105 fallback, and transparent retry of autocommit
//     statements that hit a serialization conflict before sending anything.
//
// # What it must not do
//
// Encode keys or rows by hand (catalog/ owns the codecs and the catalog
// keys; the few SQL-layer system keys are in keys.go), know about ranges or
// Raft, or keep authoritative state in memory: the only node-local state is
// the AUTO_INCREMENT block cache, the schema cache (never used without the
// transaction's own read of the schema generation) and the sessions.
//
// # Invariants
//
//   - Every transaction that writes a catalog key or a schema object (view,
//     trigger, procedure) increments catalog.SchemaGenerationKey in the same
//     transaction (catalogKV, putObject, deleteObject, dropObjects). A
//     transaction that took schema from the node cache has read that key,
//     so it fails read validation (1213) if a schema change commits first.
//   - A row lives once under its primary key; every secondary index entry
//     is written and deleted in the same transaction as the row.
//   - Index spans produced from engine ranges always cover every matching
//     key (PreciseMatch is false, so the engine re-checks its filters).
//   - Serialization conflicts reach the engine as sql.ErrLockDeadlock
//     unwrapped (1213/40001); lock wait timeouts as MySQL 1205.
//   - A failed statement leaves no writes behind (statement savepoint); a
//     failed commit leaves the session without a transaction.
//   - A statement's table scans read the state as of the statement's start;
//     its own writes (held in the statement overlay until it completes) are
//     seen only by the editors' checks and the foreign key editor.
//   - Every AS OF snapshot transaction is rolled back when its statement's
//     context ends, at the latest when the session's next (not nested)
//     statement starts or the session closes: none outlives its statement
//     and holds back the GC safepoint. No AS OF read is at a timestamp
//     above a fresh oracle timestamp.
//   - Planner estimates never read in the session's transaction (they would
//     make every statement conflict with every writer of the table).
//
// # AUTO_INCREMENT semantics
//
// Values are unique cluster-wide and increasing on one node. Each node
// reserves blocks of Config.AutoIncrementBlock values from the table's
// sequence key in its own small transaction; values from different nodes
// interleave by block, a restart skips the rest of a block, and a rolled
// back insert does not give its value back (as in MySQL). An explicit value
// moves the sequence past it.
//
// # Users
//
// go-mysql-server's user and grant tables are persisted as one blob in the KV
// store on every change and reloaded by each node when the stored blob
// changes, before a new connection authenticates (users.go). Without
// Config.RootPassword, root@localhost has no password (loopback clients
// only); with it, root needs that password from any host.
package qsql
