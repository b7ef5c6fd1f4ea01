// Package cluster is QuorumDB's coordination layer: every etcd client of the
// system and nothing else. It owns
//
//   - the embedded etcd member (StartEmbeddedEtcd), run inside a node with
//     --embedded-etcd or standalone by `quorumdb etcd`;
//   - the Client, scoped to /quorumdb/<cluster>/ (Connect);
//   - the node registry: IDs, addresses and liveness (Register,
//     RegisterWithID, NodeRegistration, ListNodes, WatchNodes, AddressBook);
//   - ID allocators for nodes, ranges, tables and indexes (IDAllocator);
//   - the timestamp oracle (TSOServer, RegisterTSOService, TSOClient);
//   - the range directory, a published copy of range descriptors
//     (PublishRanges, LookupRange, ListRanges, WatchRanges);
//   - the schema version and per-node acknowledgements (BumpSchemaVersion,
//     WatchSchemaVersion, WaitForSchemaAcks);
//   - the GC safepoint, the bootstrap claim, and elections (Campaign) used
//     by the TSO and the placement driver.
//
// Keys under /quorumdb/<cluster>/:
//
//	nodes/<id>           NodeInfo JSON, on the node's lease: the live set
//	nodes-addr/<id>      NodeInfo JSON, no lease: last known address of every node
//	ids/<kind>           highest ID reserved (decimal); CAS increments by blocks
//	tso/election/<lease> concurrency election of the TSO leader
//	tso/leader           RPC address of the TSO leader, on its lease
//	tso/hwm              TSO high-water mark in ms; every timestamp handed out is below it
//	ranges/<hex(end)>    RangeDescriptor JSON; hex keeps etcd order = end key order
//	schema/version       catalog version (decimal)
//	schema/ack/<id>      schema version a node has loaded, on the node's lease
//	gc/safepoint         GC safepoint timestamp (decimal), only moves forward
//	bootstrap            ID of the node that bootstraps the cluster
//	pd/election/<lease>  placement driver election
//
// Must not: import anything above kv (it knows range descriptors and
// timestamps, not Raft, transactions or SQL); hold anything authoritative
// that Raft already keeps (the directory is a published copy, corrected by
// the ranges' own typed errors); use an etcd lease or lock as mutual
// exclusion for data (Raft terms and range generations fence). The one
// exception is the TSO, whose correctness is the etcd-guarded high-water mark.
//
// Invariants:
//
//   - Timestamps handed out by any TSO leader are unique and strictly
//     increasing in real time, across leader changes: a leader hands out only
//     timestamps below the mark it persisted with a write guarded by its
//     election key's create revision; a new leader starts above the persisted
//     mark; a leader serves only while its lease is known alive, measured from
//     the time each renewal was sent, so it stops before etcd can expire the
//     lease and elect a successor.
//   - No two IDs of one kind are ever handed out twice, whatever the number
//     of allocators and clients; IDs are never reused after a restart.
//   - The range directory replaces a descriptor only by newer generations of
//     overlapping descriptors, in one transaction with a compare on every key
//     read, so concurrent publishers never leave an older descriptor on top
//     of a newer one.
//   - Every network wait is bounded: Connect's dial timeout, embedded etcd's
//     ready timeout, the TSO client's MaxWait, the callers' contexts.
package cluster
