// Package raftgroup is the multi-Raft layer: one Store per node hosting many
// replicas (one go.etcd.io/raft/v3 RawNode per range, no goroutine per range),
// the raft log storage on the node's pebble DB, the transport between nodes,
// snapshots, membership changes, splits, linearizable reads through ReadIndex,
// and the placement driver that repairs and splits ranges.
//
// Commands applied through the log are kv requests (and the layer's own
// split and membership commands); apply is deterministic and writes the
// applied index in the same batch as the state change. raftgroup does not
// evaluate SQL or transactions.
package raftgroup
